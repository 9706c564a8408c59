//! Sessions: only a hash is stored, they expire, and logout ends them. Both engines.

// Helpers outside #[test] functions may unwrap too: a panic is the failure report
// (clippy.toml's allow-unwrap-in-tests covers only the test functions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Days, NaiveDate, NaiveDateTime};
use napiatke_db::testing::{TestDb, FIXTURE_PASSWORD};
use napiatke_db::Engine;
use napiatke_services::{FixedClock, Services};

fn now() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2026, 11, 26)
        .and_then(|d| d.and_hms_opt(12, 0, 0))
        .unwrap_or_default()
}

async fn sessions_expire_and_end(engine: Engine) {
    let t = TestDb::new(engine).unwrap();
    t.load_fixture().unwrap();
    let today = Services::new(t.db.clone(), FixedClock(now()));
    let (user, session) = today
        .login("tina@napiatke.local", FIXTURE_PASSWORD, None)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("login failed"));
    assert_eq!(user.first_name, "Tina");
    let loaded = today.sessions().load(&session.token).unwrap();
    assert_eq!(
        loaded.map(|s| (s.user.id, s.csrf_token)),
        Some((user.id, session.csrf_token.clone()))
    );

    // Thirteen days on it still works; fifteen days on it has expired.
    let later = |days| Services::new(t.db.clone(), FixedClock(now() + Days::new(days)));
    assert!(later(13)
        .sessions()
        .load(&session.token)
        .ok()
        .flatten()
        .is_some());
    assert!(later(15)
        .sessions()
        .load(&session.token)
        .ok()
        .flatten()
        .is_none());
    // A login fifteen days on sweeps the expired row.
    let (_, fresh) = later(15)
        .login("sara@napiatke.local", FIXTURE_PASSWORD, None)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("login failed"));
    assert!(
        today
            .sessions()
            .load(&session.token)
            .ok()
            .flatten()
            .is_none(),
        "swept"
    );

    today.sessions().destroy(&fresh.token).unwrap();
    assert!(today.sessions().load(&fresh.token).ok().flatten().is_none());
    // Junk never reaches the database as a lookup.
    assert!(today
        .sessions()
        .load("not-a-token")
        .ok()
        .flatten()
        .is_none());
    assert!(today
        .login("tina@napiatke.local", "wrong", None)
        .await
        .ok()
        .flatten()
        .is_none());
    assert!(today
        .login("not an e-mail", FIXTURE_PASSWORD, None)
        .await
        .ok()
        .flatten()
        .is_none());
}

#[tokio::test]
async fn sessions_expire_and_end_on_sqlite() {
    sessions_expire_and_end(Engine::Sqlite).await;
}

#[tokio::test]
async fn sessions_expire_and_end_on_postgres() {
    sessions_expire_and_end(Engine::Postgres).await;
}
