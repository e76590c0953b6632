-- Failed sign-ins, by account (`user:NAME`) and by address (`addr:IP`), for the rate
-- limit: in the database so that it holds across replicas. Rows older than the window
-- are removed as new ones arrive.
CREATE TABLE login_failures (
    key TEXT NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at);
