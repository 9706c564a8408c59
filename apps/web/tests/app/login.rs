//! /login and /logout: rotation, CSRF on forms, sessions that outlive a restart or a
//! Redis flush.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    login_rotates_the_session_and_logout_ends_it => login_flow;
    posts_without_the_csrf_token_are_refused => csrf;
    sessions_survive_a_restart_and_a_redis_flush => sessions_survive;
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
