//! The development debug toolbar: what each of the last requests did, htmx ones
//! included, as django-debug-toolbar's panels show it.
//!
//! The web shell records each request's statements, cache lookups and renders with
//! a [`Recording`](napiatke_telemetry::record::Recording), then hands them here as an
//! [`Entry`] with the request's headers and timings. [`Toolbar`] keeps the last
//! entries (50 by default, like django-debug-toolbar's history), renders a small
//! handle to inject into a full page ([`Toolbar::handle`], [`inject`]), and renders
//! the panels of any entry ([`Toolbar::panels`]) and the history ([`Toolbar::history`])
//! for the toolbar's script to fetch. It knows nothing of HTTP: the shell routes.
//!
//! ```
//! use napiatke_toolbar::{inject, Entry, Info, Toolbar};
//!
//! let toolbar = Toolbar::new(Info::default())?;
//! let entry = toolbar.record(Entry {
//!     id: "r1".into(),
//!     method: "GET".into(),
//!     path: "/dashboard/".into(),
//!     status: 200,
//!     ..Entry::default()
//! });
//! let page = inject("<html><body><h1>Hi</h1></body></html>", &toolbar.handle(&entry)?);
//! assert!(page.contains("data-request=\"r1\""));
//! assert!(toolbar.history()?.contains("/dashboard/"));
//! assert!(toolbar.panels(&entry)?.contains("GET"));
//! # Ok::<(), napiatke_toolbar::ToolbarError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use napiatke_telemetry::record::Recorded;
use serde::Serialize;

/// Where the toolbar's routes live; the shell mounts them there.
pub const BASE: &str = "/__debug__/";

/// The response header naming the request's entry, so the toolbar's script can
/// follow htmx requests (django-debug-toolbar's `djdt-store-id`).
pub const ID_HEADER: &str = "x-debug-request-id";

/// Header values shown masked: what would let a reader of the history act as the user.
const MASKED: &[&str] = &["cookie", "set-cookie", "authorization", "x-csrf-token"];

/// What can go wrong: only rendering, and only if a template is broken.
#[derive(Debug, thiserror::Error)]
pub enum ToolbarError {
    /// A toolbar template failed to compile or render.
    #[error("debug toolbar template: {0}")]
    Template(#[from] tera::Error),
}

/// What the toolbar shows on every request: fixed at start.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// The effective settings as `(NAME, value)`, secrets already hidden.
    pub settings: Vec<(String, String)>,
    /// Component versions as `(name, version)`.
    pub versions: Vec<(String, String)>,
    /// The toolbar's stylesheet URL (hashed, through the static pipeline).
    pub css_url: String,
    /// The toolbar's script URL.
    pub js_url: String,
}

/// What htmx said about a request, and what the response told htmx to do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HtmxInfo {
    /// `HX-Trigger`: the id of the element that triggered it.
    pub trigger: Option<String>,
    /// `HX-Trigger-Name`.
    pub trigger_name: Option<String>,
    /// `HX-Target`: the id of the element to swap into.
    pub target: Option<String>,
    /// `HX-Current-URL`: the page the user was on.
    pub current_url: Option<String>,
    /// `HX-Boosted`.
    pub boosted: bool,
    /// `HX-History-Restore-Request`: htmx wants a whole page.
    pub history_restore: bool,
    /// The response's `HX-Reswap`, if it changed the swap.
    pub reswap: Option<String>,
    /// The response's `HX-Retarget`.
    pub retarget: Option<String>,
    /// The response's `HX-Push-Url`.
    pub push_url: Option<String>,
}

/// Time spent, microseconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// The whole request, as the front layer measured it.
    pub total_micros: u64,
    /// In the database.
    pub db_micros: u64,
    /// In Redis lookups.
    pub cache_micros: u64,
    /// In templates.
    pub render_micros: u64,
}

/// One request as the toolbar keeps it.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The request id (`X-Request-Id`).
    pub id: String,
    /// When it started, as the shell wants it shown.
    pub time: String,
    /// The method.
    pub method: String,
    /// Path and query string.
    pub path: String,
    /// The route template (`/lessons/{id}/`).
    pub route: String,
    /// The response's status.
    pub status: u16,
    /// Set when htmx sent it.
    pub htmx: Option<HtmxInfo>,
    /// The request's headers (masked ones are masked here, on the way in).
    pub request_headers: Vec<(String, String)>,
    /// The response's headers.
    pub response_headers: Vec<(String, String)>,
    /// Time spent.
    pub timings: Timings,
    /// The statements, cache lookups and renders, one by one.
    pub recorded: Recorded,
}

/// A header as the toolbar shows it: the values of `Cookie`, `Set-Cookie`,
/// `Authorization` and `X-CSRF-Token` hidden (their length kept).
#[must_use]
pub fn shown_header(name: &str, value: &str) -> (String, String) {
    let name = name.to_ascii_lowercase();
    let value = if MASKED.contains(&name.as_str()) {
        format!("******** ({} bytes)", value.len())
    } else {
        value.to_owned()
    };
    (name, value)
}

/// `html` with `snippet` placed before its last `</body>`, or at the end when it has
/// none.
///
/// ```
/// assert_eq!(napiatke_toolbar::inject("<body>a</BODY>", "<b>t</b>"), "<body>a<b>t</b></BODY>");
/// assert_eq!(napiatke_toolbar::inject("<p>a", "<b>t</b>"), "<p>a<b>t</b>");
/// ```
#[must_use]
pub fn inject(html: &str, snippet: &str) -> String {
    let at = html
        .to_ascii_lowercase()
        .rfind("</body>")
        .unwrap_or(html.len());
    let mut out = String::with_capacity(html.len() + snippet.len());
    out.push_str(&html[..at]);
    out.push_str(snippet);
    out.push_str(&html[at..]);
    out
}

/// The last requests and the templates that show them.
#[derive(Debug)]
pub struct Toolbar {
    info: Info,
    capacity: usize,
    history: Mutex<VecDeque<Arc<Entry>>>,
    tera: tera::Tera,
}

impl Toolbar {
    /// A toolbar keeping the last 50 requests.
    pub fn new(info: Info) -> Result<Toolbar, ToolbarError> {
        Toolbar::with_capacity(info, 50)
    }

    /// A toolbar keeping the last `capacity` requests.
    pub fn with_capacity(info: Info, capacity: usize) -> Result<Toolbar, ToolbarError> {
        let mut tera = tera::Tera::default();
        tera.add_raw_templates([
            ("handle.html", include_str!("../templates/handle.html")),
            ("panels.html", include_str!("../templates/panels.html")),
            ("history.html", include_str!("../templates/history.html")),
            ("plan.html", include_str!("../templates/plan.html")),
        ])?;
        tera.autoescape_on(vec![".html"]);
        tera.set_escape_fn(escape);
        Ok(Toolbar {
            info,
            capacity: capacity.max(1),
            history: Mutex::new(VecDeque::with_capacity(capacity)),
            tera,
        })
    }

    /// Keeps `entry` (dropping the oldest beyond the capacity) and gives it back.
    pub fn record(&self, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut history = self.lock();
        while history.len() >= self.capacity {
            history.pop_front();
        }
        history.push_back(Arc::clone(&entry));
        entry
    }

    /// The kept entry with this id.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<Arc<Entry>> {
        self.lock().iter().rev().find(|e| e.id == id).cloned()
    }

    /// The kept entries, newest first.
    #[must_use]
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.lock().iter().rev().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Entry>>> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle injected into a full page: its summary, the toolbar's assets, and
    /// where its script finds the panels.
    pub fn handle(&self, entry: &Entry) -> Result<String, ToolbarError> {
        let mut ctx = tera::Context::new();
        ctx.insert("base", BASE);
        ctx.insert("id", &entry.id);
        ctx.insert("css_url", &self.info.css_url);
        ctx.insert("js_url", &self.info.js_url);
        ctx.insert("statements", &entry.recorded.statements.len());
        ctx.insert("total_ms", &ms(entry.timings.total_micros));
        Ok(self.tera.render("handle.html", &ctx)?)
    }

    /// Every panel of one request.
    pub fn panels(&self, entry: &Entry) -> Result<String, ToolbarError> {
        let view = PanelsView::of(entry, &self.info);
        let ctx = tera::Context::from_serialize(&view)?;
        Ok(self.tera.render("panels.html", &ctx)?)
    }

    /// The history: the kept requests, newest first, htmx ones with what triggered
    /// them and where they went.
    pub fn history(&self) -> Result<String, ToolbarError> {
        let rows: Vec<HistoryRow> = self.entries().iter().map(|e| HistoryRow::of(e)).collect();
        let mut ctx = tera::Context::new();
        ctx.insert("rows", &rows);
        ctx.insert("capacity", &self.capacity);
        ctx.insert("base", BASE);
        Ok(self.tera.render("history.html", &ctx)?)
    }

    /// A statement's plan (or why there is none), for the SQL panel.
    pub fn plan(&self, sql: &str, plan: Result<&[String], &str>) -> Result<String, ToolbarError> {
        let mut ctx = tera::Context::new();
        ctx.insert("sql", sql);
        match plan {
            Ok(lines) => ctx.insert("lines", lines),
            Err(why) => ctx.insert("error", why),
        }
        Ok(self.tera.render("plan.html", &ctx)?)
    }
}

/// HTML-escapes `&<>"'` (tera's own escape also turns `/` into `&#x2F;`, which
/// makes every path in the panels hard to read in the source).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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
    out
}

/// Milliseconds with three decimals.
fn ms(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

/// A statement as the SQL panel lists it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct StatementRow {
    /// Its position, from 0 (the EXPLAIN route names it by this).
    pub n: usize,
    /// The SQL, placeholders kept.
    pub sql: String,
    /// How long it ran, ms.
    pub ms: String,
    /// When it finished, ms after the request started.
    pub at_ms: String,
    /// How many statements of this request had exactly this text (2+ is a duplicate).
    pub same: u32,
    /// How many had this shape, literals aside (3+ is an N+1).
    pub similar: u32,
    /// Whether EXPLAIN is offered (a single read).
    pub explainable: bool,
}

/// The SQL panel's rows: each statement with how often its text and its shape ran.
#[must_use]
pub fn statement_rows(recorded: &Recorded) -> Vec<StatementRow> {
    let mut same: HashMap<&str, u32> = HashMap::new();
    let mut similar: HashMap<String, u32> = HashMap::new();
    let shapes: Vec<String> = recorded
        .statements
        .iter()
        .map(|s| napiatke_telemetry::shape(&s.sql))
        .collect();
    for (s, shape) in recorded.statements.iter().zip(&shapes) {
        *same.entry(s.sql.as_str()).or_default() += 1;
        *similar.entry(shape.clone()).or_default() += 1;
    }
    recorded
        .statements
        .iter()
        .zip(&shapes)
        .enumerate()
        .map(|(n, (s, shape))| StatementRow {
            n,
            sql: s.sql.clone(),
            ms: ms(s.micros),
            at_ms: ms(s.at_micros),
            same: same.get(s.sql.as_str()).copied().unwrap_or(1),
            similar: similar.get(shape).copied().unwrap_or(1),
            explainable: is_read(&s.sql),
        })
        .collect()
}

/// A single SELECT or WITH (db checks again before it explains anything).
fn is_read(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or_default();
    first.eq_ignore_ascii_case("select") || first.eq_ignore_ascii_case("with")
}

#[derive(Serialize)]
struct CacheRow {
    tier: String,
    namespace: String,
    hit: bool,
    ms: String,
    at_ms: String,
}

#[derive(Serialize)]
struct CacheTotal {
    tier: String,
    namespace: String,
    hits: u32,
    misses: u32,
}

#[derive(Serialize)]
struct RenderRow {
    template: String,
    blocks: Vec<String>,
    context: Vec<String>,
    ms: String,
    at_ms: String,
}

#[derive(Serialize)]
struct PanelsView<'a> {
    base: &'static str,
    id: &'a str,
    time: &'a str,
    method: &'a str,
    path: &'a str,
    route: &'a str,
    status: u16,
    status_class: u16,
    htmx: Option<&'a HtmxInfo>,
    total_ms: String,
    db_ms: String,
    cache_ms: String,
    render_ms: String,
    statements: Vec<StatementRow>,
    duplicates: usize,
    cache: Vec<CacheRow>,
    cache_totals: Vec<CacheTotal>,
    renders: Vec<RenderRow>,
    request_headers: &'a [(String, String)],
    response_headers: &'a [(String, String)],
    settings: &'a [(String, String)],
    versions: &'a [(String, String)],
}

impl<'a> PanelsView<'a> {
    fn of(e: &'a Entry, info: &'a Info) -> PanelsView<'a> {
        let statements = statement_rows(&e.recorded);
        let duplicates = statements.iter().filter(|s| s.same > 1).count();
        let mut totals: Vec<CacheTotal> = Vec::new();
        for op in &e.recorded.cache {
            let i = match totals
                .iter()
                .position(|t| t.tier == op.tier && t.namespace == op.namespace)
            {
                Some(i) => i,
                None => {
                    totals.push(CacheTotal {
                        tier: op.tier.clone(),
                        namespace: op.namespace.clone(),
                        hits: 0,
                        misses: 0,
                    });
                    totals.len() - 1
                }
            };
            if op.hit {
                totals[i].hits += 1;
            } else {
                totals[i].misses += 1;
            }
        }
        PanelsView {
            base: BASE,
            id: &e.id,
            time: &e.time,
            method: &e.method,
            path: &e.path,
            route: &e.route,
            status: e.status,
            status_class: e.status / 100,
            htmx: e.htmx.as_ref(),
            total_ms: ms(e.timings.total_micros),
            db_ms: ms(e.timings.db_micros),
            cache_ms: ms(e.timings.cache_micros),
            render_ms: ms(e.timings.render_micros),
            statements,
            duplicates,
            cache: e
                .recorded
                .cache
                .iter()
                .map(|c| CacheRow {
                    tier: c.tier.clone(),
                    namespace: c.namespace.clone(),
                    hit: c.hit,
                    ms: ms(c.micros),
                    at_ms: ms(c.at_micros),
                })
                .collect(),
            cache_totals: totals,
            renders: e
                .recorded
                .renders
                .iter()
                .map(|r| RenderRow {
                    template: r.template.clone(),
                    blocks: r.blocks.clone(),
                    context: r.context.clone(),
                    ms: ms(r.micros),
                    at_ms: ms(r.at_micros),
                })
                .collect(),
            request_headers: &e.request_headers,
            response_headers: &e.response_headers,
            settings: &info.settings,
            versions: &info.versions,
        }
    }
}

#[derive(Serialize)]
struct HistoryRow {
    id: String,
    time: String,
    method: String,
    path: String,
    status: u16,
    statements: usize,
    total_ms: String,
    htmx: Option<HtmxInfo>,
}

impl HistoryRow {
    fn of(e: &Entry) -> HistoryRow {
        HistoryRow {
            id: e.id.clone(),
            time: e.time.clone(),
            method: e.method.clone(),
            path: e.path.clone(),
            status: e.status,
            statements: e.recorded.statements.len(),
            total_ms: ms(e.timings.total_micros),
            htmx: e.htmx.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use napiatke_telemetry::record::{RecordedCacheOp, RecordedRender, RecordedStatement};

    fn statement(sql: &str) -> RecordedStatement {
        RecordedStatement {
            sql: sql.to_owned(),
            micros: 1500,
            at_micros: 2000,
        }
    }

    fn entry(id: &str) -> Entry {
        Entry {
            id: id.to_owned(),
            method: "GET".to_owned(),
            path: format!("/lessons/?page={id}"),
            status: 200,
            ..Entry::default()
        }
    }

    #[test]
    fn duplicates_and_similar_statements_are_counted() {
        let recorded = Recorded {
            statements: vec![
                statement("SELECT * FROM users WHERE id = ?"),
                statement("SELECT * FROM users WHERE id = ?"),
                statement("SELECT * FROM rooms WHERE id = 7"),
                statement("SELECT * FROM rooms WHERE id = 8"),
                statement("UPDATE rooms SET name = ?"),
            ],
            ..Recorded::default()
        };
        let rows = statement_rows(&recorded);
        let counts: Vec<(u32, u32, bool)> = rows
            .iter()
            .map(|r| (r.same, r.similar, r.explainable))
            .collect();
        assert_eq!(
            counts,
            [
                (2, 2, true),
                (2, 2, true),
                (1, 2, true),
                (1, 2, true),
                (1, 1, false)
            ]
        );
        assert_eq!(
            (rows[0].ms.as_str(), rows[0].at_ms.as_str()),
            ("1.500", "2.000")
        );
    }

    #[test]
    fn history_keeps_the_last_entries_newest_first() {
        let t = Toolbar::with_capacity(Info::default(), 3).unwrap();
        for id in ["1", "2", "3", "4"] {
            t.record(entry(id));
        }
        let ids: Vec<String> = t.entries().iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, ["4", "3", "2"]);
        assert!(t.get("1").is_none());
        let html = t.history().unwrap();
        assert!(html.find("page=4").unwrap() < html.find("page=2").unwrap());
        assert!(!html.contains("page=1\""));
    }

    #[test]
    fn panels_escape_what_they_show_and_mask_secrets() {
        let t = Toolbar::new(Info {
            settings: vec![("REDIS_URL".into(), "(set, hidden)".into())],
            versions: vec![("napiatke".into(), "0.1.0".into())],
            ..Info::default()
        })
        .unwrap();
        let mut e = entry("x");
        e.path = "/students/?q=<script>".to_owned();
        e.request_headers = vec![shown_header("Cookie", "session=abcdef")];
        e.htmx = Some(HtmxInfo {
            trigger: Some("search".into()),
            target: Some("rows".into()),
            ..HtmxInfo::default()
        });
        e.recorded = Recorded {
            statements: vec![statement("SELECT 1 WHERE a < ?")],
            cache: vec![RecordedCacheOp {
                tier: "l1".into(),
                namespace: "html".into(),
                hit: false,
                micros: 3,
                at_micros: 5,
            }],
            renders: vec![RecordedRender {
                template: "students.html#rows".into(),
                blocks: vec!["rows".into()],
                context: vec!["page".into(), "viewer".into()],
                micros: 80,
                at_micros: 90,
            }],
        };
        let html = t.panels(&e).unwrap();
        assert!(html.contains("/students/?q=&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains("SELECT 1 WHERE a &lt; ?"));
        assert!(!html.contains("abcdef"));
        assert!(html.contains("students.html#rows"));
        assert!(html.contains("viewer"));
        assert!(html.contains("search") && html.contains("rows"));
        assert!(html.contains("(set, hidden)"));
        assert!(html.contains("/__debug__/explain/x/0"));
    }
}
