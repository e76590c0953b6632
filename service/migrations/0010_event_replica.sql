-- Which replica wrote an event (PostgreSQL fills it; one process owns a SQLite file, so
-- here it stays empty). Not part of the chained hash.
ALTER TABLE audit_events ADD COLUMN replica TEXT;
