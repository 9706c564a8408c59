//! Uploaded images: the row an upload makes, the variants the workers add phase by
//! phase, and which room or user each belongs to (link tables `room_photos` and
//! `user_avatars`, one current image each).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use napiatke_domain::{
    DomainError, ImageId, ImageStatus, ImageVariant, Room, RoomId, StoredImage, UserId,
};

use crate::schema::{images, room_photos, rooms, user_avatars};
use crate::{DbConn, DbError, DbResult};

/// A new upload, checked and decoded, before any variant exists.
#[derive(Debug, Clone)]
pub struct NewImage<'a> {
    /// 16 hex digits of the upload's SHA-256.
    pub source: &'a str,
    /// Storage name of the upload itself (kept for reprocessing, never served).
    pub original: &'a str,
    /// Upright width.
    pub width: u32,
    /// Upright height.
    pub height: u32,
    /// Whether any pixel is transparent.
    pub has_alpha: bool,
    /// The blur placeholder (data URI).
    pub placeholder: &'a str,
}

/// Whose image it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A room's photo.
    Room(RoomId),
    /// A user's avatar.
    User(UserId),
}

type Row = (i64, i32, i32, bool, String, String, String);

const COLUMNS: (
    images::id,
    images::width,
    images::height,
    images::has_alpha,
    images::placeholder,
    images::status,
    images::variants,
) = (
    images::id,
    images::width,
    images::height,
    images::has_alpha,
    images::placeholder,
    images::status,
    images::variants,
);

fn corrupt(what: String) -> DbError {
    DbError::Corrupt(DomainError::UnknownVariant {
        kind: "image row",
        value: what,
        expected: "a JSON list of variants",
    })
}

fn image_from(
    (id, width, height, has_alpha, placeholder, status, variants): Row,
) -> DbResult<StoredImage> {
    let variants: Vec<ImageVariant> =
        serde_json::from_str(&variants).map_err(|e| corrupt(format!("image {id}: {e}")))?;
    Ok(StoredImage {
        id: ImageId(id),
        width: u32::try_from(width).map_err(|_| corrupt(format!("image {id}: width {width}")))?,
        height: u32::try_from(height)
            .map_err(|_| corrupt(format!("image {id}: height {height}")))?,
        has_alpha,
        placeholder,
        status: status.parse()?,
        variants,
    })
}

/// Stores a new upload as PROCESSING and makes it `owner`'s current image, in one
/// transaction. Returns it. Two statements plus BEGIN/COMMIT.
pub fn create(
    conn: &mut DbConn,
    new: &NewImage<'_>,
    owner: Owner,
    now: NaiveDateTime,
) -> DbResult<StoredImage> {
    let width = i32::try_from(new.width).map_err(|_| corrupt(format!("width {}", new.width)))?;
    let height =
        i32::try_from(new.height).map_err(|_| corrupt(format!("height {}", new.height)))?;
    conn.transaction(|conn| {
        let id: i64 = diesel::insert_into(images::table)
            .values((
                images::source.eq(new.source),
                images::original.eq(new.original),
                images::width.eq(width),
                images::height.eq(height),
                images::has_alpha.eq(new.has_alpha),
                images::placeholder.eq(new.placeholder),
                images::variants.eq("[]"),
                images::status.eq(ImageStatus::Processing.as_str()),
                images::created_at.eq(now),
                images::updated_at.eq(now),
            ))
            .returning(images::id)
            .get_result(conn)?;
        // Replace the owner's link in one statement: a DELETE then INSERT would let
        // two concurrent uploads for one owner both find nothing to delete and the
        // second INSERT fail on the key (PostgreSQL, READ COMMITTED). ON CONFLICT is
        // spelled the same on both engines but diesel's MultiConnection does not
        // build it, so each engine's connection runs the same statement.
        macro_rules! upsert {
            ($conn:expr, $table:ident, $key:ident, $value:expr) => {
                diesel::insert_into($table::table)
                    .values(($table::$key.eq($value), $table::image_id.eq(id)))
                    .on_conflict($table::$key)
                    .do_update()
                    .set($table::image_id.eq(id))
                    .execute($conn)
            };
        }
        match (owner, conn) {
            (Owner::Room(room), DbConn::Pg(c)) => upsert!(c, room_photos, room_id, room.get()),
            (Owner::Room(room), DbConn::Sqlite(c)) => {
                upsert!(c, room_photos, room_id, room.get())
            }
            (Owner::User(user), DbConn::Pg(c)) => upsert!(c, user_avatars, user_id, user.get()),
            (Owner::User(user), DbConn::Sqlite(c)) => {
                upsert!(c, user_avatars, user_id, user.get())
            }
        }?;
        Ok(StoredImage {
            id: ImageId(id),
            width: new.width,
            height: new.height,
            has_alpha: new.has_alpha,
            placeholder: new.placeholder.to_owned(),
            status: ImageStatus::Processing,
            variants: Vec::new(),
        })
    })
}

/// Records the variants made so far and the status (with the error when FAILED).
/// One statement; [`DbError::NotFound`] when the image is gone.
pub fn set_variants(
    conn: &mut DbConn,
    id: ImageId,
    variants: &[ImageVariant],
    status: ImageStatus,
    error: Option<&str>,
    now: NaiveDateTime,
) -> DbResult<()> {
    let json = serde_json::to_string(variants).map_err(|e| corrupt(e.to_string()))?;
    let n = diesel::update(images::table.find(id.get()))
        .set((
            images::variants.eq(json),
            images::status.eq(status.as_str()),
            images::error.eq(error),
            images::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(DbError::NotFound);
    }
    Ok(())
}

/// An image by id, or [`DbError::NotFound`]. One statement.
pub fn get(conn: &mut DbConn, id: ImageId) -> DbResult<StoredImage> {
    image_from(images::table.find(id.get()).select(COLUMNS).first(conn)?)
}

/// Who an image belongs to, if anyone still points at it. Two statements at most.
pub fn owner(conn: &mut DbConn, id: ImageId) -> DbResult<Option<Owner>> {
    let room: Option<i64> = room_photos::table
        .filter(room_photos::image_id.eq(id.get()))
        .select(room_photos::room_id)
        .first(conn)
        .optional()?;
    if let Some(room) = room {
        return Ok(Some(Owner::Room(RoomId(room))));
    }
    let user: Option<i64> = user_avatars::table
        .filter(user_avatars::image_id.eq(id.get()))
        .select(user_avatars::user_id)
        .first(conn)
        .optional()?;
    Ok(user.map(|u| Owner::User(UserId(u))))
}

/// Every room by name with its current photo. One statement.
pub fn rooms_with_photos(conn: &mut DbConn) -> DbResult<Vec<(Room, Option<StoredImage>)>> {
    let rows: Vec<((i64, String, i32), Option<Row>)> = rooms::table
        .left_join(room_photos::table.inner_join(images::table))
        .order((rooms::name, rooms::id))
        .select((
            (rooms::id, rooms::name, rooms::capacity),
            COLUMNS.nullable(),
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|((id, name, capacity), image)| {
            Ok((
                Room {
                    id: RoomId(id),
                    name,
                    capacity,
                },
                image.map(image_from).transpose()?,
            ))
        })
        .collect()
}

/// The current avatars of these users (those without one are absent). One statement
/// whatever the number of users (chunked at 10,000).
pub fn avatars(conn: &mut DbConn, users: &[UserId]) -> DbResult<HashMap<UserId, StoredImage>> {
    let mut out = HashMap::with_capacity(users.len());
    for chunk in users.chunks(10_000) {
        let ids: Vec<i64> = chunk.iter().map(|u| u.get()).collect();
        let rows: Vec<(i64, Row)> = user_avatars::table
            .inner_join(images::table)
            .filter(user_avatars::user_id.eq_any(ids))
            .select((user_avatars::user_id, COLUMNS))
            .load(conn)?;
        for (user, row) in rows {
            out.insert(UserId(user), image_from(row)?);
        }
    }
    Ok(out)
}

/// Images still PROCESSING with their original's storage name, oldest first: the
/// jobs a stopped process did not finish. One statement.
pub fn unfinished(conn: &mut DbConn) -> DbResult<Vec<(ImageId, String)>> {
    let rows: Vec<(i64, String)> = images::table
        .filter(images::status.eq(ImageStatus::Processing.as_str()))
        .order(images::id)
        .select((images::id, images::original))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, o)| (ImageId(id), o)).collect())
}

/// Every image with its original's storage name, oldest first, for reprocessing.
/// One statement.
pub fn originals(conn: &mut DbConn) -> DbResult<Vec<(ImageId, String)>> {
    let rows: Vec<(i64, String)> = images::table
        .order(images::id)
        .select((images::id, images::original))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, o)| (ImageId(id), o)).collect())
}
