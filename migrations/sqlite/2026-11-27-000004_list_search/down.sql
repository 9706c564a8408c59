DROP TABLE student_search;
DROP INDEX lessons_status_start_id_idx;
DROP INDEX lessons_start_id_idx;
