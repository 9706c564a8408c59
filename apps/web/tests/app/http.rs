//! HTTP by the book (issue 20): HEAD wherever GET works, over a real socket (the
//! body dropped, the length kept); 405 with `Allow` for a known path and another
//! method, 204 with `Allow` for OPTIONS; a 308 to the slashed address for a GET or
//! HEAD without its trailing slash, never for a POST.

use std::io::{Read, Write};

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use actix_web::HttpServer;
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    head_answers_as_get_without_the_body => head;
    other_methods_get_405_with_allow => methods;
    a_missing_trailing_slash_redirects_gets_only => trailing_slash;
    a_form_body_that_does_not_arrive_gets_408 => slow_form;
    security_headers_on_every_page => security_headers;
}

/// Content-Security-Policy (no inline or eval'd script, never framed), HSTS in
/// production over HTTPS only, Permissions-Policy, Cross-Origin-Opener-Policy; the statement
/// count and timings only to admins in production.
async fn security_headers(engine: Engine) {
    let t = fixture(engine);
    for production in [true, false] {
        let app = test::init_service(napiatke_web::app::app(state(&t, production).await)).await;
        let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
        for page in [
            send(&app, TestRequest::get().uri("/login")).await,
            send(&app, sara.get("/dashboard/")).await,
            send(
                &app,
                sara.get("/lessons/?page=1")
                    .insert_header(("HX-Request", "true")),
            )
            .await,
            send(&app, TestRequest::get().uri("/no-such-page/")).await,
            send(&app, sara.get("/lessons/")).await,
            send(&app, sara.get("/calendar/?start=2026-11-23")).await,
            send(&app, sara.get("/lessons/4/")).await,
        ] {
            let csp = page.header("content-security-policy").unwrap_or_default();
            let directive = |name: &str| {
                csp.split(';')
                    .map(str::trim)
                    .find(|d| d.split_whitespace().next() == Some(name))
                    .unwrap_or_default()
                    .to_owned()
            };
            // Inline only what the policy names by hash: the page's one inline
            // <script> (the boot script), nothing else.
            let hashes = |tag: &str| -> Vec<String> {
                use base64::Engine as _;
                use sha2::Digest as _;
                let open = format!("<{tag}");
                let close = format!("</{tag}>");
                let mut found = Vec::new();
                let mut rest = page.body.as_str();
                while let Some(at) = rest.find(&open) {
                    let tail = &rest[at..];
                    let Some(gt) = tail.find('>') else { break };
                    let Some(end) = tail.find(&close) else { break };
                    if !tail[..gt].contains(" src=") {
                        let body = &tail[gt + 1..end];
                        let digest = sha2::Sha256::digest(body.as_bytes());
                        found.push(format!(
                            "'sha256-{}'",
                            base64::engine::general_purpose::STANDARD.encode(digest)
                        ));
                    }
                    rest = &tail[end..];
                }
                found
            };
            let with_hashes = |name: &str, tag: &str| {
                let found = hashes(tag);
                if page.body.contains("<header") {
                    assert_eq!(
                        found.len(),
                        1,
                        "one inline {tag} in a whole page: {}",
                        page.body
                    );
                }
                let mut want = format!("{name} 'self'");
                for h in &found {
                    want.push(' ');
                    want.push_str(h);
                }
                // A page without the element (the 404 page) still gets the policy
                // that names it: the header is the same for every response.
                let got = directive(name);
                if found.is_empty() {
                    assert!(got.starts_with(&format!("{name} 'self' 'sha256-")), "{csp}");
                } else {
                    assert_eq!(got, want, "{csp}");
                }
            };
            with_hashes("script-src", "script");
            assert_eq!(directive("style-src"), "style-src 'self'", "{csp}");
            assert!(!page.body.contains("<style"), "{}", page.body);
            assert_eq!(
                directive("frame-ancestors"),
                "frame-ancestors 'none'",
                "{csp}"
            );
            assert_eq!(directive("object-src"), "object-src 'none'", "{csp}");
            assert_eq!(directive("base-uri"), "base-uri 'none'", "{csp}");
            assert_eq!(directive("form-action"), "form-action 'self'", "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            // No inline style attributes: the policy has no hashes for those.
            assert!(!page.body.contains(" style="), "{}", page.body);
            assert_eq!(
                page.header("cross-origin-opener-policy"),
                Some("same-origin")
            );
            let permissions = page.header("permissions-policy").unwrap_or_default();
            assert!(permissions.contains("camera=()") && permissions.contains("geolocation=()"));
            assert_eq!(
                page.header("strict-transport-security"),
                None,
                "never over HTTP"
            );
        }
        // Behind the TLS proxy: HSTS in production only.
        let proxied = send(
            &app,
            TestRequest::get()
                .uri("/login")
                .insert_header(("X-Forwarded-Proto", "https")),
        )
        .await;
        assert_eq!(
            proxied.header("strict-transport-security"),
            production.then_some("max-age=63072000; includeSubDomains"),
            "HSTS over HTTPS in production only"
        );
        // RFC 7239's header says the same; a proxy that says http gets none.
        for (forwarded, hsts) in [("for=1.2.3.4;proto=https", true), ("proto=http", false)] {
            let page = send(
                &app,
                TestRequest::get()
                    .uri("/login")
                    .insert_header(("Forwarded", forwarded)),
            )
            .await;
            assert_eq!(
                page.header("strict-transport-security"),
                (production && hsts).then_some("max-age=63072000; includeSubDomains"),
                "Forwarded: {forwarded}"
            );
        }
    }
    // A student in production sees no statement counts or timings; an admin does.
    let quiet = state_tweaked(&t, true, &cache_prefix(), Some(redis_url()), |s| {
        s.expose_query_count = false;
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(quiet)).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&app, sara.get("/dashboard/")).await;
    for name in ["x-query-count", "server-timing", "x-response-time"] {
        assert_eq!(page.header(name), None, "{name} to a student");
    }
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page = send(&app, admin.get("/dashboard/")).await;
    assert!(page.header("x-query-count").is_some() && page.header("server-timing").is_some());
}

/// A login form whose body stops half-way: 408 with a message once
/// FORM_BODY_TIMEOUT (here 300 ms) has passed, not a connection held open.
async fn slow_form(engine: Engine) {
    let t = fixture(engine);
    let state = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.form_body_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let (port, handle) = serve(state);
    // 200 bytes announced, 20 sent, then nothing: `raw` reads until the server closes.
    let answer = raw(
        port,
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://127.0.0.1\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n\
         email=a%40b.c&passwo"
            .to_owned(),
    )
    .await;
    handle.stop(false).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("the form did not arrive within 0.3 s"),
        "{answer}"
    );
}

/// The app over a real socket on a free loopback port, one worker, on this test's
/// runtime: its port and the handle that stops it.
fn serve(
    state: actix_web::web::Data<napiatke_web::AppState>,
) -> (u16, actix_web::dev::ServerHandle) {
    let server = HttpServer::new(move || napiatke_web::app::app(state.clone()))
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (port, handle)
}

/// Sends `request` (a whole HTTP/1.1 request) to `port` and reads until the server
/// closes: the raw answer, head and whatever body came.
async fn raw(port: u16, request: String) -> String {
    // On the blocking pool: the server runs on this thread's runtime.
    actix_web::rt::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    })
    .await
    .unwrap()
}

fn content_length(answer: &str) -> Option<usize> {
    answer.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

async fn head(engine: Engine) {
    let t = fixture(engine);
    let state = state(&t, false).await;
    // Log in in process; the socket server shares the state, so the session too.
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let session = admin.session.clone().unwrap();
    let (port, handle) = serve(state);
    let css = statics().url("css/app.css").unwrap();
    for path in [
        "/healthz",
        "/login",
        "/dashboard/",
        "/lessons/",
        "/lessons/1/",
        "/calendar/?start=2026-11-23",
        "/students/?q=kow",
        "/rooms/",
        "/lessons/export.csv",
        css.as_str(),
    ] {
        let ask = |method: &str| {
            format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: napiatke_session={session}\r\nConnection: close\r\n\r\n"
            )
        };
        let get = raw(port, ask("GET")).await;
        let head = raw(port, ask("HEAD")).await;
        let status = |a: &str| a.lines().next().unwrap_or_default().to_owned();
        assert_eq!(status(&head), status(&get), "{path}");
        assert!(status(&get).contains(" 200 "), "{path}: {get}");
        let (head_part, body) = head.split_once("\r\n\r\n").unwrap();
        assert_eq!(body, "", "{path}: HEAD sends no body");
        let get_len = content_length(&get);
        if get_len.is_some() {
            assert_eq!(content_length(head_part), get_len, "{path}: {head_part}");
        }
        for name in ["content-type:", "vary:", "cache-control:"] {
            let line = |a: &str| {
                a.lines()
                    .find(|l| l.to_ascii_lowercase().starts_with(name))
                    .map(str::to_ascii_lowercase)
            };
            assert_eq!(line(head_part), line(&get), "{path}: {name}");
        }
    }
    handle.stop(true).await;
}

async fn methods(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let with_session = |r: TestRequest| {
        r.cookie(actix_web::cookie::Cookie::new(
            "napiatke_session",
            admin.session.clone().unwrap(),
        ))
        .insert_header(("sec-fetch-site", "same-origin"))
    };
    for (method, path, allow) in [
        ("PUT", "/dashboard/", "GET, HEAD, OPTIONS"),
        ("DELETE", "/lessons/1/", "GET, HEAD, OPTIONS"),
        ("POST", "/students/", "GET, HEAD, OPTIONS"),
        ("GET", "/lessons/1/attendance", "POST, OPTIONS"),
        ("PATCH", "/login", "GET, HEAD, POST, OPTIONS"),
    ] {
        let m = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
        let page = send(
            &app,
            with_session(TestRequest::default().method(m).uri(path)),
        )
        .await;
        assert_eq!(
            page.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(page.header("allow"), Some(allow), "{method} {path}");
        assert!(
            page.body
                .contains(&format!("{method} is not allowed at {path}")),
            "{}",
            page.body
        );
    }
    let options = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .uri("/dashboard/"),
    )
    .await;
    assert_eq!(options.status, StatusCode::NO_CONTENT);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(options.body, "");
    // Unknown paths stay 404 whatever the method.
    let put = send(
        &app,
        with_session(TestRequest::put().uri("/no-such-thing/")),
    )
    .await;
    assert_eq!(put.status, StatusCode::NOT_FOUND);
    assert_eq!(put.header("allow"), None);
}

async fn trailing_slash(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for (from, to) in [
        ("/dashboard", "/dashboard/"),
        (
            "/lessons?status=scheduled&page=1",
            "/lessons/?status=scheduled&page=1",
        ),
        ("/lessons/1", "/lessons/1/"),
        ("/calendar?start=2026-11-23", "/calendar/?start=2026-11-23"),
    ] {
        for method in [actix_web::http::Method::GET, actix_web::http::Method::HEAD] {
            let page = send(&app, admin.get(from).method(method.clone())).await;
            assert_eq!(
                page.status,
                StatusCode::PERMANENT_REDIRECT,
                "{method} {from}"
            );
            assert_eq!(page.header("location"), Some(to), "{method} {from}");
        }
    }
    // Followed, it is the page.
    let page = send(&app, admin.get("/dashboard/")).await;
    assert_eq!(page.status, StatusCode::OK);
    // A POST would lose its body in a redirect: 404 saying where the route is.
    let post = send(&app, admin.post("/dashboard", &[("a", "b")])).await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
    assert!(
        post.body.contains("did you mean /dashboard/"),
        "{}",
        post.body
    );
    // Not for what has no slashed route.
    for path in ["/nothing", "/login/", "/metrics/"] {
        let page = send(&app, admin.get(path)).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[actix_web::test]
async fn limits_are_answered_with_their_own_codes() {
    let t = fixture(Engine::Sqlite);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // An address over 8 KB: 414, before any work, with the request id.
    let long = format!(
        "/students/?q={}",
        "a".repeat(napiatke_web::middleware::MAX_URI_BYTES)
    );
    let page = send(&app, admin.get(&long)).await;
    assert_eq!(page.status, StatusCode::URI_TOO_LONG);
    assert!(
        page.body.contains("the most this server takes is 8192"),
        "{}",
        page.body
    );
    assert!(page.header("x-request-id").is_some());
    // Just under it is served.
    let fits = format!("/students/?q={}", "a".repeat(100));
    assert_eq!(send(&app, admin.get(&fits)).await.status, StatusCode::OK);
    // Headers over 16 KB: 431.
    let page = send(
        &app,
        admin.get("/dashboard/").insert_header((
            "x-padding",
            "p".repeat(napiatke_web::middleware::MAX_HEADER_BYTES),
        )),
    )
    .await;
    assert_eq!(page.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(page.body.contains("headers are"), "{}", page.body);
    // A form over its 16 KB: 413 naming the limit, nothing saved.
    let big = "x".repeat(20 * 1024);
    let page = send(
        &app,
        admin.post(
            "/lessons/1/attendance",
            &[("student_id", "1"), ("status", big.as_str())],
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        page.body.contains("the most this server takes is 16384"),
        "{}",
        page.body
    );
}
