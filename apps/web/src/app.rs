//! The app: state, the route table and the middleware order, each in one place.

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::{from_fn, DefaultHeaders};
use actix_web::{web, App, HttpServer};
use napiatke_assets::StaticFiles;
use napiatke_cache::{Cache, CacheConfig};
use napiatke_htmx::{HtmlCache, StaticUrls, Templates};
use napiatke_services::{Clock, ImageConfig, Services};

use crate::config::{Environment, Settings};
use crate::{handlers, media, middleware, AppError};

/// What every handler can reach.
#[derive(Debug)]
pub struct AppState {
    /// The use cases.
    pub services: Services,
    /// The templates (embedded at build time).
    pub templates: Arc<Templates>,
    /// Rendered whole pages, per user (each names its user) and data version: in this
    /// process only, so Redis holds only what is shared.
    pub user_pages: HtmlCache,
    /// Rendered htmx blocks (list rows, the calendar week), shared by every viewer of
    /// a scope and every process (L1 and Redis), keyed by data version.
    pub html: HtmlCache,
    /// The collected static files, held in memory.
    pub static_files: Arc<StaticFiles>,
    /// Secure cookies (production).
    pub secure_cookies: bool,
    /// Send X-Query-Count and Server-Timing.
    pub expose_query_count: bool,
    /// Requests slower than this are logged.
    pub slow_request_threshold: Duration,
    /// Weeks with at least this many lessons are streamed on a miss.
    pub calendar_stream_from: usize,
    /// Per-request telemetry (TELEMETRY): the request's span, accounting, log line,
    /// metrics and timing headers. Off only to measure what they cost.
    pub telemetry: bool,
    /// One in this many requests that went well is logged (REQUEST_LOG_EVERY).
    pub request_log_every: u64,
    /// Request durations, in flight, statements per request (GET /metrics).
    pub metrics: Arc<napiatke_telemetry::metrics::HttpMetrics>,
    /// Where `/media/` finds uploaded images' variants (MEDIA_ROOT, the bucket, or
    /// MEDIA_PUBLIC_URL to redirect to).
    pub media: media::MediaFiles,
    /// The largest upload accepted (IMAGE_MAX_BYTES).
    pub image_max_bytes: usize,
    /// How long a form's body may take to arrive (FORM_BODY_TIMEOUT).
    pub form_body_timeout: std::time::Duration,
    /// The login page lists the demo logins (development only).
    pub demo_logins: bool,
    /// The debug toolbar's history, when DEBUG_TOOLBAR is on (development only).
    pub toolbar: Option<Arc<napiatke_toolbar::Toolbar>>,
}

/// The cache for these settings: L1 + Redis when REDIS_URL is set, L1 alone when
/// not. Never waits on Redis: if it is down, pages are served without it until it
/// answers. Call it on the runtime that will serve (it starts the invalidation
/// listener there).
pub async fn connect_cache(settings: &Settings) -> Cache {
    Cache::new(CacheConfig {
        redis_url: settings.redis_url.as_ref().map(|s| s.expose().to_owned()),
        prefix: settings.cache_prefix.clone(),
        l1_capacity_bytes: settings.cache_l1_bytes,
        keepalive: settings.redis_keepalive,
        ..CacheConfig::default()
    })
    .await
}

/// Builds the state from settings, a database pool, a clock, the static files
/// (loaded from STATIC_ROOT by [`load_static_files`]) and the cache (from
/// [`connect_cache`]).
pub fn build_state(
    settings: &Settings,
    db: napiatke_db::Db,
    clock: impl Clock,
    static_files: Arc<StaticFiles>,
    cache: Cache,
) -> Result<web::Data<AppState>, AppError> {
    let (files, inline) = (Arc::clone(&static_files), Arc::clone(&static_files));
    let urls = StaticUrls {
        resolve: Arc::new(move |name: &str| files.url(name)),
        contents: Some(Arc::new(move |name: &str| inline.contents(name))),
        strict: settings.environment == Environment::Development,
    };
    let zone = settings.time_zone;
    let templates = match &settings.templates_dir {
        Some(dir) => Templates::load_with(dir, Some(urls))?,
        None => Templates::from_sources_with(crate::embedded::TEMPLATES, Some(urls))?,
    };
    let mut templates = templates
        .showing_times_in(&zone.to_string(), Arc::new(move |t| zone.local(t)))
        .keyed_by(&static_files.fingerprint());
    if let Some(url) = &settings.media_public_url {
        templates = templates.linking_media_at(url);
    }
    let bucket = media_bucket(settings)?;
    let media = match (&settings.media_public_url, &bucket) {
        (Some(url), _) => media::MediaFiles::Public(url.clone()),
        (None, Some(bucket)) => media::MediaFiles::Bucket(bucket.clone()),
        (None, None) => media::MediaFiles::Local(napiatke_images::pipeline::LocalStorage::new(
            &settings.media_root,
        )),
    };
    let toolbar = if settings.debug_toolbar {
        templates = templates.describing_renders();
        let info = crate::debug::info(settings, &static_files);
        Some(Arc::new(
            napiatke_toolbar::Toolbar::new(info).map_err(|e| AppError::Internal(e.to_string()))?,
        ))
    } else {
        None
    };
    Ok(web::Data::new(AppState {
        user_pages: HtmlCache::new(
            &Cache::local(CacheConfig {
                l1_capacity_bytes: settings.cache_l1_bytes / 4,
                ..CacheConfig::default()
            }),
            "page",
            settings.cache_ttls.user,
        ),
        html: HtmlCache::new(&cache, "html", settings.cache_ttls.user),
        services: Services::new(db, clock)
            .with_work_queue(settings.database_queue)
            .with_zone(zone)
            .with_cache(cache, &settings.cache_ttls)
            .with_images(&image_config_for(settings, bucket.as_ref())),
        media,
        image_max_bytes: settings.image_max_bytes,
        form_body_timeout: settings.form_body_timeout,
        templates: Arc::new(templates),
        static_files,
        secure_cookies: settings.environment == Environment::Production,
        expose_query_count: settings.expose_query_count,
        telemetry: settings.telemetry,
        request_log_every: settings.request_log_every,
        slow_request_threshold: settings.slow_request_threshold,
        metrics: Arc::new(napiatke_telemetry::metrics::HttpMetrics::default()),
        calendar_stream_from: settings.calendar_stream_from,
        demo_logins: settings.environment == Environment::Development,
        toolbar,
    }))
}

/// The bucket media go to with MEDIA_STORAGE=s3 (`None`: files under MEDIA_ROOT).
/// Only the client is made: nothing is sent until the first upload or `/media/`
/// read, so a bucket that is down delays no start (`serve` asks it once, in the
/// background, and logs the answer).
///
/// # Errors
/// Settings the S3 client cannot use.
pub fn media_bucket(settings: &Settings) -> Result<Option<napiatke_bucket::Bucket>, AppError> {
    let crate::config::MediaStorage::S3(s3) = &settings.media_storage else {
        return Ok(None);
    };
    let bucket = napiatke_bucket::Bucket::new(&napiatke_bucket::BucketConfig {
        endpoint: s3.endpoint.clone(),
        region: s3.region.clone(),
        access_key_id: s3.access_key_id.clone(),
        secret_access_key: s3.secret_access_key.as_ref().map(|s| s.expose().to_owned()),
        prefix: s3.prefix.clone(),
        timeout: s3.timeout,
        ..napiatke_bucket::BucketConfig::new(&s3.bucket)
    })
    .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Some(bucket))
}

/// How uploads are handled, from the settings (with MEDIA_STORAGE=s3, a client of
/// its own for the bucket).
///
/// # Errors
/// Settings the S3 client cannot use.
pub fn image_config(settings: &Settings) -> Result<ImageConfig, AppError> {
    Ok(image_config_for(settings, media_bucket(settings)?.as_ref()))
}

/// [`image_config`] with the bucket already made (`None`: MEDIA_ROOT).
fn image_config_for(settings: &Settings, bucket: Option<&napiatke_bucket::Bucket>) -> ImageConfig {
    ImageConfig {
        storage: bucket.map(|b| Arc::new(b.clone()) as Arc<dyn napiatke_images::pipeline::Storage>),
        limits: napiatke_images::Limits {
            max_bytes: settings.image_max_bytes,
            max_pixels: settings.image_max_pixels,
            ..napiatke_images::Limits::default()
        },
        workers: settings.image_workers,
        queue: settings.image_queue,
        user_queue: settings.image_user_queue,
        user_bytes: settings.image_user_bytes,
        keep_free: settings.media_keep_free,
        gc_grace: settings.image_gc_grace,
        job_lease: settings.image_job_lease,
        ..ImageConfig::new(&settings.media_root)
    }
    .with_target(settings.image_target_quality)
}

/// The route table: every route with its methods (`routing::Table` remembers them
/// for 405/Allow, OPTIONS and the trailing-slash redirect).
pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut t = crate::routing::Table::new(cfg);
    t.get("/", handlers::index)
        .get("/healthz", handlers::healthz)
        .any("/static/{tail:.*}", handlers::static_file)
        .get("/login", handlers::login_form)
        .post("/login", handlers::login)
        .post("/logout", handlers::logout)
        .get("/dashboard/", handlers::dashboard)
        .get("/lessons/", handlers::lessons)
        .get("/lessons/export.csv", handlers::lessons_export)
        .get("/lessons/{id}/", handlers::lesson)
        .post("/lessons/{id}/attendance", handlers::attendance)
        .get("/calendar/", handlers::calendar)
        .get("/students/", handlers::students)
        .get("/admin/cache-stats/", handlers::cache_stats)
        .get("/metrics", handlers::metrics)
        .get("/rooms/", media::rooms)
        .post("/rooms/{id}/photo", media::room_photo)
        .get("/profile/", media::profile)
        .post("/profile/avatar", media::avatar)
        .get("/images/{id}/", media::image_status)
        .any("/media/{tail:.*}", media::media)
        // The debug toolbar's (404 unless DEBUG_TOOLBAR is on).
        .get("/__debug__/history", crate::debug::history)
        .get("/__debug__/requests/{id}", crate::debug::request)
        .get("/__debug__/explain/{id}/{n}", crate::debug::explain);
    t.finish();
}

/// The static file the pages carry inline (base.html): the boot script, which fetches
/// htmx and images.js after the largest paint, so that only the document and the
/// stylesheet come before it. (The stylesheet stays a cached file: inlined, it made
/// every page 2.4 KB bigger on the wire and cost cached pages 4-12 % of their req/s
/// and per-hit pages a third, docs/performance.md.)
pub const INLINED: &str = "js/boot.js";

/// What pages may load and run: scripts only from this origin and the inlined boot
/// script by its hash (no other inline script, no eval: htmx is configured without
/// them), images also as `data:` (the blurred placeholders), no plugins, no `<base>`,
/// forms only to this origin, never framed. No inline style: subject colours are SVG
/// fills, placeholders images of their own, and htmx injects no indicator styles.
#[must_use]
pub fn content_security_policy(files: &StaticFiles, media: &media::MediaFiles) -> String {
    let boot = files
        .csp_hash(INLINED)
        .map(|h| format!(" {h}"))
        .unwrap_or_default();
    // Variants linked at MEDIA_PUBLIC_URL load from its origin.
    let media = match media {
        media::MediaFiles::Public(url) => format!(" {}", origin(url)),
        _ => String::new(),
    };
    format!(
        "default-src 'self'; script-src 'self'{boot}; style-src 'self'; \
         img-src 'self' data:{media}; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an http(s) URL (checked by the settings).
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Features no page of napiatke uses, switched off for it and anything it embeds.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), camera=(), geolocation=(), \
     gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()";

/// The whole app with its middleware, outermost first: static files (answered from
/// memory before anything else runs), accounting (so the span covers everything
/// else), then security headers.
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let csp = content_security_policy(&state.static_files, &state.media);
    App::new()
        .app_data(state)
        .app_data(
            web::FormConfig::default()
                .limit(16 * 1024)
                .error_handler(|e, _| match e {
                    actix_web::error::UrlencodedError::Overflow { size, limit } => {
                        AppError::TooLarge(format!(
                            "the form is {size} bytes; the most this server takes is {limit}"
                        ))
                        .into()
                    }
                    e => AppError::BadRequest(format!("the form could not be read: {e}")).into(),
                }),
        )
        .app_data(
            web::PathConfig::default()
                .error_handler(|_, _| AppError::NotFound("no such page".to_owned()).into()),
        )
        .configure(routes)
        .wrap(
            DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("X-Frame-Options", "DENY"))
                .add(("Referrer-Policy", "same-origin"))
                .add(("Content-Security-Policy", csp))
                .add(("Permissions-Policy", PERMISSIONS_POLICY))
                .add(("Cross-Origin-Opener-Policy", "same-origin")),
        )
        .wrap(from_fn(middleware::front))
}

/// The static files to serve: in development with ASSETS_DIR beside the binary
/// (`collect`), those sources collected into STATIC_ROOT at each start, so edits
/// show; else STATIC_ROOT when it is set; else the files collected when the binary
/// was built, which it carries (it runs from any directory, alone).
pub fn load_static_files(settings: &Settings, collect: bool) -> Result<Arc<StaticFiles>, AppError> {
    let collect = collect && settings.assets_dir.is_dir();
    if collect {
        napiatke_assets::collect(&settings.assets_dir, &settings.static_root)
            .map_err(|e| AppError::Internal(format!("collectstatic: {e}")))?;
    } else if !settings.static_root_set {
        let built =
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(crate::embedded::STATIC_BUILT);
        return StaticFiles::embedded(crate::embedded::STATIC_FILES, built)
            .map(Arc::new)
            .map_err(|e| AppError::Internal(format!("built-in static files: {e}")));
    }
    StaticFiles::load(&settings.static_root)
        .map(Arc::new)
        .map_err(|e| match e {
            napiatke_assets::AssetsError::Manifest { .. } => {
                AppError::Internal(format!("static files: {e}; run `napiatke collectstatic`"))
            }
            e => AppError::Internal(format!("static files: {e}")),
        })
}

/// Threads each actix worker may start for its own blocking work.
pub const BLOCKING_THREADS_PER_WORKER: usize = 4;

/// Serves until stopped.
pub async fn serve(settings: &Settings, state: web::Data<AppState>) -> std::io::Result<()> {
    let workers = settings.workers;
    let metrics = match settings.metrics_bind {
        // /metrics without a login, for a scraper on a private network, and
        // /healthz for the orchestrator: one worker of its own.
        Some(bind) => {
            let state = state.clone();
            let server =
                HttpServer::new(move || App::new().app_data(state.clone()).configure(admin_routes))
                    .workers(1)
                    .bind(bind)?
                    .run();
            Some(server)
        }
        None => None,
    };
    let main = HttpServer::new(move || app(state.clone()))
        // Off by default in actix: any response sent in two writes then stalls about
        // 40 ms on Nagle meeting delayed ACK (DESIGN.md, measured).
        .tcp_nodelay(true)
        .workers(workers)
        // Database work and argon2 run in the services' own bounded pool; what is
        // left on a worker's blocking pool (media files read from disk, a calendar
        // rendered as a stream) needs few threads. actix allows 512 per process.
        .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .bind(settings.bind)?
        .run();
    match metrics {
        Some(metrics) => {
            let (a, b) = futures_util::future::join(main, metrics).await;
            a.and(b)
        }
        None => main.await,
    }
}

/// The routes of the METRICS_BIND listener: `/metrics` without a login and
/// `/healthz`. Its own worker answers them, so a health check there is not queued
/// behind a flood of requests on the main workers (measured: docs/performance.md,
/// "A login flood").
pub fn admin_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(handlers::metrics_scrape))
        .route("/healthz", web::get().to(handlers::healthz));
}

/// Error reporting to SENTRY_DSN when set (see napiatke_telemetry::report). Keep
/// the guard while the process runs.
pub fn init_reporting(
    settings: &Settings,
) -> Result<Option<napiatke_telemetry::report::ClientGuard>, napiatke_telemetry::report::ReportError>
{
    settings
        .sentry_dsn
        .as_ref()
        .filter(|_| settings.telemetry)
        .map(|dsn| {
            napiatke_telemetry::report::init(&napiatke_telemetry::report::SentryOptions {
                dsn: dsn.expose().to_owned(),
                environment: environment_name(settings).to_owned(),
                release: concat!("napiatke@", env!("CARGO_PKG_VERSION")).to_owned(),
                traces_sample_rate: settings.sentry_traces_sample_rate,
            })
        })
        .transpose()
}

fn environment_name(settings: &Settings) -> &'static str {
    match settings.environment {
        crate::config::Environment::Development => "development",
        crate::config::Environment::Production => "production",
    }
}

/// Logging for tests and tools: readable lines on stderr filtered by RUST_LOG
/// (default `warn`), plus the per-request accounting (see [`init_logging`]).
pub fn init_tracing() {
    // Tests and tools: lines may be lost at exit, which is all the guard would add.
    std::mem::forget(napiatke_telemetry::init(
        napiatke_telemetry::Options::default(),
    ));
}

/// The process's logging for these settings: LOG_FORMAT lines on stderr, filtered by
/// RUST_LOG (default: warnings, and one line per request at INFO), slow statements
/// from SLOW_STATEMENT_THRESHOLD, spans to OTEL_EXPORTER_OTLP_ENDPOINT when set.
/// Keep the guard while the process runs (dropping it flushes lines and spans).
pub fn init_logging(
    settings: &Settings,
) -> Result<Option<napiatke_telemetry::LogGuard>, napiatke_telemetry::otel::OtelError> {
    napiatke_services::set_slow_statement_threshold(settings.slow_statement_threshold);
    napiatke_telemetry::init(napiatke_telemetry::Options {
        format: settings.log_format,
        default_filter: format!("warn,{}=info", crate::middleware::REQUEST_LOG_TARGET),
        accounting: settings.telemetry,
        otlp: settings
            .otlp_endpoint
            .as_ref()
            .filter(|_| settings.telemetry)
            .map(|endpoint| napiatke_telemetry::otel::OtlpOptions {
                endpoint: endpoint.clone(),
                service_name: "napiatke".to_owned(),
                service_version: env!("CARGO_PKG_VERSION").to_owned(),
                environment: environment_name(settings).to_owned(),
            }),
    })
}
