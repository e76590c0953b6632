-- Failed sign-ins, by account (`user:NAME`) and by address (`addr:IP`), for the rate
-- limit: in the database so that it holds across replicas.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at  BIGINT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at);
