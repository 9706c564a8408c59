//! Validated value types.

use std::fmt;

use crate::DomainError;

/// An amount of Polish złoty in grosze (integer minor units: no float ever touches money).
///
/// ```
/// use napiatke_domain::Money;
/// let m = Money::from_minor(25_000) + Money::from_minor(99);
/// assert_eq!(m.minor(), 25_099);
/// assert_eq!(m.to_string(), "250.99 PLN");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

impl Money {
    /// Zero złoty.
    pub const ZERO: Money = Money(0);

    /// From grosze.
    #[must_use]
    pub const fn from_minor(minor: i64) -> Self {
        Money(minor)
    }

    /// The amount in grosze.
    #[must_use]
    pub const fn minor(self) -> i64 {
        self.0
    }

    /// Adds, or `None` on overflow.
    #[must_use]
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }
}

impl std::ops::Add for Money {
    type Output = Money;

    /// Saturates rather than wrapping: a sum of real invoices never comes near i64::MAX.
    fn add(self, rhs: Money) -> Money {
        Money(self.0.saturating_add(rhs.0))
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

/// Serialised as its display text ("1,234.56 PLN") for templates and JSON, which show
/// money and never compute with it; as the integer grosze in binary formats (the
/// cache), so it reads back exactly.
impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            s.serialize_i64(self.0)
        }
    }
}

/// Reads the integer grosze (what binary formats hold).
impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(Money)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let (units, cents) = (abs / 100, abs % 100);
        let digits = units.to_string();
        let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        write!(f, "{sign}{grouped}.{cents:02} PLN")
    }
}

/// An e-mail address, trimmed and lower-cased so that lookups match however it was typed.
///
/// ```
/// use napiatke_domain::Email;
/// let e = Email::parse(" Admin@Napiatke.local ").unwrap();
/// assert_eq!(e.as_str(), "admin@napiatke.local");
/// assert!(Email::parse("not-an-email").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    /// Checks the shape (one `@`, a non-empty local part, a dotted domain, no spaces,
    /// at most 254 bytes); deliverability is the mail server's business.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim().to_lowercase();
        let bad = || DomainError::InvalidEmail(raw.to_owned());
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || !domain_ok {
            return Err(bad());
        }
        Ok(Email(s))
    }

    /// The normalised address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Email::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `#RRGGBB` colour (subjects are drawn in theirs), kept upper case.
///
/// ```
/// use napiatke_domain::Color;
/// assert_eq!(Color::parse("#1a2b3c").unwrap().as_str(), "#1A2B3C");
/// assert!(Color::parse("red").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Color(String);

impl Color {
    /// Accepts exactly `#` and six hex digits.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let ok = raw.len() == 7
            && raw.starts_with('#')
            && raw[1..].chars().all(|c| c.is_ascii_hexdigit());
        if ok {
            Ok(Color(raw.to_ascii_uppercase()))
        } else {
            Err(DomainError::InvalidColor(raw.to_owned()))
        }
    }

    /// `#RRGGBB`.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for Color {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Color {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Color::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Share of a student's marked lessons with status PRESENT, kept as the two counts so
/// nothing is lost to rounding until display.
///
/// ```
/// use napiatke_domain::AttendanceRate;
/// let r = AttendanceRate::new(17, 20);
/// assert_eq!(r.percent(), Some(85.0));
/// assert_eq!(r.to_string(), "85.0%");
/// assert_eq!(AttendanceRate::new(0, 0).to_string(), "—");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttendanceRate {
    /// Lessons marked PRESENT.
    pub present: i64,
    /// Lessons with any attendance mark.
    pub marked: i64,
}

impl AttendanceRate {
    /// From the two counts.
    #[must_use]
    pub const fn new(present: i64, marked: i64) -> Self {
        AttendanceRate { present, marked }
    }

    /// Percentage, or `None` when nothing was marked yet.
    #[must_use]
    pub fn percent(self) -> Option<f64> {
        // Counts of lessons stay far below 2^52, so the casts are exact.
        (self.marked > 0).then(|| self.present as f64 * 100.0 / self.marked as f64)
    }
}

/// Serialised as its display text ("85.0%" or "—") for templates; as the two counts
/// in binary formats (the cache), so nothing is lost.
impl serde::Serialize for AttendanceRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            (self.present, self.marked).serialize(s)
        }
    }
}

/// Reads the two counts (what binary formats hold).
impl<'de> serde::Deserialize<'de> for AttendanceRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <(i64, i64)>::deserialize(d).map(|(present, marked)| AttendanceRate { present, marked })
    }
}

impl fmt::Display for AttendanceRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.percent() {
            Some(p) => write!(f, "{p:.1}%"),
            None => f.write_str("—"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats_with_grouping_and_sign() {
        assert_eq!(Money::from_minor(0).to_string(), "0.00 PLN");
        assert_eq!(Money::from_minor(5).to_string(), "0.05 PLN");
        assert_eq!(Money::from_minor(10_000_000).to_string(), "100,000.00 PLN");
        assert_eq!(Money::from_minor(-1_234_567).to_string(), "-12,345.67 PLN");
        assert_eq!(
            [1, 2, 3].into_iter().map(Money::from_minor).sum::<Money>(),
            Money::from_minor(6)
        );
        assert_eq!(
            Money::from_minor(i64::MAX).checked_add(Money::from_minor(1)),
            None
        );
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        for bad in [
            "", "@x.pl", "a@", "a@b", "a b@c.pl", "a@b@c.pl", "a@.pl", "a@b..pl",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Email::parse("Tutor1@Napiatke.LOCAL").map(|e| e.to_string()),
            Ok("tutor1@napiatke.local".to_owned())
        );
    }

    #[test]
    fn colors_need_six_hex_digits() {
        for bad in ["#12345", "#1234567", "123456#", "#GGGGGG", "#12345é"] {
            assert!(Color::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn attendance_rate_rounds_only_for_display() {
        assert_eq!(AttendanceRate::new(2, 3).to_string(), "66.7%");
        assert_eq!(AttendanceRate::new(0, 4).percent(), Some(0.0));
    }
}
