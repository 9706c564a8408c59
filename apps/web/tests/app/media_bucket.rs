//! Media in an S3-compatible bucket (MEDIA_STORAGE=s3) over HTTP, against the moto
//! server scripts/test.sh starts: uploads land in the bucket and nowhere on disk,
//! `/media/` serves them from it with the usual headers, a second process sharing
//! the database and the bucket serves them too, MEDIA_PUBLIC_URL links pages to the
//! bucket itself, and a bucket that does not answer is a 503 that loses nothing.

use std::time::Duration;

use crate::common::*;
use crate::images::{jpeg, media_urls, png, settle, upload, walk};
use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use napiatke_bucket::testing::{keys, new_bucket, raw};
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;
use napiatke_web::config::{MediaStorage, S3Settings, Secret};

/// MEDIA_STORAGE=s3 settings for `bucket` (a config from `new_bucket`).
fn s3(bucket: &napiatke_bucket::BucketConfig, timeout: Duration) -> MediaStorage {
    MediaStorage::S3(S3Settings {
        bucket: bucket.bucket.clone(),
        endpoint: bucket.endpoint.clone(),
        region: bucket.region.clone(),
        access_key_id: bucket.access_key_id.clone(),
        secret_access_key: Some(Secret::new("test")),
        prefix: "school".to_owned(),
        timeout,
    })
}

napiatke_db::both_engines! {
    #[actix_web::test] async
    photos_go_to_the_bucket_and_every_process_serves_them_from_it => bucket_flow;
}

async fn bucket_flow(engine: Engine) {
    let t = fixture(engine);
    let bucket = new_bucket();
    let prefix = cache_prefix();
    let storage = s3(&bucket, Duration::from_secs(10));
    let one = state_tweaked(&t, false, &prefix, Some(redis_url()), |s| {
        s.media_storage = storage.clone();
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(one.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    // Small, so the encoders take little of the suite's time: widths 320 and 640.
    let res = upload(&app, &admin, "/rooms/1/photo", &jpeg(700, 450), true).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    settle(&one).await;
    let page = send(&app, admin.get("/rooms/")).await;
    let urls = media_urls(&page.body);
    assert_eq!(urls.len(), 6, "{urls:?}");

    // Everything is in the bucket, under the prefix: the original and each variant;
    // nothing under MEDIA_ROOT.
    let stored = keys(&bucket.bucket);
    assert!(
        stored.iter().any(|k| k.starts_with("school/originals/")),
        "{stored:?}"
    );
    for url in &urls {
        let key = format!("school/{}", url.trim_start_matches("/media/"));
        assert!(stored.contains(&key), "{key} in {stored:?}");
    }
    assert_eq!(walk(&media_root(&prefix)), Vec::<String>::new());

    // Served from the bucket with a file's headers; validators answered.
    for url in &urls {
        let res = send(&app, TestRequest::get().uri(url)).await;
        assert_eq!(res.status, StatusCode::OK, "{url}");
        let kind = url.rsplit('.').next().unwrap();
        let expected = match kind {
            "avif" => "image/avif",
            "webp" => "image/webp",
            _ => "image/jpeg",
        };
        assert_eq!(res.header("content-type"), Some(expected), "{url}");
        assert_eq!(
            res.header("cache-control"),
            Some("max-age=31536000, immutable")
        );
        let etag = format!("\"{}\"", url.rsplit('/').next().unwrap());
        assert_eq!(res.header("etag"), Some(etag.as_str()));
        assert!(!res.body.is_empty());
        let again = send(
            &app,
            TestRequest::get()
                .uri(url)
                .insert_header(("if-none-match", etag.as_str())),
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{url}");
    }
    // A variant that is not there, and a name that is no variant (an original).
    let gone = "/media/ab/ab12cd34ef56ab12/w320x200-1a2b3c4d.webp";
    assert_eq!(
        send(&app, TestRequest::get().uri(gone)).await.status,
        StatusCode::NOT_FOUND
    );
    let original = stored
        .iter()
        .find(|k| k.starts_with("school/originals/"))
        .unwrap()
        .trim_start_matches("school/");
    assert_eq!(
        send(&app, TestRequest::get().uri(&format!("/media/{original}")))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "originals stay private"
    );

    // A second process on the same database and bucket (its own cache, its own
    // empty MEDIA_ROOT) shows the photo and serves every variant.
    let two = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.media_storage = storage.clone();
    })
    .await;
    let app2 = test::init_service(napiatke_web::app::app(two.clone())).await;
    let (_, admin2) = login(&app2, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    assert_eq!(
        media_urls(&send(&app2, admin2.get("/rooms/")).await.body),
        urls
    );
    for url in &urls {
        assert_eq!(
            send(&app2, TestRequest::get().uri(url)).await.status,
            StatusCode::OK,
            "{url} through the second process"
        );
    }
}

#[actix_web::test]
async fn with_a_public_url_pages_link_to_the_bucket_itself() {
    let t = fixture(Engine::Sqlite);
    let bucket = new_bucket();
    napiatke_bucket::testing::publish_variants(&bucket.bucket, "school");
    let public = format!(
        "{}/{}/school/",
        napiatke_bucket::testing::endpoint(),
        bucket.bucket
    );
    let state = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.media_storage = s3(&bucket, Duration::from_secs(10));
        s.media_public_url = Some(public.clone());
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let res = upload(&app, &admin, "/rooms/1/photo", &png(500, 400), false).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.body);
    settle(&state).await;

    let page = send(&app, admin.get("/rooms/")).await;
    assert!(media_urls(&page.body).is_empty(), "no /media/ link left");
    let links: Vec<&str> = page
        .body
        .split(&public)
        .skip(1)
        .map(|rest| &rest[..rest.find(['"', ' ', ',']).unwrap()])
        .collect();
    assert!(links.len() >= 3, "{}", page.body);
    // The browser may load them: the policy names the bucket's origin.
    let csp = page.header("content-security-policy").unwrap();
    let origin = napiatke_bucket::testing::endpoint();
    assert!(
        csp.contains(&format!("img-src 'self' data: {origin};")),
        "{csp}"
    );
    // What the browser then gets, from the bucket itself.
    for name in &links {
        let (head, body) = raw("GET", &format!("/{}/school/{name}", bucket.bucket));
        assert!(head.starts_with("HTTP/1.1 200"), "{name}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("cache-control: public, max-age=31536000, immutable"),
            "{head}"
        );
        assert!(!body.is_empty());
    }
    // Links made before still work: /media/ redirects there.
    let res = send(
        &app,
        TestRequest::get().uri(&format!("/media/{}", links[0])),
    )
    .await;
    assert_eq!(res.status, StatusCode::FOUND);
    assert_eq!(
        res.header("location"),
        Some(format!("{public}{}", links[0]).as_str())
    );
}

#[actix_web::test]
async fn a_bucket_that_does_not_answer_is_a_503_and_loses_nothing() {
    let t = fixture(Engine::Sqlite);
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = napiatke_bucket::BucketConfig {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some("test".to_owned()),
        ..napiatke_bucket::BucketConfig::new("down")
    };
    let state = state_tweaked(&t, false, &cache_prefix(), Some(redis_url()), |s| {
        s.media_storage = s3(&down, Duration::from_secs(2));
    })
    .await;
    let app = test::init_service(napiatke_web::app::app(state.clone())).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;

    for htmx in [true, false] {
        let res = upload(&app, &admin, "/rooms/1/photo", &png(64, 48), htmx).await;
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
        assert!(res.header("retry-after").is_some());
    }
    let page = send(&app, admin.get("/rooms/")).await;
    assert_eq!(page.status, StatusCode::OK, "pages are still served");
    assert!(page.body.contains("No photo yet"), "nothing half-saved");
    let res = send(
        &app,
        TestRequest::get().uri("/media/ab/ab12cd34ef56ab12/w320x200-1a2b3c4d.webp"),
    )
    .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.header("retry-after").is_some());
}
