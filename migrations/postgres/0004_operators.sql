-- Named operators (docs/security.md): the people who use the admin API (and the console) with
-- their own name, so that history says who. `password_hash` is an Argon2id PHC string, never
-- the password. Dates are unix microseconds.
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('viewer', 'editor')),
    password_hash TEXT NOT NULL,
    created BIGINT NOT NULL,
    last_login BIGINT
);

-- Failed logins, one row each, shared by every instance on this database: five for one name
-- within 15 minutes lock that name out for the rest of them. Rows older than the window are
-- deleted as new ones are written.
CREATE TABLE login_failures (
    name TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX login_failures_name_at ON login_failures (name, at);
CREATE INDEX login_failures_at ON login_failures (at);
