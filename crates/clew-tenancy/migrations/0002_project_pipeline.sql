-- A project's own pipeline settings (drop and redaction rules, limits, sampling) as JSON;
-- NULL when the project uses the server's.
ALTER TABLE projects ADD COLUMN pipeline TEXT;
