DROP TABLE user_avatars;
DROP TABLE room_photos;
DROP TABLE images;
