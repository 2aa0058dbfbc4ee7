-- The record-linkage settings an import job runs with (cartella.v1.LinkageSettings,
-- encoded, every field set); NULL for jobs queued before: they run with the core's defaults.
ALTER TABLE import_job ADD COLUMN linkage BLOB;
