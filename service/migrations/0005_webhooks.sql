-- Webhooks: endpoints that receive signed events, and an outbox of deliveries written in
-- the same transaction as the change (so none is lost, and a slow endpoint never slows
-- the change). A delivery's body is built from its audit event. Signing secrets are
-- derived from the server's key (never stored here).
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    url        TEXT NOT NULL,
    -- JSON array of event names.
    events     TEXT NOT NULL,
    active     INTEGER NOT NULL DEFAULT 1,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id),
    event           TEXT NOT NULL,
    audit_seq       INTEGER NOT NULL REFERENCES audit_events (seq),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    response_code   INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id);
