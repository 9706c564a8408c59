-- Login sessions. The cookie holds a random token; only its SHA-256 is stored, so a
-- leaked database or backup does not hand out live sessions.
CREATE TABLE sessions (
    id         TEXT      PRIMARY KEY,
    user_id    INTEGER   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT      NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
