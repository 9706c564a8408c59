-- Lists at any depth: the lesson list pages by seeking on (start_time, id), which
-- these indexes serve in the list's order (newest first) with or without a status.
CREATE INDEX lessons_start_id_idx ON lessons (start_time, id);
CREATE INDEX lessons_status_start_id_idx ON lessons (status, start_time, id);

-- Student search by index: one document per student (name, e-mail, class), folded by
-- the application (lower case, no diacritics: "Łukasz" is found by "lukasz"), searched
-- as a substring through trigrams instead of a LIKE over every student.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE TABLE student_search (
    user_id  BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    document TEXT NOT NULL
);
CREATE INDEX student_search_document_trgm_idx ON student_search USING gin (document gin_trgm_ops);
