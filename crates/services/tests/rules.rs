//! The rules the use cases hold, tested without HTTP, on both engines: who may see
//! and mark a lesson, who may list students and read the cache figures, what a
//! search may be, session rotation at login, and that a mark shows at once.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{NaiveDate, NaiveDateTime};
use napiatke_db::testing::{TestDb, FIXTURE_PASSWORD};
use napiatke_db::Engine;
use napiatke_domain::{AttendanceStatus, LessonId, LessonStatus, Role, SubjectId, User, UserId};
use napiatke_services::{
    may_mark_attendance, FixedClock, LessonQuery, ServiceError, Services, Session, StudentQuery,
    EXPORT_CHUNK, EXPORT_HEADER,
};

fn now() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default()
}

fn fixture(engine: Engine) -> (TestDb, Services) {
    let t = TestDb::new(engine).unwrap();
    t.load_fixture().unwrap();
    let services = Services::new(t.db.clone(), FixedClock(now()));
    (t, services)
}

/// A live session for the fixture user `name` (`tina` → tina@napiatke.local).
async fn session(services: &Services, name: &str) -> Session {
    let (_, new) = services
        .login(&format!("{name}@napiatke.local"), FIXTURE_PASSWORD, None)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name} could not log in"));
    services
        .session(&new.token)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{name}'s session is not live"))
}

fn lesson(id: i64) -> LessonId {
    LessonId(id)
}

fn user(id: i64, role: Role) -> User {
    User {
        id: UserId(id),
        email: napiatke_domain::Email::parse("someone@napiatke.local").unwrap(),
        first_name: "Some".to_owned(),
        last_name: "One".to_owned(),
        role,
        is_active: true,
        created_at: now(),
    }
}

#[test]
fn who_may_mark_attendance() {
    let (tina, tom) = (UserId(2), UserId(3));
    assert!(may_mark_attendance(&user(1, Role::Admin), tina));
    assert!(may_mark_attendance(&user(2, Role::Tutor), tina));
    assert!(!may_mark_attendance(&user(2, Role::Tutor), tom));
    assert!(!may_mark_attendance(&user(4, Role::Student), tina));
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, ServiceError>) -> bool {
    matches!(
        r.as_ref().map_err(ServiceError::kind),
        Err(ServiceError::Forbidden(_))
    )
}

async fn lesson_page_rules(engine: Engine) {
    let (_t, services) = fixture(engine);
    let admin = session(&services, "admin").await;
    let tina = session(&services, "tina").await;
    let tom = session(&services, "tom").await;
    let sara = session(&services, "sara").await;
    // Lesson 4: Tina's, with Sara, Bob and Dan.
    let page = |s: Session| {
        let services = services.clone();
        async move { services.lesson_page(&s, lesson(4)).await }
    };
    let of_admin = page(admin.clone()).await.unwrap();
    assert!(of_admin.can_mark);
    assert_eq!(of_admin.avatars.len(), 3, "one avatar place per student");
    assert!(of_admin.avatars.iter().all(Option::is_none));
    let of_tina = page(tina.clone()).await.unwrap();
    assert!(of_tina.can_mark, "the lesson's own tutor");
    let of_tom = page(tom.clone()).await.unwrap();
    assert!(!of_tom.can_mark, "another tutor reads but does not mark");
    let of_sara = page(sara.clone()).await.unwrap();
    assert!(!of_sara.can_mark);
    // Lesson 3 is Tom's, without Sara: missing for her, not forbidden.
    assert!(matches!(
        services.lesson_page(&sara, lesson(3)).await.map_err(|e| e.kind().to_string()),
        Err(m) if m == "there is no lesson 3"
    ));

    // Rendered HTML is kept per viewer and block.
    let key = of_admin.render_key("page");
    assert_eq!(
        page(admin.clone()).await.map(|p| p.render_key("page")).ok(),
        Some(key.clone()),
        "the same viewer, data and block: the same key"
    );
    assert_ne!(key, of_admin.render_key("students"));
    assert_ne!(key, of_tina.render_key("page"), "another viewer");

    // Only admins and the lesson's tutor mark; the student must be in the lesson.
    let bob = UserId(5);
    for who in [&tom, &sara] {
        assert!(forbidden(
            services
                .mark_attendance_page(who, lesson(4), bob, AttendanceStatus::Present)
                .await
        ));
    }
    assert!(matches!(
        services
            .mark_attendance_page(&tina, lesson(4), UserId(6), AttendanceStatus::Present)
            .await
            .map_err(|e| e.kind().to_string()),
        Err(m) if m == "student 6 is not in lesson 4"
    ));
    let marked = services
        .mark_attendance_page(&tina, lesson(4), bob, AttendanceStatus::Present)
        .await
        .unwrap();
    let mark_of = |p: &napiatke_services::LessonPage| {
        p.detail
            .students
            .iter()
            .find(|s| s.student.id == bob)
            .and_then(|s| s.attendance)
    };
    assert_eq!(mark_of(&marked), Some(AttendanceStatus::Present));
    // Every viewer's next read shows the mark (the cached lesson was invalidated),
    // under a new key, so no page rendered before the mark is served.
    let after = page(admin.clone()).await.unwrap();
    assert_eq!(mark_of(&after), Some(AttendanceStatus::Present));
    assert_ne!(after.render_key("page"), key);
}

async fn list_and_report_rules(engine: Engine) {
    let (_t, services) = fixture(engine);
    let admin = session(&services, "admin").await;
    let tina = session(&services, "tina").await;
    let sara = session(&services, "sara").await;
    let query = |q: Option<String>| StudentQuery { page: 1, q };
    assert!(forbidden(services.students(&sara.user, &query(None)).await));
    let all = services.students(&tina.user, &query(None)).await.unwrap();
    assert_eq!(
        all.students.total, 3,
        "tutors list every active student (Cleo is not)"
    );
    let long = "ą".repeat(101);
    assert!(matches!(
        services.students(&admin.user, &query(Some(long))).await.map_err(|e| e.kind().to_string()),
        Err(m) if m == "the search may be at most 100 characters"
    ));
    let longest = services
        .students(&admin.user, &query(Some("ą".repeat(100))))
        .await
        .unwrap();
    assert_eq!(
        longest.students.total, 0,
        "100 characters are searched (nothing matches)"
    );
    // A student asking with a bad search is refused for who they are first.
    assert!(forbidden(
        services
            .students(&sara.user, &query(Some("x".repeat(101))))
            .await
    ));

    assert!(forbidden(services.cache_report(&tina.user).await));
    assert!(forbidden(services.cache_report(&sara.user).await));
    assert!(services.cache_report(&admin.user).await.is_ok());
}

async fn login_rotates_the_session(engine: Engine) {
    let (_t, services) = fixture(engine);
    let login = |password: &'static str, previous: Option<String>| {
        let services = services.clone();
        async move {
            services
                .login("tina@napiatke.local", password, previous.as_deref())
                .await
                .unwrap()
        }
    };
    let live = |token: String| {
        let services = services.clone();
        async move { services.session(&token).await.unwrap().is_some() }
    };
    let first = login(FIXTURE_PASSWORD, None).await.map(|(_, s)| s.token);
    let first = first.unwrap_or_else(|| panic!("login failed"));
    assert!(live(first.clone()).await);
    // A wrong password leaves the session the browser had.
    assert!(login("wrong", Some(first.clone())).await.is_none());
    assert!(live(first.clone()).await);
    // A new login ends it: a planted or stolen id dies with the next login.
    let second = login(FIXTURE_PASSWORD, Some(first.clone()))
        .await
        .map(|(_, s)| s.token)
        .unwrap_or_else(|| panic!("login failed"));
    assert_ne!(first, second);
    assert!(!live(first).await, "the previous session was ended");
    assert!(live(second).await);
}

async fn upload_rules(engine: Engine) {
    use napiatke_domain::RoomId;
    use napiatke_services::UploadTarget;
    let (_t, services) = fixture(engine);
    let admin = session(&services, "admin").await;
    let tina = session(&services, "tina").await;
    let sara = session(&services, "sara").await;
    let room = UploadTarget::RoomPhoto(RoomId(1));
    assert!(services.authorize_upload(&admin.user, room).await.is_ok());
    assert!(forbidden(services.authorize_upload(&tina.user, room).await));
    assert!(forbidden(services.authorize_upload(&sara.user, room).await));
    assert!(matches!(
        services
            .authorize_upload(&admin.user, UploadTarget::RoomPhoto(RoomId(99)))
            .await
            .map_err(|e| e.kind().to_string()),
        Err(m) if m == "there is no room 99"
    ));
    // An avatar is always the uploader's own: anyone may set theirs.
    for who in [&admin, &tina, &sara] {
        assert!(services
            .authorize_upload(&who.user, UploadTarget::Avatar)
            .await
            .is_ok());
    }
}

/// The student list caches each student's figures; a mark must show in them at once.
async fn a_mark_shows_in_the_student_list(engine: Engine) {
    let (_t, services) = fixture(engine);
    let admin = session(&services, "admin").await;
    let bob = UserId(5);
    let rate = || {
        let services = services.clone();
        let admin = admin.clone();
        async move {
            let list = services
                .students(
                    &admin.user,
                    &StudentQuery {
                        page: 1,
                        q: Some("Brown".to_owned()),
                    },
                )
                .await
                .unwrap();
            let row = list
                .students
                .items
                .iter()
                .find(|s| s.id == bob)
                .map(|s| s.stats);
            row.map(|s| (s.total, s.attendance.to_string()))
        }
    };
    // Bob: lessons 1 (ABSENT), 3 and 4 (unmarked).
    assert_eq!(rate().await, Some((3, "0.0%".to_owned())));
    assert_eq!(
        rate().await,
        Some((3, "0.0%".to_owned())),
        "now from the cache"
    );
    services
        .mark_attendance_page(&admin, lesson(4), bob, AttendanceStatus::Present)
        .await
        .unwrap();
    assert_eq!(rate().await, Some((3, "50.0%".to_owned())));
}

napiatke_db::both_engines! {
    #[tokio::test] async
    a_lesson_page_says_who_may_mark_and_shows_marks_at_once => lesson_page_rules;
    students_and_cache_figures_are_for_staff_and_admins => list_and_report_rules;
    login_ends_the_previous_session => login_rotates_the_session;
    only_admins_set_room_photos_and_everyone_their_avatar => upload_rules;
    a_mark_shows_in_the_student_list_at_once => a_mark_shows_in_the_student_list;
    the_export_streams_in_chunks_with_the_lists_rights => export_rules;
}

/// Every chunk the export sends, in order.
async fn chunks(services: &Services, who: &User, query: LessonQuery, size: u32) -> Vec<String> {
    let mut rx = services.lesson_export_in(who, query, size).await.unwrap();
    let mut out = Vec::new();
    while let Some(chunk) = rx.recv().await {
        out.push(chunk.unwrap());
    }
    out
}

async fn export_rules(engine: Engine) {
    let (_t, services) = fixture(engine);
    let admin = user(1, Role::Admin);
    let all = LessonQuery::default();
    let whole = chunks(&services, &admin, all, EXPORT_CHUNK).await;
    assert_eq!(whole.len(), 2, "the header, then one chunk for 7 lessons");
    assert_eq!(whole[0], EXPORT_HEADER);
    // Two lessons a chunk: the same rows, in four chunks after the header.
    let small = chunks(&services, &admin, all, 2).await;
    assert_eq!(small.len(), 5);
    assert_eq!(small.concat(), whole.concat());
    let lines: Vec<&str> = whole[1].lines().collect();
    let ids: Vec<&str> = lines.iter().filter_map(|l| l.split(',').next()).collect();
    assert_eq!(
        ids,
        ["7", "4", "5", "3", "2", "1", "6"],
        "newest first, as the list"
    );
    assert!(lines.contains(
        &"1,Math 1,2026-11-20 10:00,2026-11-20 11:00,COMPLETED,Tina Tutor,Math,Room A,2,1"
    ));
    assert!(lines.contains(
        &"2,Physics 2,2026-11-26 09:00,2026-11-26 10:00,COMPLETED,Tina Tutor,Physics,,1,0"
    ));
    // The list's rights and filters.
    let sara = user(4, Role::Student);
    let hers = chunks(&services, &sara, all, 3).await.concat();
    let ids: Vec<&str> = hers
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(ids, ["4", "2", "1", "6"]);
    let completed = LessonQuery {
        status: Some(LessonStatus::Completed),
        ..all
    };
    assert_eq!(chunks(&services, &admin, completed, 1).await.len(), 3);
    let missing = LessonQuery {
        subject: Some(SubjectId(99)),
        ..all
    };
    assert!(matches!(
        services.lesson_export(&admin, missing).await,
        Err(ServiceError::BadInput(m)) if m == "there is no subject with id 99"
    ));
    // A reader that goes away stops the walk (the sender sees the channel closed).
    let rx = services.lesson_export_in(&admin, all, 1).await.unwrap();
    drop(rx);
}
