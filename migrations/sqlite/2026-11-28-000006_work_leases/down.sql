DROP TABLE periodic_work;
DROP INDEX images_processing_idx;
ALTER TABLE images DROP COLUMN lease_until;
ALTER TABLE images DROP COLUMN lease_owner;
