//! The lesson and student lists: cached at every depth, with a version that names
//! exactly the data a page shows, so its rendered HTML can be kept until that data
//! changes.
//!
//! A list page is three cached layers, each invalidated by what changes it:
//! - which rows the page holds (`lists` namespace): lesson ids by seeking from the
//!   cached page starts, student rows from the cached ids matching the search. No
//!   in-app write changes membership (lessons and users are written by the seed);
//!   entries live for the user TTL;
//! - each row's data: the lesson as the lesson page caches it (`lesson`), a
//!   student's figures (`user`, `stats:{id}`). An attendance mark drops exactly the
//!   lesson's and the student's entries ([`crate::cached`]);
//! - the version: a hash of the page's rows and of each row's data version, which
//!   the web layer keys rendered, compressed HTML by.

use std::fmt::Write as _;
use std::hash::Hasher as _;
use std::sync::Arc;

use napiatke_db::queries::lessons::{self, LessonDetail, LessonFilter, PageStart};
use napiatke_db::queries::students::{self, LessonStats, StudentListItem};
use napiatke_db::queries::{Page, PageRequest};
use napiatke_domain::{fold_search, LessonId, LessonStatus, Subject, SubjectId, User, UserId};
use serde::ser::SerializeSeq;
use serde::{Deserialize, Serialize, Serializer};

use crate::cached::{
    lesson_key, lesson_page_key, lesson_starts_key, scope_key, student_ids_key, student_page_key,
    student_stats_key,
};
use crate::pages::{lesson_read_scope, version};
use crate::{LessonView, ServiceError, ServiceResult, Services, MAX_SEARCH_CHARS, PAGE_SIZE};

/// Filters and page of the lesson list, already parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LessonQuery {
    /// 1-based page.
    pub page: u32,
    /// Only this status.
    pub status: Option<LessonStatus>,
    /// Only this subject (must exist).
    pub subject: Option<SubjectId>,
}

/// Search and page of the student list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudentQuery {
    /// 1-based page.
    pub page: u32,
    /// Free-text search.
    pub q: Option<String>,
}

/// Which lessons one page of a filtered list holds, and how many the list has.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LessonListing {
    ids: Vec<LessonId>,
    total: i64,
}

/// One student list page's rows (figures not filled in) and the list's length.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StudentListing {
    rows: Vec<StudentListItem>,
    total: i64,
}

/// The lesson list page: its lessons (shared with the cache, not copied), what the
/// filter form offers, and the version of what the rows show.
#[derive(Debug, Clone)]
pub struct LessonsPage {
    /// Which page, rows per page and the list's length.
    pub page: Page<()>,
    /// Every subject, for the filter.
    pub subjects: Arc<Vec<Subject>>,
    rows: Vec<Arc<Option<LessonView>>>,
    version: String,
    scope: String,
}

impl LessonsPage {
    /// Who sees the same rows: `all` (admins and tutors) or `s{id}` (that student).
    /// Rendered rows may be shared within a scope, never across.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The page's lessons, serialisable as a list of [`LessonDetail`]s for templates.
    #[must_use]
    pub fn lessons(&self) -> LessonRows<'_> {
        LessonRows(&self.rows)
    }

    /// Changes whenever anything the page's rows show changes (a mark in one of its
    /// lessons, the list's length), and only then: what its HTML is keyed by.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// A page's lessons as templates see them.
#[derive(Debug, Clone, Copy)]
pub struct LessonRows<'a>(&'a [Arc<Option<LessonView>>]);

impl LessonRows<'_> {
    /// The lessons in list order.
    pub fn iter(&self) -> impl Iterator<Item = &LessonDetail> {
        self.0
            .iter()
            .filter_map(|v| v.as_ref().as_ref().map(|v| &v.detail))
    }
}

impl Serialize for LessonRows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for detail in self.iter() {
            seq.serialize_element(detail)?;
        }
        seq.end()
    }
}

/// The student list page: rows with their figures and the version of what they show.
#[derive(Debug, Clone)]
pub struct StudentsPage {
    /// The rows, figures filled in.
    pub students: Page<StudentListItem>,
    version: String,
}

impl StudentsPage {
    /// Changes whenever the rows or any figure in them changes: what the page's HTML
    /// is keyed by.
    #[must_use]
    pub fn version(&self) -> &str {
        &self.version
    }
}

/// The list's filter for `user` (students see their own lessons) from `query`.
pub(crate) fn lesson_filter(user: &User, query: LessonQuery) -> LessonFilter {
    LessonFilter {
        status: query.status,
        subject: query.subject,
        scope: lesson_read_scope(user),
    }
}

/// A short, stable hash (FNV-1a, the same in every process) of a page's parts.
fn digest(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> String {
    let mut h = fnv::FnvHasher::default();
    for p in parts {
        h.write(p.as_ref());
        h.write_u8(0xff);
    }
    format!("{:016x}", h.finish())
}

impl Services {
    /// One page of the lesson list for `user` (students see their own lessons), at
    /// any depth for the same cost. Warm: no statement. Cold: the page starts of the
    /// filter (one statement, kept for every page), a seek for the page's ids, and
    /// two statements for the lessons not cached already.
    #[tracing::instrument(level = "trace", name = "service.lessons", skip_all)]
    pub async fn lessons(
        &self,
        user: &User,
        query: LessonQuery,
    ) -> ServiceResult<Arc<LessonsPage>> {
        let filter = lesson_filter(user, query);
        let request = PageRequest::new(query.page, PAGE_SIZE);
        // The page's ids and the assembled page are kept under one key.
        let key = lesson_page_key(&filter, request.number);
        self.ns
            .lesson_pages
            .get_or_build(self.cache.epoch(), &key, || {
                self.assemble_lessons(filter, request, &key)
            })
            .await
    }

    async fn assemble_lessons(
        &self,
        filter: LessonFilter,
        request: PageRequest,
        key: &str,
    ) -> ServiceResult<LessonsPage> {
        let subjects = self.checked_subjects(filter.subject).await?;
        let listing = self
            .cache
            .get_or_compute(&self.ns.lists, key, || self.lesson_listing(filter, request))
            .await?;
        let keys: Vec<String> = listing.ids.iter().map(|&id| lesson_key(id)).collect();
        let ids = listing.ids.clone();
        let rows = self
            .cache
            .get_or_compute_many(&self.ns.lesson, &keys, |missing: Vec<usize>| {
                let wanted: Vec<LessonId> = missing.iter().map(|&i| ids[i]).collect();
                self.blocking(move |s| {
                    let mut found: std::collections::HashMap<LessonId, LessonDetail> =
                        lessons::details(&mut *s.conn()?, &wanted)?
                            .into_iter()
                            .map(|d| (d.card.lesson.id, d))
                            .collect();
                    wanted
                        .iter()
                        .map(|id| match found.remove(id) {
                            Some(detail) => Ok(Some(LessonView {
                                detail,
                                version: version()?,
                            })),
                            None => Ok(None),
                        })
                        .collect::<ServiceResult<Vec<_>>>()
                })
            })
            .await?;
        let rows: Vec<Arc<Option<LessonView>>> = rows.into_iter().flatten().collect();
        let mut parts = vec![listing.total.to_string(), request.number.to_string()];
        for (id, row) in listing.ids.iter().zip(&rows) {
            let mut part = id.to_string();
            if let Some(view) = row.as_ref() {
                let _ = write!(part, ":{}", view.version);
            }
            parts.push(part);
        }
        Ok(LessonsPage {
            page: Page {
                items: Vec::new(),
                number: request.number,
                size: request.size,
                total: listing.total,
            },
            subjects,
            rows,
            version: digest(parts),
            scope: scope_key(filter.scope),
        })
    }

    /// Every subject (cached), once `subject`, if given, is known to be one of them.
    pub(crate) async fn checked_subjects(
        &self,
        subject: Option<SubjectId>,
    ) -> ServiceResult<Arc<Vec<Subject>>> {
        let subjects = self.subjects().await?;
        match subject {
            Some(id) if !subjects.iter().any(|s| s.id == id) => Err(ServiceError::BadInput(
                format!("there is no subject with id {id}"),
            )),
            _ => Ok(subjects),
        }
    }

    /// A page's lesson ids, by seeking from the page starts of its filter (cached
    /// apart, so every page after the first costs one seek).
    async fn lesson_listing(
        &self,
        filter: LessonFilter,
        request: PageRequest,
    ) -> ServiceResult<LessonListing> {
        let starts = self
            .cache
            .get_or_compute(&self.ns.lists, &lesson_starts_key(&filter), || {
                self.blocking(move |s| {
                    Ok::<(Vec<PageStart>, i64), ServiceError>(lessons::page_starts(
                        &mut *s.conn()?,
                        &filter,
                        request.size,
                    )?)
                })
            })
            .await?;
        let (starts, total) = (starts.0.clone(), starts.1);
        let Some(&from) = starts.get(request.number as usize - 1) else {
            return Ok(LessonListing {
                ids: Vec::new(),
                total,
            });
        };
        let ids = self
            .blocking(move |s| {
                Ok(lessons::page_ids(
                    &mut *s.conn()?,
                    &filter,
                    from,
                    request.size,
                )?)
            })
            .await?;
        Ok(LessonListing { ids, total })
    }

    /// One page of the student list (admins and tutors), searched by index and folded
    /// text ("lukasz" finds "Łukasz"). Warm: no statement. Cold: the ids matching the
    /// search (one statement, kept for every page of it), the page's rows, and one
    /// statement for the figures not cached.
    #[tracing::instrument(level = "trace", name = "service.students", skip_all)]
    pub async fn students(
        &self,
        user: &User,
        query: &StudentQuery,
    ) -> ServiceResult<Arc<StudentsPage>> {
        self.may_list_students(user)?;
        if query
            .q
            .as_ref()
            .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
        {
            return Err(ServiceError::BadInput(format!(
                "the search may be at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        let term = query.q.as_deref().map(fold_search).unwrap_or_default();
        let request = PageRequest::new(query.page, PAGE_SIZE);
        // The page's rows and the assembled page are kept under one key.
        let key = student_page_key(&term, request.number);
        self.ns
            .student_pages
            .get_or_build(self.cache.epoch(), &key, || {
                self.assemble_students(term, request, &key)
            })
            .await
    }

    async fn assemble_students(
        &self,
        term: String,
        request: PageRequest,
        key: &str,
    ) -> ServiceResult<StudentsPage> {
        let listing = self
            .cache
            .get_or_compute(&self.ns.lists, key, || self.student_listing(term, request))
            .await?;
        // Each student's figures are cached on their own (user class), so a page of
        // 50 costs one statement for those not cached, and none when all are.
        let ids: Vec<UserId> = listing.rows.iter().map(|s| s.id).collect();
        let keys: Vec<String> = ids.iter().map(|&id| student_stats_key(id)).collect();
        let stats = self
            .cache
            .get_or_compute_many(&self.ns.user, &keys, |missing: Vec<usize>| {
                let wanted: Vec<UserId> = missing.iter().map(|&i| ids[i]).collect();
                self.blocking(move |s| {
                    let found: std::collections::HashMap<UserId, LessonStats> =
                        students::lesson_stats(&mut *s.conn()?, &wanted)?
                            .into_iter()
                            .collect();
                    // No lessons yet is a figure too (zeros), cached like the others.
                    Ok(wanted
                        .iter()
                        .map(|id| found.get(id).copied().unwrap_or_default())
                        .collect())
                })
            })
            .await?;
        let mut items = listing.rows.clone();
        let mut parts = vec![listing.total.to_string(), request.number.to_string()];
        for (item, s) in items.iter_mut().zip(stats) {
            item.stats = s.map(|s| *s).unwrap_or_default();
            parts.push(format!(
                "{}:{}:{}:{:?}",
                item.id, item.stats.total, item.stats.completed, item.stats.attendance
            ));
        }
        Ok(StudentsPage {
            students: Page {
                items,
                number: request.number,
                size: request.size,
                total: listing.total,
            },
            version: digest(parts),
        })
    }

    async fn student_listing(
        &self,
        term: String,
        request: PageRequest,
    ) -> ServiceResult<StudentListing> {
        let key = student_ids_key(&term);
        let ids = self
            .cache
            .get_or_compute(&self.ns.lists, &key, || {
                self.blocking(move |s| {
                    let q = (!term.is_empty()).then_some(term.as_str());
                    Ok::<Vec<UserId>, ServiceError>(students::search_ids(&mut *s.conn()?, q)?)
                })
            })
            .await?;
        let total = i64::try_from(ids.len()).unwrap_or(i64::MAX);
        let wanted = students::page_of(&ids, request).to_vec();
        if wanted.is_empty() {
            return Ok(StudentListing {
                rows: Vec::new(),
                total,
            });
        }
        let rows = self
            .blocking(move |s| Ok(students::rows(&mut *s.conn()?, &wanted)?))
            .await?;
        Ok(StudentListing { rows, total })
    }
}
