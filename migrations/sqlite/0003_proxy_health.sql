-- Proxy health (SPEC §11). With SQLite the state is per process and this table stays empty:
-- it exists so that both backends have the same schema.
CREATE TABLE proxy_health (
    proxy TEXT PRIMARY KEY,
    health TEXT NOT NULL CHECK (health IN ('up', 'down', 'probing')),
    since INTEGER NOT NULL -- unix microseconds
);
