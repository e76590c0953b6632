-- Console sign-in. A session is a row keyed by the SHA-256 of the cookie value (the
-- value itself is never stored). Rows are deleted at logout, expiry and when the
-- account is disabled; they are not part of the audit trail.
CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX sessions_by_user ON sessions (user_id);

-- Who made a prompt's last change (a version or a label move), for the console's list.
ALTER TABLE prompts ADD COLUMN updated_by TEXT NOT NULL DEFAULT '';
UPDATE prompts SET updated_by = created_by;
