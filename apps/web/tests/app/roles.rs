//! Every route's role table: who gets the page, who 403, who the login page.

use actix_web::http::StatusCode;
use actix_web::test::{self};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    every_route_checks_its_roles => role_table;
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
    let bad = StatusCode::BAD_REQUEST;
    // route: admin, tutor, student, logged out
    let table = [
        ("/dashboard/", [ok, ok, ok, login_page]),
        ("/lessons/", [ok, ok, ok, login_page]),
        ("/lessons/1/", [ok, ok, ok, login_page]),
        ("/calendar/", [ok, ok, ok, login_page]),
        ("/students/", [ok, ok, forbidden, login_page]),
        // Who may see a page comes before what they asked of it.
        ("/students/?page=x", [bad, bad, forbidden, login_page]),
        ("/lessons/?page=1&page=x", [bad, bad, bad, login_page]),
        ("/lessons/?page=x&page=1", [ok, ok, ok, login_page]),
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
                    Some(format!("/login?next={}", napiatke_htmx::percent_encode(route)).as_str())
                );
            }
        }
    }
    // Writes: attendance on Tina's lesson 1.
    let mark = |b: &Browser| {
        b.post(
            "/lessons/1/attendance",
            &[("student_id", "5"), ("status", "LATE")],
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
    let refused = send(&app, student.get("/students/")).await;
    assert!(refused.body.contains("this page is for admins and tutors"));
    let refused = send(&app, tutor.get("/admin/cache-stats/")).await;
    assert!(refused.body.contains("this page is for admins"));
    // htmx without a session is told where to go instead of being redirected.
    let hx = send(
        &app,
        anon.get("/lessons/").insert_header(("HX-Request", "true")),
    )
    .await;
    assert_eq!(hx.status, StatusCode::UNAUTHORIZED);
    assert_eq!(hx.header("hx-redirect"), Some("/login?next=/lessons/"));
}
