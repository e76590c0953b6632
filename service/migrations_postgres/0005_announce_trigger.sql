-- Every statement that appends audit events announces it to the replicas, at commit:
-- one notification per statement, carrying the newest seq. Replicas catch up from the
-- log itself, so the payload is only a hint, and a bulk copy sends one per chunk.
CREATE FUNCTION promptledger_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('promptledger_changes', (SELECT max(seq) FROM appended)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER audit_events_announce AFTER INSERT ON audit_events
    REFERENCING NEW TABLE AS appended FOR EACH STATEMENT EXECUTE FUNCTION promptledger_announce();
