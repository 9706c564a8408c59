//! Subcommands. Each builds what it needs from [`Settings`] and reports one line per
//! fact; errors come back typed and `main` prints them on one line.

use std::time::Instant;

use chrono::{NaiveDateTime, Timelike, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use napiatke_db::{Db, DbError, Engine, PoolOptions};
use napiatke_services::setup::{self, GlobalStats, Scale, SeedOptions, SeedReport};
use napiatke_services::ServiceError;

use crate::config::{ConfigError, Settings};

/// napiatke: a fast, inspectable tutoring-school web app.
#[derive(Debug, Parser)]
#[command(name = "napiatke", version, about)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate, seed the standard demo set if the database is empty, print the URL
    /// and the demo logins, and serve the app (what `napiatke` alone does).
    Serve,
    /// As serve, without serving: migrate, seed if empty, print the figures.
    Demo,
    /// Apply pending migrations.
    Migrate,
    /// Write the deterministic demo data set (SPEC.md) in one transaction.
    Seed {
        /// tiny, standard or large.
        #[arg(long, default_value = "standard")]
        scale: Scale,
        /// Same seed, same rows.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Replace existing data instead of refusing a non-empty database.
        #[arg(long)]
        force: bool,
        /// Centre the data on this UTC moment (YYYY-MM-DDTHH:MM) instead of now.
        #[arg(long, value_parser = parse_now)]
        now: Option<NaiveDateTime>,
    },
    /// Print the admin dashboard's global figures.
    Stats,
    /// Print the effective settings (secrets hidden).
    Config,
    /// Copy ASSETS_DIR into STATIC_ROOT: hashed names, manifest, .br and .gz.
    Collectstatic,
    /// Image tools.
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ImagesCommand {
    /// Run the upload pipeline on one file: every variant (AVIF, WebP, JPEG at each
    /// width, and the thumbnail) into DIR, then print them and the placeholder as
    /// JSON.
    Optimize {
        /// The image (JPEG, PNG, WebP or GIF, recognised by content).
        file: std::path::PathBuf,
        /// Where to write the variants.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Make every variant of every uploaded image again from its original under
    /// MEDIA_ROOT, with the current options (after changing qualities or sizes, or to
    /// restore lost files). Variants already stored are kept: running it twice makes
    /// nothing the second time. Caches are invalidated (across processes with Redis).
    Reprocess,
}

/// What a subcommand can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// The database could not be opened.
    #[error("{0}")]
    Db(#[from] DbError),
    /// Seeding refused a database that holds data.
    #[error("the database already holds {users} users; rerun with --force to replace all data")]
    NotEmpty {
        /// Users found.
        users: i64,
    },
    /// Migrating, seeding or reading failed.
    #[error("{}", crate::error::chain(.0))]
    Service(ServiceError),
    /// collectstatic failed.
    #[error("collectstatic: {0}")]
    Assets(#[from] napiatke_assets::AssetsError),
    /// The web app could not start.
    #[error("{0}")]
    App(#[from] crate::AppError),
    /// The server could not bind or stopped with an error.
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    /// An image could not be read or processed.
    #[error("{0}")]
    Image(String),
    /// Trace export could not be set up.
    #[error("{0}")]
    Telemetry(#[from] napiatke_telemetry::otel::OtelError),
    /// Error reporting could not be set up.
    #[error("{0}")]
    Report(#[from] napiatke_telemetry::report::ReportError),
}

fn parse_now(s: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .map_err(|e| format!("{s:?} is not YYYY-MM-DDTHH:MM: {e}"))
}

/// Now in UTC to the minute: seeding twice in one minute gives identical rows.
fn now_minute() -> NaiveDateTime {
    let now = Utc::now().naive_utc();
    now.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now)
}

impl From<ServiceError> for CliError {
    fn from(e: ServiceError) -> Self {
        match e.kind() {
            ServiceError::NotEmpty { users } => CliError::NotEmpty { users: *users },
            _ => CliError::Service(e),
        }
    }
}

/// Runs the chosen subcommand.
pub fn run(args: Args) -> Result<(), CliError> {
    let settings = Settings::from_env()?;
    let _log = crate::app::init_logging(&settings)?;
    let _sentry = crate::app::init_reporting(&settings)?;
    match args.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&settings),
        Command::Demo => demo(&settings).map(|_| ()),
        Command::Migrate => {
            let db = open(&settings)?;
            let applied = setup::migrate(&db)?;
            if applied.is_empty() {
                println!("database is up to date ({})", db.url().redacted());
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
            Ok(())
        }
        Command::Seed {
            scale,
            seed: seed_value,
            force,
            now,
        } => {
            let db = open(&settings)?;
            setup::migrate(&db)?;
            let options = SeedOptions {
                force,
                ..SeedOptions::new(scale, seed_value, now.unwrap_or_else(now_minute))
            };
            let report = seed_with_progress(&db, &options)?;
            print_report(&report, db.engine());
            Ok(())
        }
        Command::Collectstatic => {
            let report = napiatke_assets::collect(&settings.assets_dir, &settings.static_root)?;
            println!(
                "collected {} files from {} into {} ({} compressed variants written, {} files unchanged)",
                report.files,
                settings.assets_dir.display(),
                settings.static_root.display(),
                report.compressed,
                report.reused
            );
            Ok(())
        }
        Command::Images {
            command: ImagesCommand::Optimize { file, out },
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| CliError::Image(format!("{}: {e}", file.display())))?;
            let storage = napiatke_images::pipeline::LocalStorage::new(&out);
            let processed = napiatke_images::pipeline::process(
                &bytes,
                &napiatke_images::Limits::default(),
                &napiatke_images::variants::Options::default(),
                &storage,
            )
            .map_err(|e| CliError::Image(format!("{}: {e}", file.display())))?;
            let json = serde_json::to_string_pretty(&processed)
                .map_err(|e| CliError::Image(e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        Command::Images {
            command: ImagesCommand::Reprocess,
        } => reprocess(&settings),
        Command::Config => {
            for line in settings.describe() {
                println!("{line}");
            }
            Ok(())
        }
        Command::Stats => {
            let db = open(&settings)?;
            print_stats(&setup::school_figures(&db, now_minute())?);
            Ok(())
        }
    }
}

fn open(settings: &Settings) -> Result<Db, DbError> {
    Db::open(
        &settings.database_url,
        PoolOptions {
            max_size: settings.database_pool_size,
            ..PoolOptions::default()
        },
    )
}

/// Migrates, seeds the standard set into an empty database, prints the figures.
fn demo(settings: &Settings) -> Result<Db, CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    if setup::is_empty(&db)? {
        let options = SeedOptions::new(Scale::Standard, 42, now_minute());
        let report = seed_with_progress(&db, &options)?;
        print_report(&report, db.engine());
    } else {
        println!(
            "database already holds data; not seeding ({})",
            db.url().redacted()
        );
    }
    print_stats(&setup::school_figures(&db, now_minute())?);
    Ok(db)
}

fn serve(settings: &Settings) -> Result<(), CliError> {
    let db = demo(settings)?;
    // Development collects the sources beside the binary at every start (incremental:
    // only changed files are compressed again); production serves what the deploy's
    // `napiatke collectstatic` wrote.
    let development = settings.environment == crate::config::Environment::Development;
    let statics = crate::app::load_static_files(settings, development)?;
    println!();
    println!(
        "napiatke is serving http://{}  (Ctrl-C stops it)",
        settings.bind
    );
    println!("demo logins:");
    println!("  admin@napiatke.local    / admin");
    println!("  tutor1@napiatke.local   / tutor    (tutor1 … tutor40)");
    println!("  student1@napiatke.local / student  (student1 … student1200)");
    actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        if cache.has_redis() && !cache.subscribed() {
            eprintln!("warning: Redis (REDIS_URL) is not answering; serving from the in-process cache until it does");
        }
        let state = crate::build_state(settings, db, napiatke_services::SystemClock, statics, cache)?;
        // Jobs queued in memory by a process that stopped would leave their images
        // PROCESSING (and their pages polling) for ever: queue them again.
        match state.services.resume_images().await {
            Ok(0) => {}
            Ok(n) => println!("resumed {n} unfinished image jobs"),
            Err(e) => eprintln!("warning: unfinished image jobs not resumed: {e}"),
        }
        crate::app::serve(settings, state).await.map_err(CliError::from)
    })?;
    Ok(())
}

fn reprocess(settings: &Settings) -> Result<(), CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    let bar = progress_bar("reprocessing [{bar:40}] {pos}/{len} images, {eta} left");
    let started = Instant::now();
    let report = actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        let services = napiatke_services::Services::new(db, napiatke_services::SystemClock)
            .with_cache(cache, &settings.cache_ttls)
            .with_images(&crate::app::image_config(settings));
        services
            .reprocess_images(|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })
            .await
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| CliError::Image(e.to_string()))?;
    println!(
        "reprocessed {} images in {:.1} s: {} variants made, {} already stored, {} failed",
        report.images,
        started.elapsed().as_secs_f64(),
        report.made,
        report.reused,
        report.failed
    );
    if report.failed > 0 {
        return Err(CliError::Image(format!(
            "{} images could not be reprocessed (see the log and their rows' error column)",
            report.failed
        )));
    }
    Ok(())
}

/// A progress bar drawn with `template` (a plain bar should the template not parse).
fn progress_bar(template: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

fn seed_with_progress(db: &Db, options: &SeedOptions) -> Result<SeedReport, CliError> {
    let bar = progress_bar("seeding {msg:16} [{bar:40}] {pos}/{len} rows");
    let started = Instant::now();
    let report = setup::seed(db, options, |p| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(p.table);
    });
    bar.finish_and_clear();
    let report = report?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "seeded");
    Ok(report)
}

fn print_report(report: &SeedReport, engine: Engine) {
    let rows: Vec<String> = report
        .rows
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    println!(
        "seeded {engine} in {:.2} s (generate {:.2} s, write {:.2} s): {}",
        (report.generate + report.write).as_secs_f64(),
        report.generate.as_secs_f64(),
        report.write.as_secs_f64(),
        rows.join(", ")
    );
}

fn print_stats(s: &GlobalStats) {
    println!("active students        {}", s.active_students);
    println!("active tutors          {}", s.active_tutors);
    println!(
        "today's lessons        {} (scheduled {}, ongoing {}, completed {})",
        s.today.total(),
        s.today.scheduled,
        s.today.ongoing,
        s.today.completed
    );
    println!("paid revenue, month    {}", s.month_revenue);
}
