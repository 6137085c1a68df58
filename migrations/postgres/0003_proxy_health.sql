-- Proxy health shared by the instances on this database (SPEC §11): the last state change of
-- each proxy (lowercase host:port). Written on every transition an instance makes, with a
-- NOTIFY on channel `multiprovider` (payload `health <state> <since µs> <proxy>`); read by a
-- starting instance. A write never replaces a newer row: `since` orders them.
CREATE TABLE proxy_health (
    proxy TEXT PRIMARY KEY,
    health TEXT NOT NULL CHECK (health IN ('up', 'down', 'probing')),
    since TIMESTAMPTZ NOT NULL
);
