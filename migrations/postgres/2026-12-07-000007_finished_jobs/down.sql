DROP INDEX images_unfinished_idx;
CREATE INDEX images_processing_idx ON images (lease_until) WHERE status = 'PROCESSING';
