DROP INDEX images_source_idx;
DROP INDEX images_replaces_idx;
DROP INDEX images_unlinked_idx;
DROP INDEX images_uploaded_by_idx;
ALTER TABLE images DROP COLUMN unlinked_at;
ALTER TABLE images DROP COLUMN replaces;
ALTER TABLE images DROP COLUMN stored_bytes;
ALTER TABLE images DROP COLUMN original_bytes;
ALTER TABLE images DROP COLUMN uploaded_by;
