-- Revisions (SPEC §10): every write of a configuration is kept as an immutable revision,
-- numbered per configuration from 1 without gaps; numbering outlives a delete.
--
-- scope: 'global' for the global configuration (the extension record), else the account Sid.
-- revision_counter becomes the store's change sequence: every write bumps it, and the head of
-- the configuration it wrote records the value (`seq`), so that a running server notices
-- writes made by another process (the CLI's import) by polling one row.

CREATE TABLE configuration_heads (
    scope    TEXT    PRIMARY KEY,
    revision INTEGER NOT NULL,
    seq      INTEGER NOT NULL
);
CREATE INDEX configuration_heads_seq ON configuration_heads (seq);

CREATE TABLE configuration_revisions (
    scope         TEXT    NOT NULL,
    revision      INTEGER NOT NULL,
    action        TEXT    NOT NULL CHECK (action IN ('create', 'update', 'delete', 'rollback', 'import')),
    date_created  INTEGER NOT NULL,
    actor         TEXT    NOT NULL,
    remote_addr   TEXT,
    enabled       BOOLEAN NOT NULL,
    configuration TEXT,
    rollback_of   INTEGER,
    changes       TEXT,
    PRIMARY KEY (scope, revision)
);

-- What exists becomes revision 1, created by the migration.
INSERT INTO configuration_revisions
    SELECT 'global', 1, 'create', date_updated, 'migration', NULL, enabled, configuration, NULL, NULL
    FROM extensions;
INSERT INTO configuration_revisions
    SELECT account_sid, 1, 'create', date_updated, 'migration', NULL, enabled, configuration, NULL, NULL
    FROM account_configurations;
INSERT INTO configuration_heads SELECT 'global', 1, 0 FROM extensions;
INSERT INTO configuration_heads SELECT account_sid, 1, 0 FROM account_configurations;
UPDATE extensions SET revision = 1;
UPDATE account_configurations SET revision = 1;
