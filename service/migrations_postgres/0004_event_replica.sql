-- Which replica wrote an event: each replica's connections carry its id as
-- `application_name`, so a replica catching up skips what it applied itself. Not part of
-- the chained hash.
ALTER TABLE audit_events ADD COLUMN replica TEXT DEFAULT current_setting('application_name');
