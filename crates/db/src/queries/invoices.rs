//! Invoices.

use chrono::NaiveDate;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use napiatke_domain::{InvoiceStatus, Money};

use super::dashboard::month_bounds;
use crate::schema::invoices;
use crate::{DbConn, DbResult};

/// Sum of PAID invoices issued in `[from, to)`. One statement.
pub fn paid_revenue(conn: &mut DbConn, from: NaiveDate, to: NaiveDate) -> DbResult<Money> {
    // PostgreSQL sums BIGINT as NUMERIC; the cast keeps one Rust type on both engines.
    let total: i64 = invoices::table
        .filter(invoices::status.eq(InvoiceStatus::Paid.as_str()))
        .filter(invoices::issued_date.ge(from))
        .filter(invoices::issued_date.lt(to))
        .select(sql::<BigInt>(
            "CAST(COALESCE(SUM(total_amount), 0) AS BIGINT)",
        ))
        .get_result(conn)?;
    Ok(Money::from_minor(total))
}

/// PAID revenue of the calendar month containing `today`. One statement.
pub fn month_paid_revenue(conn: &mut DbConn, today: NaiveDate) -> DbResult<Money> {
    let (from, to) = month_bounds(today);
    paid_revenue(conn, from, to)
}
