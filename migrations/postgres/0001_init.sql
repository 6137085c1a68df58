-- multiprovider schema, PostgreSQL.
--
-- Every write takes its revision from config_revision after modifying its row, while it
-- holds the row's lock: per configuration, revisions then follow commit order.

-- The extension record (exactly one row) holding the global configuration.
CREATE TABLE extensions (
    id            INTEGER     PRIMARY KEY CHECK (id = 1),
    sid           TEXT        NOT NULL UNIQUE,
    name          TEXT        NOT NULL,
    configuration TEXT        NOT NULL,
    enabled       BOOLEAN     NOT NULL,
    date_created  TIMESTAMPTZ NOT NULL,
    date_updated  TIMESTAMPTZ NOT NULL,
    revision      BIGINT      NOT NULL
);

-- One configuration per account; account_sid is the canonical lowercase `AC…` form.
CREATE TABLE account_configurations (
    account_sid   TEXT        PRIMARY KEY,
    configuration TEXT        NOT NULL,
    enabled       BOOLEAN     NOT NULL,
    date_created  TIMESTAMPTZ NOT NULL,
    date_updated  TIMESTAMPTZ NOT NULL,
    revision      BIGINT      NOT NULL
);

-- Stable paging order.
CREATE INDEX account_configurations_created ON account_configurations (date_created, account_sid);

CREATE SEQUENCE config_revision;
