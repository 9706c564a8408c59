//! Fuzz target (see napiatke-fuzzing; `scripts/fuzz.sh` runs it for longer): whatever
//! the path and conditional headers, /static/ answers one of its statuses (406 when
//! Accept-Encoding refuses every coding it has) and never
//! sends bytes that are not a stored file's (or a range of one).

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use napiatke_assets::{Body, Method, Request, StaticFiles};
use napiatke_fuzzing::{cases, text};

const CSS: &[u8] = b"body{margin:0;color:#123}";

#[test]
fn fuzz_static_paths_serve_only_stored_files() {
    let files: &[(&str, &'static [u8])] = &[
        (
            "staticfiles.json",
            br#"{"version":1,"paths":{"app.css":"app.0123456789ab.css"}}"#,
        ),
        ("app.0123456789ab.css", CSS),
        ("app.css", CSS),
    ];
    let statics = StaticFiles::embedded(files, std::time::SystemTime::UNIX_EPOCH).unwrap();
    let paths = [
        "app.0123456789ab.css",
        "app.css",
        "staticfiles.json",
        "/",
        "..",
        ".",
        "%2e",
        "%2f",
        "\\",
        "\0",
        "app",
        ".css",
        ".br",
        ".gz",
        "css/",
        "a",
        "0123456789ab",
        "?x=1",
        "#",
        "ą",
        " ",
    ];
    let headers = [
        "br",
        "gzip",
        "identity",
        "*",
        ";q=0",
        ",",
        " ",
        "\"",
        "W/",
        "bytes=",
        "0",
        "-",
        "5",
        "99999999999999999999",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "garbage",
        "\u{7f}",
    ];
    let mut served = 0;
    let n = cases("static paths", 3_000, |rng| {
        let path = match rng.u8(..3) {
            0 => files[rng.usize(..files.len())].0.to_owned(),
            _ => text(rng, &paths, 4),
        };
        let header = |rng: &mut napiatke_fuzzing::Rng| rng.bool().then(|| text(rng, &headers, 5));
        let (accept, etag, since, range, if_range) = (
            header(rng),
            header(rng),
            header(rng),
            header(rng),
            header(rng),
        );
        let method = [Method::Get, Method::Head, Method::Other][rng.usize(..3)];
        let res = statics.respond(&Request {
            method,
            path: &path,
            accept_encoding: accept.as_deref(),
            if_none_match: etag.as_deref(),
            if_modified_since: since.as_deref(),
            range: range.as_deref(),
            if_range: if_range.as_deref(),
        });
        assert!(
            [200, 206, 304, 404, 405, 406, 416].contains(&res.status),
            "{path:?}: {}",
            res.status
        );
        if let Body::Bytes(b) = &res.body {
            let stored: Vec<&[u8]> = files.iter().map(|f| f.1).collect();
            assert!(
                stored
                    .iter()
                    .any(|s| s.windows(b.len().max(1)).any(|w| w == &b[..]) || b.is_empty()),
                "{path:?} sent bytes that are no stored file's"
            );
            served += 1;
        }
    });
    assert!(n < 100 || served * 50 >= n, "{served} of {n} served a body");
}
