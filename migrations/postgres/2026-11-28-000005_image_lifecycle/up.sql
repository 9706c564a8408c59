-- What an image costs and where it came from, so uploads can be bounded per user and
-- replaced images collected: who uploaded it, the bytes it holds in storage (original
-- and variants), the image it replaced (shown again if this one fails), and when the
-- collector first found it unlinked (it is removed a grace period after that).
ALTER TABLE images ADD COLUMN uploaded_by BIGINT REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE images ADD COLUMN original_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE images ADD COLUMN replaces BIGINT;
ALTER TABLE images ADD COLUMN unlinked_at TIMESTAMP;
CREATE INDEX images_uploaded_by_idx ON images (uploaded_by);
CREATE INDEX images_unlinked_idx ON images (unlinked_at) WHERE unlinked_at IS NOT NULL;
CREATE INDEX images_replaces_idx ON images (replaces) WHERE replaces IS NOT NULL;
CREATE INDEX images_source_idx ON images (source);
