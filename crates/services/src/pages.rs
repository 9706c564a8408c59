//! The reads and writes behind each page, with their authorisation.

use chrono::{Days, NaiveDate, NaiveDateTime};
use napiatke_cache::Namespace;
use napiatke_db::queries::dashboard::{self, GlobalStats, StudentStats, TutorStats};
use napiatke_db::queries::lessons::{self, CalendarEntry, LessonCard, LessonDetail};
use napiatke_db::queries::{attendance, catalog, Scope};
use napiatke_db::DbConn;
use napiatke_domain::{AttendanceStatus, LessonId, Role, Room, StoredImage, Subject, User, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::cached::{admin_dashboard_key, calendar_key, lesson_key, student_key, tutor_key};
use crate::{ServiceError, ServiceResult, Services, Session};

/// Rows per list page (SPEC).
pub const PAGE_SIZE: u32 = 50;

/// The longest student search, in characters.
pub const MAX_SEARCH_CHARS: usize = 100;

/// Whether `user` may mark attendance in a lesson taught by `tutor`: admins, and the
/// lesson's own tutor.
#[must_use]
pub fn may_mark_attendance(user: &User, tutor: UserId) -> bool {
    match user.role {
        Role::Admin => true,
        Role::Tutor => tutor == user.id,
        Role::Student => false,
    }
}

/// The dashboard of one user, by role.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "role", rename_all = "UPPERCASE")]
pub enum Dashboard {
    /// The school's figures and the next lessons.
    Admin {
        /// Figures.
        stats: GlobalStats,
        /// Next 10 lessons.
        upcoming: Vec<LessonCard>,
    },
    /// A tutor's own figures and next lessons.
    Tutor {
        /// Figures.
        stats: TutorStats,
        /// Their next 10 lessons.
        upcoming: Vec<LessonCard>,
    },
    /// A student's own figures and next lessons.
    Student {
        /// Figures.
        stats: StudentStats,
        /// Their next 10 lessons.
        upcoming: Vec<LessonCard>,
    },
}

/// A dashboard and the version of its data (changes whenever it is loaded anew, so
/// after every invalidation): what its rendered HTML is keyed by.
#[derive(Debug, Clone, Serialize)]
pub struct DashboardPage {
    /// What it shows.
    pub dashboard: Dashboard,
    /// The data's version.
    pub version: String,
    /// Trends over the last twelve weeks, drawn: attendance for everyone,
    /// paid revenue for admins. Drawn once per load and kept with the figures.
    pub charts: Vec<napiatke_charts::Chart>,
}

/// How many weeks a dashboard's trend covers (this week the last).
pub const TREND_WEEKS: u64 = 12;

/// The local Mondays that begin the trend's weeks, plus the next Monday (which ends
/// the last week).
fn trend_weeks(today: NaiveDate) -> Vec<NaiveDate> {
    let first = napiatke_domain::week_start(today) - Days::new(7 * (TREND_WEEKS - 1));
    (0..=TREND_WEEKS)
        .map(|w| first + Days::new(7 * w))
        .collect()
}

/// The dashboard's charts from its weekly figures.
fn trend_charts(
    role: Role,
    weeks: &[dashboard::WeekFigures],
    days: &[NaiveDate],
) -> Vec<napiatke_charts::Chart> {
    use napiatke_charts::{Bar, Chart};
    let label = |d: &NaiveDate| d.format("%-d %b").to_string();
    let whose = match role {
        Role::Admin => "all lessons",
        Role::Tutor => "your lessons",
        Role::Student => "your lessons",
    };
    let (first, last) = (
        days.first().map(label).unwrap_or_default(),
        days.get(weeks.len().saturating_sub(1))
            .map(label)
            .unwrap_or_default(),
    );
    let attendance = Chart::columns(
        "trend-attendance",
        "Attendance by week",
        &format!(
            "Share of attendance marks that were present in {whose}, per week from the week of {first} to this week (of {last})."
        ),
        weeks
            .iter()
            .zip(days)
            .map(|(w, d)| {
                let percent = w.attendance.percent();
                Bar::new(
                    label(d),
                    percent.unwrap_or(0.0),
                    percent.map_or_else(|| "—".to_owned(), |p| format!("{p:.0}%")),
                )
                .with_full(if w.attendance.marked == 0 {
                    "no marks".to_owned()
                } else {
                    format!(
                        "{} ({} of {} present)",
                        w.attendance, w.attendance.present, w.attendance.marked
                    )
                })
            })
            .collect(),
        Some(100.0),
    )
    .headed("Week from", "Attendance");
    if role != Role::Admin {
        return vec![attendance];
    }
    let revenue = Chart::columns(
        "trend-revenue",
        "Paid revenue by week",
        &format!(
            "Total of paid invoices issued per week, from the week of {first} to this week (of {last})."
        ),
        weeks
            .iter()
            .zip(days)
            .map(|(w, d)| {
                let zloty = w.paid.minor() as f64 / 100.0;
                let short = if w.paid.minor() == 0 {
                    String::new()
                } else if zloty >= 1_000.0 {
                    format!("{:.1}k", zloty / 1_000.0)
                } else {
                    format!("{zloty:.0}")
                };
                Bar::new(label(d), zloty, short).with_full(w.paid.to_string())
            })
            .collect(),
        None,
    )
    .headed("Week from", "Paid");
    vec![attendance, revenue]
}

/// One day of the calendar.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalendarDay {
    /// The date.
    pub date: NaiveDate,
    /// Its lessons in time order.
    pub lessons: Vec<CalendarEntry>,
}

/// Seven days from a start date.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CalendarWeek {
    /// First day shown.
    pub start: NaiveDate,
    /// The seven days.
    pub days: Vec<CalendarDay>,
    /// Start of the week before (for navigation).
    pub previous: NaiveDate,
    /// Start of the week after.
    pub next: NaiveDate,
    /// Lessons in the week.
    pub total: usize,
    /// Changes whenever the week is loaded anew (so after every invalidation): what
    /// rendered copies of it are keyed by.
    pub version: String,
}

/// A lesson as the lesson page shows it, with the version of this copy of its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LessonView {
    /// Lesson, tutor, subject, room, students and marks.
    pub detail: LessonDetail,
    /// Changes whenever the lesson is loaded anew (so after every invalidation): what
    /// rendered copies of the page are keyed by.
    pub version: String,
}

/// The lesson page as one viewer sees it: the lesson, whether they may mark it, the
/// students' avatars, and the key its rendered HTML is kept under.
#[derive(Debug, Clone, Serialize)]
pub struct LessonPage {
    /// Lesson, tutor, subject, room, students and marks.
    pub detail: LessonDetail,
    /// Whether the viewer may mark attendance (admins and the lesson's tutor).
    pub can_mark: bool,
    /// Each student's avatar, in the lesson's order.
    pub avatars: Vec<Option<StoredImage>>,
    #[serde(skip)]
    render_key: String,
}

impl LessonPage {
    /// The key of `block`'s rendered HTML for this viewer: it changes with the lesson's
    /// data, the viewer (their name and rights are in the page) and each avatar's
    /// version (avatars change apart from the lesson, without invalidating it).
    #[must_use]
    pub fn render_key(&self, block: &str) -> String {
        format!("{}:{block}", self.render_key)
    }
}

/// What marking attendance changed: the lesson as it is now, whose mark and which.
#[derive(Debug, Clone, Serialize)]
pub struct AttendanceChange {
    /// The lesson as it is now.
    pub lesson: LessonDetail,
    /// The student whose mark changed.
    pub student: UserId,
    /// The new mark.
    pub status: AttendanceStatus,
}

fn scope_of(user: &User) -> Scope {
    match user.role {
        Role::Admin => Scope::All,
        Role::Tutor => Scope::Tutor(user.id),
        Role::Student => Scope::Student(user.id),
    }
}

/// A lesson that is missing, or not the caller's to see, is reported the same way.
fn no_lesson(id: LessonId) -> impl FnOnce(napiatke_db::DbError) -> ServiceError {
    move |e| match e {
        napiatke_db::DbError::NotFound => {
            ServiceError::NotFound(format!("there is no lesson {id}"))
        }
        other => other.into(),
    }
}

/// Tutors read every lesson (they cover for each other); students only theirs.
pub(crate) fn lesson_read_scope(user: &User) -> Scope {
    match user.role {
        Role::Student => Scope::Student(user.id),
        Role::Admin | Role::Tutor => Scope::All,
    }
}

impl Services {
    /// The dashboard for `user`: figures and next lessons, cached per user (admins
    /// share the school's) and per day. Three statements on a miss (figures, trend, next lessons). Kept per user and
    /// process while the cache's epoch stands, within the dashboard TTL (`memo.rs`).
    #[tracing::instrument(level = "trace", name = "service.dashboard", skip_all)]
    pub async fn dashboard(&self, user: &User) -> ServiceResult<Arc<DashboardPage>> {
        let key = format!("{}:{}", user.id, self.today());
        self.ns
            .dashboard_pages
            .get_or_build(self.cache.epoch(), &key, || self.dashboard_now(user))
            .await
    }

    async fn dashboard_now(&self, user: &User) -> ServiceResult<DashboardPage> {
        let now = self.now();
        let zone = self.zone;
        let today = zone.today(now);
        let scope = scope_of(user);
        let id = user.id;
        let days = trend_weeks(today);
        let trend_days = days.clone();
        let weekly = move |c: &mut DbConn| dashboard::weekly(c, &trend_days, zone, scope);
        let (dashboard, weeks, version) = match user.role {
            Role::Admin => {
                let key = admin_dashboard_key(today);
                let ((stats, weeks), upcoming, version) = self
                    .figures(&self.ns.dashboard, &key, now, scope, move |c| {
                        Ok((dashboard::global_stats(c, now, zone)?, weekly(c)?))
                    })
                    .await?;
                (Dashboard::Admin { stats, upcoming }, weeks, version)
            }
            Role::Tutor => {
                let key = tutor_key(id, today);
                let ((stats, weeks), upcoming, version) = self
                    .figures(&self.ns.user, &key, now, scope, move |c| {
                        Ok((dashboard::tutor_stats(c, id, now, zone)?, weekly(c)?))
                    })
                    .await?;
                (Dashboard::Tutor { stats, upcoming }, weeks, version)
            }
            Role::Student => {
                let key = student_key(id, today);
                let ((stats, weeks), upcoming, version) = self
                    .figures(&self.ns.user, &key, now, scope, move |c| {
                        Ok((dashboard::student_stats(c, id, now)?, weekly(c)?))
                    })
                    .await?;
                (Dashboard::Student { stats, upcoming }, weeks, version)
            }
        };
        Ok(DashboardPage {
            dashboard,
            version,
            charts: trend_charts(user.role, &weeks, &days),
        })
    }

    /// A dashboard's figures and trend, and its next ten lessons, cached under `key`
    /// with the version of this load: three statements on a miss.
    async fn figures<S>(
        &self,
        ns: &Namespace,
        key: &str,
        now: NaiveDateTime,
        scope: Scope,
        stats: impl FnOnce(&mut DbConn) -> napiatke_db::DbResult<S> + Send + 'static,
    ) -> ServiceResult<(S, Vec<LessonCard>, String)>
    where
        S: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let v = self
            .cache
            .get_or_compute(ns, key, || {
                self.blocking(move |s| {
                    let mut conn = s.conn()?;
                    Ok((
                        stats(&mut conn)?,
                        lessons::upcoming(&mut conn, now, scope, 10)?,
                        version()?,
                    ))
                })
            })
            .await?;
        Ok((v.0.clone(), v.1.clone(), v.2.clone()))
    }

    /// Every subject (cached, static class).
    #[tracing::instrument(level = "trace", name = "service.subjects", skip_all)]
    pub async fn subjects(&self) -> ServiceResult<Arc<Vec<Subject>>> {
        self.cache
            .get_or_compute(&self.ns.catalog, "subjects", || {
                self.blocking(|s| Ok(catalog::subjects(&mut *s.conn()?)?))
            })
            .await
            .map_err(ServiceError::from)
    }

    /// Every room (cached, static class).
    #[tracing::instrument(level = "trace", name = "service.rooms", skip_all)]
    pub async fn rooms(&self) -> ServiceResult<Arc<Vec<Room>>> {
        self.cache
            .get_or_compute(&self.ns.catalog, "rooms", || {
                self.blocking(|s| Ok(catalog::rooms(&mut *s.conn()?)?))
            })
            .await
            .map_err(ServiceError::from)
    }

    /// One lesson with its students and marks (cached; two statements on a miss). A
    /// lesson the caller may not see is reported as missing, not forbidden, so ids
    /// reveal nothing.
    #[tracing::instrument(level = "trace", name = "service.lesson", skip_all)]
    pub async fn lesson(&self, user: &User, id: LessonId) -> ServiceResult<LessonView> {
        let cached = self
            .cache
            .get_or_compute(&self.ns.lesson, &lesson_key(id), || {
                self.blocking(
                    move |s| match lessons::get(&mut *s.conn()?, id, Scope::All) {
                        Ok(detail) => Ok(Some(LessonView {
                            detail,
                            version: version()?,
                        })),
                        Err(napiatke_db::DbError::NotFound) => Ok(None),
                        Err(e) => Err(e.into()),
                    },
                )
            })
            .await?;
        let visible = cached.as_ref().as_ref().filter(|v| match user.role {
            Role::Student => v.detail.students.iter().any(|s| s.student.id == user.id),
            Role::Admin | Role::Tutor => true,
        });
        visible
            .cloned()
            .ok_or_else(|| ServiceError::NotFound(format!("there is no lesson {id}")))
    }

    /// The lesson page for `viewer` (see [`LessonPage`]): the lesson from the cache,
    /// and the avatars (cached per user; one statement for those not cached).
    /// Kept per viewer and process while the cache's epoch stands (`memo.rs`).
    #[tracing::instrument(level = "trace", name = "service.lesson_page", skip_all)]
    pub async fn lesson_page(
        &self,
        viewer: &Session,
        id: LessonId,
    ) -> ServiceResult<Arc<LessonPage>> {
        let key = format!("{}:{id}", viewer.user.id);
        self.ns
            .lesson_views
            .get_or_build(self.cache.epoch(), &key, || async {
                let view = self.lesson(&viewer.user, id).await?;
                self.present(viewer, view.detail, &view.version).await
            })
            .await
    }

    /// Marks attendance as [`Services::mark_attendance`] does and returns the lesson
    /// page as it is after the mark.
    #[tracing::instrument(level = "trace", name = "service.mark_attendance_page", skip_all)]
    pub async fn mark_attendance_page(
        &self,
        viewer: &Session,
        lesson: LessonId,
        student: UserId,
        status: AttendanceStatus,
    ) -> ServiceResult<LessonPage> {
        let change = self
            .mark_attendance(&viewer.user, lesson, student, status)
            .await?;
        // Freshly read after the write: a version of its own, so its render key can
        // never name HTML rendered from an older copy.
        self.present(viewer, change.lesson, &version()?).await
    }

    async fn present(
        &self,
        viewer: &Session,
        detail: LessonDetail,
        version: &str,
    ) -> ServiceResult<LessonPage> {
        let ids: Vec<UserId> = detail.students.iter().map(|s| s.student.id).collect();
        let mut found = self.avatars(&ids).await?;
        let avatars: Vec<Option<StoredImage>> = ids.iter().map(|id| found.remove(id)).collect();
        let can_mark = may_mark_attendance(&viewer.user, detail.card.tutor.id);
        let faces = avatars
            .iter()
            .map(|a| {
                a.as_ref()
                    .map_or_else(|| "-".to_owned(), StoredImage::version)
            })
            .collect::<Vec<_>>()
            .join(",");
        Ok(LessonPage {
            render_key: format!("{version}:{can_mark}:u{}:{faces}", viewer.user.id),
            detail,
            can_mark,
            avatars,
        })
    }

    /// Marks a student's attendance in a lesson (admins, or the lesson's tutor), then
    /// invalidates what that changes (see [`crate::cached`]).
    #[tracing::instrument(level = "trace", name = "service.mark_attendance", skip_all)]
    pub async fn mark_attendance(
        &self,
        user: &User,
        lesson: LessonId,
        student: UserId,
        status: AttendanceStatus,
    ) -> ServiceResult<AttendanceChange> {
        // Refused before any statement for whoever may mark no lesson at all (as if
        // they taught it themselves).
        if !may_mark_attendance(user, user.id) {
            return Err(ServiceError::Forbidden(
                "students cannot mark attendance".to_owned(),
            ));
        }
        let user = user.clone();
        // One task for the write and its invalidation: see `detached`.
        self.detached(move |this| async move {
            let change = this
                .blocking(move |s| {
                    let mut conn = s.conn()?;
                    let detail =
                        lessons::get(&mut conn, lesson, Scope::All).map_err(no_lesson(lesson))?;
                    if !may_mark_attendance(&user, detail.card.tutor.id) {
                        return Err(ServiceError::Forbidden(
                            "only the lesson's tutor or an admin can mark its attendance"
                                .to_owned(),
                        ));
                    }
                    let Some(place) = detail
                        .students
                        .iter()
                        .find(|s| s.student.id == student)
                        .map(|s| s.lesson_student_id)
                    else {
                        return Err(ServiceError::BadInput(format!(
                            "student {student} is not in lesson {lesson}"
                        )));
                    };
                    attendance::mark(&mut conn, place, status, s.now())?;
                    let lesson = lessons::get(&mut conn, lesson, Scope::All)?;
                    Ok(AttendanceChange {
                        lesson,
                        student,
                        status,
                    })
                })
                .await?;
            // The mark is committed: now nothing can cache the old figures again.
            this.attendance_changed(&change).await;
            Ok(change)
        })
        .await
    }

    /// Seven local days from `start` (default: this week's Monday in the school's
    /// zone; a week with a clock change is 167 or 169 hours), cached per viewer
    /// scope and start date. One statement on a miss.
    #[tracing::instrument(level = "trace", name = "service.calendar", skip_all)]
    pub async fn calendar(
        &self,
        user: &User,
        start: Option<NaiveDate>,
    ) -> ServiceResult<Arc<CalendarWeek>> {
        let today = self.today();
        let zone = self.zone;
        let start = start.unwrap_or_else(|| napiatke_domain::week_start(today));
        let end = start
            .checked_add_days(Days::new(7))
            .ok_or_else(|| ServiceError::BadInput(format!("{start} is too far in the future")))?;
        let previous = start
            .checked_sub_days(Days::new(7))
            .ok_or_else(|| ServiceError::BadInput(format!("{start} is too far in the past")))?;
        let scope = scope_of(user);
        self.cache
            .get_or_compute(&self.ns.calendar, &calendar_key(scope, start), || {
                self.blocking(move |s| {
                    let entries = lessons::for_calendar(
                        &mut *s.conn()?,
                        zone.day_start(start),
                        zone.day_start(end),
                        scope,
                    )?;
                    Ok(week_of(zone, start, previous, end, entries, version()?))
                })
            })
            .await
            .map_err(ServiceError::from)
    }

    /// `Forbidden` unless `user` may see the student list (admins and tutors).
    pub fn may_list_students(&self, user: &User) -> ServiceResult<()> {
        match user.role {
            Role::Admin | Role::Tutor => Ok(()),
            Role::Student => Err(ServiceError::Forbidden(
                "this page is for admins and tutors".to_owned(),
            )),
        }
    }
}

fn week_of(
    zone: napiatke_domain::Zone,
    start: NaiveDate,
    previous: NaiveDate,
    next: NaiveDate,
    entries: Vec<CalendarEntry>,
    version: String,
) -> CalendarWeek {
    let total = entries.len();
    let mut days: Vec<CalendarDay> = (0..7)
        .map(|i| CalendarDay {
            date: start + Days::new(i),
            lessons: Vec::new(),
        })
        .collect();
    for e in entries {
        let offset = (zone.local(e.start_time).date() - start).num_days();
        if let Some(day) = usize::try_from(offset).ok().and_then(|i| days.get_mut(i)) {
            day.lessons.push(e);
        }
    }
    CalendarWeek {
        start,
        days,
        previous,
        next,
        total,
        version,
    }
}

/// 64 random bits as hex: a fresh version for freshly loaded data.
pub(crate) fn version() -> ServiceResult<String> {
    Ok(crate::random_token()?[..16].to_owned())
}
