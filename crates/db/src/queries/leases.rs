//! Work shared by the processes of a cluster: image jobs held under a lease (so a job
//! lost with its process is taken by another, and none runs in two at once) and
//! periodic tasks that take turns (so one process runs each, not every one).
//!
//! On PostgreSQL a claim locks the rows it takes and skips those another claim has
//! locked (`FOR UPDATE SKIP LOCKED`): concurrent claims get disjoint jobs without
//! waiting on each other. SQLite runs one writer at a time, so its `UPDATE ...
//! RETURNING` is already a claim no other process can share.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};
use napiatke_domain::{ImageId, ImageStatus};

use super::dashboard::placeholders;
use crate::schema::images;
use crate::{DbConn, DbResult, Engine};

/// Who holds a job and until when (the holder renews it while the job waits or runs).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    /// The holding process (`host:pid:start`, any string unique in the cluster).
    pub owner: &'a str,
    /// When the job may be claimed by another process if not renewed.
    pub until: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    original: String,
    #[diesel(sql_type = Text)]
    status: String,
}

/// An image job taken over by [`claim_images`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedImage {
    /// The image.
    pub id: ImageId,
    /// Its original's storage name.
    pub original: String,
    /// PROCESSING (nothing shown yet), or READY (its first phase recorded, a later
    /// one cut off).
    pub status: ImageStatus,
}

/// Claims up to `limit` unfinished image jobs whose lease ran out by `now` (or that
/// never had one), oldest first, for `lease.owner` until `lease.until`. Unfinished:
/// PROCESSING, or with its lease still held (a READY image whose later phase, AVIF,
/// was cut off with its process; [`finish_image`] clears the lease when a job ends).
/// One statement.
///
/// ```no_run
/// # fn f(conn: &mut napiatke_db::DbConn, now: chrono::NaiveDateTime) -> napiatke_db::DbResult<()> {
/// use napiatke_db::queries::leases::{claim_images, Lease};
/// let until = now + chrono::Duration::seconds(60);
/// for job in claim_images(conn, Lease { owner: "web-1:4242:0", until }, now, 4)? {
///     println!("job {} from {} is ours until {until}", job.id, job.original);
/// }
/// # Ok(()) }
/// ```
pub fn claim_images(
    conn: &mut DbConn,
    lease: Lease<'_>,
    now: NaiveDateTime,
    limit: i64,
) -> DbResult<Vec<ClaimedImage>> {
    let lock = match conn.engine() {
        Engine::Postgres => " FOR UPDATE SKIP LOCKED",
        Engine::Sqlite => "",
    };
    let sql = format!(
        "UPDATE images SET lease_owner = ?, lease_until = ? WHERE id IN \
         (SELECT id FROM images WHERE (status = '{processing}' OR lease_owner IS NOT NULL) \
          AND (lease_until IS NULL OR lease_until <= ?) ORDER BY id LIMIT ?{lock}) \
         RETURNING id, original, status",
        processing = ImageStatus::Processing.as_str(),
    );
    let mut rows: Vec<Claimed> = diesel::sql_query(placeholders(conn.engine(), &sql))
        .bind::<Text, _>(lease.owner)
        .bind::<Timestamp, _>(lease.until)
        .bind::<Timestamp, _>(now)
        .bind::<BigInt, _>(limit)
        .load(conn)?;
    rows.sort_by_key(|r| r.id);
    rows.into_iter()
        .map(|r| {
            let status: ImageStatus = r.status.parse()?;
            Ok(ClaimedImage {
                id: ImageId(r.id),
                original: r.original,
                status,
            })
        })
        .collect()
}

/// Ends `id`'s job: its lease is cleared, so no process claims it again. One
/// statement.
pub fn finish_image(conn: &mut DbConn, id: ImageId) -> DbResult<()> {
    diesel::update(images::table.find(id.get()))
        .set((
            images::lease_owner.eq(None::<String>),
            images::lease_until.eq(None::<NaiveDateTime>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Extends `lease.owner`'s leases on `ids` to `lease.until`. Returns how many were
/// extended (a job another process claimed, or one that finished, is not). One
/// statement.
pub fn renew_images(conn: &mut DbConn, lease: Lease<'_>, ids: &[ImageId]) -> DbResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = ids.iter().map(|i| i.get()).collect();
    Ok(diesel::update(
        images::table
            .filter(images::id.eq_any(ids))
            .filter(images::lease_owner.eq(lease.owner)),
    )
    .set(images::lease_until.eq(lease.until))
    .execute(conn)?)
}

/// Takes the turn of the periodic task `name` if it is due at `now` (or has never
/// run): records `owner` as having run it at `now` and makes it due again at `next`,
/// and returns true. False when another process took this turn. One statement, the
/// same on both engines (an upsert whose update applies only to a due row).
///
/// ```no_run
/// # fn f(conn: &mut napiatke_db::DbConn, now: chrono::NaiveDateTime) -> napiatke_db::DbResult<()> {
/// use napiatke_db::queries::leases::take_turn;
/// if take_turn(conn, "image_gc", "web-1:4242:0", now, now + chrono::Duration::hours(1))? {
///     // this process collects; the others skip until the next turn
/// }
/// # Ok(()) }
/// ```
pub fn take_turn(
    conn: &mut DbConn,
    name: &str,
    owner: &str,
    now: NaiveDateTime,
    next: NaiveDateTime,
) -> DbResult<bool> {
    let sql = "INSERT INTO periodic_work (name, owner, ran_at, due_at) VALUES (?, ?, ?, ?) \
               ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
               ran_at = excluded.ran_at, due_at = excluded.due_at \
               WHERE periodic_work.due_at <= ?";
    let n = diesel::sql_query(placeholders(conn.engine(), sql))
        .bind::<Text, _>(name)
        .bind::<Text, _>(owner)
        .bind::<Timestamp, _>(now)
        .bind::<Timestamp, _>(next)
        .bind::<Timestamp, _>(now)
        .execute(conn)?;
    Ok(n == 1)
}
