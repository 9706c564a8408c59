-- An image job is unfinished while its lease is held: from the upload until its last
-- phase (AVIF) is recorded, READY already after the first. A job whose process
-- stopped between the phases is then claimed again like a PROCESSING one, and the
-- lease is cleared when the job ends. Jobs that ended before kept their lease:
-- clear them, or every image would be claimed once.
UPDATE images SET lease_owner = NULL, lease_until = NULL WHERE status <> 'PROCESSING';
DROP INDEX images_processing_idx;
CREATE INDEX images_unfinished_idx ON images (lease_until)
    WHERE status = 'PROCESSING' OR lease_owner IS NOT NULL;
