//! The bucket store against a real S3-compatible server: moto's, which
//! scripts/test.sh starts (NAPIATKE_TEST_S3_URL, default http://127.0.0.1:9390).
//! Each test makes a bucket of its own, so they run in parallel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::{Duration, Instant};

use napiatke_bucket::testing::{keys, new_bucket, raw};
use napiatke_bucket::{Bucket, BucketConfig};
use napiatke_images::pipeline::Storage;

/// A bucket of the test's own, keys under `prefix`, and its name.
fn bucket(prefix: &str) -> (Bucket, String) {
    let config = BucketConfig {
        prefix: prefix.to_owned(),
        timeout: Duration::from_secs(5),
        ..new_bucket()
    };
    (Bucket::new(&config).unwrap(), config.bucket)
}

/// A client of bucket `name` at `endpoint` (a local address of a test's own), with
/// test credentials and `timeout`.
fn at(endpoint: String, name: &str, timeout: Duration) -> Bucket {
    Bucket::new(&BucketConfig {
        endpoint: Some(endpoint),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some("test".to_owned()),
        secret_access_key: Some("test".to_owned()),
        timeout,
        ..BucketConfig::new(name)
    })
    .unwrap()
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Another client of bucket `name`, keys under `prefix`.
fn client(name: &str, prefix: &str) -> Bucket {
    Bucket::new(&BucketConfig {
        bucket: name.to_owned(),
        prefix: prefix.to_owned(),
        endpoint: Some(napiatke_bucket::testing::endpoint()),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some("test".to_owned()),
        secret_access_key: Some("test".to_owned()),
        ..BucketConfig::new(name)
    })
    .unwrap()
}

const VARIANT: &str = "ab/ab12cd34ef56ab12/w320x200-1a2b3c4d.webp";

#[test]
fn stores_sizes_reads_and_removes_what_it_is_given() {
    let (bucket, _) = bucket("");
    bucket.check().unwrap();
    assert_eq!(bucket.size(VARIANT), None);
    assert_eq!(
        bucket.get(VARIANT).unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    bucket.put(VARIANT, b"RIFF....WEBP").unwrap();
    assert_eq!(bucket.size(VARIANT), Some(12));
    assert_eq!(bucket.get(VARIANT).unwrap(), b"RIFF....WEBP");
    assert!(bucket.remove(VARIANT).unwrap());
    assert!(
        !bucket.remove(VARIANT).unwrap(),
        "a second removal finds nothing"
    );
    assert_eq!(bucket.size(VARIANT), None);
}

#[test]
fn variants_carry_their_type_and_a_year_of_caching_for_direct_serving() {
    let (bucket, name) = bucket("school-a");
    bucket.put(VARIANT, b"RIFF....WEBP").unwrap();
    // Readable by anyone as the bucket policy for MEDIA_PUBLIC_URL makes them.
    napiatke_bucket::testing::publish_variants(&name, "school-a");
    // Fetched as a browser would from MEDIA_PUBLIC_URL: the key under the prefix.
    let (head, body) = raw("GET", &format!("/{name}/school-a/{VARIANT}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("content-type: image/webp"), "{head}");
    assert!(
        lower.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert_eq!(body, b"RIFF....WEBP");
    // Nothing outside the prefix.
    let (head, _) = raw("GET", &format!("/{name}/{VARIANT}"));
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn prefixes_keep_two_schools_apart_in_one_bucket() {
    let (a, name) = bucket("school-a");
    let b = client(&name, "/school-b/");
    a.put(VARIANT, b"a").unwrap();
    assert_eq!(b.size(VARIANT), None);
    b.put(VARIANT, b"bb").unwrap();
    assert_eq!(a.get(VARIANT).unwrap(), b"a");
    assert_eq!(b.get(VARIANT).unwrap(), b"bb");
    assert!(b.describe().contains(&format!("s3://{name}/school-b")));
}

#[test]
fn names_that_could_leave_the_prefix_are_refused_before_anything_is_sent() {
    let (bucket, name) = bucket("school-a");
    for bad in ["../x.webp", "ab/../../x", "/abs", "a b", "", "ab//x"] {
        let e = bucket.put(bad, b"x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(!bucket.is_unavailable(&e), "a bad name is not an outage");
    }
    assert_eq!(keys(&name), Vec::<String>::new());
}

#[test]
fn read_serves_variants_and_keeps_originals_private() {
    let (bucket, _) = bucket("");
    bucket.put(VARIANT, b"RIFF....WEBP").unwrap();
    bucket
        .put("originals/ab/ab12cd34ef56ab12", b"private")
        .unwrap();
    // A current-thread runtime, as each actix worker has: the request runs on the
    // bucket's own runtime and is awaited from this one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let object = bucket.read(VARIANT).await.unwrap();
        assert_eq!(&object.bytes[..], b"RIFF....WEBP");
        assert_eq!(object.content_type, "image/webp");
        let e = bucket
            .read("originals/ab/ab12cd34ef56ab12")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let e = bucket
            .read("ab/ab12cd34ef56ab12/w640x400-1a2b3c4d.webp")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    });
}

#[test]
fn a_server_that_never_answers_is_an_outage_after_the_deadline_not_a_hang() {
    // Accepts connections and reads, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let bucket = at(format!("http://{addr}"), "silent", Duration::from_secs(1));
    let started = Instant::now();
    let e = bucket.put(VARIANT, b"x").unwrap_err();
    assert!(bucket.is_unavailable(&e), "{e}");
    assert_eq!(bucket.size(VARIANT), None);
    assert!(bucket.check().is_err());
    // Three calls, each bounded by the deadline (plus its margin), not by the OS's
    // TCP timeouts (minutes): this is what the deadline is for.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_closed_port_is_an_outage() {
    let port = closed_port();
    let bucket = at(
        format!("http://127.0.0.1:{port}"),
        "nowhere",
        Duration::from_secs(2),
    );
    let e = bucket.get(VARIANT).unwrap_err();
    assert!(bucket.is_unavailable(&e), "{e}");
    let e = bucket.check().unwrap_err();
    assert!(bucket.is_unavailable(&e), "{e}");
}

#[test]
fn an_https_endpoint_gets_a_tls_client_and_a_clear_outage() {
    // Nothing listens there: what matters is that the TLS stack (rustls on ring,
    // installed by `Bucket::new`) is there to try, instead of a panic for want of a
    // crypto provider.
    let port = closed_port();
    let bucket = at(
        format!("https://127.0.0.1:{port}"),
        "tls",
        Duration::from_secs(2),
    );
    let e = bucket.put(VARIANT, b"x").unwrap_err();
    assert!(bucket.is_unavailable(&e), "{e}");
}
