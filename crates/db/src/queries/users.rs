//! Users: look-ups for login and for pages.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use napiatke_domain::{Email, Role, User, UserId};

use crate::schema::users;
use crate::{DbConn, DbError, DbResult};

pub(crate) type Row = (i64, String, String, String, String, bool, NaiveDateTime);

pub(crate) fn user_from(
    (id, email, first_name, last_name, role, is_active, created_at): Row,
) -> DbResult<User> {
    Ok(User {
        id: UserId(id),
        email: Email::parse(&email)?,
        first_name,
        last_name,
        role: role.parse()?,
        is_active,
        created_at,
    })
}

pub(crate) const COLUMNS: (
    users::id,
    users::email,
    users::first_name,
    users::last_name,
    users::role,
    users::is_active,
    users::created_at,
) = (
    users::id,
    users::email,
    users::first_name,
    users::last_name,
    users::role,
    users::is_active,
    users::created_at,
);

/// A user by id, or [`DbError::NotFound`]. One statement.
pub fn get(conn: &mut DbConn, id: UserId) -> DbResult<User> {
    user_from(users::table.find(id.get()).select(COLUMNS).first(conn)?)
}

/// A user and their password hash by e-mail, for login. One statement.
pub fn credentials(conn: &mut DbConn, email: &Email) -> DbResult<Option<(User, String)>> {
    let row: Option<(Row, String)> = users::table
        .filter(users::email.eq(email.as_str()))
        .select((COLUMNS, users::password_hash))
        .first(conn)
        .optional()?;
    row.map(|(r, hash)| Ok((user_from(r)?, hash))).transpose()
}

/// Active users with a role. One statement.
pub fn count_active(conn: &mut DbConn, role: Role) -> DbResult<i64> {
    Ok(users::table
        .filter(users::role.eq(role.as_str()))
        .filter(users::is_active.eq(true))
        .count()
        .get_result(conn)?)
}

/// All users, for tests and tools. One statement.
pub fn count_all(conn: &mut DbConn) -> DbResult<i64> {
    users::table.count().get_result(conn).map_err(DbError::from)
}
