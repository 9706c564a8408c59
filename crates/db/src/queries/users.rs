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

/// Every user, by id (the CLI's `users list`). One statement.
pub fn list(conn: &mut DbConn) -> DbResult<Vec<User>> {
    let rows: Vec<Row> = users::table.order(users::id).select(COLUMNS).load(conn)?;
    rows.into_iter().map(user_from).collect()
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser<'a> {
    /// Their e-mail (unique).
    pub email: &'a Email,
    /// First name.
    pub first_name: &'a str,
    /// Last name.
    pub last_name: &'a str,
    /// Their role.
    pub role: Role,
    /// The argon2 PHC string of their password.
    pub password_hash: &'a str,
    /// When.
    pub now: NaiveDateTime,
}

/// Creates an active user, with the empty profile a tutor or student has; an e-mail
/// already taken is [`DbError::Duplicate`]. One transaction, two or three statements.
pub fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> DbResult<UserId> {
    use crate::schema::{student_profiles, tutor_profiles};
    conn.transaction(|conn| {
        let taken: i64 = users::table
            .filter(users::email.eq(new.email.as_str()))
            .count()
            .get_result(conn)?;
        if taken > 0 {
            return Err(DbError::Duplicate(format!(
                "a user with the e-mail {} exists",
                new.email.as_str()
            )));
        }
        let id: i64 = diesel::insert_into(users::table)
            .values((
                users::email.eq(new.email.as_str()),
                users::first_name.eq(new.first_name),
                users::last_name.eq(new.last_name),
                users::role.eq(new.role.as_str()),
                users::is_active.eq(true),
                users::password_hash.eq(new.password_hash),
                users::created_at.eq(new.now),
            ))
            .returning(users::id)
            .get_result(conn)?;
        match new.role {
            Role::Tutor => {
                diesel::insert_into(tutor_profiles::table)
                    .values((
                        tutor_profiles::user_id.eq(id),
                        tutor_profiles::bio.eq(""),
                        tutor_profiles::hourly_rate.eq(0i64),
                    ))
                    .execute(conn)?;
            }
            Role::Student => {
                diesel::insert_into(student_profiles::table)
                    .values((
                        student_profiles::user_id.eq(id),
                        student_profiles::class_name.eq(""),
                        student_profiles::parent_email.eq(""),
                    ))
                    .execute(conn)?;
            }
            Role::Admin => {}
        }
        Ok(UserId(id))
    })
}

/// The user with this e-mail, or [`DbError::NotFound`]. One statement.
pub fn by_email(conn: &mut DbConn, email: &Email) -> DbResult<User> {
    user_from(
        users::table
            .filter(users::email.eq(email.as_str()))
            .select(COLUMNS)
            .first(conn)?,
    )
}

/// Sets a user's password hash. One statement.
pub fn set_password(conn: &mut DbConn, id: UserId, password_hash: &str) -> DbResult<bool> {
    Ok(diesel::update(users::table.find(id.get()))
        .set(users::password_hash.eq(password_hash))
        .execute(conn)?
        > 0)
}

/// Activates or deactivates a user. One statement.
pub fn set_active(conn: &mut DbConn, id: UserId, active: bool) -> DbResult<bool> {
    Ok(diesel::update(users::table.find(id.get()))
        .set(users::is_active.eq(active))
        .execute(conn)?
        > 0)
}

/// The demo set's e-mail domain: accounts whose passwords the README and the demo
/// print.
pub const DEMO_DOMAIN: &str = "@napiatke.local";

/// Active users of the demo set ([`DEMO_DOMAIN`]). One statement.
pub fn count_demo(conn: &mut DbConn) -> DbResult<i64> {
    Ok(users::table
        .filter(users::email.like(format!("%{DEMO_DOMAIN}")))
        .filter(users::is_active.eq(true))
        .count()
        .get_result(conn)?)
}
