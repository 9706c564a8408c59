//! Login sessions, keyed by the hash of the cookie token (never the token itself).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::users::{user_from, Row, COLUMNS};
use crate::schema::{sessions, users};
use crate::{DbConn, DbResult};
use napiatke_domain::{User, UserId};

/// A stored session.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredSession {
    /// Who is logged in.
    pub user: User,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it stops being valid (UTC).
    pub expires_at: NaiveDateTime,
}

/// Stores a new session. One statement.
pub fn insert(
    conn: &mut DbConn,
    id_hash: &str,
    user: UserId,
    csrf_token: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> DbResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(id_hash),
            sessions::user_id.eq(user.get()),
            sessions::csrf_token.eq(csrf_token),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// The unexpired session with this id and its active user, or `None`. One statement.
pub fn find(
    conn: &mut DbConn,
    id_hash: &str,
    now: NaiveDateTime,
) -> DbResult<Option<StoredSession>> {
    let row: Option<(Row, String, NaiveDateTime)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id_hash))
        .filter(sessions::expires_at.gt(now))
        .filter(users::is_active.eq(true))
        .select((COLUMNS, sessions::csrf_token, sessions::expires_at))
        .first(conn)
        .optional()?;
    row.map(|(u, csrf_token, expires_at)| {
        Ok(StoredSession {
            user: user_from(u)?,
            csrf_token,
            expires_at,
        })
    })
    .transpose()
}

/// Deletes one session (logout). One statement.
pub fn delete(conn: &mut DbConn, id_hash: &str) -> DbResult<bool> {
    Ok(diesel::delete(sessions::table.filter(sessions::id.eq(id_hash))).execute(conn)? > 0)
}

/// Deletes every expired session; returns how many. One statement.
pub fn delete_expired(conn: &mut DbConn, now: NaiveDateTime) -> DbResult<usize> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(conn)?)
}

/// Deletes every session of a user; returns their ids (the hashes the cache keys
/// them by). One transaction, two statements.
pub fn delete_for_user(conn: &mut DbConn, user: UserId) -> DbResult<Vec<String>> {
    conn.transaction(|conn| {
        let ids: Vec<String> = sessions::table
            .filter(sessions::user_id.eq(user.get()))
            .select(sessions::id)
            .load(conn)?;
        diesel::delete(sessions::table.filter(sessions::user_id.eq(user.get()))).execute(conn)?;
        Ok(ids)
    })
}
