-- Label moves that need another person's approval (label_policies.require_approval).
CREATE TABLE label_requests (
    id                TEXT PRIMARY KEY,
    prompt_id         INTEGER NOT NULL REFERENCES prompts (id),
    label             TEXT NOT NULL,
    version           INTEGER NOT NULL,
    reason            TEXT NOT NULL,
    requested_by      TEXT NOT NULL,
    -- The person behind the requester (a user, or a key acting as one): no key of theirs may approve.
    requester_user_id INTEGER,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn', 'expired')),
    decided_by        TEXT,
    comment           TEXT,
    created_at        INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL,
    decided_at        INTEGER,
    FOREIGN KEY (prompt_id, version) REFERENCES versions (prompt_id, version)
);
CREATE INDEX label_requests_by_status ON label_requests (status, created_at);
