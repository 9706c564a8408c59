//! Subcommands. Each builds what it needs from [`Settings`] and reports one line per
//! fact; errors come back typed and `main` prints them on one line.

use std::time::{Duration, Instant};

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
    /// Migrate, seed the standard demo set if the database is empty (development,
    /// or NAPIATKE_DEMO=1), print the URL (and the demo logins), and serve the app
    /// (what `napiatke` alone does). Production refuses to start while the demo
    /// accounts are active, unless NAPIATKE_DEMO=1 says it is a demo.
    Serve,
    /// As serve, without serving: migrate, seed if empty, print the figures.
    Demo,
    /// User accounts: list, add, change a password, deactivate. Passwords are read
    /// from a prompt (or the first line of stdin), never from the command line.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
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
    /// Remove replaced photos and avatars: those nothing has shown for IMAGE_GC_GRACE
    /// go with their rows and files (files another image still names are kept).
    /// `serve` does this every IMAGE_GC_INTERVAL.
    Gc {
        /// Seconds a replaced image is kept (default IMAGE_GC_GRACE). Images first
        /// found unlinked by this run are kept at least until the next one.
        #[arg(long)]
        grace: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Every user: id, e-mail, role, active, name.
    List,
    /// Create an active user; the password is asked for.
    Add {
        /// Their e-mail (their login).
        email: String,
        /// admin, tutor or student.
        #[arg(long, value_parser = parse_role)]
        role: napiatke_domain::Role,
        /// First name.
        #[arg(long)]
        first_name: String,
        /// Last name.
        #[arg(long)]
        last_name: String,
    },
    /// Set a user's password (asked for) and end their sessions everywhere.
    Passwd {
        /// Their e-mail.
        email: String,
    },
    /// Stop a user logging in and end their sessions everywhere.
    Deactivate {
        /// Their e-mail.
        email: String,
    },
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
    /// Production with the demo accounts active and NAPIATKE_DEMO unset.
    #[error("the database holds {0} active demo accounts (…@napiatke.local), whose passwords are published: deactivate them (`napiatke users deactivate EMAIL`) or set NAPIATKE_DEMO=1 if this server is a demo")]
    DemoAccounts(i64),
    /// A password could not be read.
    #[error("reading the password: {0}")]
    Password(String),
}

fn parse_role(s: &str) -> Result<napiatke_domain::Role, String> {
    s.to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("{s:?} is not a role: admin, tutor or student"))
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
        Command::Users { command } => users(&settings, command),
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
                zone: settings.time_zone,
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
        Command::Images {
            command: ImagesCommand::Gc { grace },
        } => collect_images(&settings, grace.map(Duration::from_secs)),
        Command::Config => {
            for line in settings.describe() {
                println!("{line}");
            }
            Ok(())
        }
        Command::Stats => {
            let db = open(&settings)?;
            print_stats(&setup::school_figures(
                &db,
                now_minute(),
                settings.time_zone,
            )?);
            Ok(())
        }
    }
}

/// The pool for commands: statements run as long as they need (migrations, seeding).
fn open(settings: &Settings) -> Result<Db, DbError> {
    open_with(settings, None)
}

/// A pool of DATABASE_POOL_SIZE connections on which PostgreSQL cancels a statement
/// past `statement_timeout` (requests: DATABASE_STATEMENT_TIMEOUT).
fn open_with(settings: &Settings, statement_timeout: Option<Duration>) -> Result<Db, DbError> {
    Db::open(
        &settings.database_url,
        PoolOptions {
            max_size: settings.database_pool_size,
            statement_timeout,
            ..PoolOptions::default()
        },
    )
}

/// Migrates, seeds the standard set into an empty database when demo data is
/// wanted (NAPIATKE_DEMO, on in development), prints the figures.
fn demo(settings: &Settings) -> Result<Db, CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    let empty = setup::is_empty(&db)?;
    if empty && !settings.demo {
        println!(
            "the database is empty; no demo data outside development (NAPIATKE_DEMO=1 seeds it); \
             create the first admin with `napiatke users add EMAIL --role admin --first-name ... --last-name ...`"
        );
    } else if empty {
        let options = SeedOptions {
            zone: settings.time_zone,
            ..SeedOptions::new(Scale::Standard, 42, now_minute())
        };
        let report = seed_with_progress(&db, &options)?;
        print_report(&report, db.engine());
    } else {
        println!(
            "database already holds data; not seeding ({})",
            db.url().redacted()
        );
    }
    print_stats(&setup::school_figures(
        &db,
        now_minute(),
        settings.time_zone,
    )?);
    Ok(db)
}

fn serve(settings: &Settings) -> Result<(), CliError> {
    // Migrations and the seed on a pool of their own, without the statement timeout.
    drop(demo(settings)?);
    let db = open_with(settings, Some(settings.database_statement_timeout))?;
    if !settings.demo {
        let active = setup::demo_accounts(&db)?;
        if active > 0 {
            return Err(CliError::DemoAccounts(active));
        }
    }
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
    if settings.demo {
        println!("demo logins:");
        println!("  admin@napiatke.local    / admin");
        println!("  tutor1@napiatke.local   / tutor    (tutor1 … tutor40)");
        println!("  student1@napiatke.local / student  (student1 … student1200)");
    }
    actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        if cache.has_redis() && !cache.subscribed() {
            eprintln!("warning: Redis (REDIS_URL) is not answering; serving from the in-process cache until it does");
        }
        let state = crate::build_state(settings, db, napiatke_services::SystemClock, statics, cache)?;
        if let crate::media::MediaFiles::Bucket(bucket) = &state.media {
            // Asked once, off the start path: a bucket that is down must not keep
            // the pages from being served, only be said early.
            let bucket = bucket.clone();
            actix_web::rt::task::spawn_blocking(move || match bucket.check() {
                Ok(()) => tracing::info!(bucket = bucket.describe(), "media bucket answers"),
                Err(e) => tracing::error!(bucket = bucket.describe(), error = %e, "media bucket does not answer: uploads and /media/ will fail until it does"),
            });
        }
        // Jobs queued in memory by a process that stopped would leave their images
        // PROCESSING (and their pages polling) for ever: claim them once their lease
        // has run out, now and every third of the lease, after renewing the leases
        // of the jobs this process holds (so no other process claims those).
        match state.services.resume_images().await {
            Ok(0) => {}
            Ok(n) => println!("resumed {n} unfinished image jobs"),
            Err(e) => eprintln!("warning: unfinished image jobs not resumed: {e}"),
        }
        if let Some(every) = state.services.image_lease_check() {
            let services = state.services.clone();
            actix_web::rt::spawn(async move {
                let mut tick = actix_web::rt::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = services.renew_image_leases().await {
                        tracing::warn!(error = %e, "renewing image job leases failed; trying again");
                    }
                    if let Err(e) = services.resume_images().await {
                        tracing::warn!(error = %e, "claiming unfinished image jobs failed; trying again");
                    }
                }
            });
        }
        if !settings.image_gc_interval.is_zero() {
            let (services, every) = (state.services.clone(), settings.image_gc_interval);
            actix_web::rt::spawn(async move {
                let mut tick = actix_web::rt::time::interval(every);
                loop {
                    // The first tick is at once: replaced images start their grace
                    // period at start, not an interval later. One process of those
                    // sharing the database collects per interval: the one whose tick
                    // comes first once it is due.
                    tick.tick().await;
                    match services.take_turn("image_gc", every).await {
                        Ok(true) => {
                            if let Err(e) = services.collect_images(None).await {
                                tracing::warn!(error = %e, "collecting replaced images failed; trying again next interval");
                            }
                        }
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "image collection turn not taken; trying again next interval"),
                    }
                }
            });
        }
        crate::app::serve(settings, state).await.map_err(CliError::from)
    })?;
    Ok(())
}

/// `napiatke users ...`, over the cache the app uses (so ended sessions leave every
/// process's cache at once, through Redis when REDIS_URL is set).
fn users(settings: &Settings, command: UsersCommand) -> Result<(), CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        let services = napiatke_services::Services::new(db, napiatke_services::SystemClock)
            .with_cache(cache, &settings.cache_ttls);
        match command {
            UsersCommand::List => {
                for u in services.list_users().await? {
                    println!(
                        "{:>6}  {:<32} {:<8} {:<8} {} {}",
                        u.id.get(),
                        u.email.as_str(),
                        u.role.as_str().to_ascii_lowercase(),
                        if u.is_active { "active" } else { "inactive" },
                        u.first_name,
                        u.last_name
                    );
                }
            }
            UsersCommand::Add {
                email,
                role,
                first_name,
                last_name,
            } => {
                let password = read_password(&format!("password for {email}: "))?;
                let id = services
                    .add_user(&email, &first_name, &last_name, role, &password)
                    .await?;
                println!(
                    "added {email} ({}) as user {}",
                    role.as_str().to_ascii_lowercase(),
                    id.get()
                );
            }
            UsersCommand::Passwd { email } => {
                let password = read_password(&format!("new password for {email}: "))?;
                let ended = services.change_password(&email, &password).await?;
                println!("password changed for {email}; {ended} session(s) ended");
            }
            UsersCommand::Deactivate { email } => {
                let ended = services.deactivate_user(&email).await?;
                println!("{email} deactivated; {ended} session(s) ended");
            }
        }
        Ok(())
    })
}

/// A password from the terminal (not echoed) or, when stdin is not a terminal,
/// its first line: never from the command line, where `ps` and shell history
/// would keep it.
fn read_password(prompt: &str) -> Result<String, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    // stty from coreutils: no terminal crate for one prompt.
    let echo = |on: bool| {
        let _ = std::process::Command::new("stty")
            .arg(if on { "echo" } else { "-echo" })
            .stdin(std::process::Stdio::inherit())
            .status();
    };
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        echo(true);
        eprintln!();
    }
    read.map_err(|e| CliError::Password(e.to_string()))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(CliError::Password("no password given".to_owned()));
    }
    Ok(password)
}

fn collect_images(settings: &Settings, grace: Option<Duration>) -> Result<(), CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    let images = crate::app::image_config(settings)?;
    let report = actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        napiatke_services::Services::new(db, napiatke_services::SystemClock)
            .with_cache(cache, &settings.cache_ttls)
            .with_images(&images)
            .collect_images(grace)
            .await
    });
    let report = report.map_err(|e| CliError::Image(e.to_string()))?;
    println!(
        "collected {} replaced images ({} files, {} bytes); {} newly found unlinked, kept for the grace period",
        report.images, report.files, report.bytes, report.unlinked
    );
    if report.failed > 0 {
        return Err(CliError::Image(format!(
            "{} files could not be removed (see the log)",
            report.failed
        )));
    }
    Ok(())
}

fn reprocess(settings: &Settings) -> Result<(), CliError> {
    let db = open(settings)?;
    setup::migrate(&db)?;
    let bar = progress_bar("reprocessing [{bar:40}] {pos}/{len} images, {eta} left");
    let started = Instant::now();
    let images = crate::app::image_config(settings)?;
    let report = actix_web::rt::System::new().block_on(async {
        let cache = crate::app::connect_cache(settings).await;
        let services = napiatke_services::Services::new(db, napiatke_services::SystemClock)
            .with_cache(cache, &settings.cache_ttls)
            .with_images(&images);
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
