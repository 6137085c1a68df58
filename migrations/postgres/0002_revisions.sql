-- Revisions (SPEC §10): every write of a configuration is kept as an immutable revision,
-- numbered per configuration from 1 without gaps; numbering outlives a delete.
--
-- scope: 'global' for the global configuration (the extension record), else the account Sid.
-- A writer first bumps the configuration's head row (INSERT … ON CONFLICT DO UPDATE), which
-- locks it until commit: writers of one configuration are serialised there, whether the
-- configuration exists or not, and its revisions follow commit order.

CREATE TABLE configuration_heads (
    scope    TEXT   PRIMARY KEY,
    revision BIGINT NOT NULL
);

CREATE TABLE configuration_revisions (
    scope         TEXT        NOT NULL,
    revision      BIGINT      NOT NULL,
    action        TEXT        NOT NULL CHECK (action IN ('create', 'update', 'delete', 'rollback', 'import')),
    date_created  TIMESTAMPTZ NOT NULL,
    actor         TEXT        NOT NULL,
    remote_addr   TEXT,
    enabled       BOOLEAN     NOT NULL,
    configuration TEXT,
    rollback_of   BIGINT,
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
INSERT INTO configuration_heads SELECT 'global', 1 FROM extensions;
INSERT INTO configuration_heads SELECT account_sid, 1 FROM account_configurations;
UPDATE extensions SET revision = 1;
UPDATE account_configurations SET revision = 1;
DROP SEQUENCE config_revision;
