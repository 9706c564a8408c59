//! The list pages and their htmx rows: cached per scope and data version, compressed
//! by negotiation, revalidated by ETag, invalidated exactly by an attendance mark,
//! never shared across viewers who see different rows.

use std::io::Read as _;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

use crate::common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    htmx_rows_are_cached_compressed_and_revalidated => rows_cached_compressed;
    a_mark_re_renders_only_the_rows_that_show_its_lesson => mark_is_exact;
    viewers_share_rows_within_a_scope_and_never_across => scopes_never_cross;
    every_html_page_is_negotiated => pages_negotiated;
    htmx_errors_show_in_the_message_area => htmx_errors;
    the_lesson_list_downloads_as_csv => csv_export;
    a_long_week_streams_day_by_day_then_comes_from_the_cache => calendar_streamed;
}

/// A response with its body decoded as its Content-Encoding says.
struct Raw {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    wire: usize,
    text: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

async fn fetch<S, B>(app: &S, req: TestRequest) -> Raw
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let res = app.call(req.to_request()).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = test::read_body(res).await;
    let mut text = String::new();
    match headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
    {
        Some("br") => {
            brotli::Decompressor::new(&bytes[..], 4096)
                .read_to_string(&mut text)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .unwrap();
        }
        None => text = String::from_utf8(bytes.to_vec()).unwrap(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    Raw {
        status,
        headers,
        wire: bytes.len(),
        text,
    }
}

fn rows(who: &Browser, path: &str, accept: Option<&str>) -> TestRequest {
    let mut r = who
        .get(path)
        .insert_header(("HX-Request", "true"))
        .insert_header(("HX-Target", "rows"));
    if let Some(a) = accept {
        r = r.insert_header(("Accept-Encoding", a));
    }
    r
}

async fn rows_cached_compressed(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let first = fetch(&app, rows(&admin, "/lessons/", Some("gzip, deflate, br"))).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert!(
        first.wire < first.text.len() / 2,
        "{} of {}",
        first.wire,
        first.text.len()
    );
    assert!(first.text.contains("Math 4") && !first.text.contains("<html"));
    assert_eq!(first.header("cache-control"), Some("private, no-cache"));
    let vary = first.header("vary").unwrap_or_default();
    assert!(
        vary.contains("HX-Request") && vary.contains("Accept-Encoding"),
        "{vary}"
    );
    assert!(
        first
            .header("server-timing")
            .unwrap_or_default()
            .contains("html;desc=MISS"),
        "{:?}",
        first.header("server-timing")
    );
    let etag = first.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with("-br\""), "{etag}");

    let again = fetch(&app, rows(&admin, "/lessons/", Some("br"))).await;
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    assert_eq!(again.text, first.text);
    assert_eq!(again.queries(), 0, "a warm list page runs no statement");

    // The validator: 304 with no body, without rendering.
    let revalidated = fetch(
        &app,
        rows(&admin, "/lessons/", Some("br")).insert_header(("If-None-Match", etag.as_str())),
    )
    .await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(revalidated.wire, 0);
    assert_eq!(revalidated.header("etag"), Some(etag.as_str()));

    // q-values decide; each coding is its own representation with its own tag.
    let gz = fetch(&app, rows(&admin, "/lessons/", Some("br;q=0.5, gzip"))).await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.text, first.text);
    assert_ne!(gz.header("etag"), Some(etag.as_str()));
    let stale = fetch(
        &app,
        rows(&admin, "/lessons/", Some("gzip")).insert_header(("If-None-Match", etag.as_str())),
    )
    .await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "the br tag does not validate gzip"
    );
    let plain = fetch(&app, rows(&admin, "/lessons/", None)).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.text, first.text);
    let refused = fetch(&app, rows(&admin, "/lessons/", Some("br;q=0, gzip;q=0"))).await;
    assert_eq!(refused.header("content-encoding"), None);

    // A tiny body goes as it is: compressing it would cost more than it saves.
    let none = fetch(&app, rows(&admin, "/students/?q=nobody-at-all", Some("br"))).await;
    assert!(none.text.contains("No students match."));
    assert!(
        none.text.len() < napiatke_htmx::MIN_COMPRESS_BYTES,
        "{}",
        none.text.len()
    );
    assert_eq!(none.header("content-encoding"), None);

    // The whole page names its user: kept per user (any of their sessions), and the
    // browser revalidates it like the rows.
    let br = ("Accept-Encoding", "br");
    let page = fetch(&app, admin.get("/lessons/").insert_header(br)).await;
    assert_eq!(page.header("x-cache"), Some("MISS"));
    assert_eq!(page.header("cache-control"), Some("private, no-cache"));
    assert!(page.text.contains("<html") && page.text.contains("Ada Admin"));
    let (_, again) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let page2 = fetch(&app, again.get("/lessons/").insert_header(br)).await;
    assert_eq!(
        page2.header("x-cache"),
        Some("HIT"),
        "the same user's other session"
    );
    let tag = page2.header("etag").unwrap().to_owned();
    let not_modified = fetch(
        &app,
        again
            .get("/lessons/")
            .insert_header(br)
            .insert_header(("If-None-Match", tag.as_str())),
    )
    .await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let theirs = fetch(&app, tina.get("/lessons/")).await;
    assert_eq!(
        theirs.header("x-cache"),
        Some("MISS"),
        "another user's page is their own"
    );
    assert!(theirs.text.contains("Tina Tutor") && !theirs.text.contains("Ada Admin"));
}

impl Raw {
    fn queries(&self) -> u64 {
        self.header("x-query-count")
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

async fn mark_is_exact(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let scheduled = "/lessons/?status=SCHEDULED";
    let completed = "/lessons/?status=COMPLETED";
    for path in [scheduled, completed, "/students/?q=dunn"] {
        assert_eq!(
            fetch(&app, rows(&admin, path, None))
                .await
                .header("x-cache"),
            Some("MISS")
        );
        assert_eq!(
            fetch(&app, rows(&admin, path, None))
                .await
                .header("x-cache"),
            Some("HIT")
        );
    }
    let before = fetch(&app, rows(&admin, scheduled, None)).await;
    assert!(row_after(&before.text, "Math 4").contains("<td class=\"present-count\">0</td>"));
    // Dan present in lesson 4 (scheduled): its rows and Dan's figures change...
    assert_eq!(
        mark(&app, &admin, 4, "7", "present").await.status,
        StatusCode::SEE_OTHER
    );
    let after = fetch(&app, rows(&admin, scheduled, None)).await;
    assert_eq!(after.header("x-cache"), Some("MISS"));
    assert!(
        row_after(&after.text, "Math 4").contains("<td class=\"present-count\">1</td>"),
        "{}",
        after.text
    );
    assert_ne!(after.header("etag"), before.header("etag"));
    let dan = fetch(&app, rows(&admin, "/students/?q=dunn", None)).await;
    assert_eq!(dan.header("x-cache"), Some("MISS"));
    assert!(
        dan.text.contains("<td class=\"rate\">100.0%</td>"),
        "{}",
        dan.text
    );
    // ...and nothing else: the completed lessons' rows are still the cached ones.
    let other = fetch(&app, rows(&admin, completed, None)).await;
    assert_eq!(other.header("x-cache"), Some("HIT"));
    assert_eq!(other.queries(), 0);
    // An old validator no longer matches; the new one does.
    let old = fetch(
        &app,
        rows(&admin, scheduled, None)
            .insert_header(("If-None-Match", before.header("etag").unwrap())),
    )
    .await;
    assert_eq!(old.status, StatusCode::OK);
}

async fn scopes_never_cross(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, bob) = login(&app, "bob@napiatke.local", FIXTURE_PASSWORD).await;
    let first = fetch(&app, rows(&admin, "/lessons/", None)).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    // Tutors read every lesson, as admins do: the same rows, rendered once.
    let tutor = fetch(&app, rows(&tina, "/lessons/", None)).await;
    assert_eq!(tutor.header("x-cache"), Some("HIT"));
    assert_eq!(tutor.text, first.text);
    for round in 0..3 {
        for (who, mine, not_mine) in [
            (
                &sara,
                &["Math 4", "Physics 2", "Math 1", "Math 6"][..],
                &["Math 3", "Physics 5", "Math 7"][..],
            ),
            (
                &bob,
                &["Math 4", "Math 3", "Math 1"][..],
                &["Physics 2", "Physics 5", "Math 6", "Math 7"][..],
            ),
        ] {
            let got = fetch(&app, rows(who, "/lessons/", None)).await;
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(
                got.header("x-cache"),
                Some(if round == 0 { "MISS" } else { "HIT" })
            );
            for title in mine {
                assert!(
                    got.text.contains(&format!(">{title}</a>")),
                    "round {round}: {title}"
                );
            }
            for title in not_mine {
                assert!(
                    !got.text.contains(&format!(">{title}</a>")),
                    "round {round}: {title} leaked"
                );
            }
        }
        let all = fetch(&app, rows(&admin, "/lessons/", None)).await;
        assert!(all.text.contains(">Math 7</a>") && all.text.contains(">Physics 5</a>"));
        // The student list is staff's: cached for admins, still 403 for a student.
        assert_eq!(
            fetch(&app, rows(&admin, "/students/", None)).await.status,
            StatusCode::OK
        );
        assert_eq!(
            fetch(&app, rows(&sara, "/students/", None)).await.status,
            StatusCode::FORBIDDEN
        );
    }
    // An HX-Target we do not render for gets the same block, without an entry of its own.
    let odd = fetch(
        &app,
        admin
            .get("/lessons/")
            .insert_header(("HX-Request", "true"))
            .insert_header(("HX-Target", "elsewhere")),
    )
    .await;
    assert_eq!(odd.text, first.text);
    // All at once: 4 users of 3 roles, 60 requests in flight together on the same
    // URLs (full pages and rows, after a mark made the cached rows stale), and still
    // each gets only what their scope shows.
    assert_eq!(
        mark(&app, &admin, 4, "5", "PRESENT").await.status,
        StatusCode::SEE_OTHER
    );
    let who = [
        (&admin, "admin"),
        (&tina, "tutor"),
        (&sara, "sara"),
        (&bob, "bob"),
    ];
    let requests = (0..60).map(|i| {
        let (b, name) = who[i % who.len()];
        let req = if i % 2 == 0 {
            rows(b, "/lessons/", None)
        } else {
            b.get("/lessons/")
        };
        let app = &app;
        async move { (name, fetch(app, req).await) }
    });
    for (name, got) in futures_util::future::join_all(requests).await {
        assert_eq!(got.status, StatusCode::OK, "{name}");
        let shows = |title: &str| got.text.contains(&format!(">{title}</a>"));
        match name {
            "sara" => {
                assert!(shows("Math 4") && shows("Math 6") && !shows("Math 3") && !shows("Math 7"))
            }
            "bob" => assert!(
                shows("Math 3") && shows("Math 4") && !shows("Math 6") && !shows("Physics 2")
            ),
            _ => assert!(shows("Math 7") && shows("Physics 5") && shows("Math 6")),
        }
        assert!(
            row_after(&got.text, ">Math 4</a>").contains("<td class=\"present-count\">1</td>"),
            "{name}"
        );
    }
}

async fn pages_negotiated(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for path in [
        "/dashboard/",
        "/calendar/",
        "/lessons/4/",
        "/students/",
        "/rooms/",
        "/profile/",
        "/admin/cache-stats/",
    ] {
        let br = fetch(
            &app,
            admin
                .get(path)
                .insert_header(("Accept-Encoding", "gzip, br")),
        )
        .await;
        assert_eq!(br.status, StatusCode::OK, "{path}");
        assert_eq!(br.header("content-encoding"), Some("br"), "{path}");
        assert!(br.text.contains("</html>"), "{path}");
        assert!(
            br.header("vary")
                .unwrap_or_default()
                .contains("Accept-Encoding"),
            "{path}"
        );
        let plain = fetch(&app, admin.get(path)).await;
        assert_eq!(plain.header("content-encoding"), None, "{path}");
        assert!(
            br.wire * 4 < plain.wire * 3,
            "{path}: {} vs {}",
            plain.wire,
            br.wire
        );
    }
}

async fn htmx_errors(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let in_place = |r: &Raw, status: StatusCode, message: &str| {
        assert_eq!(r.status, status, "{}", r.text);
        assert_eq!(r.header("hx-retarget"), Some("#messages"));
        assert_eq!(r.header("hx-reswap"), Some("innerHTML"));
        assert_eq!(
            r.text,
            format!("<p class=\"error\" role=\"alert\">{message}</p>")
        );
    };
    in_place(
        &fetch(&app, rows(&admin, "/lessons/?page=999", None)).await,
        StatusCode::NOT_FOUND,
        "page 999 does not exist; the last page is 1",
    );
    in_place(
        &fetch(&app, rows(&admin, "/lessons/?subject=99", None)).await,
        StatusCode::BAD_REQUEST,
        "there is no subject with id 99",
    );
    in_place(
        &fetch(&app, rows(&sara, "/students/?q=a", None)).await,
        StatusCode::FORBIDDEN,
        "this page is for admins and tutors",
    );
    let long = format!("/students/?q={}", "a".repeat(101));
    in_place(
        &fetch(&app, rows(&admin, &long, None)).await,
        StatusCode::BAD_REQUEST,
        "the search may be at most 100 characters",
    );
    // Refused before any handler (the origin check): still in place.
    let cross = fetch(
        &app,
        admin
            .post_bare(
                "/lessons/4/attendance",
                &[("student_id", "7"), ("status", "PRESENT")],
            )
            .insert_header(("HX-Request", "true"))
            .insert_header(("Sec-Fetch-Site", "cross-site")),
    )
    .await;
    in_place(
        &cross,
        StatusCode::FORBIDDEN,
        "this request came from another site; send the form from napiatke&#x27;s own pages",
    );
    // Without htmx, and for htmx's history restore, the whole error page as before.
    for req in [
        admin.get("/lessons/?page=999"),
        admin
            .get("/lessons/?page=999")
            .insert_header(("HX-Request", "true"))
            .insert_header(("HX-History-Restore-Request", "true")),
    ] {
        let page = fetch(&app, req).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(
            page.text.starts_with("<!doctype html>")
                && page.text.contains("page 999 does not exist")
        );
        assert_eq!(page.header("hx-retarget"), None);
    }
    // Logged out: htmx is sent to the login page, not shown an error.
    let anon = fetch(&app, rows(&Browser::default(), "/lessons/", None)).await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anon.header("hx-redirect"), Some("/login?next=/lessons/"));
    assert_eq!(anon.header("hx-retarget"), None);
    // The pages have the area the messages go to, and tell htmx to swap errors.
    let page = fetch(&app, admin.get("/lessons/")).await;
    assert!(page
        .text
        .contains("<div id=\"messages\" aria-live=\"polite\"></div>"));
    assert!(page
        .text
        .contains(r#"{"code":"[45]..","swap":true,"error":true}"#));
}

async fn csv_export(engine: Engine) {
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let csv = fetch(&app, admin.get("/lessons/export.csv")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"lessons.csv\"")
    );
    let lines: Vec<&str> = csv.text.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "id,title,start_utc,end_utc,status,tutor,subject,room,students,present"
    );
    assert_eq!(
        lines.len(),
        9,
        "header, 7 lessons, the final line break: {lines:?}"
    );
    assert_eq!(
        lines[6],
        "1,Math 1,2026-11-20 10:00,2026-11-20 11:00,COMPLETED,Tina Tutor,Math,Room A,2,1"
    );
    // The list's filters and rights.
    let completed = fetch(&app, admin.get("/lessons/export.csv?status=COMPLETED")).await;
    assert_eq!(completed.text.lines().count(), 3);
    let hers = fetch(&app, sara.get("/lessons/export.csv")).await;
    let ids: Vec<&str> = hers
        .text
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    assert_eq!(ids, ["4", "2", "1", "6"]);
    let bad = fetch(&app, admin.get("/lessons/export.csv?subject=99")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let anon = fetch(&app, Browser::default().get("/lessons/export.csv")).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
    // The list offers the download with its filters.
    let list = fetch(&app, rows(&admin, "/lessons/?status=COMPLETED", None)).await;
    assert!(
        list.text
            .contains("href=\"&#x2F;lessons&#x2F;export.csv?status=COMPLETED\""),
        "{}",
        list.text
    );
}

async fn calendar_streamed(engine: Engine) {
    let t = fixture(engine);
    let whole = test::init_service(napiatke_web::app::app(
        state_tweaked(&t, false, &cache_prefix(), None, |_| {}).await,
    ))
    .await;
    let (_, b) = login(&whole, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for (hx, coding) in [
        (false, "br"),
        (false, "gzip"),
        (true, "br"),
        (false, "identity"),
    ] {
        // Every week streams on a miss here (a cache of its own each time); the
        // reference renders it whole.
        let prefix = format!("{}-{coding}-{hx}", cache_prefix());
        let streamed = test::init_service(napiatke_web::app::app(
            state_tweaked(&t, false, &prefix, None, |s| s.calendar_stream_from = 1).await,
        ))
        .await;
        let (_, a) = login(&streamed, "admin@napiatke.local", FIXTURE_PASSWORD).await;
        let get = |who: &Browser| {
            let mut r = who
                .get("/calendar/?start=2026-11-23")
                .insert_header(("accept-encoding", coding));
            if hx {
                r = r
                    .insert_header(("hx-request", "true"))
                    .insert_header(("hx-target", "week"));
            }
            r
        };
        let first = fetch(&streamed, get(&a)).await;
        assert_eq!(first.status, StatusCode::OK);
        assert_eq!(first.header("x-cache"), Some("MISS"));
        assert_eq!(first.header("etag"), None, "not known before the last day");
        assert_eq!(
            first.header("content-encoding"),
            (coding != "identity").then_some(coding)
        );
        let reference = fetch(&whole, get(&b)).await;
        assert_eq!(
            first.text, reference.text,
            "hx={hx} {coding}: the same page either way"
        );
        assert!(first.text.contains("Physics"), "{}", first.text);
        assert_eq!(first.text.contains("<html"), !hx);
        // Stored once the last day went out: the next request is a hit with a
        // validator, as for any cached page.
        let mut second = fetch(&streamed, get(&a)).await;
        for _ in 0..50 {
            if second.header("x-cache") == Some("HIT") {
                break;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
            second = fetch(&streamed, get(&a)).await;
        }
        assert_eq!(second.header("x-cache"), Some("HIT"));
        assert!(second.header("etag").is_some());
        assert_eq!(second.text, reference.text);
    }
}
