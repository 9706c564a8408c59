//! The app over HTTP (actix's in-process test server), on SQLite and PostgreSQL,
//! against the hand-built fixture (napiatke_db::testing::FIXTURE_SQL, now = Thursday
//! 2026-11-26 12:00 UTC) and, for statement budgets, the standard demo set.

mod common;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use common::*;
use napiatke_db::testing::{TestDb, FIXTURE_PASSWORD};
use napiatke_db::Engine;
use napiatke_services::FixedClock;
use napiatke_web::config::Settings;

napiatke_db::both_engines! {
    #[actix_web::test] async
    login_rotates_the_session_and_logout_ends_it => login_flow;
    pages_show_the_fixture => page_content;
    every_route_checks_its_roles => role_table;
    posts_without_the_csrf_token_are_refused => csrf;
    marking_attendance_changes_what_pages_show => attendance_changes_pages;
    bad_input_gets_a_clear_4xx => bad_input;
    htmx_gets_fragments_that_vary_on_hx_request => fragments;
    health_and_errors => health_and_errors;
    no_page_is_stale_after_attendance_in_either_process => no_stale_pages;
    sessions_survive_a_restart_and_a_redis_flush => sessions_survive;
    pages_stay_up_and_right_while_redis_is_down => redis_outage;
    cache_stats_page_shows_both_tiers => cache_stats_page;
}

async fn login_flow(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;

    let anon = send(&app, TestRequest::get().uri("/dashboard/")).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
    assert_eq!(anon.header("location"), Some("/login?next=/dashboard/"));

    let (wrong, b) = login(&app, "admin@napiatke.local", "not-it").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong e-mail or password."));
    assert!(
        wrong.body.contains("value=\"admin@napiatke.local\""),
        "the e-mail is kept"
    );
    assert!(b.session.is_none());
    let (unknown, _) = login(&app, "nobody@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let (inactive, _) = login(&app, "cleo@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        inactive.status,
        StatusCode::UNAUTHORIZED,
        "inactive users cannot log in"
    );

    let (ok, first) = login(&app, "ADMIN@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.header("location"), Some("/lessons/"));
    let set = ok.cookie("napiatke_session").unwrap_or_default();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(
        !set.contains("Secure"),
        "no Secure flag over plain HTTP in development"
    );
    let dash = send(&app, first.get("/dashboard/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(dash.body.contains("Ada Admin"));

    // Logging in again from the same browser: a new session id, the old one is dead.
    let (again, second) = login_as(&app, &first, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_ne!(second.session, first.session);
    assert_eq!(
        send(&app, first.get("/dashboard/")).await.status,
        StatusCode::SEE_OTHER
    );
    assert!(send(&app, second.get("/dashboard/"))
        .await
        .body
        .contains("Tina Tutor"));

    let out = send(
        &app,
        second.post("/logout", &[("csrf_token", &second.csrf)]),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.header("location"), Some("/login"));
    assert!(out
        .cookie("napiatke_session")
        .is_some_and(|c| c.contains("Max-Age=0")));
    assert_eq!(
        send(&app, second.get("/dashboard/")).await.status,
        StatusCode::SEE_OTHER
    );

    // A forged cookie is just "not logged in".
    let forged = Browser {
        session: Some("f".repeat(64)),
        csrf: String::new(),
    };
    assert_eq!(
        send(&app, forged.get("/dashboard/")).await.status,
        StatusCode::SEE_OTHER
    );

    // Production sets Secure.
    let prod = test::init_service(napiatke_web::app::app(state(&t, true).await)).await;
    let (ok, _) = login(&prod, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    assert!(ok
        .cookie("napiatke_session")
        .is_some_and(|c| c.contains("Secure")));
}

async fn page_content(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    let dash = send(&app, admin.get("/dashboard/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    for want in [
        "<b>3</b>active students",
        "<b>2</b>active tutors",
        "<b>3</b>lessons today (1 scheduled, 1 ongoing, 1 completed)",
        "<b>150.50 PLN</b>paid this month",
    ] {
        assert!(dash.body.contains(want), "dashboard lacks {want:?}");
    }
    let order: Vec<usize> = ["Physics 5", "Math 4", "Math 7"]
        .iter()
        .map(|t| dash.body.find(t).unwrap_or(usize::MAX))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]) && order[2] != usize::MAX,
        "upcoming order {order:?}"
    );
    assert!(
        !dash.body.contains("Math 1<"),
        "past lessons are not upcoming"
    );

    let lessons = send(&app, admin.get("/lessons/")).await;
    assert_eq!(lessons.status, StatusCode::OK);
    assert_eq!(
        lessons.body.matches("<tr><td><a href=\"/lessons/").count(),
        7
    );
    let math1 = lessons.body.split("Math 1</a>").nth(1).unwrap_or_default();
    assert!(
        math1.contains("<td class=\"student-count\">2</td>")
            && math1.contains("<td class=\"present-count\">1</td>")
    );
    assert!(math1.contains("Sara Adams, Bob Brown"));
    assert!(
        lessons.body.contains("background:#112233"),
        "subject colour"
    );
    assert!(lessons.body.contains("Page 1 of 1 · 7 in all"));
    let completed = send(&app, admin.get("/lessons/?status=completed")).await;
    assert_eq!(
        completed
            .body
            .matches("<tr><td><a href=\"/lessons/")
            .count(),
        2
    );
    let physics = send(&app, admin.get("/lessons/?subject=2")).await;
    assert!(
        physics.body.contains("Physics 5")
            && physics.body.contains("Physics 2")
            && !physics.body.contains("Math 4")
    );

    let one = send(&app, admin.get("/lessons/1/")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(
        one.body.contains("Sara Adams") && one.body.contains("<td class=\"mark\">present</td>")
    );
    assert!(one.body.contains("<td class=\"mark\">absent</td>"));
    assert!(one.body.contains("2 students, 1 present"));

    let week = send(&app, admin.get("/calendar/?start=2026-11-23")).await;
    assert_eq!(week.status, StatusCode::OK);
    assert!(week.body.contains("Week from 23 Nov 2026 · 4 lessons"));
    assert_eq!(week.body.matches("class=\"entry\"").count(), 4);
    assert!(week.body.contains("?start=2026-11-16") && week.body.contains("?start=2026-11-30"));

    let students = send(&app, admin.get("/students/")).await;
    assert_eq!(students.status, StatusCode::OK);
    let row = |name: &str| row_after(&students.body, name).to_owned();
    let sara = row("Sara Adams");
    assert!(
        sara.contains("<td class=\"total\">4</td>")
            && sara.contains("<td class=\"completed\">2</td>")
            && sara.contains("<td class=\"rate\">50.0%</td>"),
        "{sara}"
    );
    assert!(row("Bob Brown").contains("<td class=\"rate\">0.0%</td>"));
    assert!(row("Dan Dunn").contains("<td class=\"rate\">—</td>"));
    assert!(
        !students.body.contains("Cleo"),
        "inactive students are not listed"
    );
    let search = send(&app, admin.get("/students/?q=bro")).await;
    assert!(search.body.contains("Bob Brown") && !search.body.contains("Sara Adams"));

    // A student sees only their own.
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let dash = send(&app, sara.get("/dashboard/")).await;
    assert!(
        dash.body.contains("<b>50.0%</b>attendance")
            && dash.body.contains("<b>1</b>upcoming lessons")
    );
    assert!(dash.body.contains("Math 4") && !dash.body.contains("Physics 5"));
    let mine = send(&app, sara.get("/lessons/")).await;
    assert_eq!(mine.body.matches("<tr><td><a href=\"/lessons/").count(), 4);
    assert!(!mine.body.contains("Math 3"));
    assert_eq!(
        send(&app, sara.get("/lessons/3/")).await.status,
        StatusCode::NOT_FOUND
    );
    let cal = send(&app, sara.get("/calendar/?start=2026-11-23")).await;
    assert!(
        cal.body.contains("· 2 lessons"),
        "Sara has lessons 2 and 4 that week"
    );

    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let dash = send(&app, tina.get("/dashboard/")).await;
    assert!(
        dash.body.contains("<b>2</b>upcoming lessons")
            && dash.body.contains("<b>33.3%</b>attendance")
    );
}

async fn role_table(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, tutor) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, student) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let anon = Browser::default();
    let ok = StatusCode::OK;
    let login_page = StatusCode::SEE_OTHER;
    let forbidden = StatusCode::FORBIDDEN;
    // route: admin, tutor, student, logged out
    let table = [
        ("/dashboard/", [ok, ok, ok, login_page]),
        ("/lessons/", [ok, ok, ok, login_page]),
        ("/lessons/1/", [ok, ok, ok, login_page]),
        ("/calendar/", [ok, ok, ok, login_page]),
        ("/students/", [ok, ok, forbidden, login_page]),
        (
            "/admin/cache-stats/",
            [ok, forbidden, forbidden, login_page],
        ),
        ("/healthz", [ok, ok, ok, ok]),
        ("/login", [ok, ok, ok, ok]),
    ];
    for (route, expected) in table {
        for (who, browser, want) in [
            ("admin", &admin, expected[0]),
            ("tutor", &tutor, expected[1]),
            ("student", &student, expected[2]),
            ("anonymous", &anon, expected[3]),
        ] {
            let got = send(&app, browser.get(route)).await;
            assert_eq!(got.status, want, "{route} as {who}");
            if want == login_page {
                assert_eq!(
                    got.header("location"),
                    Some(format!("/login?next={}", route).as_str())
                );
            }
        }
    }
    // Writes: attendance on Tina's lesson 1.
    let mark = |b: &Browser| {
        b.post(
            "/lessons/1/attendance",
            &[
                ("student_id", "5"),
                ("status", "LATE"),
                ("csrf_token", &b.csrf),
            ],
        )
    };
    assert_eq!(send(&app, mark(&admin)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(send(&app, mark(&tutor)).await.status, StatusCode::SEE_OTHER);
    assert_eq!(send(&app, mark(&student)).await.status, forbidden);
    assert_eq!(send(&app, mark(&anon)).await.status, login_page);
    let (_, tom) = login(&app, "tom@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        send(&app, mark(&tom)).await.status,
        forbidden,
        "not Tom's lesson"
    );
    // htmx without a session is told where to go instead of being redirected.
    let hx = send(
        &app,
        anon.get("/lessons/").insert_header(("HX-Request", "true")),
    )
    .await;
    assert_eq!(hx.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hx.header("hx-redirect"), Some("/login?next=/lessons/"));
}

async fn csrf(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let no_token = send(&app, admin.post("/logout", &[])).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    assert!(no_token.body.contains("security token"));
    let wrong = send(
        &app,
        admin.post(
            "/lessons/1/attendance",
            &[
                ("student_id", "4"),
                ("status", "ABSENT"),
                ("csrf_token", &"0".repeat(64)),
            ],
        ),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let still = send(&app, admin.get("/lessons/1/")).await;
    assert!(
        still.body.contains("<td class=\"mark\">present</td>"),
        "a refused POST changes nothing"
    );
    // The header htmx sends is accepted in place of the form field.
    let via_header = send(
        &app,
        admin
            .post(
                "/lessons/1/attendance",
                &[("student_id", "4"), ("status", "ABSENT")],
            )
            .insert_header(("X-CSRF-Token", admin.csrf.as_str())),
    )
    .await;
    assert_eq!(via_header.status, StatusCode::SEE_OTHER);
    // Another session's token is not this session's.
    let (_, other) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let crossed = send(&app, admin.post("/logout", &[("csrf_token", &other.csrf)])).await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    // Login needs the double-submit cookie.
    let bare = send(
        &app,
        TestRequest::post().uri("/login").set_form(
            [
                ("email", "admin@napiatke.local"),
                ("password", FIXTURE_PASSWORD),
                ("csrf_token", "abc"),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>(),
        ),
    )
    .await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    assert!(bare.cookie("napiatke_session").is_none());
}

async fn attendance_changes_pages(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let before = send(&app, admin.get("/students/?q=dunn")).await;
    assert!(before.body.contains("<td class=\"rate\">—</td>"));
    // Dan in lesson 4: first mark inserts.
    let res = mark(&app, &admin, 4, "7", "present").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/lessons/4/"));
    let lesson = send(&app, admin.get("/lessons/4/")).await;
    let dan = row_after(&lesson.body, "Dan Dunn");
    assert!(dan.contains("<td class=\"mark\">present</td>"), "{dan}");
    assert!(lesson.body.contains("3 students, 1 present"));
    let after = send(&app, admin.get("/students/?q=dunn")).await;
    assert!(
        after.body.contains("<td class=\"rate\">100.0%</td>"),
        "Dan's rate follows the mark"
    );
    // htmx: the second mark updates in place and answers with the fragment alone.
    let hx = send(
        &app,
        admin
            .post(
                "/lessons/4/attendance",
                &[
                    ("student_id", "7"),
                    ("status", "ABSENT"),
                    ("csrf_token", &admin.csrf),
                ],
            )
            .insert_header(("HX-Request", "true")),
    )
    .await;
    assert_eq!(hx.status, StatusCode::OK);
    assert!(!hx.body.contains("<html") && hx.body.contains("<td class=\"mark\">absent</td>"));
    assert!(hx.body.contains("3 students, 0 present"));
    let after = send(&app, admin.get("/students/?q=dunn")).await;
    assert!(after.body.contains("<td class=\"rate\">0.0%</td>"));
    let dash = send(&app, admin.get("/lessons/?status=scheduled")).await;
    assert!(dash.body.contains("Math 4"));
}

async fn bad_input(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for (path, status, message) in [
        (
            "/lessons/?page=0",
            400,
            "page must be a whole number from 1 up",
        ),
        (
            "/lessons/?page=abc",
            400,
            "page must be a whole number from 1 up",
        ),
        ("/lessons/?page=-1", 400, "page must be a whole number"),
        (
            "/lessons/?page=99",
            404,
            "page 99 does not exist; the last page is 1",
        ),
        (
            "/lessons/?status=LOST",
            400,
            "unknown lesson status &quot;LOST&quot;",
        ),
        (
            "/lessons/?subject=99",
            400,
            "there is no subject with id 99",
        ),
        (
            "/lessons/?subject=maths",
            400,
            "subject must be a subject&#x27;s number",
        ),
        (
            "/calendar/?start=not-a-date",
            400,
            "start must be a date like 2026-11-23",
        ),
        ("/calendar/?start=2026-02-30", 400, "start must be a date"),
        ("/lessons/999/", 404, "there is no lesson 999"),
        ("/lessons/abc/", 404, "there is no lesson"),
        ("/students/?page=x", 400, "page must be"),
        ("/nowhere", 404, "there is nothing at this address"),
        ("/lessons/?page=%ZZ", 400, "page must be a whole number"),
    ] {
        let got = send(&app, admin.get(path)).await;
        assert_eq!(got.status.as_u16(), status, "{path}: {}", got.body);
        assert!(got.body.contains(message), "{path}: {}", got.body);
        assert!(!got.body.contains("diesel") && !got.body.contains("panicked"));
    }
    let long = format!("/students/?q={}", "a".repeat(101));
    assert_eq!(
        send(&app, admin.get(&long)).await.status,
        StatusCode::BAD_REQUEST
    );
    for (form, message) in [
        (
            vec![("student_id", "6"), ("status", "PRESENT")],
            "student 6 is not in lesson 1",
        ),
        (
            vec![("student_id", "4"), ("status", "LOST")],
            "unknown attendance status",
        ),
        (
            vec![("student_id", "x"), ("status", "PRESENT")],
            "student_id must be a student&#x27;s number",
        ),
        (vec![("status", "PRESENT")], "student_id must be"),
    ] {
        let mut f = form.clone();
        f.push(("csrf_token", &admin.csrf));
        let got = send(&app, admin.post("/lessons/1/attendance", &f)).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{form:?}");
        assert!(got.body.contains(message), "{form:?}: {}", got.body);
    }
    let missing = mark(&app, &admin, 999, "4", "PRESENT").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    // Nothing was lost: lesson 1 is as the fixture has it.
    let one = send(&app, admin.get("/lessons/1/")).await;
    assert!(one.body.contains("2 students, 1 present"));
}

async fn fragments(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for (path, marker) in [
        ("/lessons/", "Math 1"),
        ("/students/?q=a", "Sara Adams"),
        ("/calendar/?start=2026-11-23", "Physics"),
    ] {
        let full = send(&app, admin.get(path)).await;
        let part = send(&app, admin.get(path).insert_header(("HX-Request", "true"))).await;
        let restore = send(
            &app,
            admin
                .get(path)
                .insert_header(("HX-Request", "true"))
                .insert_header(("HX-History-Restore-Request", "true")),
        )
        .await;
        for p in [&full, &part, &restore] {
            assert_eq!(p.status, StatusCode::OK, "{path}");
            assert_eq!(p.header("vary"), Some("HX-Request"), "{path}");
            assert!(p.body.contains(marker), "{path}");
        }
        assert!(
            full.body.starts_with("<!doctype html>") && restore.body.starts_with("<!doctype html>")
        );
        assert!(
            !part.body.contains("<html") && !part.body.contains("<header"),
            "{path}: {}",
            &part.body[..part.body.len().min(200)]
        );
        assert!(
            part.body.len() < full.body.len(),
            "{path}: the fragment is smaller"
        );
    }
}

async fn health_and_errors(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let h = send(&app, TestRequest::get().uri("/healthz")).await;
    assert_eq!((h.status, h.body.as_str()), (StatusCode::OK, "ok\n"));
    assert_eq!(h.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(h.header("x-query-count"), Some("1"));
    assert!(h
        .header("server-timing")
        .is_some_and(|v| v.starts_with("db;dur=")));

    // Production keeps its statement counts to itself unless EXPOSE_QUERY_COUNT says so.
    let prod_settings =
        Settings::from_lookup(|k| (k == "NAPIATKE_ENV").then(|| "production".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(!prod_settings.expose_query_count);
    let prod_state = napiatke_web::build_state(
        &prod_settings,
        t.db.clone(),
        FixedClock(now()),
        statics(),
        napiatke_cache::Cache::local(napiatke_cache::CacheConfig::default()),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let prod = test::init_service(napiatke_web::app::app(prod_state)).await;
    let h = send(&prod, TestRequest::get().uri("/healthz")).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.header("x-query-count"), None);
    assert_eq!(h.header("server-timing"), None);
}

/// Every page's statement count on the fixture equals its count on the standard
/// demo set, and stays within 6. (The pages compared return rows on both sides: a
/// list with no rows skips its prefetch statement, which only ever lowers the count.)
async fn statement_budget(engine: Engine) {
    let small = fixture(engine);
    let big = TestDb::new(engine).unwrap_or_else(|e| panic!("{e}"));
    {
        let mut conn = big.db.get().unwrap_or_else(|e| panic!("{e}"));
        napiatke_db::seed::run(
            &mut conn,
            &napiatke_db::seed::SeedOptions::new(napiatke_db::seed::Scale::Standard, 42, now()),
            |_| {},
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let small_app = test::init_service(napiatke_web::app::app(state(&small, false).await)).await;
    let big_app = test::init_service(napiatke_web::app::app(state(&big, false).await)).await;
    let pages = [
        "/dashboard/",
        "/lessons/",
        "/lessons/?status=completed",
        "/lessons/1/",
        "/calendar/",
        "/calendar/?start=2026-11-23",
        "/students/",
        "/students/?q=a",
        "/admin/cache-stats/",
    ];
    for (small_login, big_login, role) in [
        (
            ("admin@napiatke.local", FIXTURE_PASSWORD),
            ("admin@napiatke.local", "admin"),
            "admin",
        ),
        (
            ("tina@napiatke.local", FIXTURE_PASSWORD),
            ("tutor1@napiatke.local", "tutor"),
            "tutor",
        ),
        (
            ("sara@napiatke.local", FIXTURE_PASSWORD),
            ("student1@napiatke.local", "student"),
            "student",
        ),
    ] {
        let (_, s) = login(&small_app, small_login.0, small_login.1).await;
        let (_, b) = login(&big_app, big_login.0, big_login.1).await;
        for page in pages {
            let sp = send(&small_app, s.get(page)).await;
            let bp = send(&big_app, b.get(page)).await;
            if sp.status != StatusCode::OK || bp.status != StatusCode::OK {
                // Lesson 1 need not be student1's in the demo set; any other refusal
                // (a student's /students/) must be the same on both sides.
                if page != "/lessons/1/" {
                    assert_eq!(sp.status, bp.status, "{page} as {role}");
                }
                continue;
            }
            assert_eq!(
                sp.queries(),
                bp.queries(),
                "{page} as {role}: fixture vs standard set"
            );
            assert!(
                bp.queries() <= 6,
                "{page} as {role}: {} statements",
                bp.queries()
            );
        }
    }
}

#[actix_web::test]
async fn statement_budget_on_sqlite() {
    statement_budget(Engine::Sqlite).await;
}

#[actix_web::test]
async fn statement_budget_on_postgres() {
    statement_budget(Engine::Postgres).await;
}

#[test]
fn telemetry_listens_on_the_target_db_reports_on() {
    assert_eq!(
        napiatke_telemetry::STATEMENT_TARGET,
        napiatke_db::STATEMENT_TARGET
    );
}

fn rate_in(body: &str) -> String {
    body.split("</b>attendance")
        .next()
        .and_then(|s| s.rsplit("<b>").next())
        .unwrap_or_default()
        .to_owned()
}

/// Two app processes sharing one Redis (same prefix): every page read on either after
/// an attendance POST on one shows the new mark, though both had it cached.
async fn no_stale_pages(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let a = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &prefix, Some(redis_url())).await,
    ))
    .await;
    let b = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &prefix, Some(redis_url())).await,
    ))
    .await;
    let (_, admin) = login(&a, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&b, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, tina) = login(&b, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    // Warm both processes; the second read of each page costs no statement.
    for app in [&a, &b] {
        for (who, page) in [
            (&sara, "/dashboard/"),
            (&tina, "/dashboard/"),
            (&admin, "/lessons/4/"),
            (&admin, "/dashboard/"),
            (&admin, "/calendar/?start=2026-11-23"),
        ] {
            send(app, who.get(page)).await;
            let again = send(app, who.get(page)).await;
            assert_eq!(again.status, StatusCode::OK, "{page}");
            assert_eq!(again.queries(), 0, "{page} answered from the cache");
        }
        assert_eq!(
            rate_in(&send(app, sara.get("/dashboard/")).await.body),
            "50.0%"
        );
        assert_eq!(
            rate_in(&send(app, tina.get("/dashboard/")).await.body),
            "33.3%"
        );
        assert!(send(app, admin.get("/lessons/4/"))
            .await
            .body
            .contains("3 students, 0 present"));
        // The student list: its rows' figures are cached per student; only the count
        // and the page itself are queried when they are all cached.
        send(app, admin.get("/students/?q=adams")).await;
        let list = send(app, admin.get("/students/?q=adams")).await;
        assert_eq!(list.queries(), 2, "count and page; figures from the cache");
        assert!(list.body.contains("<td class=\"rate\">50.0%</td>"));
    }
    // Sara present in Tina's lesson 4, marked through process a.
    let res = mark(&a, &admin, 4, "4", "PRESENT").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    for (name, app) in [("b", &b), ("a", &a)] {
        assert_eq!(
            rate_in(&send(app, sara.get("/dashboard/")).await.body),
            "66.7%",
            "Sara's figures in process {name}"
        );
        assert_eq!(
            rate_in(&send(app, tina.get("/dashboard/")).await.body),
            "50.0%",
            "Tina's figures in process {name}"
        );
        let lesson = send(app, admin.get("/lessons/4/")).await;
        assert!(
            lesson.body.contains("3 students, 1 present"),
            "lesson 4 in process {name}"
        );
        let cal = send(app, admin.get("/calendar/?start=2026-11-23")).await;
        assert!(cal.body.contains("<a href=\"/lessons/4/\">10:00 Math</a>"));
        let list = send(app, admin.get("/students/?q=adams")).await;
        assert!(
            list.body.contains("<td class=\"rate\">66.7%</td>"),
            "Sara's row in process {name}"
        );
    }
    // What the mark does not touch stays cached: the subjects of the lesson list.
    send(&b, admin.get("/lessons/")).await;
    let lessons = send(&b, admin.get("/lessons/")).await;
    assert_eq!(
        lessons.queries(),
        3,
        "count, page, students; subjects cached"
    );
}

/// Sessions are written through to the database: a new process with an empty cache
/// (a restart, or a flushed Redis: a fresh prefix sees no keys) still knows them, and
/// a logout in one process ends the session in the other at once.
async fn sessions_survive(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let a = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &prefix, Some(redis_url())).await,
    ))
    .await;
    let (_, admin) = login(&a, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let restarted = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &cache_prefix(), Some(redis_url())).await,
    ))
    .await;
    let page = send(&restarted, admin.get("/dashboard/")).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "still logged in after restart + flush"
    );
    assert_eq!(
        page.queries(),
        3,
        "session read from the database, then the dashboard"
    );
    let again = send(&restarted, admin.get("/lessons/4/")).await;
    assert_eq!(
        again.queries(),
        3,
        "the session now comes from the cache: the lesson (2) and its students' avatars (1)"
    );

    let b = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &prefix, Some(redis_url())).await,
    ))
    .await;
    assert_eq!(
        send(&b, admin.get("/dashboard/")).await.status,
        StatusCode::OK
    );
    let out = send(&a, admin.post("/logout", &[("csrf_token", &admin.csrf)])).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = send(&b, admin.get("/dashboard/")).await;
    assert_eq!(
        after.status,
        StatusCode::SEE_OTHER,
        "logged out in the other process too"
    );
    assert!(after
        .header("location")
        .is_some_and(|l| l.starts_with("/login")));
}

/// Redis stopped while the app serves: pages stay 200 with the right figures, writes
/// work and are seen; when Redis is back the app uses it again.
async fn redis_outage(engine: Engine) {
    let t = fixture(engine);
    let mut redis =
        napiatke_cache::testing::RedisServer::start(None).unwrap_or_else(|e| panic!("{e}"));
    let state = state_with(&t, false, &cache_prefix(), Some(redis.url())).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "50.0%"
    );

    redis.stop();
    for page in [
        "/dashboard/",
        "/lessons/",
        "/lessons/4/",
        "/calendar/",
        "/students/",
    ] {
        let got = send(&app, admin.get(page)).await;
        assert_eq!(got.status, StatusCode::OK, "{page} with Redis down");
    }
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "50.0%"
    );
    let res = mark(&app, &admin, 4, "4", "PRESENT").await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "writes go on with Redis down"
    );
    assert_eq!(
        rate_in(&send(&app, sara.get("/dashboard/")).await.body),
        "66.7%"
    );
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        rate_in(&send(&app, tina.get("/dashboard/")).await.body),
        "50.0%"
    );
    let stats = send(&app, admin.get("/admin/cache-stats/")).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert!(
        stats.body.contains("id=\"redis-down\""),
        "the page says Redis is not answering"
    );
    let cache = state.services.cache();
    let failures = cache.stats();
    assert!(
        failures.l2_errors + failures.l2_timeouts > 0,
        "{failures:?}"
    );

    let _redis = napiatke_cache::testing::RedisServer::start(Some(redis.port()))
        .unwrap_or_else(|e| panic!("{e}"));
    let before = cache.stats().l2.hits;
    let mut back = false;
    for _ in 0..100 {
        cache.clear_local();
        let got = send(&app, sara.get("/dashboard/")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(rate_in(&got.body), "66.7%");
        if cache.stats().l2.hits > before {
            back = true;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        back,
        "L2 answers again once Redis is back: {:?}",
        cache.stats()
    );
}

async fn cache_stats_page(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    // Made-up session cookies are looked up but never cached: they cannot grow Redis.
    for _ in 0..3 {
        let bogus = Browser {
            session: Some(format!("{:064x}", rand_u64())),
            ..Browser::default()
        };
        assert_eq!(
            send(&app, bogus.get("/dashboard/")).await.status,
            StatusCode::SEE_OTHER
        );
    }
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // login_as read the dashboard once (a miss); this read is an L1 hit, and so is
    // its session.
    let dash = send(&app, admin.get("/dashboard/")).await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(
        dash.header("server-timing")
            .is_some_and(|t| t.contains("desc=\"L1 2/2 L2 0/0 (hits/lookups)\"")),
        "{:?}",
        dash.header("server-timing")
    );
    let page = send(&app, admin.get("/admin/cache-stats/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"redis-info\"") && page.body.contains("Used memory"));
    assert!(page.body.contains("Connected clients") && page.body.contains("Keyspace hit rate"));
    assert!(
        page.body.contains(
            "<tr><td>dashboard</td><td>1</td><td>1</td><td>50.0%</td>\n      <td>0</td><td>1</td><td>50.0%</td>\n      <td>1</td>"
        ),
        "dashboard: 1 L1 hit, 1 miss, 1 L2 miss, 1 load:\n{}",
        page.body
    );
    let keys = row_after(&page.body, "<td>dashboard</td>");
    assert!(
        keys.trim_end().ends_with("<td>1</td>"),
        "one dashboard key in Redis: {keys}"
    );
    let sessions = row_after(&page.body, "<td>session</td>");
    assert!(
        sessions.trim_end().ends_with("<td>1</td>"),
        "one session key in Redis (the admin's), none for made-up cookies: {sessions}"
    );
    assert!(!page.body.contains("redis-off"));
    // The invalidation listener is up and has never had to reconnect.
    assert!(
        page.body.contains("Invalidation listener subscribed;")
            && page
                .body
                .contains("<span id=\"reconnects\">0</span> reconnects;")
            && page
                .body
                .contains("L1 emptied <span id=\"l1-resets\">0</span> times"),
        "{}",
        page.body
    );

    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        send(&app, tina.get("/admin/cache-stats/")).await.status,
        StatusCode::FORBIDDEN
    );

    let local = test::init_service(napiatke_web::app::app(
        state_with(&t, false, &cache_prefix(), None).await,
    ))
    .await;
    let (_, admin) = login(&local, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&local, admin.get("/admin/cache-stats/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Redis is not configured"));
    assert!(!page.body.contains("redis-info"));
    assert!(page.body.contains("<tr><td>session</td>"));
}
