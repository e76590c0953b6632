-- Releases (API.md "Releases"): one label moved on several prompts together, all or
-- none, and rolled back together. A rollback is a release of its own (`rollback_of`).
CREATE TABLE releases (
    id             TEXT PRIMARY KEY,
    label          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    rollback_of    TEXT REFERENCES releases (id),
    rolled_back_by TEXT
);
CREATE INDEX releases_by_time ON releases (created_at);

CREATE TABLE release_moves (
    release_id       TEXT NOT NULL REFERENCES releases (id),
    position         BIGINT NOT NULL,
    prompt_id        BIGINT NOT NULL REFERENCES prompts (id),
    version          BIGINT NOT NULL,
    previous_version BIGINT,
    PRIMARY KEY (release_id, position)
);

-- A request for a whole release waiting for approval: its plan (JSON).
ALTER TABLE label_requests ADD COLUMN release_plan TEXT;

-- Impact checks: see the SQLite migration.
CREATE TABLE impacts (
    id         TEXT PRIMARY KEY,
    prompt_id  BIGINT NOT NULL REFERENCES prompts (id),
    version    BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX impacts_by_version ON impacts (prompt_id, version, created_at);

CREATE TABLE impact_runs (
    impact_id         TEXT NOT NULL REFERENCES impacts (id),
    position          BIGINT NOT NULL,
    dependent         TEXT NOT NULL,
    dependent_version BIGINT NOT NULL,
    label             TEXT NOT NULL,
    suite             TEXT NOT NULL,
    baseline_run      TEXT,
    candidate_run     TEXT,
    error             TEXT,
    PRIMARY KEY (impact_id, position)
);
