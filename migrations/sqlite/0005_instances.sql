-- The instance registry (docs/routing.md, capacity). A SQLite database has one serving
-- instance (N = 1), which lists itself from memory: the table keeps the schema the same on
-- both backends.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    version TEXT NOT NULL
);
