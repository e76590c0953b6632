-- The telemetry database: generations (one model call each, as applications sent it),
-- scores on them, and rollups per prompt, version, rollout arm and five minutes, kept
-- up to date at ingest so metrics never scan generations. Generations are pruned after
-- the retention period; rollups are kept. Times are microseconds since the epoch (UTC).

CREATE TABLE generations (
    seq           INTEGER PRIMARY KEY,
    -- The application's request id.
    id            TEXT NOT NULL UNIQUE,
    prompt        TEXT NOT NULL,
    version       INTEGER NOT NULL,
    hash          TEXT,
    label         TEXT,
    rollout       TEXT,
    arm           TEXT,
    model         TEXT,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    -- Dollars, fixed at ingest (a later price change never rewrites it); NULL: unpriced.
    cost          REAL,
    cost_source   TEXT,
    latency_ms    REAL,
    ttft_ms       REAL,
    status        TEXT NOT NULL,
    error         TEXT,
    finish_reason TEXT,
    variables     TEXT,
    output        TEXT,
    user          TEXT,
    session       TEXT,
    metadata      TEXT,
    drift         TEXT,
    -- JSON array of the fields that were cut.
    truncated     TEXT,
    started_at    INTEGER NOT NULL,
    received_at   INTEGER NOT NULL
);
CREATE INDEX generations_by_prompt ON generations (prompt, started_at);
CREATE INDEX generations_by_time ON generations (started_at);

-- Scores may arrive before their generation: `rolled_up` says whether it is counted in
-- `score_rollups` yet.
CREATE TABLE scores (
    seq        INTEGER PRIMARY KEY,
    generation TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    comment    TEXT,
    created_at INTEGER NOT NULL,
    rolled_up  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX scores_by_generation ON scores (generation);
CREATE INDEX scores_pending ON scores (rolled_up) WHERE rolled_up = 0;
CREATE INDEX scores_by_time ON scores (created_at);

-- `rollout` and `arm` are '' outside a rollout. Latency and TTFT are histograms
-- (domain::telemetry::Histogram); sums and sums of squares feed significance tests.
CREATE TABLE rollups (
    prompt        TEXT NOT NULL,
    bucket        INTEGER NOT NULL,
    version       INTEGER NOT NULL,
    rollout       TEXT NOT NULL,
    arm           TEXT NOT NULL,
    count         INTEGER NOT NULL,
    errors        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    priced        INTEGER NOT NULL,
    unpriced      INTEGER NOT NULL,
    cost          REAL NOT NULL,
    cost_sq       REAL NOT NULL,
    latency_n     INTEGER NOT NULL,
    latency_sum   REAL NOT NULL,
    latency_sq    REAL NOT NULL,
    drift_hash    INTEGER NOT NULL,
    drift_stale   INTEGER NOT NULL,
    latency       BLOB NOT NULL,
    ttft          BLOB NOT NULL,
    PRIMARY KEY (prompt, bucket, version, rollout, arm)
) WITHOUT ROWID;

CREATE TABLE score_rollups (
    prompt  TEXT NOT NULL,
    bucket  INTEGER NOT NULL,
    version INTEGER NOT NULL,
    rollout TEXT NOT NULL,
    arm     TEXT NOT NULL,
    name    TEXT NOT NULL,
    count   INTEGER NOT NULL,
    sum     REAL NOT NULL,
    sum_sq  REAL NOT NULL,
    PRIMARY KEY (prompt, bucket, version, rollout, arm, name)
) WITHOUT ROWID;
