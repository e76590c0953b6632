-- Background work that must run once (the rollout judge, retention, the evaluation
-- sweep) runs where its lease is held: renewed by its holder while it works, taken over
-- by another replica when it lapses. On SQLite one process owns the file and holds them all.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  INTEGER NOT NULL
) WITHOUT ROWID;
