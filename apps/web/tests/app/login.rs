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
    cross_site_posts_are_refused_from_every_angle => csrf;
    sessions_survive_a_restart_and_a_redis_flush => sessions_survive;
    next_never_leaves_the_site_nor_fails => next_is_local;
    failed_logins_back_off_per_account_and_address => throttled;
}

/// Wrong passwords: after the account's allowance, 429 with Retry-After and the
/// form saying how long, even for the right password, until the wait is over; other
/// accounts are unaffected, unless the same address keeps failing.
async fn throttled(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let form_page = send(&app, TestRequest::get().uri("/login")).await;
    let csrf = form_page
        .cookie("napiatke_csrf")
        .map(|c| cookie_value(&c))
        .unwrap();
    let token = form_token(&form_page.body);
    let attempt = |email: &'static str, password: &'static str, from: &'static str| {
        Browser::default()
            .post(
                "/login",
                &[
                    ("email", email),
                    ("password", password),
                    ("csrf_token", token.as_str()),
                ],
            )
            .cookie(actix_web::cookie::Cookie::new(
                "napiatke_csrf",
                csrf.clone(),
            ))
            .peer_addr(from.parse().unwrap())
    };
    for _ in 0..5 {
        let r = send(
            &app,
            attempt("admin@napiatke.local", "wrong", "10.1.1.1:4000"),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let right = send(
        &app,
        attempt("admin@napiatke.local", FIXTURE_PASSWORD, "10.1.1.2:4000"),
    )
    .await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );
    assert_eq!(right.header("retry-after"), Some("1"));
    assert!(
        right
            .body
            .contains("Too many failed logins. Try again in 1 second."),
        "{}",
        right.body
    );
    assert!(right.cookie("napiatke_session").is_none());
    // Another account is not held up.
    let other = send(
        &app,
        attempt("tina@napiatke.local", FIXTURE_PASSWORD, "10.1.1.2:4000"),
    )
    .await;
    assert_eq!(other.status, StatusCode::SEE_OTHER);
    // The wait over, the right password works, and the account starts afresh.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    let later = send(
        &app,
        attempt("admin@napiatke.local", FIXTURE_PASSWORD, "10.1.1.2:4000"),
    )
    .await;
    assert_eq!(later.status, StatusCode::SEE_OTHER);
    // One address failing across accounts backs off too.
    for n in 0..20 {
        let email: &'static str = Box::leak(format!("u{n}@napiatke.local").into_boxed_str());
        let r = send(&app, attempt(email, "wrong", "10.9.9.9:5000")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let from_there = send(
        &app,
        attempt("sara@napiatke.local", FIXTURE_PASSWORD, "10.9.9.9:5001"),
    )
    .await;
    assert_eq!(from_there.status, StatusCode::TOO_MANY_REQUESTS);
    let elsewhere = send(
        &app,
        attempt("sara@napiatke.local", FIXTURE_PASSWORD, "10.9.9.8:5001"),
    )
    .await;
    assert_eq!(elsewhere.status, StatusCode::SEE_OTHER);
}

/// `next` as an attacker writes it: every answer is a 303 on this site, never a 500.
async fn next_is_local(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let form_page = send(&app, TestRequest::get().uri("/login")).await;
    let csrf = form_page
        .cookie("napiatke_csrf")
        .map(|c| cookie_value(&c))
        .unwrap();
    let token = form_token(&form_page.body);
    for (next, to) in [
        ("/\t/evil.example", "/dashboard/"),
        ("/\n/evil.example", "/dashboard/"),
        ("/\u{7f}", "/dashboard/"),
        ("//evil.example", "/dashboard/"),
        ("/\\evil.example", "/dashboard/"),
        ("https://evil.example/", "/dashboard/"),
        ("/students/?q=Król", "/students/?q=Kr%C3%B3l"),
    ] {
        let req = Browser::default()
            .post(
                "/login",
                &[
                    ("email", "admin@napiatke.local"),
                    ("password", FIXTURE_PASSWORD),
                    ("csrf_token", &token),
                    ("next", next),
                ],
            )
            .cookie(actix_web::cookie::Cookie::new(
                "napiatke_csrf",
                csrf.clone(),
            ));
        let res = send(&app, req).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{next:?}: {}", res.body);
        assert_eq!(res.header("location"), Some(to), "{next:?}");
    }
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

    let out = send(&app, second.post("/logout", &[])).await;
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
    // No page carries a session token any more: nothing in a body is a secret.
    let page = send(&app, admin.get("/lessons/1/")).await;
    assert!(!page.body.contains("csrf"), "no token in the page");
    let mark_form = [("student_id", "4"), ("status", "ABSENT")];
    // Every cross-site angle, on each unsafe route: refused with 403 before the
    // handler, changing nothing.
    let angles: [(&str, &[(&str, &str)]); 5] = [
        ("cross-site", &[("sec-fetch-site", "cross-site")]),
        (
            "same-site (a sibling subdomain)",
            &[("sec-fetch-site", "same-site")],
        ),
        (
            "a foreign Origin, no Fetch Metadata",
            &[("origin", "https://evil.example")],
        ),
        (
            "a null Origin (sandboxed frame, data: URL)",
            &[("origin", "null")],
        ),
        (
            "cross-site with our own Origin claimed",
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "http://localhost:8080"),
            ],
        ),
    ];
    for (angle, headers) in angles {
        for (path, form) in [
            ("/lessons/1/attendance", &mark_form[..]),
            ("/logout", &[][..]),
        ] {
            let mut req = admin.post_bare(path, form);
            for h in headers {
                req = req.insert_header(*h);
            }
            let res = send(&app, req).await;
            assert_eq!(res.status, StatusCode::FORBIDDEN, "{path}: {angle}");
            assert!(
                res.body.contains("came from another site"),
                "{path}: {angle}"
            );
        }
        let mut login_req = TestRequest::post().uri("/login").set_form(
            [
                ("email", "admin@napiatke.local"),
                ("password", FIXTURE_PASSWORD),
            ]
            .into_iter()
            .collect::<HashMap<_, _>>(),
        );
        for h in headers {
            login_req = login_req.insert_header(*h);
        }
        let res = send(&app, login_req).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "login: {angle}");
        assert!(res.cookie("napiatke_session").is_none());
    }
    let still = send(&app, admin.get("/lessons/1/")).await;
    assert!(
        still.body.contains("<td class=\"mark\">present</td>"),
        "a refused POST changes nothing"
    );
    assert_eq!(
        send(&app, admin.get("/dashboard/")).await.status,
        StatusCode::OK,
        "still logged in"
    );
    // From our own pages: Fetch Metadata same-origin, a typed address (none), an
    // older browser's matching Origin, and a client that is no browser at all.
    for headers in [
        &[("sec-fetch-site", "same-origin")][..],
        &[("sec-fetch-site", "none")][..],
        &[("origin", "http://localhost:8080")][..],
        &[][..],
    ] {
        let mut req = admin.post_bare("/lessons/1/attendance", &mark_form);
        for h in headers {
            req = req.insert_header(*h);
        }
        assert_eq!(
            send(&app, req).await.status,
            StatusCode::SEE_OTHER,
            "{headers:?}"
        );
    }
    // Safe methods are never refused, whatever they say.
    let get = send(
        &app,
        admin
            .get("/lessons/1/")
            .insert_header(("sec-fetch-site", "cross-site")),
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    // Login keeps its double-submit cookie too (it has no session to tie a check to).
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
        4,
        "session read from the database, then the dashboard (figures, trend, next lessons)"
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
    let out = send(&a, admin.post("/logout", &[])).await;
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
