-- Evaluations: model providers and their prices, suites per prompt, runs and their
-- per-case results. API keys of providers are never stored: only the name of the
-- environment variable that holds one.

CREATE TABLE providers (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('openai', 'anthropic')),
    base_url    TEXT NOT NULL,
    api_key_env TEXT,
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- US dollars per million tokens.
CREATE TABLE model_prices (
    provider        TEXT NOT NULL REFERENCES providers (name),
    model           TEXT NOT NULL,
    input_per_mtok  REAL NOT NULL,
    output_per_mtok REAL NOT NULL,
    updated_by      TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (provider, model)
) WITHOUT ROWID;

CREATE TABLE eval_suites (
    prompt_id  INTEGER NOT NULL REFERENCES prompts (id),
    name       TEXT NOT NULL,
    hash       TEXT NOT NULL,
    -- The suite as canonical JSON.
    body       TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (prompt_id, name)
) WITHOUT ROWID;

CREATE TABLE eval_runs (
    id           TEXT PRIMARY KEY,
    prompt_id    INTEGER NOT NULL REFERENCES prompts (id),
    version      INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    suite        TEXT NOT NULL,
    suite_hash   TEXT NOT NULL,
    -- The suite as it was when the run started (it may change afterwards).
    suite_body   TEXT NOT NULL,
    threshold    REAL NOT NULL,
    model        TEXT NOT NULL,
    concurrency  INTEGER NOT NULL,
    -- The model migration this run belongs to, if any.
    batch        TEXT,
    status       TEXT NOT NULL CHECK (status IN ('queued', 'running', 'passed', 'failed', 'error', 'cancelled')),
    total        INTEGER NOT NULL,
    done         INTEGER NOT NULL DEFAULT 0,
    passed       INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    errors       INTEGER NOT NULL DEFAULT 0,
    cost         REAL NOT NULL DEFAULT 0,
    latency_sum  INTEGER NOT NULL DEFAULT 0,
    latency_n    INTEGER NOT NULL DEFAULT 0,
    error        TEXT,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    started_at   INTEGER,
    finished_at  INTEGER,
    -- Written while the run is alive; a queued or running run whose heartbeat is old was
    -- interrupted (its process stopped) and is marked so when a process opens the database.
    heartbeat_at INTEGER NOT NULL,
    FOREIGN KEY (prompt_id, version) REFERENCES versions (prompt_id, version)
);
CREATE INDEX eval_runs_by_prompt ON eval_runs (prompt_id, created_at);
CREATE INDEX eval_runs_by_hash ON eval_runs (hash, suite, status);
CREATE INDEX eval_runs_by_status ON eval_runs (status);
CREATE INDEX eval_runs_by_batch ON eval_runs (batch) WHERE batch IS NOT NULL;

-- A model migration: every suite of every prompt (or of a folder) run against a
-- candidate model, compared with the results of each prompt's stable version.
CREATE TABLE eval_batches (
    id         TEXT PRIMARY KEY,
    model      TEXT NOT NULL,
    folder     TEXT,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE eval_results (
    run_id        TEXT NOT NULL REFERENCES eval_runs (id),
    case_index    INTEGER NOT NULL,
    description   TEXT NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    passed        INTEGER NOT NULL,
    score         REAL NOT NULL,
    latency_ms    INTEGER,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost          REAL,
    finish_reason TEXT,
    error         TEXT,
    assertions    TEXT NOT NULL,
    PRIMARY KEY (run_id, case_index)
) WITHOUT ROWID;
