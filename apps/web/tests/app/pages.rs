//! The pages' content on the fixture, their htmx fragments, bad input, and the statement budget on the standard demo set.

use actix_web::http::StatusCode;
use actix_web::test::{self};
use napiatke_db::testing::{TestDb, FIXTURE_PASSWORD};
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    pages_show_the_fixture => page_content;
    htmx_gets_fragments_that_vary_on_hx_request => fragments;
    bad_input_gets_a_clear_4xx => bad_input;
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
        lessons
            .body
            .contains("<rect width=\"1\" height=\"1\" fill=\"#112233\"/></svg>Math</span>"),
        "subject colour, as an SVG fill (no inline style)"
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
            assert_eq!(
                p.header("vary"),
                Some("HX-Request, Accept-Encoding"),
                "{path}"
            );
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
        let f = form.clone();
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

/// Every page's statement count, cold, on the fixture equals its count on the
/// standard demo set, and stays within 6. (The pages compared return rows on both sides: a
/// list with no rows skips its prefetch statement, which only ever lowers the count.)
async fn statement_budget(engine: Engine) {
    let small = fixture(engine);
    let big = TestDb::new(engine).unwrap();
    {
        let mut conn = big.db.get().unwrap();
        napiatke_db::seed::run(
            &mut conn,
            &napiatke_db::seed::SeedOptions::new(napiatke_db::seed::Scale::Standard, 42, now()),
            |_| {},
        )
        .unwrap();
    }
    // No cache on either side: what each page costs cold, not what an earlier page
    // happened to leave cached (which differs between the two sets).
    let small_app = test::init_service(napiatke_web::app::app(uncached_state(&small).await)).await;
    let big_app = test::init_service(napiatke_web::app::app(uncached_state(&big).await)).await;
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
    assert_eq!(
        napiatke_telemetry::RENDER_TARGET,
        napiatke_htmx::RENDER_TARGET
    );
    assert_eq!(napiatke_telemetry::CACHE_TARGET, napiatke_cache::OP_TARGET);
    assert_eq!(
        napiatke_telemetry::WORK_TARGET,
        napiatke_services::WORK_TARGET
    );
}

/// TEMPLATES_DIR replaces the built-in templates (development: edit, restart).
#[actix_web::test]
async fn templates_dir_overrides_the_built_in_templates() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let dir = std::env::temp_dir().join(format!("napiatke-templates-{}", rand_u64()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("<h1>Log in to napiatke</h1>", "<h1>Log in (edited)</h1>");
        std::fs::write(dir.join(path.file_name().unwrap()), text).unwrap();
    }
    let t = fixture(Engine::Sqlite);
    let edited = state_tweaked(&t, false, &cache_prefix(), None, |s| {
        s.templates_dir = Some(dir.clone());
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(edited)).await;
    let page = send(&app, test::TestRequest::get().uri("/login")).await;
    let built_in = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let plain = send(&built_in, test::TestRequest::get().uri("/login")).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        page.body.contains("<h1>Log in (edited)</h1>"),
        "{}",
        page.body
    );
    assert!(
        plain.body.contains("<h1>Log in to napiatke</h1>"),
        "{}",
        plain.body
    );
}
