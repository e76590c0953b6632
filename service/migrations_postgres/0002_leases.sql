-- Background work that must run once across replicas (the rollout judge, retention, the
-- evaluation sweep) runs where its lease is held: renewed by its holder while it works,
-- taken over by another replica when it lapses. Times from the database's clock.
CREATE TABLE leases (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until  BIGINT NOT NULL
);
