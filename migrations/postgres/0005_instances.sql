-- The instance registry (docs/routing.md, capacity): every serving instance records a
-- heartbeat each second; one silent for 5 s is not live. Carrier limits are shared between
-- the live instances.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen TIMESTAMPTZ NOT NULL,
    version TEXT NOT NULL
);
CREATE INDEX instances_last_seen ON instances (last_seen);
