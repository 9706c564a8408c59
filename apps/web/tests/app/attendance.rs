//! POST /lessons/<id>/attendance: what a mark changes on every page, in one process and across two sharing a Redis.

use actix_web::http::StatusCode;
use actix_web::test::{self};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    marking_attendance_changes_what_pages_show => attendance_changes_pages;
    no_page_is_stale_after_attendance_in_either_process => no_stale_pages;
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
                &[("student_id", "7"), ("status", "ABSENT")],
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
            (&admin, "/lessons/"),
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
        // The student list: which rows the search finds and each row's figures are
        // cached apart; warm, the page costs no statement.
        send(app, admin.get("/students/?q=adams")).await;
        let list = send(app, admin.get("/students/?q=adams")).await;
        assert_eq!(list.queries(), 0, "rows and figures from the cache");
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
        // 10:00 UTC is 11:00 in Warsaw in November.
        assert!(cal.body.contains("<a href=\"/lessons/4/\">11:00 Math</a>"));
        let list = send(app, admin.get("/students/?q=adams")).await;
        assert!(
            list.body.contains("<td class=\"rate\">66.7%</td>"),
            "Sara's row in process {name}"
        );
    }
    // The lesson list: which lessons page 1 holds and the subjects are untouched by
    // the mark, and lesson 4 was loaded again by its own page above, so the list is
    // rendered anew (its version changed) from the cache alone, then served as stored.
    let lessons = send(&b, admin.get("/lessons/")).await;
    assert_eq!(lessons.header("x-cache"), Some("MISS"));
    assert_eq!(
        lessons.queries(),
        0,
        "page ids, lessons and subjects cached"
    );
    assert!(row_after(&lessons.body, ">Math 4</a>").contains("<td class=\"present-count\">1</td>"));
    let again = send(&b, admin.get("/lessons/")).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.body, lessons.body);
}
