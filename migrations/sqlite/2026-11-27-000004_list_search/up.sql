-- Lists at any depth: the lesson list pages by seeking on (start_time, id), which
-- these indexes serve in the list's order (newest first) with or without a status.
CREATE INDEX lessons_start_id_idx ON lessons (start_time, id);
CREATE INDEX lessons_status_start_id_idx ON lessons (status, start_time, id);

-- Student search by index: one document per student (name, e-mail, class), folded by
-- the application (lower case, no diacritics: "Łukasz" is found by "lukasz"; SQLite's
-- own remove_diacritics leaves ł alone), searched as a substring through FTS5's
-- trigram index instead of a LIKE over every student.
CREATE VIRTUAL TABLE student_search USING fts5(user_id UNINDEXED, document, tokenize = 'trigram');
