-- Evidence for rollouts: each generation that names a live rollout is counted in the
-- phase (stretch at one weight) running when it arrives, per arm, so the judge reads two rows
-- per step instead of scanning generations. `phase` on the generation joins scores that
-- arrive later.
ALTER TABLE generations ADD COLUMN phase INTEGER;

CREATE TABLE rollout_rollups (
    rollout     TEXT NOT NULL,
    phase       INTEGER NOT NULL,
    arm         TEXT NOT NULL,
    count       INTEGER NOT NULL,
    errors      INTEGER NOT NULL,
    priced      INTEGER NOT NULL,
    cost        REAL NOT NULL,
    cost_sq     REAL NOT NULL,
    latency     BLOB NOT NULL,
    PRIMARY KEY (rollout, phase, arm)
) WITHOUT ROWID;

CREATE TABLE rollout_score_rollups (
    rollout TEXT NOT NULL,
    phase   INTEGER NOT NULL,
    arm     TEXT NOT NULL,
    name    TEXT NOT NULL,
    count   INTEGER NOT NULL,
    sum     REAL NOT NULL,
    sum_sq  REAL NOT NULL,
    PRIMARY KEY (rollout, phase, arm, name)
) WITHOUT ROWID;
