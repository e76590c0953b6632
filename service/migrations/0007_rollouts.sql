-- Rollouts: a label moved to a new version gradually. The row holds the plan and where
-- the rollout is now; `rollout_phases` holds every stretch at one weight (a step, or a
-- step resumed after a pause), so "what was live at 14:47" is answerable; the verdicts
-- the judge gave are kept with the figures they were based on.
CREATE TABLE rollouts (
    id                TEXT PRIMARY KEY,
    prompt_id         INTEGER NOT NULL REFERENCES prompts (id),
    label             TEXT NOT NULL,
    base_version      INTEGER NOT NULL,
    candidate_version INTEGER NOT NULL,
    -- JSON: the weights, ascending, ending at 100.
    steps             TEXT NOT NULL,
    step_seconds      INTEGER NOT NULL CHECK (step_seconds > 0),
    min_samples       INTEGER NOT NULL CHECK (min_samples > 0),
    -- JSON: the guards as given.
    guards            TEXT NOT NULL,
    reason            TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'rolled_back', 'aborted')),
    step              INTEGER NOT NULL,
    weight            INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
    step_started_at   INTEGER NOT NULL,
    note              TEXT,
    created_by        TEXT NOT NULL,
    creator_user_id   INTEGER,
    created_at        INTEGER NOT NULL,
    ended_at          INTEGER,
    -- Who ended it: a person (abort, advance to 100) or `system` (the judge).
    ended_by          TEXT,
    FOREIGN KEY (prompt_id, base_version) REFERENCES versions (prompt_id, version),
    FOREIGN KEY (prompt_id, candidate_version) REFERENCES versions (prompt_id, version)
);
-- One live rollout per prompt and label.
CREATE UNIQUE INDEX rollouts_live ON rollouts (prompt_id, label) WHERE status IN ('running', 'paused');
CREATE INDEX rollouts_by_prompt ON rollouts (prompt_id, created_at);

CREATE TABLE rollout_phases (
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    phase      INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    weight     INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    -- Set when the next phase starts or the rollout ends (weight 0 from then on).
    ended_at   INTEGER,
    actor      TEXT NOT NULL,
    PRIMARY KEY (rollout_id, phase)
) WITHOUT ROWID;

CREATE TABLE rollout_verdicts (
    id         INTEGER PRIMARY KEY,
    rollout_id TEXT NOT NULL REFERENCES rollouts (id),
    at         INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    guard      TEXT NOT NULL,
    base       REAL,
    candidate  REAL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('pass', 'fail', 'insufficient')),
    p_value    REAL,
    message    TEXT NOT NULL
);
CREATE INDEX rollout_verdicts_by_rollout ON rollout_verdicts (rollout_id, id);

-- A label request may ask for a gradual rollout instead of a move: the plan, as JSON.
ALTER TABLE label_requests ADD COLUMN rollout TEXT;
