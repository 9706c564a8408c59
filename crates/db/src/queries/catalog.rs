//! The small, rarely changing lists: subjects and rooms (filters, forms).

use diesel::prelude::*;
use napiatke_domain::{Color, Room, RoomId, Subject, SubjectId};

use crate::schema::{rooms, subjects};
use crate::{DbConn, DbResult};

/// Every subject by name. One statement.
pub fn subjects(conn: &mut DbConn) -> DbResult<Vec<Subject>> {
    let rows: Vec<(i64, String, String, String)> = subjects::table
        .order((subjects::name, subjects::id))
        .select((
            subjects::id,
            subjects::name,
            subjects::color,
            subjects::level,
        ))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, name, color, level)| {
            Ok(Subject {
                id: SubjectId(id),
                name,
                color: Color::parse(&color)?,
                level,
            })
        })
        .collect()
}

/// Every room by name. One statement.
pub fn rooms(conn: &mut DbConn) -> DbResult<Vec<Room>> {
    let rows: Vec<(i64, String, i32)> = rooms::table
        .order((rooms::name, rooms::id))
        .select((rooms::id, rooms::name, rooms::capacity))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, name, capacity)| Room {
            id: RoomId(id),
            name,
            capacity,
        })
        .collect())
}
