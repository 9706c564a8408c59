-- Work shared by the processes of a cluster. An image job is held by one process at a
-- time: the one that took the upload, or the one that claimed it after the holder's
-- lease ran out (it stopped, or its machine did); holders renew their leases while
-- the jobs wait or run. periodic_work says when each periodic task (collecting
-- replaced images) is next due, so one process of the cluster runs it, not each.
ALTER TABLE images ADD COLUMN lease_owner TEXT;
ALTER TABLE images ADD COLUMN lease_until TIMESTAMP;
CREATE INDEX images_processing_idx ON images (lease_until) WHERE status = 'PROCESSING';
CREATE TABLE periodic_work (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    ran_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL
);
