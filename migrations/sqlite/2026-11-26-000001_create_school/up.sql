-- The SPEC data model on SQLite. Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS'
-- (diesel's chrono format), which sorts and compares correctly as text.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE,
    first_name    TEXT    NOT NULL,
    last_name     TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('ADMIN', 'TUTOR', 'STUDENT')),
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    password_hash TEXT    NOT NULL,
    created_at    TIMESTAMP NOT NULL
);
CREATE INDEX users_role_active_name_idx ON users (role, is_active, last_name, first_name);

CREATE TABLE tutor_profiles (
    user_id     INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    bio         TEXT    NOT NULL DEFAULT '',
    hourly_rate BIGINT  NOT NULL CHECK (hourly_rate >= 0)
);

CREATE TABLE student_profiles (
    user_id      INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    class_name   TEXT    NOT NULL,
    parent_email TEXT    NOT NULL
);

CREATE TABLE subjects (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,
    color TEXT NOT NULL CHECK (length(color) = 7 AND substr(color, 1, 1) = '#'),
    level TEXT NOT NULL
);

CREATE TABLE rooms (
    id       INTEGER PRIMARY KEY,
    name     TEXT    NOT NULL UNIQUE,
    capacity INTEGER NOT NULL CHECK (capacity > 0)
);

CREATE TABLE lessons (
    id         INTEGER PRIMARY KEY,
    title      TEXT      NOT NULL,
    start_time TIMESTAMP NOT NULL,
    end_time   TIMESTAMP NOT NULL,
    status     TEXT      NOT NULL CHECK (status IN ('SCHEDULED', 'ONGOING', 'COMPLETED', 'CANCELLED')),
    tutor_id   INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    subject_id INTEGER   NOT NULL REFERENCES subjects (id) ON DELETE RESTRICT,
    room_id    INTEGER   REFERENCES rooms (id) ON DELETE SET NULL,
    CHECK (end_time > start_time)
);
CREATE INDEX lessons_start_end_idx ON lessons (start_time, end_time);
CREATE INDEX lessons_status_start_idx ON lessons (status, start_time);
CREATE INDEX lessons_tutor_start_idx ON lessons (tutor_id, start_time);
CREATE INDEX lessons_room_start_end_idx ON lessons (room_id, start_time, end_time);
CREATE INDEX lessons_upcoming_idx ON lessons (status, start_time) WHERE status = 'SCHEDULED';
-- No index leads with subject_id on purpose: with one, SQLite 3.50 plans the lesson
-- list from the 12-row subjects table and sorts every lesson (28 ms instead of 1 ms).

CREATE TABLE lesson_students (
    id         INTEGER PRIMARY KEY,
    lesson_id  INTEGER NOT NULL REFERENCES lessons (id) ON DELETE CASCADE,
    student_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    UNIQUE (lesson_id, student_id)
);
CREATE INDEX lesson_students_student_lesson_idx ON lesson_students (student_id, lesson_id);

CREATE TABLE attendance (
    id                INTEGER PRIMARY KEY,
    lesson_student_id INTEGER   NOT NULL UNIQUE REFERENCES lesson_students (id) ON DELETE CASCADE,
    status            TEXT      NOT NULL CHECK (status IN ('PRESENT', 'ABSENT', 'LATE', 'EXCUSED')),
    marked_at         TIMESTAMP NOT NULL
);

CREATE TABLE invoices (
    id           INTEGER PRIMARY KEY,
    student_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_date  DATE    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('DRAFT', 'ISSUED', 'PAID', 'OVERDUE')),
    total_amount BIGINT  NOT NULL CHECK (total_amount >= 0)
);
CREATE INDEX invoices_status_issued_idx ON invoices (status, issued_date);
CREATE INDEX invoices_student_issued_idx ON invoices (student_id, issued_date);
