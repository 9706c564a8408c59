//! Uploaded images: the row an upload makes, the variants the workers add phase by
//! phase, and which room or user each belongs to (link tables `room_photos` and
//! `user_avatars`, one current image each). An image no longer linked is collected a
//! grace period after the collector first finds it so ([`mark_unlinked`],
//! [`collectable`], [`delete_unlinked`]); one that fails while replacing another gives
//! the owner the old one back ([`restore_replaced`]).

use std::collections::{HashMap, HashSet};

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
    /// Who sent it (counted against their storage allowance).
    pub uploaded_by: Option<UserId>,
    /// The original's size in bytes.
    pub bytes: u64,
    /// The process that will make its variants, until when ([`super::leases`]); none
    /// lets any process claim the job at once.
    pub lease: Option<super::leases::Lease<'a>>,
}

/// An image the collector may remove: its row and every file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collectable {
    /// The image.
    pub id: ImageId,
    /// The upload's hash (files are named from it, so images of one upload share them).
    pub source: String,
    /// The original's storage name and each variant's.
    pub files: Vec<String>,
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

/// The variants column of image `id`, read.
fn variants_of(id: i64, json: &str) -> DbResult<Vec<ImageVariant>> {
    serde_json::from_str(json).map_err(|e| corrupt(format!("image {id}: {e}")))
}

/// Every file an image names: its original and each variant.
fn files_of(id: i64, original: String, variants: &str) -> DbResult<Vec<String>> {
    let mut files = vec![original];
    files.extend(variants_of(id, variants)?.into_iter().map(|v| v.path));
    Ok(files)
}

fn image_from(
    (id, width, height, has_alpha, placeholder, status, variants): Row,
) -> DbResult<StoredImage> {
    let variants = variants_of(id, &variants)?;
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
    let bytes = i64::try_from(new.bytes).map_err(|_| corrupt(format!("bytes {}", new.bytes)))?;
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
                images::uploaded_by.eq(new.uploaded_by.map(UserId::get)),
                images::original_bytes.eq(bytes),
                images::stored_bytes.eq(bytes),
                images::lease_owner.eq(new.lease.map(|l| l.owner)),
                images::lease_until.eq(new.lease.map(|l| l.until)),
            ))
            .returning(images::id)
            .get_result(conn)?;
        // The image shown until now, kept on the new row so a failure can give it
        // back. Read after the INSERT: on SQLite the transaction then already holds
        // the write lock (a read first could see a snapshot another writer has
        // replaced, and fail to upgrade); on PostgreSQL the link row is locked, so two
        // uploads for one owner each see the one before them.
        // FOR UPDATE on PostgreSQL only: diesel's SQLite backend has no such clause.
        macro_rules! current {
            ($conn:expr, $table:ident, $key:expr $(, $lock:ident)?) => {
                $table::table
                    .find($key)
                    .select($table::image_id)
                    $(.$lock())?
                    .first::<i64>($conn)
                    .optional()
            };
        }
        let previous = match (owner, &mut *conn) {
            (Owner::Room(room), DbConn::Pg(c)) => current!(c, room_photos, room.get(), for_update),
            (Owner::Room(room), c @ DbConn::Sqlite(_)) => current!(c, room_photos, room.get()),
            (Owner::User(user), DbConn::Pg(c)) => current!(c, user_avatars, user.get(), for_update),
            (Owner::User(user), c @ DbConn::Sqlite(_)) => current!(c, user_avatars, user.get()),
        }?;
        if let Some(previous) = previous {
            diesel::update(images::table.find(id))
                .set(images::replaces.eq(previous))
                .execute(conn)?;
        }
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

/// Records the variants made so far and the status (with the error when FAILED); the
/// image's stored bytes become its original's plus its variants'. One statement;
/// [`DbError::NotFound`] when the image is gone.
pub fn set_variants(
    conn: &mut DbConn,
    id: ImageId,
    variants: &[ImageVariant],
    status: ImageStatus,
    error: Option<&str>,
    now: NaiveDateTime,
) -> DbResult<()> {
    let json = serde_json::to_string(variants).map_err(|e| corrupt(e.to_string()))?;
    let made: u64 = variants.iter().map(|v| v.bytes).sum();
    let made = i64::try_from(made).map_err(|_| corrupt(format!("variant bytes {made}")))?;
    let n = diesel::update(images::table.find(id.get()))
        .set((
            images::stored_bytes.eq(images::original_bytes + made),
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

/// The bytes stored for images `user` uploaded that are still kept (shown, or
/// replaced and not yet collected). One statement. (Summed here rather than by
/// `SUM`, whose type differs between the engines: a user keeps few images, since
/// this total bounds them.)
pub fn stored_by(conn: &mut DbConn, user: UserId) -> DbResult<u64> {
    let sizes: Vec<i64> = images::table
        .filter(images::uploaded_by.eq(user.get()))
        .select(images::stored_bytes)
        .load(conn)?;
    Ok(sizes
        .into_iter()
        .map(|n| u64::try_from(n).unwrap_or(0))
        .sum())
}

/// Gives `owner` back the image that `failed` replaced, if `failed` is still the
/// owner's and the other still exists; the one given back is no longer unlinked.
/// Returns it. One transaction of up to four statements.
pub fn restore_replaced(
    conn: &mut DbConn,
    failed: ImageId,
    owner: Owner,
) -> DbResult<Option<ImageId>> {
    conn.transaction(|conn| {
        let previous: Option<i64> = images::table
            .find(failed.get())
            .select(images::replaces)
            .first::<Option<i64>>(conn)
            .optional()?
            .flatten();
        let Some(previous) = previous else {
            return Ok(None);
        };
        let exists: Option<i64> = images::table
            .find(previous)
            .select(images::id)
            .first(conn)
            .optional()?;
        if exists.is_none() {
            return Ok(None);
        }
        let moved = match owner {
            Owner::Room(room) => diesel::update(
                room_photos::table
                    .filter(room_photos::room_id.eq(room.get()))
                    .filter(room_photos::image_id.eq(failed.get())),
            )
            .set(room_photos::image_id.eq(previous))
            .execute(conn)?,
            Owner::User(user) => diesel::update(
                user_avatars::table
                    .filter(user_avatars::user_id.eq(user.get()))
                    .filter(user_avatars::image_id.eq(failed.get())),
            )
            .set(user_avatars::image_id.eq(previous))
            .execute(conn)?,
        };
        if moved == 0 {
            return Ok(None);
        }
        diesel::update(images::table.find(previous))
            .set(images::unlinked_at.eq(None::<NaiveDateTime>))
            .execute(conn)?;
        Ok(Some(ImageId(previous)))
    })
}

/// Stamps `now` on every image that no room or user points at and that has no stamp
/// yet: the grace period before collection counts from here. One statement.
pub fn mark_unlinked(conn: &mut DbConn, now: NaiveDateTime) -> DbResult<usize> {
    Ok(diesel::update(
        images::table
            .filter(images::unlinked_at.is_null())
            .filter(images::id.ne_all(room_photos::table.select(room_photos::image_id)))
            .filter(images::id.ne_all(user_avatars::table.select(user_avatars::image_id))),
    )
    .set(images::unlinked_at.eq(now))
    .execute(conn)?)
}

/// Up to `limit` images found unlinked before `before` (oldest first) that no image
/// still PROCESSING would give back on failure, with their files. Two statements.
pub fn collectable(
    conn: &mut DbConn,
    before: NaiveDateTime,
    limit: i64,
) -> DbResult<Vec<Collectable>> {
    let rows: Vec<(i64, String, String, String)> = images::table
        .filter(images::unlinked_at.lt(before))
        .order((images::unlinked_at, images::id))
        .limit(limit)
        .select((
            images::id,
            images::source,
            images::original,
            images::variants,
        ))
        .load(conn)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let wanted: HashSet<i64> = images::table
        .filter(images::status.eq(ImageStatus::Processing.as_str()))
        .filter(images::replaces.eq_any(&ids))
        .select(images::replaces.assume_not_null())
        .load::<i64>(conn)?
        .into_iter()
        .collect();
    rows.into_iter()
        .filter(|(id, ..)| !wanted.contains(id))
        .map(|(id, source, original, variants)| {
            Ok(Collectable {
                id: ImageId(id),
                source,
                files: files_of(id, original, &variants)?,
            })
        })
        .collect()
}

/// Deletes those of `ids` that are still unlinked (a room or user pointing at one
/// again keeps it). Returns the ids deleted. One statement.
pub fn delete_unlinked(conn: &mut DbConn, ids: &[ImageId]) -> DbResult<Vec<ImageId>> {
    let ids: Vec<i64> = ids.iter().map(|i| i.get()).collect();
    let gone: Vec<i64> = diesel::delete(
        images::table
            .filter(images::id.eq_any(ids))
            .filter(images::unlinked_at.is_not_null())
            .filter(images::id.ne_all(room_photos::table.select(room_photos::image_id)))
            .filter(images::id.ne_all(user_avatars::table.select(user_avatars::image_id))),
    )
    .returning(images::id)
    .get_results(conn)?;
    Ok(gone.into_iter().map(ImageId).collect())
}

/// Every file that images of these sources still name (their originals and
/// variants): files are named from the upload, so the same photo uploaded twice
/// shares them, and what one image's collection would delete another may still show.
/// One statement.
pub fn files_in_use(conn: &mut DbConn, sources: &[String]) -> DbResult<HashSet<String>> {
    let rows: Vec<(i64, String, String)> = images::table
        .filter(images::source.eq_any(sources))
        .select((images::id, images::original, images::variants))
        .load(conn)?;
    let mut files = HashSet::new();
    for (id, original, variants) in rows {
        files.extend(files_of(id, original, &variants)?);
    }
    Ok(files)
}
