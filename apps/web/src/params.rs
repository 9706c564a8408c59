//! What each route reads from its query string or form: one serde struct per route,
//! taken by [`Params`] (query strings) or actix's `Form` (whose errors become a 400 in
//! [`crate::app::app`]), and its validation into the services' types with messages a
//! person can act on. Fields arrive as text so a bad value gets its own message
//! rather than serde's; blank values count as absent; unknown fields are ignored; a
//! name given twice in a query takes its last value, as it always has.

use chrono::NaiveDate;
use napiatke_domain::{AttendanceStatus, LessonStatus, SubjectId, UserId};
use napiatke_services::{LessonQuery, StudentQuery};
use serde::Deserialize;

use crate::AppError;

/// A urlencoded form body read into `T` (actix's `web::Form`, with its size limit),
/// which must arrive within FORM_BODY_TIMEOUT: a client trickling the body gets 408
/// instead of holding the connection and a worker's attention for as long as it likes.
#[derive(Debug)]
pub struct TimelyForm<T>(pub T);

impl<T> std::ops::Deref for TimelyForm<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for TimelyForm<T> {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let limit = req
            .app_data::<actix_web::web::Data<crate::AppState>>()
            .map_or(std::time::Duration::from_secs(10), |s| s.form_body_timeout);
        let form = actix_web::web::Form::<T>::from_request(req, payload);
        Box::pin(async move {
            match actix_web::rt::time::timeout(limit, form).await {
                Ok(Ok(form)) => Ok(TimelyForm(form.into_inner())),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(AppError::Timeout(format!(
                    "the form did not arrive within {:.1} s; please send it again",
                    limit.as_secs_f64()
                ))
                .into()),
            }
        })
    }
}

/// A query string read into `T`, a name given twice taking its last value (serde's
/// derived structs refuse duplicates; links and forms that repeat a name must keep
/// working). Never fails on a well-formed query, so it never answers before the
/// session extractor can send a logged-out user to the login page.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T> std::ops::Deref for Params<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned> Params<T> {
    /// From a raw query string.
    pub fn parse(query: &str) -> Result<Params<T>, AppError> {
        let unreadable = |e: &dyn std::fmt::Display| {
            AppError::BadRequest(format!("the address's query could not be read: {e}"))
        };
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| unreadable(&e))?;
        let mut last: Vec<(String, String)> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            match last.iter_mut().find(|(seen, _)| *seen == k) {
                Some(slot) => slot.1 = v,
                None => last.push((k, v)),
            }
        }
        let again = serde_urlencoded::to_string(&last).map_err(|e| unreadable(&e))?;
        serde_urlencoded::from_str(&again)
            .map(Params)
            .map_err(|e| unreadable(&e))
    }
}

impl<T: serde::de::DeserializeOwned> actix_web::FromRequest for Params<T> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Params::parse(req.query_string()))
    }
}

/// A non-empty value, trimmed.
fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn page_number(page: &Option<String>) -> Result<u32, AppError> {
    match given(page) {
        None => Ok(1),
        Some(p) => p.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            AppError::BadRequest(format!("page must be a whole number from 1 up; got {p:?}"))
        }),
    }
}

/// `/login?next=`.
#[derive(Debug, Default, Deserialize)]
pub struct LoginPage {
    next: Option<String>,
}

impl LoginPage {
    /// Where to go after logging in, as given (checked by `session::safe_next`).
    pub fn next(&self) -> Option<&str> {
        given(&self.next)
    }
}

/// The login form.
#[derive(Debug, Default, Deserialize)]
pub struct LoginForm {
    /// The pre-login CSRF token.
    #[serde(default)]
    pub csrf_token: String,
    /// As typed.
    #[serde(default)]
    pub email: String,
    /// As typed.
    #[serde(default)]
    pub password: String,
    next: Option<String>,
}

impl LoginForm {
    /// Where to go after logging in, as given.
    pub fn next(&self) -> Option<&str> {
        given(&self.next)
    }

    /// The e-mail and password, or `None` when either is blank.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        (!self.email.trim().is_empty() && !self.password.is_empty())
            .then_some((self.email.as_str(), self.password.as_str()))
    }
}

/// `/lessons/?page=&status=&subject=`.
#[derive(Debug, Default, Deserialize)]
pub struct LessonsParams {
    page: Option<String>,
    status: Option<String>,
    subject: Option<String>,
}

impl LessonsParams {
    /// The filters and page, checked (whether the subject exists is the service's).
    pub fn query(&self) -> Result<LessonQuery, AppError> {
        let status = match given(&self.status) {
            None => None,
            Some(s) => Some(
                s.to_ascii_uppercase()
                    .parse::<LessonStatus>()
                    .map_err(|e| AppError::BadRequest(e.to_string()))?,
            ),
        };
        let subject = match given(&self.subject) {
            None => None,
            Some(s) => Some(s.parse::<SubjectId>().map_err(|_| {
                AppError::BadRequest(format!("subject must be a subject's number; got {s:?}"))
            })?),
        };
        Ok(LessonQuery {
            page: page_number(&self.page)?,
            status,
            subject,
        })
    }
}

/// `/students/?page=&q=`.
#[derive(Debug, Default, Deserialize)]
pub struct StudentsParams {
    page: Option<String>,
    q: Option<String>,
}

impl StudentsParams {
    /// The page and search (its length is the service's to limit).
    pub fn query(&self) -> Result<StudentQuery, AppError> {
        Ok(StudentQuery {
            page: page_number(&self.page)?,
            q: given(&self.q).map(str::to_owned),
        })
    }
}

/// `/calendar/?start=`.
#[derive(Debug, Default, Deserialize)]
pub struct CalendarParams {
    start: Option<String>,
}

impl CalendarParams {
    /// The first day to show, if given.
    pub fn start(&self) -> Result<Option<NaiveDate>, AppError> {
        given(&self.start)
            .map(|s| {
                NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                    AppError::BadRequest(format!("start must be a date like 2026-11-23; got {s:?}"))
                })
            })
            .transpose()
    }
}

/// The attendance form: whose mark, and which.
#[derive(Debug, Default, Deserialize)]
pub struct AttendanceForm {
    student_id: Option<String>,
    status: Option<String>,
}

impl AttendanceForm {
    /// The student and the mark, checked.
    pub fn mark(&self) -> Result<(UserId, AttendanceStatus), AppError> {
        let student = given(&self.student_id)
            .and_then(|s| s.parse::<UserId>().ok())
            .ok_or_else(|| {
                AppError::BadRequest("student_id must be a student's number".to_owned())
            })?;
        let status = given(&self.status)
            .unwrap_or_default()
            .to_ascii_uppercase()
            .parse::<AttendanceStatus>()
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        Ok((student, status))
    }
}

/// How an image's status fragment shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Look {
    /// A room's photo: responsive, full width.
    #[default]
    Photo,
    /// An avatar: a fixed-size square.
    Avatar,
}

impl Look {
    /// Its name in templates.
    pub fn name(self) -> &'static str {
        match self {
            Look::Photo => "photo",
            Look::Avatar => "avatar",
        }
    }
}

/// `/images/<id>/?look=&alt=&attempt=`: what the polling fragment sends back. Lenient
/// by design (it is the page's own script talking): anything unreadable takes its
/// default.
#[derive(Debug, Default)]
pub struct StatusParams {
    /// Photo or avatar.
    pub look: Look,
    /// The image's alt text.
    pub alt: String,
    /// How many polls so far.
    pub attempt: u32,
}

impl StatusParams {
    /// From a raw query string.
    pub fn from_query(query: &str) -> StatusParams {
        #[derive(Deserialize)]
        struct Raw {
            look: Option<String>,
            alt: Option<String>,
            attempt: Option<String>,
        }
        let Ok(Params(raw)) = Params::<Raw>::parse(query) else {
            return StatusParams::default();
        };
        StatusParams {
            look: match raw.look.as_deref() {
                Some("avatar") => Look::Avatar,
                _ => Look::Photo,
            },
            alt: raw.alt.unwrap_or_default(),
            attempt: raw.attempt.and_then(|a| a.parse().ok()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q<T: serde::de::DeserializeOwned>(s: &str) -> T {
        serde_urlencoded::from_str(s).unwrap()
    }

    /// Fuzz target (napiatke-fuzzing): any query string or form body, over every
    /// typed parameter set: never a panic, and a refusal is always a 400 naming what
    /// could not be read.
    #[test]
    fn fuzz_query_strings_and_forms() {
        let alphabet = [
            "page",
            "status",
            "subject",
            "q",
            "start",
            "look",
            "alt",
            "attempt",
            "student",
            "=",
            "&",
            "&&",
            "%",
            "%2",
            "%ZZ",
            "%00",
            "%C3%A9",
            "%FF",
            "+",
            "1",
            "0",
            "-1",
            "99999999999999999999999",
            "2026-11-30",
            "2026-02-30",
            "completed",
            "SCHEDULED",
            "PRESENT",
            "ą",
            "\u{7f}",
            ";",
            "#",
            " ",
            "[]",
        ];
        napiatke_fuzzing::cases("query strings", 3_000, |rng| {
            let query = napiatke_fuzzing::text(rng, &alphabet, 10);
            let refused = |e: AppError| {
                assert!(
                    matches!(&e, AppError::BadRequest(m) if !m.is_empty()),
                    "{query:?}: {e:?}"
                );
            };
            match Params::<LessonsParams>::parse(&query) {
                Ok(p) => match p.query() {
                    Ok(q) => assert!(q.page >= 1, "{query:?}"),
                    Err(e) => refused(e),
                },
                Err(e) => refused(e),
            }
            match Params::<StudentsParams>::parse(&query).map(|p| p.query()) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) | Err(e) => refused(e),
            }
            match Params::<CalendarParams>::parse(&query).map(|p| p.start()) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) | Err(e) => refused(e),
            }
            let status = StatusParams::from_query(&query);
            assert!(status.alt.len() <= query.len());
            if let Ok(form) = serde_urlencoded::from_str::<AttendanceForm>(&query) {
                if let Err(e) = form.mark() {
                    refused(e);
                }
            }
        });
    }

    #[test]
    fn lesson_filters_are_checked_with_messages() {
        let ok: LessonsParams = q("page=2&status=completed&subject=1&_=123");
        let query = ok.query().unwrap();
        assert_eq!(query.page, 2);
        assert_eq!(query.status, Some(LessonStatus::Completed));
        assert_eq!(query.subject, Some(SubjectId(1)));
        let blank: LessonsParams = q("page=&status=+&subject=");
        assert_eq!(
            blank.query().unwrap(),
            LessonQuery {
                page: 1,
                ..LessonQuery::default()
            }
        );
        for (input, message) in [
            ("page=0", "page must be a whole number from 1 up; got \"0\""),
            (
                "page=-1",
                "page must be a whole number from 1 up; got \"-1\"",
            ),
            (
                "subject=maths",
                "subject must be a subject's number; got \"maths\"",
            ),
            ("status=LOST", "unknown lesson status \"LOST\""),
        ] {
            let p: LessonsParams = q(input);
            let err = p.query().err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.starts_with(message)),
                "{input}: {err:?}"
            );
        }
    }

    #[test]
    fn a_name_given_twice_takes_its_last_value() {
        let p: Params<LessonsParams> = Params::parse("page=1&status=&page=3").unwrap();
        assert_eq!(p.query().unwrap().page, 3);
        let p: Params<LoginPage> = Params::parse("next=/a/&next=/b/").unwrap();
        assert_eq!(p.next(), Some("/b/"));
        let p: Params<CalendarParams> = Params::parse("").unwrap();
        assert_eq!(p.start().unwrap(), None);
    }

    #[test]
    fn forms_and_dates() {
        let f: AttendanceForm = q("csrf_token=t&student_id=+4+&status=present");
        assert_eq!(f.mark().unwrap(), (UserId(4), AttendanceStatus::Present));
        let f: AttendanceForm = q("status=PRESENT");
        assert_eq!(
            f.mark().err().map(|e| e.to_string()).as_deref(),
            Some("student_id must be a student's number")
        );
        let c: CalendarParams = q("start=2026-02-30");
        assert!(c.start().is_err());
        let c: CalendarParams = q("start=2026-11-23");
        assert_eq!(c.start().unwrap(), NaiveDate::from_ymd_opt(2026, 11, 23));
        let s = StatusParams::from_query("look=avatar&alt=Sara&attempt=x");
        assert_eq!(
            (s.look, s.alt.as_str(), s.attempt),
            (Look::Avatar, "Sara", 0)
        );
        // Repeated names: the last one, as for every other query.
        let s = StatusParams::from_query("attempt=1&look=photo&attempt=7&look=avatar");
        assert_eq!((s.look, s.attempt), (Look::Avatar, 7));
    }
}
