//! Test helpers: a fresh, migrated database per test on either engine, and statement
//! counting. Enabled by the `testing` feature; used by this crate's tests and by the
//! app's.
//!
//! PostgreSQL tests clone a template database that is migrated once per migration set
//! (`CREATE DATABASE ... TEMPLATE`), so each test gets its own database in tens of
//! milliseconds and tests run in parallel. The server is `NAPIATKE_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;
use tracing_subscriber::layer::SubscriberExt;

use crate::{migrate, Db, DbError, DbResult, Engine, PoolOptions, STATEMENT_TARGET};

const FINGERPRINT: &str = env!("NAPIATKE_MIGRATIONS_FINGERPRINT");
/// Arbitrary key of the advisory lock that serialises template building.
const LOCK_KEY: i64 = 0x6e61_7069_6174;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The PostgreSQL server tests use.
#[must_use]
pub fn pg_admin_url() -> String {
    std::env::var("NAPIATKE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A migrated, empty database of its own, removed when dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The pool over it.
    pub db: Db,
    /// The URL, for code under test that opens its own connections.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Pg { admin: String, name: String },
}

fn unique_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "napiatke_t_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestDb {
    /// A database on `engine`.
    pub fn new(engine: Engine) -> DbResult<TestDb> {
        match engine {
            Engine::Sqlite => Self::sqlite(),
            Engine::Postgres => Self::postgres(),
        }
    }

    /// A SQLite file in the temporary directory.
    pub fn sqlite() -> DbResult<TestDb> {
        let path = std::env::temp_dir().join(format!("{}.sqlite3", unique_name()));
        let url = format!("sqlite://{}", path.display());
        let db = Db::open(&url, PoolOptions::default())?;
        migrate::run(&mut *db.get()?)?;
        Ok(TestDb {
            db,
            url,
            cleanup: Cleanup::File(path),
        })
    }

    /// A database cloned from the migrated template on the test server.
    pub fn postgres() -> DbResult<TestDb> {
        let admin_url = pg_admin_url();
        let mut admin = PgConnection::establish(&admin_url)
            .map_err(|e| DbError::Unavailable(format!("test PostgreSQL at {admin_url}: {e}")))?;
        let template = format!("napiatke_tmpl_{FINGERPRINT}");
        let name = unique_name();
        admin.batch_execute(&format!("SELECT pg_advisory_lock({LOCK_KEY})"))?;
        let made = ensure_template(&mut admin, &admin_url, &template).and_then(|()| {
            admin
                .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
                .map_err(DbError::from)
        });
        admin.batch_execute(&format!("SELECT pg_advisory_unlock({LOCK_KEY})"))?;
        made?;
        let url = with_database(&admin_url, &name);
        let db = Db::open(&url, PoolOptions::default())?;
        Ok(TestDb {
            db,
            url,
            cleanup: Cleanup::Pg {
                admin: admin_url,
                name,
            },
        })
    }
}

fn ensure_template(admin: &mut PgConnection, admin_url: &str, template: &str) -> DbResult<()> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found = diesel::sql_query(format!(
        "SELECT COUNT(*) AS n FROM pg_database WHERE datname = '{template}'"
    ))
    .get_result(admin)?;
    if found.n > 0 {
        return Ok(());
    }
    // Built under another name and renamed, so a crash never leaves a half-migrated
    // template behind.
    let building = format!("{template}_building");
    // Separate calls: several statements in one string run as one transaction, which
    // CREATE and DROP DATABASE refuse.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {building}"))?;
    {
        let mut conn =
            crate::DatabaseUrl::parse(&with_database(admin_url, &building))?.establish()?;
        migrate::run(&mut conn)?;
    }
    admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}"))?;
    Ok(())
}

/// `admin_url` with its database path replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    match url::Url::parse(admin_url) {
        Ok(mut u) => {
            u.set_path(&format!("/{name}"));
            u.to_string()
        }
        Err(_) => format!("postgres://postgres@127.0.0.1:5432/{name}"),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(p);
                }
            }
            Cleanup::Pg { admin, name } => {
                if let Ok(mut c) = PgConnection::establish(admin) {
                    let _ =
                        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
                }
            }
        }
    }
}

/// The password of every fixture user after [`TestDb::load_fixture`].
pub const FIXTURE_PASSWORD: &str = "password";

/// The hand-built fixture every crate's tests share; expectations in tests are
/// computed by hand from these rows.
///
/// Users: 1 admin; tutors 2 Tina Tutor, 3 Tom Teacher, 8 Ivy Idle (inactive);
/// students 4 Sara Adams (7A), 5 Bob Brown (8B), 6 Cleo Clark (inactive, 7A),
/// 7 Dan Dunn (7A).
///
/// Lessons (now = Thu 2026-11-26 12:00):
/// - 1 Math, Tina, Room A, Fri 11-20 10:00-11:00 COMPLETED: Sara PRESENT, Bob ABSENT
/// - 2 Physics, Tina, no room, Thu 11-26 09:00-10:00 COMPLETED: Sara LATE
/// - 3 Math, Tom, Room A, Thu 11-26 11:30-12:30 ONGOING: Bob, Dan
/// - 4 Math, Tina, Room A, Fri 11-27 10:00-11:00 SCHEDULED: Sara, Bob, Dan
/// - 5 Physics, Tom, no room, Thu 11-26 16:00-17:00 SCHEDULED: Dan
/// - 6 Math, Tina, Room A, Thu 11-19 10:00-11:00 CANCELLED: Sara
/// - 7 Math, Tina, Room A, Thu 12-03 10:00-11:00 SCHEDULED: nobody
///
/// Invoices: Sara 11-01 PAID 100.00, Bob 11-05 PAID 50.50, Sara 10-01 PAID 70.00,
/// Bob 11-10 ISSUED 30.00, Dan 11-15 OVERDUE 20.00, Cleo 11-02 DRAFT 10.00.
pub const FIXTURE_SQL: &str = "
INSERT INTO users (id, email, first_name, last_name, role, is_active, password_hash, created_at) VALUES
 (1, 'admin@napiatke.local', 'Ada', 'Admin', 'ADMIN', TRUE, 'x', '2026-01-01 00:00:00'),
 (2, 'tina@napiatke.local', 'Tina', 'Tutor', 'TUTOR', TRUE, 'x', '2026-01-01 00:00:00'),
 (3, 'tom@napiatke.local', 'Tom', 'Teacher', 'TUTOR', TRUE, 'x', '2026-01-01 00:00:00'),
 (4, 'sara@napiatke.local', 'Sara', 'Adams', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (5, 'bob@napiatke.local', 'Bob', 'Brown', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (6, 'cleo@napiatke.local', 'Cleo', 'Clark', 'STUDENT', FALSE, 'x', '2026-01-01 00:00:00'),
 (7, 'dan@napiatke.local', 'Dan', 'Dunn', 'STUDENT', TRUE, 'x', '2026-01-01 00:00:00'),
 (8, 'ivy@napiatke.local', 'Ivy', 'Idle', 'TUTOR', FALSE, 'x', '2026-01-01 00:00:00');
INSERT INTO tutor_profiles (user_id, bio, hourly_rate) VALUES (2, 'Maths', 12000), (3, 'Physics', 9000), (8, '', 5000);
INSERT INTO student_profiles (user_id, class_name, parent_email) VALUES
 (4, '7A', 'p4@example.com'), (5, '8B', 'p5@example.com'), (6, '7A', 'p6@example.com'), (7, '7A', 'p7@example.com');
INSERT INTO subjects (id, name, color, level) VALUES (1, 'Math', '#112233', 'secondary'), (2, 'Physics', '#AABBCC', 'matura');
INSERT INTO rooms (id, name, capacity) VALUES (1, 'Room A', 10);
INSERT INTO lessons (id, title, start_time, end_time, status, tutor_id, subject_id, room_id) VALUES
 (1, 'Math 1', '2026-11-20 10:00:00', '2026-11-20 11:00:00', 'COMPLETED', 2, 1, 1),
 (2, 'Physics 2', '2026-11-26 09:00:00', '2026-11-26 10:00:00', 'COMPLETED', 2, 2, NULL),
 (3, 'Math 3', '2026-11-26 11:30:00', '2026-11-26 12:30:00', 'ONGOING', 3, 1, 1),
 (4, 'Math 4', '2026-11-27 10:00:00', '2026-11-27 11:00:00', 'SCHEDULED', 2, 1, 1),
 (5, 'Physics 5', '2026-11-26 16:00:00', '2026-11-26 17:00:00', 'SCHEDULED', 3, 2, NULL),
 (6, 'Math 6', '2026-11-19 10:00:00', '2026-11-19 11:00:00', 'CANCELLED', 2, 1, 1),
 (7, 'Math 7', '2026-12-03 10:00:00', '2026-12-03 11:00:00', 'SCHEDULED', 2, 1, 1);
INSERT INTO lesson_students (id, lesson_id, student_id) VALUES
 (1, 1, 4), (2, 1, 5), (3, 2, 4), (4, 3, 5), (5, 3, 7), (6, 4, 4), (7, 4, 5), (8, 4, 7), (9, 5, 7), (10, 6, 4);
INSERT INTO attendance (id, lesson_student_id, status, marked_at) VALUES
 (1, 1, 'PRESENT', '2026-11-20 11:00:00'), (2, 2, 'ABSENT', '2026-11-20 11:00:00'), (3, 3, 'LATE', '2026-11-26 10:00:00');
INSERT INTO invoices (id, student_id, issued_date, status, total_amount) VALUES
 (1, 4, '2026-11-01', 'PAID', 10000), (2, 5, '2026-11-05', 'PAID', 5050), (3, 4, '2026-10-01', 'PAID', 7000),
 (4, 5, '2026-11-10', 'ISSUED', 3000), (5, 7, '2026-11-15', 'OVERDUE', 2000), (6, 6, '2026-11-02', 'DRAFT', 1000);
";

impl TestDb {
    /// Loads [`FIXTURE_SQL`] and gives every user the password [`FIXTURE_PASSWORD`].
    pub fn load_fixture(&self) -> DbResult<()> {
        let mut conn = self.db.get()?;
        conn.batch_execute(FIXTURE_SQL)?;
        let hash = crate::seed::hash_password(FIXTURE_PASSWORD, b"fixture-salt-16b")?;
        diesel::update(crate::schema::users::table)
            .set(crate::schema::users::password_hash.eq(hash))
            .execute(&mut *conn)?;
        crate::queries::students::rebuild_search(&mut conn)?;
        if let crate::DbConn::Pg(pg) = &mut *conn {
            crate::seed::reset_identities(pg)?;
        }
        Ok(())
    }

    /// Runs `sql` (statements separated by `;`): for tests that break the database
    /// on purpose.
    pub fn execute(&self, sql: &str) -> DbResult<()> {
        self.db.get()?.batch_execute(sql)?;
        Ok(())
    }
}

/// Runs `f` and returns what it returned with the SQL of every statement it executed
/// on this thread (through [`crate::StatementTracer`]), in order.
///
/// ```
/// use napiatke_db::testing::count_statements;
/// let db = napiatke_db::Db::open("sqlite::memory:", Default::default())?;
/// let mut conn = db.get()?;
/// let (_, sql) = count_statements(|| napiatke_db::migrate::applied(&mut conn));
/// assert!(!sql.is_empty());
/// # Ok::<(), napiatke_db::DbError>(())
/// ```
pub fn count_statements<R>(f: impl FnOnce() -> R) -> (R, Vec<String>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&seen)));
    let out = tracing::subscriber::with_default(subscriber, f);
    let sql = seen.lock().map(|v| v.clone()).unwrap_or_default();
    (out, sql)
}

struct Collector(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collector {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != STATEMENT_TARGET {
            return;
        }
        let mut visitor = SqlField(None);
        event.record(&mut visitor);
        if let Ok(mut seen) = self.0.lock() {
            seen.push(visitor.0.unwrap_or_default());
        }
    }
}

struct SqlField(Option<String>);

impl tracing::field::Visit for SqlField {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "sql" {
            self.0 = Some(format!("{value:?}"));
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "sql" {
            self.0 = Some(value.to_owned());
        }
    }
}

/// Generates one test per engine from one body: `mod sqlite` and `mod postgres`, each
/// with a test per `name => body` line calling `body(Engine::…)`. Synchronous bodies
/// by default; with `#[attribute] async` first, async bodies under that test
/// attribute (`#[tokio::test]`, `#[actix_web::test]`...), awaited.
///
/// ```
/// use napiatke_db::{both_engines, Engine};
///
/// fn named(engine: Engine) {
///     assert!(["sqlite", "postgres"].contains(&engine.to_string().as_str()));
/// }
/// both_engines! {
///     names_each_engine => named;
/// }
/// // Async bodies: `both_engines! { #[tokio::test] async  name => body; }`
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! both_engines {
    // `super::` so a test may bear its body's name.
    (#[$test:meta] async $($name:ident => $body:ident;)+) => {
        mod sqlite {
            $(#[$test] async fn $name() { super::$body($crate::Engine::Sqlite).await })+
        }
        mod postgres {
            $(#[$test] async fn $name() { super::$body($crate::Engine::Postgres).await })+
        }
    };
    ($($name:ident => $body:expr;)+) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(#[test] fn $name() { ($body)($crate::Engine::Sqlite) })+
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(#[test] fn $name() { ($body)($crate::Engine::Postgres) })+
        }
    };
}
