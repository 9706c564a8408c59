//! Settings: built once at start from the environment over working defaults, passed
//! down explicitly. Libraries never read the environment themselves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Whether this is a developer's machine or a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Debug aids on (X-Query-Count, the debug toolbar, template errors shown).
    Development,
    /// Secure cookies, no internals in responses.
    Production,
}

/// The longest TTL class accepted: beyond a month a cache entry is a stale copy.
const MAX_TTL_SECS: u64 = 30 * 24 * 3600;

/// A value that must never be printed (a DSN with a key in it, say).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// Whether a value is set (without showing it).
    pub fn describe(&self) -> &'static str {
        if self.0.is_empty() {
            "(empty)"
        } else {
            "(set, hidden)"
        }
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

pub use napiatke_services::CacheTtls;

/// Where uploaded images' files are kept (MEDIA_STORAGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaStorage {
    /// `local` (the default): files under MEDIA_ROOT, one machine's disk (or a
    /// shared file system mounted there).
    Local,
    /// `s3`: an S3-compatible bucket every process shares (MEDIA_S3_*).
    S3(S3Settings),
}

/// The bucket for MEDIA_STORAGE=s3. Unset fields come from the usual AWS
/// environment (AWS_ACCESS_KEY_ID, AWS_REGION...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// MEDIA_S3_BUCKET (required).
    pub bucket: String,
    /// MEDIA_S3_ENDPOINT: the S3 API's URL, for a service other than AWS.
    pub endpoint: Option<String>,
    /// MEDIA_S3_REGION.
    pub region: Option<String>,
    /// MEDIA_S3_ACCESS_KEY_ID.
    pub access_key_id: Option<String>,
    /// MEDIA_S3_SECRET_ACCESS_KEY.
    pub secret_access_key: Option<Secret>,
    /// MEDIA_S3_PREFIX: prepended to every object key ("" for none).
    pub prefix: String,
    /// MEDIA_S3_TIMEOUT (milliseconds, default 10000): longest a request to the
    /// bucket may take, retries included.
    pub timeout: Duration,
}

/// Every setting, with its environment variable in docs/operations.md.
#[derive(Debug, Clone)]
pub struct Settings {
    /// BIND: where to listen.
    pub bind: SocketAddr,
    /// DATABASE_URL: `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// DATABASE_POOL_SIZE: most connections per process, and as many slots for
    /// blocking work (each a thread; see napiatke_services::work).
    pub database_pool_size: u32,
    /// DATABASE_QUEUE: requests that may wait for a database slot at once (default
    /// 16 × DATABASE_POOL_SIZE); the next get 503 with Retry-After at once.
    pub database_queue: usize,
    /// DATABASE_STATEMENT_TIMEOUT (milliseconds, default 5000): PostgreSQL cancels
    /// a request's statement that runs longer (migrations and seeding have none).
    pub database_statement_timeout: Duration,
    /// WORKERS: actix worker threads (default one per core this process may run on:
    /// its CPU affinity, so taskset and container CPU sets count).
    pub workers: usize,
    /// REDIS_URL: the shared cache tier; unset means in-process only.
    pub redis_url: Option<Secret>,
    /// NAPIATKE_ENV.
    pub environment: Environment,
    /// STATIC_ROOT: where collectstatic writes (default `staticfiles`). The binary
    /// carries its own collected static files; /static/ serves from this folder
    /// instead only when STATIC_ROOT is set, or in development where ASSETS_DIR is
    /// beside the binary (collected at each start, so edits show).
    pub static_root: PathBuf,
    /// Whether STATIC_ROOT was set (serve from it rather than the built-in files).
    pub static_root_set: bool,
    /// TEMPLATES_DIR: read the templates from this folder at start instead of the
    /// copies built into the binary (development: edit, restart, no rebuild).
    pub templates_dir: Option<PathBuf>,
    /// ASSETS_DIR: the source static files collectstatic reads.
    pub assets_dir: PathBuf,
    /// MEDIA_ROOT: uploaded images and their variants (MEDIA_STORAGE=local).
    pub media_root: PathBuf,
    /// MEDIA_STORAGE: `local` (default) or `s3`.
    pub media_storage: MediaStorage,
    /// MEDIA_PUBLIC_URL: where browsers fetch variants straight from the bucket or
    /// a CDN (`https://media.example.org/school/`); pages link there and `/media/`
    /// redirects there. Unset: napiatke serves `/media/` itself.
    pub media_public_url: Option<String>,
    /// SENTRY_DSN: error reporting; unset means off.
    pub sentry_dsn: Option<Secret>,
    /// OTEL_EXPORTER_OTLP_ENDPOINT: trace export; unset means off.
    pub otlp_endpoint: Option<String>,
    /// EXPOSE_QUERY_COUNT: send X-Query-Count and Server-Timing (default: on in
    /// development, off in production).
    pub expose_query_count: bool,
    /// NAPIATKE_DEMO: demo data wanted (default: on in development). Serve seeds an
    /// empty database only then, and production refuses to start while the demo
    /// accounts (published passwords) are active unless it is set.
    pub demo: bool,
    /// DEBUG_TOOLBAR: the debug toolbar on full pages and its routes under
    /// /__debug__/ (default: on in development; refused in production, where it
    /// would show every visitor everyone's requests).
    pub debug_toolbar: bool,
    /// TIME_ZONE: the school's IANA time zone (default Europe/Warsaw): times are
    /// shown, and days, weeks and months counted, in it.
    pub time_zone: napiatke_domain::Zone,
    /// SLOW_REQUEST_THRESHOLD (milliseconds): requests slower than this are logged.
    pub slow_request_threshold: Duration,
    /// SLOW_STATEMENT_THRESHOLD (milliseconds): statements slower than this are logged
    /// with their SQL.
    pub slow_statement_threshold: Duration,
    /// TELEMETRY (on | off, default on): off leaves out every request's span,
    /// accounting, log line, metrics and timing headers, and SENTRY_DSN and
    /// OTEL_EXPORTER_OTLP_ENDPOINT are ignored; warnings and errors are still logged.
    /// It is the baseline telemetry's cost is measured against, not a production mode.
    pub telemetry: bool,
    /// REQUEST_LOG_EVERY (default 1): of the requests that went well (GET or HEAD,
    /// below 400, not slow, no N+1), one in this many gets its log line; the others
    /// still count in the metrics. Errors, writes and slow requests are always logged.
    pub request_log_every: u64,
    /// LOG_FORMAT (human | json): JSON lines by default in production.
    pub log_format: napiatke_telemetry::Format,
    /// METRICS_BIND: a listener with a worker of its own for a private network:
    /// GET /metrics without a login (a Prometheus scraper) and GET /healthz (an
    /// orchestrator's probe, not queued behind the main workers' load); unset,
    /// /metrics is for admins only.
    pub metrics_bind: Option<SocketAddr>,
    /// CALENDAR_STREAM_FROM: a calendar week with at least this many lessons is
    /// rendered and sent a day at a time on an HTML cache miss.
    pub calendar_stream_from: usize,
    /// SENTRY_TRACES_SAMPLE_RATE: the share of page requests sent to Sentry as
    /// transactions (0 to 1; health checks never, errors always).
    pub sentry_traces_sample_rate: f32,
    /// CACHE_TTL_STATIC, CACHE_TTL_USER, CACHE_TTL_DASHBOARD, CACHE_TTL_CALENDAR (s).
    pub cache_ttls: CacheTtls,
    /// CACHE_PREFIX: before every Redis key and channel, so deployments sharing one
    /// Redis stay apart (default `napiatke`).
    pub cache_prefix: String,
    /// CACHE_L1_BYTES: the in-process tier's bound (default 64 MiB); 0 turns it off
    /// (with REDIS_URL unset too, nothing is cached: the load baseline).
    pub cache_l1_bytes: u64,
    /// FORM_BODY_TIMEOUT (milliseconds, default 10000): how long a form's body (login,
    /// attendance) may take to arrive before the answer is 408; a client that
    /// trickles it cannot hold a worker.
    pub form_body_timeout: Duration,
    /// REDIS_KEEPALIVE (milliseconds, default 5000): how often the invalidation
    /// listener pings its Redis connection, so a half-open one is replaced.
    pub redis_keepalive: Duration,
    /// IMAGE_WORKERS: threads making image variants (default one per core).
    pub image_workers: usize,
    /// IMAGE_QUEUE: uploads that may wait for a worker before new ones get 503
    /// (default twice the workers).
    pub image_queue: usize,
    /// IMAGE_MAX_BYTES: the largest upload (default 20,000,000).
    pub image_max_bytes: usize,
    /// IMAGE_MAX_PIXELS: the largest width × height (default 50,000,000).
    pub image_max_pixels: u64,
    /// IMAGE_USER_QUEUE: uploads one user may have in progress at once, per process
    /// (default 2; more answer 429).
    pub image_user_queue: usize,
    /// IMAGE_USER_BYTES: what one user's kept images may take, originals and
    /// variants, replaced ones until collected (default 536,870,912; over it, 429).
    pub image_user_bytes: u64,
    /// MEDIA_KEEP_FREE: bytes an upload must leave free on MEDIA_ROOT's file system
    /// (default 268,435,456; 0: none); below it uploads answer 507.
    pub media_keep_free: u64,
    /// IMAGE_GC_GRACE (seconds, default 86400): how long a replaced image and its
    /// files are kept (pages and browsers may still show it) before collection.
    pub image_gc_grace: Duration,
    /// IMAGE_GC_INTERVAL (seconds, default 3600; 0: never): how often `serve`
    /// collects replaced images (`napiatke images gc` does it once). In a cluster
    /// one process collects per interval.
    pub image_gc_interval: Duration,
    /// IMAGE_JOB_LEASE (seconds, default 60, at least 3): how long an image job stays
    /// a process's without being renewed; a job whose process stopped is taken by
    /// another after this. Renewed every third of it.
    pub image_job_lease: Duration,
    /// IMAGE_TARGET_QUALITY (SSIMULACRA2, 30–95, default 80; `off`: fixed encoder
    /// qualities): the perceived quality every image variant is encoded to.
    pub image_target_quality: Option<f32>,
}

/// A setting that could not be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {reason}")]
pub struct ConfigError {
    /// The environment variable.
    pub var: &'static str,
    /// Why it cannot be used, quoting the value unless it may hold a secret.
    pub reason: String,
}

impl Settings {
    /// From the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// From any lookup (tests pass a map). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let bad = |var: &'static str, value: &str, reason: &str| ConfigError {
            var,
            reason: format!("{value:?} is invalid: {reason}"),
        };
        let parse_secs = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=MAX_TTL_SECS).contains(s))
                    .map(Duration::from_secs)
                    .ok_or_else(|| {
                        bad(
                            var,
                            &v,
                            "expected a whole number of seconds from 1 to 2592000 (30 days)",
                        )
                    }),
            }
        };
        let bind = match get("BIND") {
            None => SocketAddr::from(([127, 0, 0, 1], 8000)),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| bad("BIND", &v, "expected HOST:PORT, e.g. 127.0.0.1:8000"))?,
        };
        let environment = match get("NAPIATKE_ENV").as_deref().map(str::trim) {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(v) => return Err(bad("NAPIATKE_ENV", v, "expected development or production")),
        };
        let database_url =
            get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/napiatke.sqlite3".to_owned());
        napiatke_db::DatabaseUrl::parse(&database_url).map_err(|e| ConfigError {
            var: "DATABASE_URL",
            reason: e.to_string(),
        })?;
        let database_pool_size = match get("DATABASE_POOL_SIZE") {
            None => 16,
            Some(v) => v
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| bad("DATABASE_POOL_SIZE", &v, "expected a number from 1 to 1000"))?,
        };
        let redis_url = match get("REDIS_URL") {
            None => None,
            Some(v) if v.starts_with("redis://") => Some(Secret(v)),
            // The Redis client is built without TLS: such a URL would only ever fail to
            // connect, and the process would run on its in-process cache alone,
            // deaf to the others' invalidations. Refused at start instead.
            Some(v) if v.starts_with("rediss://") => {
                return Err(ConfigError {
                    var: "REDIS_URL",
                    reason: "rediss:// (TLS) is not supported by this build's Redis client: \
                             reach Redis over a private network, or through a TLS tunnel \
                             (stunnel, spiped) beside each process, with redis://"
                        .to_owned(),
                })
            }
            Some(_) => {
                return Err(ConfigError {
                    var: "REDIS_URL",
                    reason: "expected redis://[:PASSWORD@]HOST:PORT[/DB] (value not shown: it may hold a password)".to_owned(),
                })
            }
        };
        let millis = |var: &'static str, default: u64| -> Result<Duration, ConfigError> {
            match get(var) {
                None => Ok(Duration::from_millis(default)),
                Some(v) => v
                    .trim()
                    .trim_end_matches("ms")
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad(var, &v, "expected milliseconds, e.g. 500")),
            }
        };
        let time_zone = match get("TIME_ZONE") {
            None => napiatke_domain::Zone::default(),
            Some(v) => v
                .parse()
                .map_err(|_| bad("TIME_ZONE", &v, "expected an IANA name, e.g. Europe/Warsaw"))?,
        };
        let slow_request_threshold = millis("SLOW_REQUEST_THRESHOLD", 1000)?;
        let slow_statement_threshold = millis("SLOW_STATEMENT_THRESHOLD", 100)?;
        let telemetry = match get("TELEMETRY").as_deref().map(str::trim) {
            None | Some("on") => true,
            Some("off") => false,
            Some(v) => return Err(bad("TELEMETRY", v, "expected on or off")),
        };
        let log_format = match get("LOG_FORMAT").as_deref().map(str::trim) {
            None if environment == Environment::Production => napiatke_telemetry::Format::Json,
            None | Some("human") => napiatke_telemetry::Format::Human,
            Some("json") => napiatke_telemetry::Format::Json,
            Some(v) => return Err(bad("LOG_FORMAT", v, "expected human or json")),
        };
        let metrics_bind = match get("METRICS_BIND") {
            None => None,
            Some(v) => Some(v.trim().parse::<SocketAddr>().map_err(|_| {
                bad(
                    "METRICS_BIND",
                    &v,
                    "expected HOST:PORT, e.g. 127.0.0.1:9100",
                )
            })?),
        };
        let expose_query_count = match get("EXPOSE_QUERY_COUNT").as_deref().map(str::trim) {
            None => environment == Environment::Development,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(v) => return Err(bad("EXPOSE_QUERY_COUNT", v, "expected true or false")),
        };
        let demo = match get("NAPIATKE_DEMO").as_deref().map(str::trim) {
            None => environment == Environment::Development,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(v) => return Err(bad("NAPIATKE_DEMO", v, "expected true or false")),
        };
        let debug_toolbar = match get("DEBUG_TOOLBAR").as_deref().map(str::trim) {
            None => environment == Environment::Development,
            Some("1" | "true" | "yes" | "on") if environment == Environment::Production => {
                return Err(bad(
                    "DEBUG_TOOLBAR",
                    "true",
                    "the debug toolbar is for development only (NAPIATKE_ENV=development)",
                ))
            }
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(v) => return Err(bad("DEBUG_TOOLBAR", v, "expected true or false")),
        };
        let cache_prefix = get("CACHE_PREFIX").unwrap_or_else(|| "napiatke".to_owned());
        if cache_prefix.is_empty()
            || cache_prefix.len() > 64
            || !cache_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(bad(
                "CACHE_PREFIX",
                &cache_prefix,
                "expected 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        let cache_l1_bytes = match get("CACHE_L1_BYTES") {
            None => 64 * 1024 * 1024,
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                bad(
                    "CACHE_L1_BYTES",
                    &v,
                    "expected a number of bytes (0 turns the in-process cache off)",
                )
            })?,
        };
        // A whole number in min..=max (min 0 where 0 means "none" or "off").
        let ranged = |var: &'static str, default: u64, min: u64, max: u64| match get(var) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    bad(
                        var,
                        &v,
                        &format!("expected a whole number from {min} to {max}"),
                    )
                }),
        };
        let count = |var: &'static str, default: u64, max: u64| ranged(var, default, 1, max);
        let amount = |var: &'static str, default: u64, max: u64| ranged(var, default, 0, max);
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u64;
        let workers = count("WORKERS", cores, 1024)?;
        let database_statement_timeout =
            Duration::from_millis(count("DATABASE_STATEMENT_TIMEOUT", 5_000, 3_600_000)?);
        let image_workers = count("IMAGE_WORKERS", cores, 256)?;
        let image_queue = count("IMAGE_QUEUE", image_workers * 2, 100_000)?;
        let calendar_stream_from = count("CALENDAR_STREAM_FROM", 2000, 1_000_000_000)?;
        let request_log_every = count("REQUEST_LOG_EVERY", 1, 1_000_000)?;
        let sentry_traces_sample_rate = match get("SENTRY_TRACES_SAMPLE_RATE") {
            None => 0.1,
            Some(v) => v
                .trim()
                .parse::<f32>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    bad(
                        "SENTRY_TRACES_SAMPLE_RATE",
                        &v,
                        "expected a number from 0 to 1",
                    )
                })?,
        };
        let image_max_bytes = count("IMAGE_MAX_BYTES", 20_000_000, 1 << 30)?;
        let image_max_pixels = count("IMAGE_MAX_PIXELS", 50_000_000, 1 << 30)?;
        let redis_keepalive = Duration::from_millis(count("REDIS_KEEPALIVE", 5_000, 600_000)?);
        let form_body_timeout = Duration::from_millis(count("FORM_BODY_TIMEOUT", 10_000, 600_000)?);
        let image_user_queue = count("IMAGE_USER_QUEUE", 2, 1_000)?;
        let database_queue = count(
            "DATABASE_QUEUE",
            u64::from(database_pool_size) * 16,
            1_000_000,
        )?;
        let image_user_bytes = count("IMAGE_USER_BYTES", 512 * 1024 * 1024, 1 << 50)?;
        let media_keep_free = amount("MEDIA_KEEP_FREE", 256 * 1024 * 1024, 1 << 50)?;
        let image_gc_grace = Duration::from_secs(amount("IMAGE_GC_GRACE", 86_400, 365 * 86_400)?);
        let image_gc_interval =
            Duration::from_secs(amount("IMAGE_GC_INTERVAL", 3_600, 365 * 86_400)?);
        let image_job_lease = Duration::from_secs(amount("IMAGE_JOB_LEASE", 60, 86_400)?.max(3));
        let media_storage = match get("MEDIA_STORAGE").as_deref().map(str::trim) {
            None | Some("local") => MediaStorage::Local,
            Some("s3") => {
                let bucket =
                    get("MEDIA_S3_BUCKET")
                        .map(|b| b.trim().to_owned())
                        .ok_or(ConfigError {
                            var: "MEDIA_S3_BUCKET",
                            reason: "required with MEDIA_STORAGE=s3: the bucket's name".to_owned(),
                        })?;
                let endpoint = match get("MEDIA_S3_ENDPOINT") {
                    Some(v) if !(v.trim().starts_with("http://") || v.trim().starts_with("https://")) => {
                        return Err(bad(
                            "MEDIA_S3_ENDPOINT",
                            &v,
                            "expected the S3 API's URL, e.g. https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:9000",
                        ))
                    }
                    v => v.map(|v| v.trim().trim_end_matches('/').to_owned()),
                };
                let prefix = get("MEDIA_S3_PREFIX")
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('/')
                    .to_owned();
                if !prefix.is_empty() && !napiatke_images::pipeline::is_safe_name(&prefix) {
                    return Err(bad(
                        "MEDIA_S3_PREFIX",
                        &prefix,
                        "expected /-separated parts of letters, digits, '-', '_' or '.'",
                    ));
                }
                MediaStorage::S3(S3Settings {
                    bucket,
                    endpoint,
                    region: get("MEDIA_S3_REGION").map(|v| v.trim().to_owned()),
                    access_key_id: get("MEDIA_S3_ACCESS_KEY_ID").map(|v| v.trim().to_owned()),
                    secret_access_key: get("MEDIA_S3_SECRET_ACCESS_KEY").map(Secret),
                    prefix,
                    timeout: Duration::from_millis(count("MEDIA_S3_TIMEOUT", 10_000, 600_000)?),
                })
            }
            Some(v) => return Err(bad("MEDIA_STORAGE", v, "expected local or s3")),
        };
        let media_public_url = match get("MEDIA_PUBLIC_URL") {
            None => None,
            Some(v) => {
                let v = v.trim();
                let valid = (v.starts_with("https://") || v.starts_with("http://"))
                    && v.len() > "https://".len()
                    && v.bytes()
                        .all(|b| b.is_ascii_graphic() && !b"\"'<>`".contains(&b));
                if !valid {
                    return Err(bad(
                        "MEDIA_PUBLIC_URL",
                        v,
                        "expected an http(s) URL, e.g. https://media.example.org/school/",
                    ));
                }
                Some(format!("{}/", v.trim_end_matches('/')))
            }
        };
        let image_target_quality = match get("IMAGE_TARGET_QUALITY") {
            None => Some(napiatke_images::variants::DEFAULT_TARGET),
            Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
            Some(v) => Some(
                v.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|t| (30.0..=95.0).contains(t))
                    .ok_or_else(|| {
                        bad(
                            "IMAGE_TARGET_QUALITY",
                            &v,
                            "expected a SSIMULACRA2 score from 30 to 95 (80: very high quality), or off",
                        )
                    })?,
            ),
        };
        Ok(Settings {
            image_target_quality,
            image_user_queue: usize::try_from(image_user_queue).unwrap_or(usize::MAX),
            database_queue: usize::try_from(database_queue).unwrap_or(usize::MAX),
            image_user_bytes,
            media_keep_free,
            image_gc_grace,
            image_gc_interval,
            image_job_lease,
            image_workers: usize::try_from(image_workers).unwrap_or(usize::MAX),
            image_queue: usize::try_from(image_queue).unwrap_or(usize::MAX),
            image_max_bytes: usize::try_from(image_max_bytes).unwrap_or(usize::MAX),
            image_max_pixels,
            bind,
            cache_prefix,
            cache_l1_bytes,
            redis_keepalive,
            form_body_timeout,
            expose_query_count,
            debug_toolbar,
            demo,
            database_url,
            database_pool_size,
            workers: usize::try_from(workers).unwrap_or(usize::MAX),
            database_statement_timeout,
            redis_url,
            environment,
            static_root: get("STATIC_ROOT")
                .map_or_else(|| PathBuf::from("staticfiles"), PathBuf::from),
            static_root_set: get("STATIC_ROOT").is_some(),
            templates_dir: get("TEMPLATES_DIR").map(PathBuf::from),
            assets_dir: get("ASSETS_DIR").map_or_else(|| PathBuf::from("assets"), PathBuf::from),
            media_root: get("MEDIA_ROOT")
                .map_or_else(|| PathBuf::from("data/media"), PathBuf::from),
            media_storage,
            media_public_url,
            sentry_dsn: get("SENTRY_DSN").map(Secret),
            otlp_endpoint: match get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(v) if !v.trim().starts_with("http://") => {
                    return Err(bad(
                        "OTEL_EXPORTER_OTLP_ENDPOINT",
                        &v,
                        "expected http://HOST:PORT (a collector or agent beside napiatke; https is not supported)",
                    ))
                }
                v => v.map(|v| v.trim().to_owned()),
            },
            time_zone,
            slow_request_threshold,
            slow_statement_threshold,
            calendar_stream_from: usize::try_from(calendar_stream_from).unwrap_or(usize::MAX),
            sentry_traces_sample_rate,
            telemetry,
            request_log_every,
            log_format,
            metrics_bind,
            cache_ttls: CacheTtls {
                static_data: parse_secs("CACHE_TTL_STATIC", 3600)?,
                user: parse_secs("CACHE_TTL_USER", 300)?,
                dashboard: parse_secs("CACHE_TTL_DASHBOARD", 60)?,
                calendar: parse_secs("CACHE_TTL_CALENDAR", 120)?,
            },
        })
    }
}

impl Settings {
    /// The effective settings, one `VARIABLE=value` line each, secrets hidden: what
    /// `napiatke config` prints.
    pub fn describe(&self) -> Vec<String> {
        let opt = |v: &Option<Secret>| v.as_ref().map_or("(unset)", Secret::describe);
        let db = napiatke_db::DatabaseUrl::parse(&self.database_url)
            .map_or_else(|_| "(invalid)".to_owned(), |u| u.redacted());
        let mut lines = vec![
            format!("BIND={}", self.bind),
            format!("DATABASE_URL={db}"),
            format!("DATABASE_POOL_SIZE={}", self.database_pool_size),
            format!("DATABASE_QUEUE={}", self.database_queue),
            format!(
                "DATABASE_STATEMENT_TIMEOUT={}",
                self.database_statement_timeout.as_millis()
            ),
            format!("WORKERS={}", self.workers),
            format!("REDIS_URL={}", opt(&self.redis_url)),
            format!(
                "NAPIATKE_ENV={}",
                match self.environment {
                    Environment::Development => "development",
                    Environment::Production => "production",
                }
            ),
            if self.static_root_set {
                format!("STATIC_ROOT={}", self.static_root.display())
            } else {
                format!(
                    "STATIC_ROOT={} (unset: the built-in files are served, except in development beside ASSETS_DIR)",
                    self.static_root.display()
                )
            },
            format!("ASSETS_DIR={}", self.assets_dir.display()),
            format!(
                "TEMPLATES_DIR={}",
                self.templates_dir.as_ref().map_or_else(
                    || "(unset: the built-in templates)".to_owned(),
                    |d| d.display().to_string()
                )
            ),
            format!("MEDIA_ROOT={}", self.media_root.display()),
            format!(
                "MEDIA_PUBLIC_URL={}",
                self.media_public_url
                    .as_deref()
                    .unwrap_or("(unset: served under /media/)")
            ),
            format!("SENTRY_DSN={}", opt(&self.sentry_dsn)),
            format!(
                "OTEL_EXPORTER_OTLP_ENDPOINT={}",
                self.otlp_endpoint.as_deref().unwrap_or("(unset)")
            ),
            format!("EXPOSE_QUERY_COUNT={}", self.expose_query_count),
            format!("DEBUG_TOOLBAR={}", self.debug_toolbar),
            format!("NAPIATKE_DEMO={}", self.demo),
            format!("TIME_ZONE={}", self.time_zone),
            format!(
                "SLOW_REQUEST_THRESHOLD={}",
                self.slow_request_threshold.as_millis()
            ),
            format!(
                "SLOW_STATEMENT_THRESHOLD={}",
                self.slow_statement_threshold.as_millis()
            ),
            format!("TELEMETRY={}", if self.telemetry { "on" } else { "off" }),
            format!("REQUEST_LOG_EVERY={}", self.request_log_every),
            format!(
                "LOG_FORMAT={}",
                match self.log_format {
                    napiatke_telemetry::Format::Human => "human",
                    napiatke_telemetry::Format::Json => "json",
                }
            ),
            format!(
                "METRICS_BIND={}",
                self.metrics_bind.map_or_else(
                    || "(unset: /metrics for admins only)".to_owned(),
                    |b| b.to_string()
                )
            ),
            format!("CACHE_TTL_STATIC={}", self.cache_ttls.static_data.as_secs()),
            format!("CACHE_TTL_USER={}", self.cache_ttls.user.as_secs()),
            format!(
                "CACHE_TTL_DASHBOARD={}",
                self.cache_ttls.dashboard.as_secs()
            ),
            format!("CACHE_TTL_CALENDAR={}", self.cache_ttls.calendar.as_secs()),
            format!("CACHE_PREFIX={}", self.cache_prefix),
            format!("CACHE_L1_BYTES={}", self.cache_l1_bytes),
            format!("REDIS_KEEPALIVE={}", self.redis_keepalive.as_millis()),
            format!("FORM_BODY_TIMEOUT={}", self.form_body_timeout.as_millis()),
            format!("IMAGE_WORKERS={}", self.image_workers),
            format!("IMAGE_QUEUE={}", self.image_queue),
            format!("CALENDAR_STREAM_FROM={}", self.calendar_stream_from),
            format!(
                "SENTRY_TRACES_SAMPLE_RATE={}",
                self.sentry_traces_sample_rate
            ),
            format!("IMAGE_MAX_BYTES={}", self.image_max_bytes),
            format!("IMAGE_MAX_PIXELS={}", self.image_max_pixels),
            format!("IMAGE_USER_QUEUE={}", self.image_user_queue),
            format!("IMAGE_USER_BYTES={}", self.image_user_bytes),
            format!("MEDIA_KEEP_FREE={}", self.media_keep_free),
            format!("IMAGE_GC_GRACE={}", self.image_gc_grace.as_secs()),
            format!("IMAGE_GC_INTERVAL={}", self.image_gc_interval.as_secs()),
            format!("IMAGE_JOB_LEASE={}", self.image_job_lease.as_secs()),
            format!(
                "IMAGE_TARGET_QUALITY={}",
                self.image_target_quality
                    .map_or_else(|| "off".to_owned(), |t| t.to_string())
            ),
        ];
        match &self.media_storage {
            MediaStorage::Local => lines.push("MEDIA_STORAGE=local".to_owned()),
            MediaStorage::S3(s3) => {
                let env = "(unset: from the environment)";
                lines.extend([
                    "MEDIA_STORAGE=s3".to_owned(),
                    format!("MEDIA_S3_BUCKET={}", s3.bucket),
                    format!(
                        "MEDIA_S3_ENDPOINT={}",
                        s3.endpoint.as_deref().unwrap_or(env)
                    ),
                    format!("MEDIA_S3_REGION={}", s3.region.as_deref().unwrap_or(env)),
                    format!(
                        "MEDIA_S3_ACCESS_KEY_ID={}",
                        s3.access_key_id.as_deref().unwrap_or(env)
                    ),
                    format!(
                        "MEDIA_S3_SECRET_ACCESS_KEY={}",
                        s3.secret_access_key.as_ref().map_or(env, Secret::describe)
                    ),
                    format!("MEDIA_S3_PREFIX={}", s3.prefix),
                    format!("MEDIA_S3_TIMEOUT={}", s3.timeout.as_millis()),
                ]);
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_serve_the_demo() {
        let s = with(&[]).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(s.database_url, "sqlite://data/napiatke.sqlite3");
        assert_eq!(s.environment, Environment::Development);
        assert!(s.redis_url.is_none());
        assert_eq!(s.cache_ttls.static_data, Duration::from_secs(3600));
        assert_eq!(s.cache_ttls.user, Duration::from_secs(300));
        assert_eq!(s.cache_ttls.dashboard, Duration::from_secs(60));
        assert_eq!(s.cache_ttls.calendar, Duration::from_secs(120));
        assert_eq!(s.slow_request_threshold, Duration::from_secs(1));
        assert_eq!(s.time_zone.to_string(), "Europe/Warsaw");
        assert_eq!(s.slow_statement_threshold, Duration::from_millis(100));
        assert_eq!(s.log_format, napiatke_telemetry::Format::Human);
        assert!(s.metrics_bind.is_none());
        assert!(s.telemetry);
        assert!(!with(&[("TELEMETRY", "off")]).unwrap().telemetry);
        assert_eq!(s.request_log_every, 1);
        let production = with(&[("NAPIATKE_ENV", "production")]).unwrap();
        assert_eq!(production.log_format, napiatke_telemetry::Format::Json);
    }

    #[test]
    fn the_debug_toolbar_is_for_development_only() {
        assert!(with(&[]).unwrap().debug_toolbar);
        assert!(!with(&[("DEBUG_TOOLBAR", "off")]).unwrap().debug_toolbar);
        assert!(
            !with(&[("NAPIATKE_ENV", "production")])
                .unwrap()
                .debug_toolbar
        );
        let err = with(&[("NAPIATKE_ENV", "production"), ("DEBUG_TOOLBAR", "1")])
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("DEBUG_TOOLBAR: ") && e.contains("development only")),
            "{err:?}"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("BIND", "localhost"),
            ("NAPIATKE_ENV", "staging"),
            ("DATABASE_URL", "mysql://x/y"),
            ("DATABASE_POOL_SIZE", "0"),
            ("WORKERS", "0"),
            ("DATABASE_STATEMENT_TIMEOUT", "5s"),
            ("DATABASE_STATEMENT_TIMEOUT", "0"),
            ("WORKERS", "all"),
            ("REDIS_URL", "localhost:6379"),
            ("REDIS_URL", "rediss://:secret@redis.example:6380"),
            ("SLOW_REQUEST_THRESHOLD", "fast"),
            ("TIME_ZONE", "Europe/Gdansk"),
            ("SLOW_STATEMENT_THRESHOLD", "1s"),
            ("LOG_FORMAT", "xml"),
            ("TELEMETRY", "no"),
            ("REQUEST_LOG_EVERY", "0"),
            ("METRICS_BIND", "9100"),
            ("CACHE_TTL_USER", "-5"),
            ("CACHE_TTL_CALENDAR", "0"),
            ("CACHE_TTL_STATIC", "18446744073709551615"),
            ("EXPOSE_QUERY_COUNT", "maybe"),
            ("DEBUG_TOOLBAR", "maybe"),
            ("NAPIATKE_DEMO", "maybe"),
            ("CACHE_PREFIX", "has space"),
            ("CACHE_L1_BYTES", "64MB"),
            ("REDIS_KEEPALIVE", "0"),
            ("FORM_BODY_TIMEOUT", "10s"),
            ("REDIS_KEEPALIVE", "5s"),
            ("IMAGE_WORKERS", "0"),
            ("IMAGE_QUEUE", "many"),
            ("CALENDAR_STREAM_FROM", "0"),
            ("SENTRY_TRACES_SAMPLE_RATE", "1.5"),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://collector.example:4318",
            ),
            ("IMAGE_MAX_BYTES", "20MB"),
            ("IMAGE_MAX_PIXELS", "-1"),
        ] {
            let err = with(&[(var, value)]).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.starts_with(&format!("{var}: "))),
                "{var}={value} gave {err:?}"
            );
        }
    }

    #[test]
    fn secrets_do_not_print() {
        let s = with(&[("SENTRY_DSN", "https://key@sentry.example/1")]).unwrap();
        assert!(!format!("{s:?}").contains("key@"));
        let lines = s.describe();
        assert!(lines.contains(&"SENTRY_DSN=(set, hidden)".to_owned()));
        assert!(lines.iter().all(|l| !l.contains("key@")));
        assert_eq!(lines.len(), 47);
    }

    #[test]
    fn media_go_to_a_bucket_only_when_it_is_named() {
        assert_eq!(with(&[]).unwrap().media_storage, MediaStorage::Local);
        let e = with(&[("MEDIA_STORAGE", "s3")]).unwrap_err();
        assert_eq!(e.var, "MEDIA_S3_BUCKET");
        let e = with(&[("MEDIA_STORAGE", "nfs")]).unwrap_err();
        assert_eq!(e.var, "MEDIA_STORAGE");
        let s = with(&[
            ("MEDIA_STORAGE", "s3"),
            ("MEDIA_S3_BUCKET", "school-media"),
            ("MEDIA_S3_ENDPOINT", "http://127.0.0.1:9000/"),
            ("MEDIA_S3_PREFIX", "/warsaw/"),
            ("MEDIA_S3_SECRET_ACCESS_KEY", "very-secret"),
        ])
        .unwrap();
        let MediaStorage::S3(s3) = &s.media_storage else {
            panic!("not s3: {:?}", s.media_storage)
        };
        assert_eq!(s3.bucket, "school-media");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s3.prefix, "warsaw");
        assert_eq!(s3.timeout, Duration::from_secs(10));
        let lines = s.describe();
        assert!(lines.contains(&"MEDIA_S3_SECRET_ACCESS_KEY=(set, hidden)".to_owned()));
        assert!(lines.iter().all(|l| !l.contains("very-secret")));
        assert!(!format!("{s:?}").contains("very-secret"));
        for (var, value) in [
            ("MEDIA_S3_ENDPOINT", "s3.example.org"),
            ("MEDIA_S3_PREFIX", "a/../b"),
            ("MEDIA_S3_TIMEOUT", "0"),
        ] {
            let e = with(&[
                ("MEDIA_STORAGE", "s3"),
                ("MEDIA_S3_BUCKET", "b"),
                (var, value),
            ])
            .unwrap_err();
            assert_eq!(e.var, var);
        }
    }

    #[test]
    fn a_public_media_url_is_an_http_url_ending_in_a_slash() {
        let s = with(&[("MEDIA_PUBLIC_URL", "https://media.example.org/school")]).unwrap();
        assert_eq!(
            s.media_public_url.as_deref(),
            Some("https://media.example.org/school/")
        );
        for bad in [
            "media.example.org",
            "https://",
            "javascript:alert(1)",
            "https://a.org/\"x",
        ] {
            let e = with(&[("MEDIA_PUBLIC_URL", bad)]).unwrap_err();
            assert_eq!(e.var, "MEDIA_PUBLIC_URL", "{bad}");
        }
    }
}
