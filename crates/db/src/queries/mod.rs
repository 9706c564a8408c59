//! Query modules, mirroring the reference design's querysets (lessons, students,
//! dashboard, invoices) plus the small catalogues and user look-ups. Every function
//! runs a fixed number of statements whatever the data size; each says how many.

pub mod attendance;
pub mod catalog;
pub mod dashboard;
pub mod images;
pub mod invoices;
pub mod leases;
pub mod lessons;
pub mod sessions;
pub mod students;
pub mod users;

use napiatke_domain::UserId;

/// Whose data a query may return: everything (admins), a tutor's own lessons, or a
/// student's own lessons. Role checks live above; this only narrows the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// No narrowing.
    #[default]
    All,
    /// Lessons this tutor teaches.
    Tutor(UserId),
    /// Lessons this student attends.
    Student(UserId),
}

/// Which page of a list, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRequest {
    /// 1 is the first page.
    pub number: u32,
    /// Rows per page (SPEC: 50).
    pub size: u32,
}

impl PageRequest {
    /// Page `number` (clamped to at least 1) of `size` rows (clamped to 1..=1000).
    #[must_use]
    pub fn new(number: u32, size: u32) -> Self {
        PageRequest {
            number: number.max(1),
            size: size.clamp(1, 1000),
        }
    }

    pub(crate) fn offset(self) -> i64 {
        (i64::from(self.number) - 1) * i64::from(self.size)
    }

    pub(crate) fn limit(self) -> i64 {
        i64::from(self.size)
    }
}

/// One page of a list and where it stands in the whole.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// Which page (1-based).
    pub number: u32,
    /// Rows per page.
    pub size: u32,
    /// Rows in the whole list.
    pub total: i64,
}

impl<T> Page<T> {
    /// Pages in the whole list (at least 1, so an empty list still has page 1).
    #[must_use]
    pub fn total_pages(&self) -> u32 {
        let size = i64::from(self.size.max(1));
        u32::try_from(((self.total + size - 1) / size).max(1)).unwrap_or(u32::MAX)
    }

    /// Whether a next page exists.
    #[must_use]
    pub fn has_next(&self) -> bool {
        self.number < self.total_pages()
    }
}

/// A person's id and name, the part of a user lists show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PersonName {
    /// The user.
    pub id: UserId,
    /// Given name.
    pub first_name: String,
    /// Family name.
    pub last_name: String,
}

impl PersonName {
    /// "First Last".
    #[must_use]
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
    }
}

/// `COALESCE(SUM(CASE WHEN <cond> THEN 1 ELSE 0 END), 0)` as BIGINT on both engines
/// (PostgreSQL's SUM of integers is NUMERIC; the cast keeps one Rust type).
pub(crate) fn count_where(cond: &str) -> String {
    format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_count_up_and_clamp() {
        let p = Page::<()> {
            items: vec![],
            number: 1,
            size: 50,
            total: 101,
        };
        assert_eq!(p.total_pages(), 3);
        assert!(p.has_next());
        let empty = Page::<()> {
            total: 0,
            ..p.clone()
        };
        assert_eq!(empty.total_pages(), 1);
        assert!(!empty.has_next());
        assert_eq!(PageRequest::new(0, 0), PageRequest { number: 1, size: 1 });
        assert_eq!(PageRequest::new(3, 50).offset(), 100);
    }
}
