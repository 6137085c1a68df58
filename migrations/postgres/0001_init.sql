-- multiprovider schema, PostgreSQL.
--
-- Every write transaction first bumps revision_counter (UPDATE ... RETURNING), which both
-- gives it its revision and serialises writers: revisions are handed out in commit order,
-- so a REPEATABLE READ snapshot that reads the counter sees every write at or below the
-- value it reads (a SEQUENCE could not promise that: nextval is not transactional).

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

CREATE TABLE revision_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT  NOT NULL
);
INSERT INTO revision_counter (id, value) VALUES (1, 0);
