//! Statement shapes: SQL with its literals and placeholders reduced, so the same query
//! for different rows counts as one (the N+1 detector's key).

/// `sql` with every string and number literal and every placeholder (`?`, `$1`) as
/// `?`, a list of them as one `?`, and runs of white space as one space.
///
/// ```
/// use napiatke_telemetry::shape;
/// assert_eq!(
///     shape("SELECT * FROM users WHERE id = $1 AND name = 'Ann'"),
///     "SELECT * FROM users WHERE id = ? AND name = ?"
/// );
/// assert_eq!(shape("SELECT a FROM t WHERE id IN (?, ?,  ?) LIMIT 50"), shape("SELECT a FROM t WHERE id IN (?) LIMIT 1"));
/// assert_ne!(shape("SELECT a1 FROM t"), shape("SELECT a2 FROM t"));
/// ```
#[must_use]
pub fn shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A string literal ('' inside is an escaped quote).
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                        }
                        Some('\'') | None => break,
                        Some(_) => {}
                    }
                }
                placeholder(&mut out);
            }
            '?' => placeholder(&mut out),
            '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                placeholder(&mut out);
            }
            c if c.is_ascii_digit() && !continues_word(&out) => {
                while chars
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || *c == '.')
                {
                    chars.next();
                }
                placeholder(&mut out);
            }
            c if c.is_whitespace() => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.truncate(out.trim_end().len());
    out
}

/// Whether the text so far ends inside an identifier (so a digit is part of it).
fn continues_word(out: &str) -> bool {
    out.chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
}

/// Adds a `?`, unless it continues a list of them (`?, ?` becomes `?`).
fn placeholder(out: &mut String) {
    let trimmed = out.trim_end();
    if let Some(before) = trimmed.strip_suffix(',') {
        if before.trim_end().ends_with('?') {
            out.truncate(before.trim_end().len());
            return;
        }
    }
    out.push('?');
}

#[cfg(test)]
mod tests {
    use super::shape;

    #[test]
    fn literals_and_lists_fold() {
        assert_eq!(
            shape("SELECT \"lessons\".\"id\" FROM \"lessons\" WHERE \"id\" = $12 AND x = 'it''s' AND y > 3.5"),
            "SELECT \"lessons\".\"id\" FROM \"lessons\" WHERE \"id\" = ? AND x = ? AND y > ?"
        );
        assert_eq!(
            shape("SELECT 1 FROM t WHERE a IN ($1, $2, $3) AND b IN (?,?)"),
            "SELECT ? FROM t WHERE a IN (?) AND b IN (?)"
        );
        assert_eq!(shape("  SELECT\n\t x  FROM t  "), "SELECT x FROM t");
        assert_eq!(shape("SELECT col2 FROM t2"), "SELECT col2 FROM t2");
    }
}
