-- The registry's first schema. Times are microseconds since the Unix epoch (UTC).
-- Never edit this file once released: add a new numbered migration instead.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'publisher', 'admin')),
    password_hash TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    -- The first characters of the key, to recognise it in lists; the key itself is never stored.
    prefix     TEXT NOT NULL,
    key_hash   BLOB NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    user_id    INTEGER REFERENCES users (id),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE prompts (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    tags        TEXT NOT NULL DEFAULT '[]',
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE versions (
    prompt_id  INTEGER NOT NULL REFERENCES prompts (id),
    version    INTEGER NOT NULL CHECK (version >= 1),
    hash       TEXT NOT NULL,
    type       TEXT NOT NULL CHECK (type IN ('text', 'chat')),
    template   TEXT,
    messages   TEXT,
    config     TEXT NOT NULL,
    variables  TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (prompt_id, version)
) WITHOUT ROWID;

-- Every label move ever made; the current label and the label at any past instant are
-- both derived from it.
CREATE TABLE label_moves (
    id               INTEGER PRIMARY KEY,
    prompt_id        INTEGER NOT NULL REFERENCES prompts (id),
    label            TEXT NOT NULL,
    version          INTEGER NOT NULL,
    previous_version INTEGER,
    actor            TEXT NOT NULL,
    reason           TEXT NOT NULL,
    at               INTEGER NOT NULL,
    FOREIGN KEY (prompt_id, version) REFERENCES versions (prompt_id, version)
);
CREATE INDEX label_moves_by_label ON label_moves (prompt_id, label, at);

CREATE TABLE label_policies (
    label            TEXT PRIMARY KEY,
    protected        INTEGER NOT NULL DEFAULT 0,
    require_eval     TEXT,
    require_approval INTEGER NOT NULL DEFAULT 0
);
INSERT INTO label_policies (label, protected) VALUES ('stable', 1);

CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    prompt    TEXT,
    version   INTEGER,
    label     TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_by_prompt ON audit_events (prompt, seq);
CREATE INDEX audit_by_actor ON audit_events (actor, seq);
CREATE INDEX audit_by_action ON audit_events (action, seq);

-- History is append-only: the database itself refuses to change or remove it.
CREATE TRIGGER versions_no_update BEFORE UPDATE ON versions
BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;
CREATE TRIGGER versions_no_delete BEFORE DELETE ON versions
BEGIN SELECT RAISE(ABORT, 'versions are immutable'); END;
CREATE TRIGGER label_moves_no_update BEFORE UPDATE ON label_moves
BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
CREATE TRIGGER label_moves_no_delete BEFORE DELETE ON label_moves
BEGIN SELECT RAISE(ABORT, 'label history is append-only'); END;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
