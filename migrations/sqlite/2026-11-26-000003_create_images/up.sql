-- Uploaded images: one row per upload, its variants as JSON (written by the image
-- workers, phase by phase). Rooms and users point at their current image through a
-- link table each, so SPEC's tables keep their columns and the change reverts cleanly.
CREATE TABLE images (
    id          INTEGER   PRIMARY KEY,
    source      TEXT      NOT NULL,
    original    TEXT      NOT NULL,
    width       INTEGER   NOT NULL CHECK (width > 0),
    height      INTEGER   NOT NULL CHECK (height > 0),
    has_alpha   BOOLEAN   NOT NULL,
    placeholder TEXT      NOT NULL,
    variants    TEXT      NOT NULL DEFAULT '[]',
    status      TEXT      NOT NULL CHECK (status IN ('PROCESSING', 'READY', 'FAILED')),
    error       TEXT,
    created_at  TIMESTAMP NOT NULL,
    updated_at  TIMESTAMP NOT NULL
);

CREATE TABLE room_photos (
    room_id  INTEGER PRIMARY KEY REFERENCES rooms (id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX room_photos_image_idx ON room_photos (image_id);

CREATE TABLE user_avatars (
    user_id  INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    image_id INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE
);
CREATE INDEX user_avatars_image_idx ON user_avatars (image_id);
