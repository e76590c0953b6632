-- Production telemetry, the registry's part: the `app` key scope, budgets per prompt and
-- the alerts they raised. Generations themselves live in the telemetry database
-- (`<db>.telemetry`, its own migrations) so heavy ingest never contends with changes here.

-- `app` keys: resolve, render, the event stream, lock, and sending generations. SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE api_keys_new (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    key_hash   BLOB NOT NULL UNIQUE,
    scope      TEXT NOT NULL CHECK (scope IN ('app', 'read', 'write', 'admin')),
    user_id    INTEGER REFERENCES users (id),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
INSERT INTO api_keys_new SELECT id, name, prefix, key_hash, scope, user_id, created_by, created_at, revoked_at FROM api_keys;
DROP TABLE api_keys;
ALTER TABLE api_keys_new RENAME TO api_keys;

CREATE TABLE budgets (
    prompt_id  INTEGER PRIMARY KEY REFERENCES prompts (id),
    window     TEXT NOT NULL CHECK (window IN ('day', 'week', 'month')),
    limit_usd  REAL NOT NULL CHECK (limit_usd > 0),
    -- JSON array of fractions of the limit, ascending.
    alerts     TEXT NOT NULL,
    on_exceed  TEXT NOT NULL CHECK (on_exceed IN ('alert', 'block')),
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Each alert fraction fires once per window.
CREATE TABLE budget_alerts (
    prompt_id    INTEGER NOT NULL REFERENCES prompts (id),
    window_start INTEGER NOT NULL,
    fraction     REAL NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (prompt_id, window_start, fraction)
) WITHOUT ROWID;
