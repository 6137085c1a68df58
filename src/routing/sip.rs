//! SIP parsing.
