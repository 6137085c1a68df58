-- multiprovider schema, SQLite.
-- Dates are unix microseconds (UTC). Every write takes its revision from revision_counter
-- as the first statement of its transaction, which also takes SQLite's write lock.

-- The extension record (exactly one row) holding the global configuration.
CREATE TABLE extensions (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    sid           TEXT    NOT NULL UNIQUE,
    name          TEXT    NOT NULL,
    configuration TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL,
    date_created  INTEGER NOT NULL,
    date_updated  INTEGER NOT NULL,
    revision      INTEGER NOT NULL
);

-- One configuration per account; account_sid is the canonical lowercase `AC…` form.
CREATE TABLE account_configurations (
    account_sid   TEXT    PRIMARY KEY,
    configuration TEXT    NOT NULL,
    enabled       BOOLEAN NOT NULL,
    date_created  INTEGER NOT NULL,
    date_updated  INTEGER NOT NULL,
    revision      INTEGER NOT NULL
);

-- Stable paging order.
CREATE INDEX account_configurations_created ON account_configurations (date_created, account_sid);

CREATE TABLE revision_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO revision_counter (id, value) VALUES (1, 0);
