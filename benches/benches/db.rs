//! The db layer on the standard demo set: the queries behind each page, on SQLite
//! and PostgreSQL. Run: `cargo bench -p napiatke-benches --bench db`.

use chrono::{Datelike, Days, NaiveDateTime, Timelike};
use criterion::{criterion_group, criterion_main, Criterion};
use napiatke_db::queries::lessons::{self, LessonFilter};
use napiatke_db::queries::{dashboard, students, PageRequest, Scope};
use napiatke_db::seed::{self, Scale, SeedOptions};
use napiatke_db::testing::TestDb;
use napiatke_db::Engine;

fn now() -> NaiveDateTime {
    let n = chrono::Utc::now().naive_utc();
    n.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(n)
}

fn seeded(engine: Engine) -> Option<TestDb> {
    let t = match TestDb::new(engine) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skipping {engine}: {e}");
            return None;
        }
    };
    let mut c = t.db.get().ok()?;
    seed::run(
        &mut c,
        &SeedOptions::new(Scale::Standard, 42, now()),
        |_| {},
    )
    .ok()?;
    drop(c);
    Some(t)
}

fn queries(c: &mut Criterion) {
    for engine in [Engine::Sqlite, Engine::Postgres] {
        let Some(t) = seeded(engine) else { continue };
        let Ok(mut conn) = t.db.get() else { continue };
        let now = now();
        let monday = now.date() - Days::new(u64::from(now.weekday().num_days_from_monday()));
        let week = (
            monday.and_hms_opt(0, 0, 0).unwrap_or(now),
            (monday + Days::new(7)).and_hms_opt(0, 0, 0).unwrap_or(now),
        );
        let mut g = c.benchmark_group(format!("db/{engine}"));
        g.bench_function("lessons_list_page_1", |b| {
            b.iter(|| lessons::list(&mut conn, &LessonFilter::default(), PageRequest::new(1, 50)))
        });
        g.bench_function("lessons_list_page_200", |b| {
            b.iter(|| {
                lessons::list(
                    &mut conn,
                    &LessonFilter::default(),
                    PageRequest::new(200, 50),
                )
            })
        });
        // The keyset path the list pages use: the page starts once (cached in the
        // app), then a seek and the page's lessons, page 1 and page 200 alike.
        let all = LessonFilter::default();
        g.bench_function("lessons_page_starts", |b| {
            b.iter(|| lessons::page_starts(&mut conn, &all, 50))
        });
        if let Ok((starts, _)) = lessons::page_starts(&mut conn, &all, 50) {
            for page in [1usize, 200] {
                let Some(&from) = starts.get(page - 1) else {
                    continue;
                };
                g.bench_function(format!("lessons_seek_page_{page}"), |b| {
                    b.iter(|| {
                        lessons::page_ids(&mut conn, &all, from, 50)
                            .and_then(|ids| lessons::details(&mut conn, &ids))
                    })
                });
            }
        }
        g.bench_function("students_search_ids_kow", |b| {
            b.iter(|| students::search_ids(&mut conn, Some("kow")))
        });
        g.bench_function("students_list_page_1", |b| {
            b.iter(|| students::list(&mut conn, None, PageRequest::new(1, 50)))
        });
        g.bench_function("students_search", |b| {
            b.iter(|| students::list(&mut conn, Some("kow"), PageRequest::new(1, 50)))
        });
        g.bench_function("calendar_week", |b| {
            b.iter(|| lessons::for_calendar(&mut conn, week.0, week.1, Scope::All))
        });
        g.bench_function("dashboard_global_stats", |b| {
            b.iter(|| dashboard::global_stats(&mut conn, now, Default::default()))
        });
        g.bench_function("upcoming_10", |b| {
            b.iter(|| lessons::upcoming(&mut conn, now, Scope::All, 10))
        });
        g.finish();
    }
}

fn seeding(c: &mut Criterion) {
    let mut g = c.benchmark_group("seed");
    g.sample_size(10);
    g.bench_function("generate_and_write_tiny_sqlite", |b| {
        b.iter(|| {
            let t = TestDb::sqlite().ok();
            t.and_then(|t| {
                let mut conn = t.db.get().ok()?;
                seed::run(&mut conn, &SeedOptions::new(Scale::Tiny, 42, now()), |_| {}).ok()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, queries, seeding);
criterion_main!(benches);
