//! The `napiatke` binary's subcommands as a person runs them: output, exit codes,
//! one-line errors, on SQLite and PostgreSQL.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use napiatke_db::testing::TestDb;
use napiatke_db::Engine;

fn napiatke(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running napiatke: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn database(engine: Engine) -> TestDb {
    TestDb::new(engine).unwrap()
}

const NOW: &str = "2026-11-26T12:00";

fn seed_stats_and_refusal(engine: Engine) {
    let t = database(engine);
    let out = napiatke(&t.url, &["seed", "--scale", "tiny", "--now", NOW]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("seeded {engine} in ")),
        "{stdout}"
    );
    assert!(
        stdout.contains("users 28,") && stdout.contains("lessons 240,"),
        "{stdout}"
    );

    let again = napiatke(&t.url, &["seed", "--scale", "tiny", "--now", NOW]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        text(&again.stderr),
        "error: the database already holds 28 users; rerun with --force to replace all data\n"
    );

    let forced = napiatke(
        &t.url,
        &[
            "seed", "--scale", "tiny", "--seed", "7", "--force", "--now", NOW,
        ],
    );
    assert!(forced.status.success(), "{}", text(&forced.stderr));

    let stats = napiatke(&t.url, &["stats"]);
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let stdout = text(&stats.stdout);
    assert!(stdout.contains("active students        24\n"), "{stdout}");
    assert!(stdout.contains("active tutors          3\n"), "{stdout}");

    let migrate = napiatke(&t.url, &["migrate"]);
    assert!(
        text(&migrate.stdout).starts_with("database is up to date"),
        "{}",
        text(&migrate.stdout)
    );
}

#[test]
fn seed_stats_and_refusal_on_sqlite() {
    seed_stats_and_refusal(Engine::Sqlite);
}

#[test]
fn seed_stats_and_refusal_on_postgres() {
    seed_stats_and_refusal(Engine::Postgres);
}

#[test]
fn migrate_reports_what_it_applied() {
    let dir = std::env::temp_dir().join(format!("napiatke_cli_{}", std::process::id()));
    let url = format!("sqlite://{}/fresh/db.sqlite3", dir.display());
    let out = napiatke(&url, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("applied ") && stdout.contains("20261126000001, 20261126000002"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_database_url_is_one_line_naming_the_variable() {
    let out = napiatke("mysql://db.example/school", &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: configuration: DATABASE_URL: "),
        "{err}"
    );
    assert!(err.contains("unsupported scheme \"mysql\""), "{err}");
}

#[test]
fn an_unreachable_database_fails_fast_with_the_cause() {
    let started = Instant::now();
    let out = napiatke("postgres://postgres:secret@127.0.0.1:1/none", &["migrate"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: database unavailable: "), "{err}");
    assert!(err.contains("Connection refused"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn bad_settings_stop_start_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .arg("config")
        .env("CACHE_TTL_USER", "soon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: configuration: CACHE_TTL_USER: \"soon\" is invalid: expected a whole number of seconds from 1 to 2592000 (30 days)\n"
    );
}

#[test]
fn images_optimize_writes_the_variants_and_prints_json() {
    let dir = std::env::temp_dir().join(format!("napiatke-cli-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A tiny PNG (a 1×1 red pixel), saved under a misleading name.
    let png: &[u8] = &[
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90,
        0x77, 0x53, 0xDE, 0x00, 0x00, 0x00, 0x0C, 0x49, 0x44, 0x41, 0x54, 0x08, 0xD7, 0x63, 0xF8,
        0xCF, 0xC0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xDD, 0x8D, 0xB0, 0x00, 0x00, 0x00,
        0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    let file = dir.join("photo.jpg");
    std::fs::write(&file, png).unwrap();
    let out_dir = dir.join("out");
    let file_arg = file.display().to_string();
    let out_arg = out_dir.display().to_string();
    let out = napiatke(
        "sqlite::memory:",
        &["images", "optimize", &file_arg, "--out", &out_arg],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    assert_eq!(json["width"], 1);
    let variants = json["variants"].as_array().cloned().unwrap_or_default();
    // AVIF's container alone outweighs a 1×1 WebP: it is judged, and left out.
    assert_eq!(
        variants.len(),
        4,
        "one size and the thumbnail, WebP and JPEG each: {variants:?}"
    );
    assert!(
        json["skipped"][0]["format"]
            .as_str()
            .is_some_and(|f| f.eq_ignore_ascii_case("avif")),
        "{}",
        json["skipped"]
    );
    for v in &variants {
        let path = out_dir.join(v["path"].as_str().unwrap_or_default());
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert_eq!(Some(len), v["bytes"].as_u64(), "{}", path.display());
    }
    assert!(json["placeholder"]
        .as_str()
        .is_some_and(|p| p.starts_with("data:image/webp;base64,")));

    let junk = dir.join("notes.png");
    std::fs::write(&junk, b"just text").unwrap();
    let junk_arg = junk.display().to_string();
    let bad = napiatke(
        "sqlite::memory:",
        &["images", "optimize", &junk_arg, "--out", &out_arg],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("is not a JPEG, PNG, WebP or GIF image"),
        "{}",
        text(&bad.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn images_reprocess(engine: Engine) {
    use napiatke_db::queries::images::{create, NewImage, Owner};
    let t = database(engine);
    t.load_fixture().unwrap();
    let media = std::env::temp_dir().join(format!(
        "napiatke-cli-reprocess-{engine}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&media);
    let images = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_napiatke"))
            .arg("images")
            .args(args)
            .env("DATABASE_URL", &t.url)
            .env("MEDIA_ROOT", &media)
            .env_remove("RUST_LOG")
            .env_remove("REDIS_URL")
            .output()
            .unwrap_or_else(|e| panic!("running napiatke: {e}"))
    };
    let run = || images(&["reprocess"]);
    let empty = run();
    assert!(empty.status.success(), "{}", text(&empty.stderr));
    assert!(text(&empty.stdout).starts_with("reprocessed 0 images in "));

    // One image whose original is stored, one whose original is lost.
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(400, 300, |x, y| {
        image::Rgb([x as u8, y as u8, 9])
    }))
    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
    .unwrap();
    std::fs::create_dir_all(media.join("originals/aa")).unwrap();
    std::fs::write(media.join("originals/aa/aa00000000000001"), &png).unwrap();
    let mut conn = t.db.get().unwrap();
    let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default();
    for (original, owner) in [
        (
            "originals/aa/aa00000000000001",
            Owner::User(napiatke_domain::UserId(4)),
        ),
        (
            "originals/bb/bb00000000000002",
            Owner::User(napiatke_domain::UserId(5)),
        ),
    ] {
        let new = NewImage {
            source: &original[13..],
            original,
            width: 400,
            height: 300,
            has_alpha: false,
            placeholder: "data:image/webp;base64,",
            uploaded_by: None,
            bytes: 0,
            lease: None,
        };
        create(&mut conn, &new, owner, now).unwrap();
    }
    drop(conn);
    let out = run();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    // 320 wide and the 300 thumbnail, three formats each.
    assert!(stdout.starts_with("reprocessed 2 images in "), "{stdout}");
    assert!(
        stdout.contains("6 variants made, 0 already stored, 1 failed"),
        "{stdout}"
    );
    assert!(text(&out.stderr).contains("1 images could not be reprocessed"));
    let mut conn = t.db.get().unwrap();
    let lost = napiatke_db::queries::images::get(&mut conn, napiatke_domain::ImageId(2)).unwrap();
    assert_eq!(lost.status, napiatke_domain::ImageStatus::Failed);
    let kept = napiatke_db::queries::images::get(&mut conn, napiatke_domain::ImageId(1)).unwrap();
    assert_eq!(kept.status, napiatke_domain::ImageStatus::Ready);
    assert_eq!(kept.variants.len(), 6);
    assert!(kept.variants.iter().all(|v| media.join(&v.path).is_file()));
    // Each variant's searched quality and its score (issue 16) are on the row (this
    // synthetic gradient's sharp wrap-around edges keep lossy WebP under 80 even at
    // quality 100: the score says so; tests/quality.rs holds photographs to the target).
    assert!(
        kept.variants
            .iter()
            .all(|v| v.quality.is_some() && v.score.is_some_and(|s| s > 50.0)),
        "{:?}",
        kept.variants
    );
    drop(conn);
    // Again: nothing to make, and what the row said of the variants found stored
    // (their quality and score) is kept, not blanked.
    let again = text(&run().stdout);
    assert!(
        again.contains("0 variants made, 6 already stored"),
        "{again}"
    );
    let mut conn = t.db.get().unwrap();
    let after = napiatke_db::queries::images::get(&mut conn, napiatke_domain::ImageId(1)).unwrap();
    assert_eq!(after.variants, kept.variants);
    drop(conn);

    // Sara's avatar replaced: `images gc` starts its grace period, then (with no
    // grace) removes it with its original and six variants; Bob's stays.
    let mut conn = t.db.get().unwrap();
    let new = NewImage {
        source: "cc00000000000003",
        original: "originals/cc/cc00000000000003",
        width: 400,
        height: 300,
        has_alpha: false,
        placeholder: "data:image/webp;base64,",
        uploaded_by: None,
        bytes: 0,
        lease: None,
    };
    let third = create(
        &mut conn,
        &new,
        Owner::User(napiatke_domain::UserId(4)),
        now,
    )
    .unwrap();
    let gc = || images(&["gc", "--grace", "0"]);
    let first = gc();
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(
        text(&first.stdout).trim(),
        "collected 0 replaced images (0 files, 0 bytes); 1 newly found unlinked, kept for the grace period"
    );
    // While the new one is PROCESSING the old one is kept (it is shown again should
    // the new one fail); once the new one is done, it goes.
    let processing = text(&gc().stdout);
    assert!(
        processing.starts_with("collected 0 replaced images"),
        "{processing}"
    );
    napiatke_db::queries::images::set_variants(
        &mut conn,
        third.id,
        &[],
        napiatke_domain::ImageStatus::Ready,
        None,
        now,
    )
    .unwrap();
    drop(conn);
    let second = text(&gc().stdout);
    assert!(
        second.starts_with("collected 1 replaced images (7 files, "),
        "{second}"
    );
    assert!(!media.join("originals/aa").exists());
    assert!(kept.variants.iter().all(|v| !media.join(&v.path).exists()));
    let mut conn = t.db.get().unwrap();
    assert!(napiatke_db::queries::images::get(&mut conn, napiatke_domain::ImageId(1)).is_err());
    assert!(napiatke_db::queries::images::get(&mut conn, napiatke_domain::ImageId(2)).is_ok());
    drop(conn);
    let _ = std::fs::remove_dir_all(&media);
}

#[test]
fn images_reprocess_on_sqlite() {
    images_reprocess(Engine::Sqlite);
}

#[test]
fn images_reprocess_on_postgres() {
    images_reprocess(Engine::Postgres);
}

/// `napiatke` with extra environment and `stdin` piped in.
fn napiatke_with(database_url: &str, env: &[(&str, &str)], stdin: &str, args: &[&str]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running napiatke: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    child.wait_with_output().unwrap()
}

/// Users from the command line; a deactivation or a new password ends the user's
/// sessions in a running app at once (its cache told through Redis); production
/// refuses to start with the demo accounts active.
async fn users(engine: Engine) {
    use crate::common::{cache_prefix, login, redis_url, send, state_with};
    use actix_web::http::StatusCode;
    let t = database(engine);
    let seeded = napiatke(&t.url, &["seed", "--scale", "tiny", "--now", NOW]);
    assert!(seeded.status.success(), "{}", text(&seeded.stderr));
    let prefix = cache_prefix();
    let env = [("REDIS_URL", redis_url()), ("CACHE_PREFIX", prefix.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    let add = [
        "users",
        "add",
        "head@school.example",
        "--role",
        "admin",
        "--first-name",
        "Ada",
        "--last-name",
        "Head",
    ];
    let added = napiatke_with(&t.url, &env, "correct horse battery\n", &add);
    assert!(added.status.success(), "{}", text(&added.stderr));
    assert!(text(&added.stdout).starts_with("added head@school.example (admin) as user "));
    let again = napiatke_with(&t.url, &env, "correct horse battery\n", &add);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("a user with the e-mail head@school.example exists"),
        "{}",
        text(&again.stderr)
    );
    let short = napiatke_with(
        &t.url,
        &env,
        "short\n",
        &["users", "passwd", "head@school.example"],
    );
    assert_eq!(short.status.code(), Some(1));
    assert!(
        text(&short.stderr).contains("at least 10 characters"),
        "{}",
        text(&short.stderr)
    );
    let list = napiatke(&t.url, &["users", "list"]);
    assert!(
        text(&list.stdout)
            .lines()
            .any(|l| l.contains("head@school.example")
                && l.contains("admin")
                && l.contains(" active")),
        "{}",
        text(&list.stdout)
    );
    let unknown = napiatke_with(
        &t.url,
        &env,
        "",
        &["users", "deactivate", "nobody@school.example"],
    );
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("no user has the e-mail nobody@school.example"));

    // A running app (its own process's cache, shared Redis under the same prefix).
    let state = state_with(&t, false, &prefix, Some(redis_url())).await;
    let app = actix_web::test::init_service(napiatke_web::app::app(state)).await;
    let (_, student) = login(&app, "student1@napiatke.local", "student").await;
    assert_eq!(
        send(&app, student.get("/dashboard/")).await.status,
        StatusCode::OK
    );
    let (_, tutor) = login(&app, "tutor1@napiatke.local", "tutor").await;
    assert_eq!(
        send(&app, tutor.get("/dashboard/")).await.status,
        StatusCode::OK
    );

    let off = napiatke_with(
        &t.url,
        &env,
        "",
        &["users", "deactivate", "student1@napiatke.local"],
    );
    assert!(off.status.success(), "{}", text(&off.stderr));
    assert!(
        text(&off.stdout).contains("1 session(s) ended"),
        "{}",
        text(&off.stdout)
    );
    let changed = napiatke_with(
        &t.url,
        &env,
        "a new long password\n",
        &["users", "passwd", "tutor1@napiatke.local"],
    );
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    // The app hears of it through Redis: within moments, not a TTL.
    let started = Instant::now();
    loop {
        let s = send(&app, student.get("/dashboard/")).await.status;
        let t2 = send(&app, tutor.get("/dashboard/")).await.status;
        if s == StatusCode::SEE_OTHER && t2 == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "sessions still live: {s} {t2}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    let (old, _) = login(&app, "tutor1@napiatke.local", "tutor").await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let (new, _) = login(&app, "tutor1@napiatke.local", "a new long password").await;
    assert_eq!(new.status, StatusCode::SEE_OTHER);
    let (inactive, _) = login(&app, "student1@napiatke.local", "student").await;
    assert_eq!(inactive.status, StatusCode::UNAUTHORIZED);

    // Production will not serve published passwords unless told it is a demo.
    let refused = napiatke_with(
        &t.url,
        &[("NAPIATKE_ENV", "production"), ("BIND", "127.0.0.1:1")],
        "",
        &["serve"],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("active demo accounts"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!text(&refused.stdout).contains("demo logins"));
}

#[actix_web::test]
async fn users_from_the_cli_on_sqlite() {
    users(Engine::Sqlite).await;
}

#[actix_web::test]
async fn users_from_the_cli_on_postgres() {
    users(Engine::Postgres).await;
}

/// An empty database in production is not seeded, and says how to add an admin.
#[test]
fn production_does_not_seed() {
    let t = database(Engine::Sqlite);
    let out = napiatke_with(&t.url, &[("NAPIATKE_ENV", "production")], "", &["demo"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no demo data outside development"),
        "{}",
        text(&out.stdout)
    );
    let list = napiatke(&t.url, &["users", "list"]);
    assert_eq!(text(&list.stdout), "");
}

/// One plain HTTP/1.0 GET over a socket: the status line and headers, and the body.
fn http_get(port: u16, path: &str, extra: &str) -> Option<(String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{extra}\r\n").ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        text(&raw[..split]).to_lowercase(),
        raw[split + 4..].to_vec(),
    ))
}

/// Run from an empty directory, in production, with no static folder, templates or
/// assets beside it, the binary serves its pages and its own static files, hashed
/// and compressed.
#[test]
fn the_binary_serves_alone_from_any_directory() {
    let dir = std::env::temp_dir().join(format!(
        "napiatke-alone-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("db.sqlite3").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_napiatke"))
        .arg("serve")
        .current_dir(&dir)
        .env("DATABASE_URL", &url)
        .env("NAPIATKE_ENV", "production")
        .env("BIND", format!("127.0.0.1:{port}"))
        .env("MEDIA_ROOT", dir.join("media"))
        .env("RUST_LOG", "error")
        .env_remove("STATIC_ROOT")
        .env_remove("ASSETS_DIR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut health = None;
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(r) = http_get(port, "/healthz", "") {
            health = Some(r);
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("napiatke serve exited with {status}: {err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let page = http_get(port, "/login", "");
    let css = page.as_ref().and_then(|(_, body)| {
        let body = text(body);
        // The stylesheet is inline; the scripts the boot script fetches are hashed.
        let at = body.find("/static/js/htmx.min.")?;
        Some(body[at..].split('"').next()?.to_owned())
    });
    let sheet = css
        .as_deref()
        .and_then(|css| http_get(port, css, "Accept-Encoding: br\r\n"));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let (head, _) = health.expect("the server answered within 30 s");
    assert!(head.starts_with("http/1.0 200"), "{head}");
    let (head, _) = page.expect("the login page");
    assert!(head.starts_with("http/1.0 200"), "{head}");
    let css = css.expect("the page names htmx");
    assert!(css.ends_with(".js"), "a hashed name: {css}");
    let (head, body) = sheet.expect("htmx");
    assert!(head.starts_with("http/1.0 200"), "{head}");
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(
        head.contains("cache-control: max-age=31536000, immutable"),
        "{head}"
    );
    assert!(!body.is_empty());
}
