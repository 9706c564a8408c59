//! Escaping for HTML and URLs: what the image tags, links and error pages write with.

/// Appends `text` escaped for HTML text and attribute values, double- or
/// single-quoted: `& < > " '`. Unlike tera's `escape_html` it leaves `/` alone, so
/// URLs and messages stay readable. What the image tags and the self-contained
/// error pages write with.
///
/// ```
/// let mut out = String::new();
/// napiatke_htmx::escape_html_into(&mut out, r#"<a href="/x">O'Neil & co</a>"#);
/// assert_eq!(out, "&lt;a href=&quot;/x&quot;&gt;O&#x27;Neil &amp; co&lt;/a&gt;");
/// ```
pub fn escape_html_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

/// What [`percent_encode`] leaves as it is: RFC 3986's unreserved characters and `/`.
const URL_SAFE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// `s` percent-encoded for a URL path or a query value (RFC 3986's unreserved
/// characters and `/` kept): media paths in image tags, `next=` and pager links.
///
/// ```
/// assert_eq!(napiatke_htmx::percent_encode("/lessons/?page=2&x=ą"), "/lessons/%3Fpage%3D2%26x%3D%C4%85");
/// ```
#[must_use]
pub fn percent_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URL_SAFE).to_string()
}
