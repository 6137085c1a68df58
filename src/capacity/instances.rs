//! The instance registry (docs/routing.md, capacity): each instance records a heartbeat.
