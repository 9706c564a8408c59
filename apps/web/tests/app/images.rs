//! Image uploads over HTTP, on SQLite and PostgreSQL with Redis: room photos and
//! avatars from the form to /media/, the status an upload polls, what pages show,
//! who may upload, every kind of bad input, a full queue, and reprocessing.

use std::time::Duration;

use crate::common::*;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;

const BOUNDARY: &str = "----napiatke-test-boundary";

/// A PNG of `w`×`h` with a gradient (so encoders have something to do).
pub(crate) fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            (x * 255 / w.max(1)) as u8,
            (y * 255 / h.max(1)) as u8,
            120,
            255,
        ])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

pub(crate) fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 60])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    out
}

/// Where an upload says it comes from (Fetch Metadata and Origin).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A browser on napiatke's own page: `Sec-Fetch-Site: same-origin`.
    Field,
    /// An older browser on napiatke's own page: only `Origin`, naming this host.
    Header,
    /// Another site's page: `Sec-Fetch-Site: cross-site`.
    Missing,
    /// An older browser on another site: only a foreign `Origin`.
    FieldAfter,
}

/// A multipart POST of `bytes` as field `field`.
fn upload_request(
    who: &Browser,
    path: &str,
    field: &str,
    bytes: &[u8],
    token: Token,
    htmx: bool,
) -> TestRequest {
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n");
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let mut r = TestRequest::post()
        .uri(path)
        .insert_header((
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        ))
        .set_payload(body);
    if let Some(s) = &who.session {
        r = r.cookie(actix_web::cookie::Cookie::new(
            "napiatke_session",
            s.clone(),
        ));
    }
    r = match token {
        Token::Field => r.insert_header(("sec-fetch-site", "same-origin")),
        Token::Header => r.insert_header(("origin", "http://localhost:8080")),
        Token::Missing => r.insert_header(("sec-fetch-site", "cross-site")),
        Token::FieldAfter => r.insert_header(("origin", "https://evil.example")),
    };
    if htmx {
        r = r.insert_header(("hx-request", "true"));
    }
    r
}

pub(crate) async fn upload<S, B>(
    app: &S,
    who: &Browser,
    path: &str,
    bytes: &[u8],
    htmx: bool,
) -> Page
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    send(
        app,
        upload_request(who, path, "image", bytes, Token::Field, htmx),
    )
    .await
}

/// Every `/media/...` URL in `body`, in order, without duplicates.
pub(crate) fn media_urls(body: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in body.split("/media/").skip(1) {
        let end = part.find(['"', ' ', ',']).unwrap_or(part.len());
        let url = format!("/media/{}", &part[..end]);
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

pub(crate) async fn settle(state: &actix_web::web::Data<napiatke_web::AppState>) {
    assert!(
        state.services.images_idle(Duration::from_secs(120)).await,
        "image workers did not finish"
    );
}

napiatke_db::both_engines! {
    #[actix_web::test] async
    a_room_photo_goes_from_placeholder_to_a_responsive_picture => room_photo_flow;
    an_avatar_shows_on_the_profile_and_lesson_pages => avatar_flow;
    only_admins_upload_room_photos_and_only_with_the_token => upload_rights;
    bad_uploads_get_a_clear_4xx_and_store_nothing => bad_uploads;
    a_full_queue_answers_503_with_retry_after => full_queue;
    media_serves_only_variants => media_safety;
    reprocessing_restores_missing_variants_and_is_idempotent => reprocess;
    uploads_are_bounded_per_user_in_progress_and_in_bytes => per_user_limits;
    replaced_images_are_collected_after_the_grace_period_keeping_shared_files => collection;
    a_replacement_that_fails_gives_the_old_photo_back => failed_replacement;
    full_media_storage_answers_507_and_writes_nothing => full_storage;
    a_job_is_taken_by_another_process_only_when_its_lease_ran_out => cluster_jobs;
}

/// The image services as they would run `after` the fixture's now, on `state`'s
/// database and media root (the collector, a day later).
fn later(
    t: &napiatke_db::testing::TestDb,
    prefix: &str,
    after: Duration,
) -> napiatke_services::Services {
    let mut settings = settings(false);
    settings.media_root = media_root(prefix);
    napiatke_services::Services::new(
        t.db.clone(),
        napiatke_services::FixedClock(now() + chrono::Duration::from_std(after).unwrap()),
    )
    .with_images(&napiatke_web::app::image_config(&settings).unwrap())
}

async fn user(state: &napiatke_web::AppState, email: &str) -> napiatke_domain::User {
    state
        .services
        .authenticate(email, FIXTURE_PASSWORD)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no user {email}"))
}

async fn per_user_limits(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let first = png(400, 300);
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |s| {
        s.image_user_queue = 1;
        // Room for the first avatar and its variants, not for a second one beside it.
        s.image_user_bytes = first.len() as u64 * 3 / 2;
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, bob) = login(&app, "bob@napiatke.local", FIXTURE_PASSWORD).await;

    // Sara has an upload in progress (another tab): her next waits, Bob's does not.
    let held = state
        .services
        .reserve_upload(&user(&state, "sara@napiatke.local").await)
        .unwrap();
    let res = upload(&app, &sara, "/profile/avatar", &first, true).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(res.body.contains("uploads in progress"), "{}", res.body);
    assert!(res
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    let res = upload(&app, &bob, "/profile/avatar", &png(64, 64), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    drop(held);
    let res = upload(&app, &sara, "/profile/avatar", &first, true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    // Her place is hers until the job is done, not only while the body is read.
    let res = upload(&app, &sara, "/profile/avatar", &png(32, 32), true).await;
    assert!(
        res.status == StatusCode::TOO_MANY_REQUESTS || res.status == StatusCode::ACCEPTED,
        "{}",
        res.status
    );
    settle(&state).await;

    // Her stored bytes: the first avatar (and whatever the second made) leave no
    // room for another as large; nothing is written for the refused one.
    let files = walk(&media_root(&prefix));
    let res = upload(&app, &sara, "/profile/avatar", &png(401, 300), true).await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS, "{}", res.body);
    assert!(res.body.contains("you may store"), "{}", res.body);
    assert_eq!(res.header("retry-after"), Some("86400"));
    assert_eq!(walk(&media_root(&prefix)), files, "nothing stored");
    // Bob's allowance is his own.
    let res = upload(&app, &bob, "/profile/avatar", &png(65, 64), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    settle(&state).await;

    // Collected a grace period after it was replaced, the old one frees her room.
    let services = later(&t, &prefix, Duration::ZERO);
    let report = services.collect_images(None).await.unwrap();
    assert!(report.unlinked >= 1, "{report:?}");
    let report = later(&t, &prefix, Duration::from_secs(86_401))
        .collect_images(None)
        .await
        .unwrap();
    assert!(report.images >= 1 && report.files >= 1, "{report:?}");
}

async fn collection(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, bob) = login(&app, "bob@napiatke.local", FIXTURE_PASSWORD).await;
    let root = media_root(&prefix);

    // Sara's first avatar is also Bob's (the same file, so the same stored files).
    let shared = png(300, 200);
    for who in [&sara, &bob] {
        let res = upload(&app, who, "/profile/avatar", &shared, false).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }
    let own = jpeg(320, 240);
    // Then a second one of her own, replaced in turn by a third.
    for bytes in [&own, &png(200, 300)] {
        settle(&state).await;
        let res = upload(&app, &sara, "/profile/avatar", bytes, false).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    }
    settle(&state).await;
    let own_source = napiatke_images::pipeline::source_hash(&own);
    let before = walk(&root);
    let own_files: Vec<&String> = before.iter().filter(|f| f.contains(&own_source)).collect();
    assert!(own_files.len() > 3, "{own_files:?}");
    let own_url = format!(
        "/media/{}",
        own_files
            .iter()
            .find(|f| !f.starts_with("originals/"))
            .unwrap()
    );
    assert_eq!(
        send(&app, TestRequest::get().uri(&own_url)).await.status,
        StatusCode::OK
    );

    // Found unlinked now; kept for the grace period.
    let report = later(&t, &prefix, Duration::ZERO)
        .collect_images(None)
        .await
        .unwrap();
    assert_eq!(
        (report.unlinked, report.images, report.files),
        (2, 0, 0),
        "{report:?}"
    );
    let report = later(&t, &prefix, Duration::from_secs(23 * 3600))
        .collect_images(None)
        .await
        .unwrap();
    assert_eq!((report.unlinked, report.images), (0, 0), "{report:?}");
    assert_eq!(walk(&root), before);

    // A day on: both replaced images go; the files Bob's avatar names stay.
    let report = later(&t, &prefix, Duration::from_secs(24 * 3600 + 1))
        .collect_images(None)
        .await
        .unwrap();
    assert_eq!(report.images, 2, "{report:?}");
    assert_eq!(
        report.files,
        own_files.len(),
        "only the second avatar's files: {report:?}"
    );
    assert!(report.bytes > 0);
    let after = walk(&root);
    assert!(after.iter().all(|f| !f.contains(&own_source)), "{after:?}");
    let shared_source = napiatke_images::pipeline::source_hash(&shared);
    assert_eq!(
        after.iter().filter(|f| f.contains(&shared_source)).count(),
        before.iter().filter(|f| f.contains(&shared_source)).count(),
        "Bob still shows the shared files"
    );
    assert!(
        !root.join(&own_source[..2]).join(&own_source).exists(),
        "empty folders go too"
    );
    assert_eq!(
        send(&app, TestRequest::get().uri(&own_url)).await.status,
        StatusCode::NOT_FOUND
    );
    // Pages still show both current avatars, every URL served.
    for who in [&sara, &bob] {
        let profile = send(&app, who.get("/profile/")).await;
        let urls = media_urls(&profile.body);
        assert!(!urls.is_empty(), "{}", profile.body);
        for url in urls {
            assert_eq!(
                send(&app, TestRequest::get().uri(&url)).await.status,
                StatusCode::OK,
                "{url}"
            );
        }
    }
    // Running again finds nothing more.
    let report = later(&t, &prefix, Duration::from_secs(48 * 3600))
        .collect_images(None)
        .await
        .unwrap();
    assert_eq!(report, napiatke_services::GcReport::default());
}

async fn failed_replacement(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let root = media_root(&prefix);

    let res = upload(&app, &admin, "/rooms/1/photo", &jpeg(640, 480), false).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    settle(&state).await;
    let shown = media_urls(&send(&app, admin.get("/rooms/")).await.body);
    assert!(!shown.is_empty());

    // The next photo's variants cannot be written (a file stands where their folder
    // goes): it is taken, then fails on the worker.
    let next = png(500, 400);
    let source = napiatke_images::pipeline::source_hash(&next);
    std::fs::create_dir_all(root.join(&source[..2])).unwrap();
    std::fs::write(root.join(&source[..2]).join(&source), b"in the way").unwrap();
    let res = upload(&app, &admin, "/rooms/1/photo", &next, true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    settle(&state).await;
    let page = send(&app, admin.get("/rooms/")).await;
    assert_eq!(
        media_urls(&page.body),
        shown,
        "the old photo is back: {}",
        page.body
    );
    let failed = send(&app, admin.get("/images/2/")).await;
    assert_eq!(
        failed.header("x-image-status"),
        Some("FAILED"),
        "{}",
        failed.body
    );
    for url in &shown {
        assert_eq!(
            send(&app, TestRequest::get().uri(url)).await.status,
            StatusCode::OK
        );
    }
    // The collector takes the failed one, never the one shown again.
    later(&t, &prefix, Duration::ZERO)
        .collect_images(None)
        .await
        .unwrap();
    let report = later(&t, &prefix, Duration::from_secs(2 * 86_400))
        .collect_images(None)
        .await
        .unwrap();
    assert_eq!(report.images, 1, "{report:?}");
    for url in &shown {
        assert_eq!(
            send(&app, TestRequest::get().uri(url)).await.status,
            StatusCode::OK
        );
    }
}

async fn full_storage(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let res = upload(&app, &admin, "/rooms/1/photo", &jpeg(640, 480), false).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    settle(&state).await;
    let shown = media_urls(&send(&app, admin.get("/rooms/")).await.body);
    let files = walk(&media_root(&prefix));

    // The same media root, now keeping more free than any disk has.
    let full = state_tweaked(&t, false, &prefix, Some(redis_url()), |s| {
        s.media_keep_free = 1 << 50;
    })
    .await;
    let full_app = test::init_service(napiatke_web::app::app(full.clone())).await;
    let (_, admin) = login(&full_app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for htmx in [false, true] {
        let res = upload(&full_app, &admin, "/rooms/1/photo", &png(300, 300), htmx).await;
        assert_eq!(res.status, StatusCode::INSUFFICIENT_STORAGE, "{}", res.body);
        assert!(
            res.body.contains("no room left to store images"),
            "{}",
            res.body
        );
    }
    assert_eq!(
        walk(&media_root(&prefix)),
        files,
        "nothing written, nothing half-written"
    );
    assert_eq!(
        media_urls(&send(&full_app, admin.get("/rooms/")).await.body),
        shown
    );
    let res = upload(&full_app, &admin, "/profile/avatar", &png(30, 30), false).await;
    assert_eq!(res.status, StatusCode::INSUFFICIENT_STORAGE);
}

async fn room_photo_flow(engine: Engine) {
    let t = fixture(engine);
    let state = state(&t, false).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    let before = send(&app, admin.get("/rooms/")).await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(before.body.contains("Room A") && before.body.contains("No photo yet"));
    assert!(
        before.body.contains("action=\"/rooms/1/photo\""),
        "admins get the form"
    );
    assert!(before.body.contains("enctype=\"multipart/form-data\""));

    // htmx: accepted at once with the placeholder, polling for the result.
    let res = upload(&app, &admin, "/rooms/1/photo", &jpeg(1400, 900), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.header("x-image-status"), Some("PROCESSING"));
    assert!(res.body.contains("data:image/webp;base64,"), "{}", res.body);
    assert!(
        res.body.contains("hx-get=\"/images/1/?look=photo"),
        "{}",
        res.body
    );
    assert!(res.body.contains("width=\"1400\"") && res.body.contains("height=\"900\""));

    // Read (and cache) the list while the worker runs: its records must invalidate it.
    assert_eq!(
        send(&app, admin.get("/rooms/")).await.status,
        StatusCode::OK
    );
    settle(&state).await;
    let done = send(&app, admin.get("/images/1/?look=photo&alt=Room%20A")).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.header("x-image-status"), Some("READY"));
    assert!(!done.body.contains("hx-get"), "polling stops once ready");
    assert!(done.body.contains("<picture>") && done.body.contains("type=\"image/avif\""));

    // The room list shows it: AVIF and WebP sources, a JPEG fallback, sized, the
    // first (main) image eager, every variant served with its type, for a year.
    let page = send(&app, admin.get("/rooms/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("No photo yet"));
    // The blurred placeholder is an image of its own under the picture (no inline
    // style for the Content-Security-Policy to refuse).
    assert!(page
        .body
        .contains("<img class=\"ph-blur photo\" src=\"data:image/"));
    assert!(!page.body.contains(" style="), "{}", page.body);
    for needle in [
        "<picture>",
        "type=\"image/avif\"",
        "type=\"image/webp\"",
        "320w",
        "1280w",
        "width=\"1400\"",
        "height=\"900\"",
        "alt=\"Room A\"",
        "fetchpriority=\"high\"",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    let urls = media_urls(&page.body);
    // 320, 640, 960 and 1280 wide (the ladder's steps the source reaches) in three
    // formats.
    assert_eq!(urls.len(), 12, "{urls:?}");
    let mut total_1280 = 0;
    for url in &urls {
        let res = send(&app, TestRequest::get().uri(url)).await;
        assert_eq!(res.status, StatusCode::OK, "{url}");
        let expected = if url.ends_with(".avif") {
            "image/avif"
        } else if url.ends_with(".webp") {
            "image/webp"
        } else {
            "image/jpeg"
        };
        assert_eq!(res.header("content-type"), Some(expected), "{url}");
        assert_eq!(
            res.header("cache-control"),
            Some("max-age=31536000, immutable")
        );
        if url.contains("w1280x") && url.ends_with(".avif") {
            total_1280 = res.body.len();
        }
    }
    assert!(total_1280 > 0);
    // Cached: the room list costs no statement once warm.
    let again = send(&app, admin.get("/rooms/")).await;
    assert_eq!(again.queries(), 0);

    // Everyone logged in sees the rooms; only admins get the form.
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let seen = send(&app, sara.get("/rooms/")).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(seen.body.contains("<picture>") && !seen.body.contains("/rooms/1/photo"));

    // Without htmx: 303 back to the list.
    let plain = upload(&app, &admin, "/rooms/1/photo", &png(500, 400), false).await;
    assert_eq!(plain.status, StatusCode::SEE_OTHER);
    assert_eq!(plain.header("location"), Some("/rooms/"));
    settle(&state).await;
    let replaced = send(&app, admin.get("/rooms/")).await;
    assert!(
        replaced.body.contains("width=\"500\""),
        "the new photo replaced the old"
    );
    // A room's current photo is anyone's to poll; a replaced one nobody's but admins'.
    assert_eq!(
        send(&app, sara.get("/images/2/")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, sara.get("/images/1/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, admin.get("/images/1/")).await.status,
        StatusCode::OK
    );
}

async fn avatar_flow(engine: Engine) {
    let t = fixture(engine);
    let state = state(&t, false).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, sara) = login(&app, "sara@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    // The lesson page before: initials, no picture (and it is cached per session).
    let lesson = send(&app, admin.get("/lessons/1/")).await;
    assert!(lesson.body.contains("class=\"avatar initials\""));
    assert!(!lesson.body.contains("/media/"));

    let profile = send(&app, sara.get("/profile/")).await;
    assert_eq!(profile.status, StatusCode::OK);
    assert!(
        profile.body.contains("No avatar yet")
            && profile.body.contains("action=\"/profile/avatar\""),
        "{}",
        profile.body
    );
    let res = upload(&app, &sara, "/profile/avatar", &png(600, 450), false).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/profile/"));
    let pending = send(&app, sara.get("/profile/")).await;
    assert!(pending.body.contains("data:image/webp;base64,"));
    settle(&state).await;
    let profile = send(&app, sara.get("/profile/")).await;
    assert!(profile.body.contains("/media/") && profile.body.contains("loading=\"lazy\""));

    // The lesson page shows her thumbnail now, though the lesson did not change.
    let lesson = send(&app, admin.get("/lessons/1/")).await;
    let row = |name: &str| {
        lesson
            .body
            .split("<tr><td class=\"person\">")
            .skip(1)
            .map(|r| r.split("</tr>").next().unwrap_or_default())
            .find(|r| r.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}"))
            .to_owned()
    };
    let (sara_row, bob_row) = (row("Sara Adams"), row("Bob Brown"));
    assert!(
        sara_row.contains("<picture>") && !sara_row.contains("initials"),
        "{sara_row}"
    );
    assert!(
        bob_row.contains("class=\"avatar initials\"") && !bob_row.contains("/media/"),
        "{bob_row}"
    );
    let thumbs: Vec<String> = media_urls(&sara_row)
        .into_iter()
        .filter(|u| u.contains("/t300-"))
        .collect();
    assert_eq!(
        thumbs.len(),
        3,
        "AVIF, WebP and JPEG thumbnails: {thumbs:?}"
    );
    assert!(sara_row.contains("loading=\"lazy\"") && sara_row.contains("decoding=\"async\""));
    assert!(sara_row.contains("width=\"32\"") && sara_row.contains("height=\"32\""));

    // Her avatar's status is hers and the admins' to poll; another student's 404.
    let (_, bob) = login(&app, "bob@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        send(&app, sara.get("/images/1/")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, admin.get("/images/1/")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, bob.get("/images/1/")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, bob.get("/images/99/")).await.status,
        StatusCode::NOT_FOUND
    );
    for url in &thumbs {
        assert_eq!(
            send(&app, TestRequest::get().uri(url)).await.status,
            StatusCode::OK
        );
    }
}

async fn upload_rights(engine: Engine) {
    let t = fixture(engine);
    let state = state(&t, false).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, tina) = login(&app, "tina@napiatke.local", FIXTURE_PASSWORD).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let image = png(64, 64);

    let res = upload(&app, &tina, "/rooms/1/photo", &image, false).await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.body.contains("only administrators"));
    let res = upload(&app, &admin, "/rooms/99/photo", &image, false).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = upload(&app, &admin, "/rooms/x/photo", &image, false).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let anon = upload(&app, &Browser::default(), "/profile/avatar", &image, false).await;
    assert_eq!(anon.status, StatusCode::SEE_OTHER);
    assert!(anon
        .header("location")
        .is_some_and(|l| l.starts_with("/login")));
    for token in [Token::Missing, Token::FieldAfter] {
        let res = send(
            &app,
            upload_request(&admin, "/rooms/1/photo", "image", &image, token, false),
        )
        .await;
        assert_eq!(
            res.status,
            StatusCode::FORBIDDEN,
            "a cross-site upload is refused before its body is read"
        );
        assert!(res.body.contains("came from another site"), "{}", res.body);
    }
    // An older browser on our own page (Origin only), through htmx.
    let res = send(
        &app,
        upload_request(
            &tina,
            "/profile/avatar",
            "image",
            &image,
            Token::Header,
            true,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    settle(&state).await;
    // Nothing refused landed.
    let rooms = send(&app, admin.get("/rooms/")).await;
    assert!(rooms.body.contains("No photo yet"));

    // Two uploads for one room sent together both land, end to end. (The key race
    // they could meet is forced, deterministically, in the db crate's
    // two_uploads_for_one_owner_at_once_both_land.)
    let other = png(65, 64);
    let (x, y) = futures_util::join!(
        upload(&app, &admin, "/rooms/1/photo", &image, true),
        upload(&app, &admin, "/rooms/1/photo", &other, true)
    );
    assert_eq!(
        (x.status, y.status),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED),
        "{} {}",
        x.body,
        y.body
    );
    settle(&state).await;
    let rooms = send(&app, admin.get("/rooms/")).await;
    assert!(rooms.body.contains("width=\"64\"") || rooms.body.contains("width=\"65\""));
}

async fn bad_uploads(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |s| {
        s.image_max_bytes = 200_000;
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    let mut huge_claim = png(1, 1);
    huge_claim[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    huge_claim[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let good = jpeg(200, 150);
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "zero bytes",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "the file is empty",
        ),
        (
            "not an image",
            b"hello, this is text, not a picture".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a JPEG, PNG, WebP or GIF image",
        ),
        (
            "a PDF",
            b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n".to_vec(),
            StatusCode::BAD_REQUEST,
            "not a JPEG, PNG, WebP or GIF image",
        ),
        (
            "truncated",
            {
                let whole = png(300, 200);
                whole[..whole.len() / 2].to_vec()
            },
            StatusCode::BAD_REQUEST,
            "damaged or incomplete",
        ),
        (
            "100000x100000",
            huge_claim,
            StatusCode::BAD_REQUEST,
            "100000×100000",
        ),
        (
            // Declared small enough to be read: cut off as it streams past the limit.
            "just over IMAGE_MAX_BYTES",
            vec![0u8; 210_000],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 200000 bytes",
        ),
        (
            // Refused from Content-Length alone.
            "over IMAGE_MAX_BYTES",
            vec![0u8; 300_000],
            StatusCode::PAYLOAD_TOO_LARGE,
            "larger than 200000 bytes",
        ),
    ];
    for (what, bytes, status, message) in cases {
        let res = upload(&app, &admin, "/rooms/1/photo", &bytes, true).await;
        assert_eq!(res.status, status, "{what}: {}", res.body);
        assert!(res.body.contains(message), "{what}: {}", res.body);
    }
    // No file field at all, or the wrong name.
    let res = send(
        &app,
        upload_request(
            &admin,
            "/rooms/1/photo",
            "photo",
            &good,
            Token::Field,
            false,
        ),
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);
    assert!(
        res.body.contains(
            "the file came in the form field &quot;photo&quot;; it must be sent as &quot;image&quot;"
        ),
        "{}",
        res.body
    );
    // Not multipart at all.
    let res = send(&app, admin.post("/rooms/1/photo", &[("name", "x")])).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);

    // Nothing was stored: no photo, no original, no variant.
    let rooms = send(&app, admin.get("/rooms/")).await;
    assert!(rooms.body.contains("No photo yet"));
    let stored = walk(&media_root(&prefix));
    assert!(stored.is_empty(), "{stored:?}");

    // A PNG named photo.jpg (the name never matters), a grayscale and a 16-bit PNG are
    // all fine.
    let gray = {
        let mut out = Vec::new();
        image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(120, 80, |x, _| {
            image::Luma([x as u8])
        }))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
        out
    };
    let deep = {
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba16(image::ImageBuffer::from_fn(90, 60, |x, y| {
            image::Rgba([(x * 700) as u16, (y * 1000) as u16, 30_000, 65_535])
        }))
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
        out
    };
    // One after another: two at once is the most one user may have in progress.
    for bytes in [png(100, 80), gray, deep] {
        let res = upload(&app, &admin, "/rooms/1/photo", &bytes, true).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        settle(&state).await;
    }
    assert_eq!(
        send(&app, admin.get("/images/3/"))
            .await
            .header("x-image-status"),
        Some("READY")
    );
}

/// Every file under `dir`, relative.
pub(crate) fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .map(|r| r.display().to_string())
                        .unwrap_or_default(),
                );
            }
        }
    }
    out.sort();
    out
}

async fn full_queue(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |s| {
        s.image_workers = 1;
        s.image_queue = 1;
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    // Another user's request holds the only place while it reads its upload.
    let tutor = state
        .services
        .authenticate("tina@napiatke.local", FIXTURE_PASSWORD)
        .await
        .unwrap()
        .unwrap();
    let held = state.services.reserve_upload(&tutor).unwrap();
    let res = upload(&app, &admin, "/rooms/1/photo", &png(64, 64), true).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| s >= 1));
    assert!(res.body.contains("queue is full"), "{}", res.body);
    drop(held);
    let res = upload(&app, &admin, "/rooms/1/photo", &png(64, 64), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    settle(&state).await;
}

async fn media_safety(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    upload(&app, &admin, "/rooms/1/photo", &png(400, 300), true).await;
    settle(&state).await;
    let page = send(&app, admin.get("/rooms/")).await;
    let url = media_urls(&page.body)
        .into_iter()
        .find(|u| u.ends_with(".webp"))
        .unwrap_or_else(|| panic!("no webp in {}", page.body));
    // HEAD: the GET headers (actix-http sends the body's length without the body,
    // as for static files).
    let head = send(
        &app,
        TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(&url),
    )
    .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-type"), Some("image/webp"));
    assert!(head.body.starts_with("RIFF"));
    // Revalidation by ETag.
    let etag = head.header("etag").unwrap_or_default().to_owned();
    let again = send(
        &app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("if-none-match", etag)),
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        again.header("cache-control"),
        Some("max-age=31536000, immutable")
    );
    // Ranges, from the file on disk (actix-files): the first 12 bytes of the WebP.
    let on_disk =
        std::fs::read(media_root(&prefix).join(url.trim_start_matches("/media/"))).unwrap();
    let part = send(
        &app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("range", "bytes=0-11")),
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 0-11/{}", on_disk.len()).as_str())
    );
    assert_eq!(part.body, String::from_utf8_lossy(&on_disk[..12]));
    assert!(part.body.starts_with("RIFF") && part.body.ends_with("WEBP"));
    let whole = send(&app, TestRequest::get().uri(&url)).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.body, String::from_utf8_lossy(&on_disk));
    assert_eq!(whole.header("etag"), head.header("etag"));
    // If-Match: the variant's own tag passes, another fails.
    let etag = head.header("etag").unwrap_or_default().to_owned();
    let matched = send(
        &app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("if-match", etag.clone())),
    )
    .await;
    assert_eq!(matched.status, StatusCode::OK);
    assert_eq!(matched.body, whole.body);
    let other = send(
        &app,
        TestRequest::get()
            .uri(&url)
            .insert_header(("if-match", "\"something-else\"")),
    )
    .await;
    assert_eq!(other.status, StatusCode::PRECONDITION_FAILED);
    let post = send(&app, TestRequest::post().uri(&url)).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    // The original (EXIF and all) is stored but never served; nor is anything else.
    let original = walk(&media_root(&prefix))
        .into_iter()
        .find(|p| p.starts_with("originals/"))
        .unwrap_or_else(|| panic!("no original stored"));
    for path in [
        format!("/media/{original}"),
        "/media/../Cargo.toml".to_owned(),
        "/media/%2e%2e/%2e%2e/Cargo.toml".to_owned(),
        "/media/..%2f..%2fCargo.toml".to_owned(),
        "/media/ab/ab12cd34ef56ab12/w320x240-1a2b3c4d.webp".to_owned(),
        "/media/".to_owned(),
        url.replace(".webp", ".png"),
    ] {
        let res = send(&app, TestRequest::get().uri(&path)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
    }
}

async fn reprocess(engine: Engine) {
    let t = fixture(engine);
    let prefix = cache_prefix();
    let state = state_tweaked(&t, false, &prefix, Some(redis_url()), |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    upload(&app, &admin, "/rooms/1/photo", &png(700, 350), true).await;
    settle(&state).await;
    let root = media_root(&prefix);
    let variants: Vec<String> = walk(&root)
        .into_iter()
        .filter(|p| !p.starts_with("originals/"))
        .collect();
    // 320 and 640 wide and the thumbnail, in three formats.
    assert_eq!(variants.len(), 9, "{variants:?}");
    std::fs::remove_file(root.join(&variants[0])).unwrap();
    // A validator never vouches for a variant that is gone.
    let gone = send(
        &app,
        TestRequest::get()
            .uri(&format!("/media/{}", variants[0]))
            .insert_header(("if-none-match", "*")),
    )
    .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let mut seen = Vec::new();
    let report = state
        .services
        .reprocess_images(|done, total| seen.push((done, total)))
        .await
        .unwrap();
    assert_eq!(
        (report.images, report.made, report.reused, report.failed),
        (1, 1, 8, 0)
    );
    assert_eq!(seen, vec![(1, 1)]);
    assert!(root.join(&variants[0]).is_file());
    let report = state.services.reprocess_images(|_, _| {}).await.unwrap();
    assert_eq!((report.made, report.reused), (0, 9));
    let page = send(&app, admin.get("/rooms/")).await;
    assert_eq!(
        media_urls(&page.body).len(),
        6,
        "two widths in three formats"
    );

    // A job a stopped process never finished: its row PROCESSING, its original
    // stored. A restarted process (its own cache) shows the placeholder and caches
    // that; resuming makes the variants and the list shows them, so the job's
    // records invalidated it.
    let original = walk(&root)
        .into_iter()
        .find(|p| p.starts_with("originals/"))
        .unwrap_or_else(|| panic!("no original"));
    {
        use napiatke_db::queries::images::{create, NewImage, Owner};
        let mut conn = t.db.get().unwrap();
        let new = NewImage {
            source: original.rsplit('/').next().unwrap_or_default(),
            original: &original,
            width: 700,
            height: 350,
            has_alpha: false,
            placeholder: "data:image/webp;base64,UklGRg==",
            uploaded_by: None,
            bytes: 0,
            lease: None,
        };
        create(
            &mut conn,
            &new,
            Owner::Room(napiatke_domain::RoomId(1)),
            now(),
        )
        .unwrap();
    }
    let restarted = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.media_root = root.clone();
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(restarted.clone())).await;
    let stuck = send(&app, admin.get("/rooms/")).await;
    assert!(
        stuck.body.contains("Processing") && media_urls(&stuck.body).is_empty(),
        "{}",
        stuck.body
    );
    // The poll counts its attempts and gives up after 300 (five minutes).
    let polling = send(&app, admin.get("/images/2/?attempt=5")).await;
    assert_eq!(polling.header("x-image-status"), Some("PROCESSING"));
    assert!(polling.body.contains("attempt=6\""), "{}", polling.body);
    let given_up = send(&app, admin.get("/images/2/?attempt=300")).await;
    assert!(!given_up.body.contains("hx-get") && given_up.body.contains("reload the page"));
    let resumed = restarted.services.resume_images().await;
    assert_eq!(resumed.unwrap(), 1);
    settle(&restarted).await;
    let page = send(&app, admin.get("/rooms/")).await;
    assert_eq!(media_urls(&page.body).len(), 6, "{}", page.body);
    let again = restarted.services.resume_images().await;
    assert_eq!(again.unwrap(), 0, "nothing left PROCESSING");
}

/// Two processes on one database and media root (the cluster of issue 17): a live
/// process's job is never taken by the other; a job whose process stopped (its lease
/// not renewed) is taken once the lease has run out and finished there; image
/// collection takes turns, once per interval across the processes.
async fn cluster_jobs(engine: Engine) {
    use napiatke_db::queries::images::{self as rows, NewImage, Owner};
    use napiatke_db::queries::leases::Lease;
    use napiatke_domain::{ImageStatus, UserId};
    let t = fixture(engine);
    let prefix = cache_prefix();
    let a = state_tweaked(&t, false, &prefix, None, |_| {}).await;
    let app = test::init_service(napiatke_web::app::app(a.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let res = upload(&app, &admin, "/rooms/1/photo", &jpeg(640, 400), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    // Process b at the same moment: a's job is a's, however far it has got.
    let b = later(&t, &prefix, Duration::ZERO);
    assert_ne!(a.services.instance(), b.instance());
    assert_eq!(
        b.resume_images().await.unwrap(),
        0,
        "a live process's job was taken"
    );
    settle(&a).await;

    // A process that stopped with an avatar job queued: its lease runs a minute.
    let original = walk(&media_root(&prefix))
        .into_iter()
        .find(|p| p.starts_with("originals/"))
        .unwrap_or_else(|| panic!("no original"));
    // An avatar job of `user`'s held by `owner`, a process that stopped.
    let leased = |user: i64, owner: &str| {
        let mut conn = t.db.get().unwrap();
        let new = NewImage {
            source: original.rsplit('/').next().unwrap_or_default(),
            original: &original,
            width: 640,
            height: 400,
            has_alpha: false,
            placeholder: "data:image/webp;base64,UklGRg==",
            uploaded_by: None,
            bytes: 0,
            lease: Some(Lease {
                owner,
                until: now() + chrono::Duration::seconds(60),
            }),
        };
        rows::create(&mut conn, &new, Owner::User(UserId(user)), now())
            .unwrap()
            .id
    };
    let stuck = leased(4, "stopped:1:1");
    assert_eq!(
        b.resume_images().await.unwrap(),
        0,
        "taken before its lease ran out"
    );
    let c = later(&t, &prefix, Duration::from_secs(60));
    assert_eq!(
        c.resume_images().await.unwrap(),
        1,
        "not taken once its lease ran out"
    );
    assert!(c.images_idle(Duration::from_secs(120)).await);
    let done = rows::get(&mut t.db.get().unwrap(), stuck).unwrap();
    assert_eq!(done.status, ImageStatus::Ready);
    assert!(
        done.variants
            .iter()
            .any(|v| v.format == napiatke_domain::ImageFormat::Avif)
            && done
                .variants
                .iter()
                .any(|v| v.format == napiatke_domain::ImageFormat::WebP),
        "both phases made: {:?}",
        done.variants
    );
    assert_eq!(
        c.resume_images().await.unwrap(),
        0,
        "finished: nothing left to take"
    );

    // A process that stopped between the phases: READY with WebP and JPEG shown, its
    // AVIF never made. Another takes the job up once the lease runs out, shows the
    // same WebP and JPEG throughout and adds the AVIF, once.
    let cut = {
        let id = leased(5, "stopped:2:2");
        let mut conn = t.db.get().unwrap();
        let first_phase: Vec<_> = done
            .variants
            .iter()
            .filter(|v| v.format != napiatke_domain::ImageFormat::Avif)
            .cloned()
            .collect();
        rows::set_variants(&mut conn, id, &first_phase, ImageStatus::Ready, None, now()).unwrap();
        id
    };
    assert_eq!(b.resume_images().await.unwrap(), 0, "taken while leased");
    assert_eq!(
        c.resume_images().await.unwrap(),
        1,
        "a job cut off after its first phase was not taken up again"
    );
    assert!(c.images_idle(Duration::from_secs(120)).await);
    let resumed = rows::get(&mut t.db.get().unwrap(), cut).unwrap();
    assert_eq!(resumed.status, ImageStatus::Ready);
    assert_eq!(
        resumed.variants, done.variants,
        "the same variants, the AVIF ones added"
    );
    assert_eq!(
        c.resume_images().await.unwrap(),
        0,
        "finished: nothing left to take"
    );

    // Collection: one turn per interval, whoever asks first.
    let hour = Duration::from_secs(3600);
    assert!(a.services.take_turn("image_gc", hour).await.unwrap());
    assert!(
        !b.take_turn("image_gc", hour).await.unwrap(),
        "two collections in one interval"
    );
    let next_hour = later(&t, &prefix, hour);
    assert!(
        next_hour.take_turn("image_gc", hour).await.unwrap(),
        "the next turn is free"
    );
}
