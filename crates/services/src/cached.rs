//! What is cached, under which key, for how long, and which write invalidates it. The
//! one place that knows: handlers and the cache crate never build keys.
//!
//! | namespace  | TTL class | key                         | value                        |
//! |------------|-----------|-----------------------------|------------------------------|
//! | `session`  | user      | SHA-256 of the cookie token | `Session` (live ones only)   |
//! | `dashboard`| dashboard | `admin:{date}`               | school figures + next lessons|
//! | `user`     | user      | `tutor:{id}:{date}`, `student:{id}:{date}` | own figures + next lessons |
//! | `user`     | user      | `stats:{id}`                 | a student's list figures     |
//! | `catalog`  | static    | `subjects`, `rooms`          | every subject / room         |
//! | `calendar` | calendar  | `{scope}:{start}`            | one week's entries            |
//! | `lesson`   | user      | `{id}`                       | `Option<LessonView>`         |
//! | `catalog`  | static    | `room_photos`                | every room with its photo    |
//! | `avatar`   | user      | `{user id}`                  | `Option<StoredImage>`        |
//! | `lists`    | user      | `lessons:{scope}:{status}:{subject}` | page starts and count |
//! | `lists`    | user      | `lessons:{scope}:{status}:{subject}:{page}` | the page's lesson ids |
//! | `lists`    | user      | `students:ids:{folded term}` | ids of the matching students |
//! | `lists`    | user      | `students:page:{page}:{folded term}` | the page's rows (no figures) |
//!
//! Figures that depend on "today" carry the date in their key, so none survives
//! midnight. Scopes are `all`, `t{tutor}` and `s{student}`. A missing filter is `-`.
//!
//! `lists` holds which rows a list page has, never the rows' data (that is the
//! lesson's own entry, or the student's figures), so an attendance mark leaves it
//! valid. No in-app write adds, removes or reorders lessons or students (the seed
//! does, with the server stopped, or `napiatke` commands that flush what they change).
//!
//! Rendered HTML is keyed here too: the lesson page's per-viewer key is
//! [`crate::LessonPage::render_key`]; the calendar week's is its data's version.

use std::time::Duration;

use chrono::{Days, NaiveDate};
use napiatke_cache::{Cache, Namespace};
use napiatke_db::queries::images::Owner;
use napiatke_db::queries::lessons::LessonFilter;
use napiatke_db::queries::Scope;
use napiatke_domain::{LessonId, Role, User, UserId};

use crate::memo::Memo;
use crate::{
    AttendanceChange, DashboardPage, LessonPage, LessonsPage, ServiceError, ServiceResult,
    Services, StudentsPage,
};

/// The TTL classes (configuration: CACHE_TTL_STATIC, _USER, _DASHBOARD, _CALENDAR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    /// Reference data that almost never changes (subjects, rooms): 3600 s.
    pub static_data: Duration,
    /// One user's data (sessions, own figures, lessons): 300 s.
    pub user: Duration,
    /// The school-wide dashboard figures: 60 s.
    pub dashboard: Duration,
    /// Calendar weeks: 120 s.
    pub calendar: Duration,
}

impl Default for CacheTtls {
    fn default() -> Self {
        CacheTtls {
            static_data: Duration::from_secs(3600),
            user: Duration::from_secs(300),
            dashboard: Duration::from_secs(60),
            calendar: Duration::from_secs(120),
        }
    }
}

/// Bump a version when the type cached in its namespace changes shape: old entries
/// then read as misses (the envelope's type tag includes it).
pub(crate) struct Namespaces {
    pub session: Namespace,
    pub dashboard: Namespace,
    pub user: Namespace,
    pub catalog: Namespace,
    pub calendar: Namespace,
    pub lesson: Namespace,
    pub avatar: Namespace,
    pub lists: Namespace,
    /// Assembled list pages, per process, while the cache's epoch stands.
    pub lesson_pages: Memo<LessonsPage>,
    pub student_pages: Memo<StudentsPage>,
    pub lesson_views: Memo<LessonPage>,
    pub dashboard_pages: Memo<DashboardPage>,
}

impl Namespaces {
    pub fn new(cache: &Cache, ttl: &CacheTtls) -> Namespaces {
        Namespaces {
            session: cache.namespace("session", 2, ttl.user),
            dashboard: cache.namespace("dashboard", 2, ttl.dashboard),
            user: cache.namespace("user", 2, ttl.user),
            catalog: cache.namespace("catalog", 1, ttl.static_data),
            calendar: cache.namespace("calendar", 1, ttl.calendar),
            lesson: cache.namespace("lesson", 2, ttl.user),
            avatar: cache.namespace("avatar", 1, ttl.user),
            lists: cache.namespace("lists", 1, ttl.user),
            lesson_pages: Memo::new(ttl.user),
            student_pages: Memo::new(ttl.user),
            lesson_views: Memo::new(ttl.user),
            // "Next lessons" move with the clock: the memo may add at most this to the
            // figures' own TTL (it is timed from when it was kept, not from their load).
            dashboard_pages: Memo::new(DASHBOARD_MEMO_TTL.min(ttl.dashboard)),
        }
    }
}

pub(crate) fn scope_key(scope: Scope) -> String {
    let mut key = String::with_capacity(21);
    push_scope(&mut key, scope);
    key
}

/// The keys a cached page's request makes are built by hand: `format!` (nested,
/// for a lesson page's key) cost about 150 ns a request.
fn push_scope(key: &mut String, scope: Scope) {
    let (tag, id) = match scope {
        Scope::All => return key.push_str("all"),
        Scope::Tutor(id) => ('t', id),
        Scope::Student(id) => ('s', id),
    };
    key.push(tag);
    key.push_str(itoa::Buffer::new().format(id.get()));
}

pub(crate) fn admin_dashboard_key(today: NaiveDate) -> String {
    format!("admin:{today}")
}

pub(crate) fn tutor_key(id: UserId, today: NaiveDate) -> String {
    format!("tutor:{id}:{today}")
}

pub(crate) fn student_key(id: UserId, today: NaiveDate) -> String {
    format!("student:{id}:{today}")
}

pub(crate) fn student_stats_key(id: UserId) -> String {
    format!("stats:{id}")
}

pub(crate) fn calendar_key(scope: Scope, start: NaiveDate) -> String {
    format!("{}:{start}", scope_key(scope))
}

pub(crate) fn lesson_key(id: LessonId) -> String {
    id.to_string()
}

fn filter_key(filter: &LessonFilter) -> String {
    let mut key = String::with_capacity(64);
    push_filter(&mut key, filter);
    key
}

fn push_filter(key: &mut String, filter: &LessonFilter) {
    key.push_str("lessons:");
    push_scope(key, filter.scope);
    key.push(':');
    key.push_str(filter.status.map_or("-", |s| s.as_str()));
    key.push(':');
    match filter.subject {
        Some(s) => key.push_str(itoa::Buffer::new().format(s.get())),
        None => key.push('-'),
    }
}

pub(crate) fn lesson_starts_key(filter: &LessonFilter) -> String {
    filter_key(filter)
}

pub(crate) fn lesson_page_key(filter: &LessonFilter, page: u32) -> String {
    let mut key = String::with_capacity(64);
    push_filter(&mut key, filter);
    key.push(':');
    key.push_str(itoa::Buffer::new().format(page));
    key
}

/// The term comes last: it may hold any character, `:` included, so nothing may follow
/// it that could make two keys of different kinds equal.
pub(crate) fn student_ids_key(term: &str) -> String {
    format!("students:ids:{term}")
}

pub(crate) fn student_page_key(term: &str, page: u32) -> String {
    format!("students:page:{page}:{term}")
}

/// How long an assembled dashboard is kept per process at most.
const DASHBOARD_MEMO_TTL: Duration = Duration::from_secs(10);

pub(crate) const ROOM_PHOTOS_KEY: &str = "room_photos";

pub(crate) fn avatar_key(id: UserId) -> String {
    id.to_string()
}

impl Services {
    /// Everything a changed attendance mark makes stale, invalidated after the commit
    /// (so no reader can cache the old row again): that lesson, its calendar week for
    /// everyone who sees it, the school's dashboard, the tutor's and the student's
    /// own figures, and the student's row figures in the student list.
    pub(crate) async fn attendance_changed(&self, change: &AttendanceChange) {
        let ns = &self.ns;
        let today = self.today();
        let card = &change.lesson.card;
        self.cache
            .delete(&ns.lesson, &lesson_key(card.lesson.id))
            .await;

        // A week starting on any of the six days before the lesson's local day, or on
        // that day, shows it (weeks may start on any date), for the school, its tutor and each
        // of its students.
        let day = self.zone.local(card.lesson.start_time).date();
        let mut scopes = vec![Scope::All, Scope::Tutor(card.tutor.id)];
        scopes.extend(
            change
                .lesson
                .students
                .iter()
                .map(|s| Scope::Student(s.student.id)),
        );
        let weeks: Vec<String> = (0..7u64)
            .filter_map(|back| day.checked_sub_days(Days::new(back)))
            .flat_map(|start| scopes.iter().map(move |&s| calendar_key(s, start)))
            .collect();
        self.cache.delete_many(&ns.calendar, &weeks).await;

        self.cache
            .delete(&ns.dashboard, &admin_dashboard_key(today))
            .await;
        self.cache
            .delete_many(
                &ns.user,
                &[
                    tutor_key(card.tutor.id, today),
                    student_key(change.student, today),
                    student_stats_key(change.student),
                ],
            )
            .await;
    }
}

impl Services {
    /// What a new or newly processed image makes stale: the room list's photos, or the
    /// user's avatar. Pages that embed them key their HTML by the image's version, so
    /// nothing else needs dropping.
    pub(crate) async fn image_changed(&self, owner: Owner) {
        match owner {
            Owner::Room(_) => {
                self.cache.delete(&self.ns.catalog, ROOM_PHOTOS_KEY).await;
            }
            Owner::User(user) => {
                self.cache.delete(&self.ns.avatar, &avatar_key(user)).await;
            }
        }
    }
}

/// One namespace's line on the statistics page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NamespaceLine {
    /// The namespace (key prefix).
    pub name: String,
    /// Figures kept by this process.
    pub stats: napiatke_cache::NamespaceStats,
    /// L1 hit rate, "97.3%" or "—".
    pub l1_rate: String,
    /// L2 hit rate (of L1 misses).
    pub l2_rate: String,
    /// Either tier.
    pub overall_rate: String,
    /// Keys in Redis under it (from a bounded SCAN), if known.
    pub redis_keys: Option<u64>,
}

/// Everything the cache statistics page shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CacheReport {
    /// Totals and per-namespace counters of this process.
    pub stats: napiatke_cache::CacheStats,
    /// One line per namespace.
    pub namespaces: Vec<NamespaceLine>,
    /// The namespaces' hit rates, drawn.
    pub chart: napiatke_charts::Chart,
    /// L1, L2 and overall hit rates as text.
    pub l1_rate: String,
    /// L2 hit rate as text.
    pub l2_rate: String,
    /// Overall hit rate as text.
    pub overall_rate: String,
    /// Redis's own figures, when configured and reachable.
    pub redis: Option<napiatke_cache::RedisInfo>,
    /// Redis's keyspace hit rate as text.
    pub redis_hit_rate: String,
    /// Why Redis figures are missing, when configured.
    pub redis_error: Option<String>,
    /// Whether the key counts cover the whole keyspace (else they are lower bounds).
    pub keys_complete: bool,
    /// Generation counters stored in Redis.
    pub generation_keys: u64,
    /// L1 weight and capacity as text ("1.2 MiB of 64.0 MiB").
    pub l1_size: String,
    /// Mean Redis round trip as text ("85.3").
    pub l2_mean_us: String,
    /// When the invalidation listener last reconnected, as UTC text.
    pub last_reconnect: Option<String>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// SCAN steps of 1,000 keys the statistics page may take (a bounded cost).
const MAX_SCAN_STEPS: u32 = 100;

impl Services {
    /// The cache's figures, with Redis's when it is configured and answers (admins
    /// only).
    #[tracing::instrument(level = "trace", name = "service.cache_report", skip_all)]
    pub async fn cache_report(&self, viewer: &User) -> ServiceResult<CacheReport> {
        if viewer.role != Role::Admin {
            return Err(ServiceError::Forbidden(
                "this page is for admins".to_owned(),
            ));
        }
        self.cache.sync_stats().await;
        let stats = self.cache.stats();
        let (redis, mut redis_error) = match self.cache.redis_info().await {
            None => (None, None),
            Some(Ok(info)) => (Some(info), None),
            Some(Err(e)) => (None, Some(e.to_string())),
        };
        let keys = match self.cache.key_counts(MAX_SCAN_STEPS).await {
            Some(Ok(k)) => Some(k),
            Some(Err(e)) => {
                redis_error.get_or_insert_with(|| e.to_string());
                None
            }
            None => None,
        };
        let count = |name: &str| {
            keys.as_ref().map(|k| {
                k.per_namespace
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(0, |(_, c)| *c)
            })
        };
        let namespaces = stats
            .namespaces
            .iter()
            .map(|n| NamespaceLine {
                name: n.name.clone(),
                l1_rate: rate(n.l1.hit_rate()),
                l2_rate: rate(n.l2.hit_rate()),
                overall_rate: rate(n.hit_rate()),
                redis_keys: count(&n.name),
                stats: n.clone(),
            })
            .collect::<Vec<NamespaceLine>>();
        let chart = napiatke_charts::Chart::rows(
            "cache-hit-rates",
            "Hit rate per namespace",
            "Share of lookups in each namespace answered by either cache tier, since this process started.",
            namespaces
                .iter()
                .map(|n| {
                    let hit = n.stats.hit_rate();
                    napiatke_charts::Bar::new(
                        n.name.as_str(),
                        hit.map_or(0.0, |r| r * 100.0),
                        n.overall_rate.as_str(),
                    )
                    .with_full(format!(
                        "{} of {} lookups (L1 {}, L2 {} of L1 misses)",
                        n.overall_rate,
                        n.stats.l1.hits + n.stats.l1.misses,
                        n.l1_rate,
                        n.l2_rate
                    ))
                })
                .collect(),
            Some(100.0),
        )
        .headed("Namespace", "Hit rate");
        Ok(CacheReport {
            chart,
            l1_rate: rate(stats.l1.hit_rate()),
            l2_rate: rate(stats.l2.hit_rate()),
            overall_rate: rate(stats.hit_rate()),
            redis_hit_rate: rate(redis.as_ref().and_then(|r| r.keyspace_hit_rate)),
            redis,
            redis_error,
            keys_complete: keys.as_ref().is_some_and(|k| k.complete),
            generation_keys: count("gen").unwrap_or(0),
            l1_size: format!("{} of {}", mib(stats.l1_bytes), mib(stats.l1_capacity)),
            l2_mean_us: format!("{:.1}", stats.l2_latency.mean_us),
            last_reconnect: stats
                .last_reconnect_unix_ms
                .and_then(|ms| i64::try_from(ms).ok())
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            namespaces,
            stats,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_term_cannot_make_keys_of_two_kinds_equal() {
        for (term, page) in [("a", 1), ("a:1", 1), ("1:a", 2), ("", 1)] {
            assert_ne!(student_ids_key(term), student_page_key("a", 1), "{term}");
            assert_ne!(student_ids_key("a"), student_page_key(term, page), "{term}");
        }
        assert_ne!(student_page_key("a:1", 2), student_page_key("a", 1));
    }

    #[test]
    fn lesson_keys_name_the_scope_status_subject_and_page() {
        use napiatke_domain::{LessonStatus, SubjectId, UserId};
        let mine = LessonFilter {
            status: Some(LessonStatus::ALL[0]),
            subject: Some(SubjectId(17)),
            scope: Scope::Tutor(UserId(2)),
        };
        let status = LessonStatus::ALL[0].as_str();
        assert_eq!(
            lesson_page_key(&mine, 3),
            format!("lessons:t2:{status}:17:3")
        );
        assert_eq!(lesson_starts_key(&mine), format!("lessons:t2:{status}:17"));
        let all = LessonFilter::default();
        assert_eq!(lesson_page_key(&all, 1), "lessons:all:-:-:1");
        let theirs = LessonFilter {
            scope: Scope::Student(UserId(40)),
            ..all
        };
        assert_eq!(lesson_page_key(&theirs, 12), "lessons:s40:-:-:12");
        assert_eq!(scope_key(Scope::Tutor(UserId(9))), "t9");
        assert_eq!(
            calendar_key(Scope::All, chrono::NaiveDate::MIN),
            format!("all:{}", chrono::NaiveDate::MIN)
        );
    }
}
