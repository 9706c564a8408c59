//! Uploaded images' files in an S3-compatible bucket: [`Bucket`] implements the
//! images crate's [`Storage`] over the `object_store` crate, so every app process,
//! on any machine, writes and reads one media store (MEDIA_STORAGE=s3).
//!
//! The [`Storage`] trait is synchronous, because the image pipeline runs on worker
//! threads. A bucket therefore owns a small tokio runtime of its own for the HTTP
//! client: a call from a worker thread waits for its request there, and the async
//! [`Bucket::read`] used to serve `/media/` awaits the same runtime's task, so the
//! client's connections live on one runtime whatever thread asks. Every request has
//! a deadline ([`BucketConfig::timeout`]): an unreachable bucket is an error after
//! it, never a hang.
//!
//! Objects are written with their `Content-Type` and `Cache-Control: max-age=31536000,
//! immutable`, so a bucket (or a CDN in front of it) serving them directly at
//! MEDIA_PUBLIC_URL answers as napiatke's own `/media/` does.
//!
//! ```no_run
//! use napiatke_bucket::{Bucket, BucketConfig};
//! use napiatke_images::pipeline::Storage;
//!
//! let bucket = Bucket::new(&BucketConfig {
//!     endpoint: Some("http://127.0.0.1:9000".to_owned()),
//!     access_key_id: Some("key".to_owned()),
//!     secret_access_key: Some("secret".to_owned()),
//!     ..BucketConfig::new("school-media")
//! })?;
//! bucket.put("ab/abcd/t64-00000000.webp", b"RIFF")?;
//! assert_eq!(bucket.size("ab/abcd/t64-00000000.webp"), Some(4));
//! assert!(bucket.remove("ab/abcd/t64-00000000.webp")?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use napiatke_images::pipeline::{is_safe_name, variant_format, Storage};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, ClientOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
    RetryConfig,
};

/// Why a bucket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    /// The settings do not describe a bucket the client can use.
    #[error("media bucket {bucket:?}: {source}")]
    Config {
        /// The bucket's name.
        bucket: String,
        /// What the client said.
        #[source]
        source: object_store::Error,
    },
    /// The runtime for the client could not start.
    #[error("media bucket runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// Where the bucket is and how to reach it (MEDIA_S3_* settings). Anything left
/// `None` comes from the usual AWS environment (AWS_ACCESS_KEY_ID,
/// AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT, instance credentials).
#[derive(Clone)]
pub struct BucketConfig {
    /// The bucket's name.
    pub bucket: String,
    /// The S3 API's base URL, for a service other than AWS (MinIO, Garage, R2...).
    /// An `http://` endpoint is allowed (loopback tests, a private network).
    pub endpoint: Option<String>,
    /// The region (default: from the environment, else us-east-1).
    pub region: Option<String>,
    /// Credentials.
    pub access_key_id: Option<String>,
    /// Credentials.
    pub secret_access_key: Option<String>,
    /// Prepended to every name, so several apps can share one bucket ("" for none).
    pub prefix: String,
    /// Longest a request may take, retries included.
    pub timeout: Duration,
}

impl std::fmt::Debug for BucketConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials never reach a log.
        f.debug_struct("BucketConfig")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BucketConfig {
    /// `bucket`, reached as the environment says, with a 10 s deadline per request.
    #[must_use]
    pub fn new(bucket: impl Into<String>) -> BucketConfig {
        BucketConfig {
            bucket: bucket.into(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            prefix: String::new(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A bucket holding media files. Clones share the client and its runtime.
#[derive(Clone)]
pub struct Bucket(Arc<Inner>);

struct Inner {
    store: Arc<AmazonS3>,
    prefix: String,
    timeout: Duration,
    describe: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics, and the last clone may
        // well be dropped on an actix worker; nothing is waited for.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Bucket").field(&self.0.describe).finish()
    }
}

/// A variant's bytes and what to send with them.
#[derive(Debug, Clone)]
pub struct Object {
    /// The bytes.
    pub bytes: Bytes,
    /// Its MIME type (from the name).
    pub content_type: &'static str,
}

impl Bucket {
    /// A client for `config`'s bucket. Nothing is sent yet: a wrong bucket or
    /// credentials show on the first request (see [`Bucket::check`]).
    ///
    /// # Errors
    /// [`BucketError`] when the settings cannot make a client.
    pub fn new(config: &BucketConfig) -> Result<Bucket, BucketError> {
        // reqwest is built without a crypto provider of its own (see Cargo.toml): the
        // process's default is ring's, installed here once (an error means one is
        // installed already, which is as good).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(config.timeout)
                    .with_connect_timeout(config.timeout.min(Duration::from_secs(3))),
            )
            .with_retry(RetryConfig {
                max_retries: 2,
                retry_timeout: config.timeout,
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder.build().map_err(|source| BucketError::Config {
            bucket: config.bucket.clone(),
            source,
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("napiatke-bucket")
            .enable_all()
            .build()
            .map_err(BucketError::Runtime)?;
        let prefix = config.prefix.trim_matches('/');
        Ok(Bucket(Arc::new(Inner {
            store: Arc::new(store),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            timeout: config.timeout,
            describe: format!(
                "s3://{}/{}{}",
                config.bucket,
                prefix,
                config
                    .endpoint
                    .as_deref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
            runtime: Some(runtime),
        })))
    }

    /// Where the files are, for logs and the start banner ("s3://bucket/prefix at
    /// endpoint"; no credentials).
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.0.describe
    }

    /// Asks the bucket for a name nothing has: an answer (found or not) proves the
    /// bucket exists and the credentials are accepted.
    ///
    /// # Errors
    /// What the bucket answered, or a timeout.
    pub fn check(&self) -> io::Result<()> {
        let path = self.key("napiatke-check")?;
        let store = Arc::clone(&self.0.store);
        match self.block(async move { store.head(&path).await }) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A variant's bytes, for serving `/media/` (only names the pipeline gives
    /// variants; originals stay private). `NotFound` when there is none.
    ///
    /// # Errors
    /// `NotFound`, `InvalidInput` for any other name, or what the bucket answered.
    pub async fn read(&self, name: &str) -> io::Result<Object> {
        let content_type = variant_format(name)
            .map(|f| f.mime())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not a variant"))?;
        let path = self.key(name)?;
        let store = Arc::clone(&self.0.store);
        let bytes = self
            .spawn(async move { store.get(&path).await?.bytes().await })
            .await?;
        Ok(Object {
            bytes,
            content_type,
        })
    }

    /// The object key for a storage name: checked as [`LocalStorage`] checks its
    /// paths, so the two stores accept the same names.
    ///
    /// [`LocalStorage`]: napiatke_images::pipeline::LocalStorage
    fn key(&self, name: &str) -> io::Result<Path> {
        if !is_safe_name(name) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad name {name:?}"),
            ));
        }
        Path::parse(format!("{}{name}", self.0.prefix))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// Runs `work` on the bucket's runtime within the deadline; awaitable from any
    /// runtime.
    async fn spawn<T, F>(&self, work: F) -> io::Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.0.runtime else {
            return Err(io::Error::other("media bucket runtime stopped"));
        };
        let timeout = self.0.timeout;
        let describe = self.0.describe.clone();
        runtime
            .spawn(async move { deadline(timeout, &describe, work).await })
            .await
            .map_err(io::Error::other)?
    }

    /// Runs `work` on the bucket's runtime and waits for it on this thread (a
    /// worker thread: [`Storage`]'s callers are).
    fn block<T, F>(&self, work: F) -> io::Result<T>
    where
        F: Future<Output = object_store::Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = &self.0.runtime else {
            return Err(io::Error::other("media bucket runtime stopped"));
        };
        let timeout = self.0.timeout;
        let describe = self.0.describe.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(deadline(timeout, &describe, work).await);
        });
        rx.recv()
            .map_err(|_| io::Error::other("media bucket request dropped"))?
    }
}

/// `work`'s result as an I/O error, or `TimedOut` past `timeout` (the client's own
/// deadline is per attempt; this one bounds the retries too).
async fn deadline<T>(
    timeout: Duration,
    describe: &str,
    work: impl Future<Output = object_store::Result<T>>,
) -> io::Result<T> {
    // A little over the client's own limit, so its clearer error wins when it has one.
    match tokio::time::timeout(timeout + Duration::from_secs(1), work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(io::Error::from(e)),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{describe} did not answer within {} s", timeout.as_secs()),
        )),
    }
}

impl Storage for Bucket {
    /// Any failure but a missing object or a refused name: the client has already
    /// retried, so what is left is the service (down, slow, refusing credentials),
    /// and the user should try again later.
    fn is_unavailable(&self, e: &io::Error) -> bool {
        !matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
        )
    }

    fn put(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let path = self.key(name)?;
        let mut attributes = Attributes::new();
        if let Some(format) = variant_format(name) {
            attributes.insert(Attribute::ContentType, format.mime().into());
            attributes.insert(
                Attribute::CacheControl,
                "public, max-age=31536000, immutable".into(),
            );
        }
        let options = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        let store = Arc::clone(&self.0.store);
        self.block(async move { store.put_opts(&path, payload, options).await })
            .map(|_| ())
    }

    fn size(&self, name: &str) -> Option<u64> {
        let path = self.key(name).ok()?;
        let store = Arc::clone(&self.0.store);
        match self.block(async move { store.head(&path).await }) {
            Ok(meta) => Some(meta.size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(name, error = %e, "media bucket: size unknown");
                None
            }
        }
    }

    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        let path = self.key(name)?;
        let store = Arc::clone(&self.0.store);
        self.block(async move { store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let path = self.key(name)?;
        let store = Arc::clone(&self.0.store);
        // S3 answers a delete of nothing as a success: ask first, for the count.
        self.block(async move {
            match store.head(&path).await {
                Ok(_) => store.delete(&path).await.map(|()| true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
    }
}

pub mod testing {
    //! For tests against a real S3-compatible server (NAPIATKE_TEST_S3_URL, default
    //! `http://127.0.0.1:9390`, the moto server scripts/ensure-s3.sh starts): a
    //! bucket of each test's own, and plain unsigned requests to look at what is
    //! stored as a browser would (moto checks no signatures).

    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::BucketConfig;

    /// The test server's URL.
    #[must_use]
    pub fn endpoint() -> String {
        std::env::var("NAPIATKE_TEST_S3_URL").unwrap_or_else(|_| "http://127.0.0.1:9390".to_owned())
    }

    /// One HTTP/1.1 exchange with the test server: the status line with the
    /// headers, and the body.
    ///
    /// # Panics
    /// When the server does not answer (the test fails there, saying why).
    #[must_use]
    pub fn raw(method: &str, path: &str) -> (String, Vec<u8>) {
        raw_with(method, path, "")
    }

    /// [`raw`] with a JSON body.
    ///
    /// # Panics
    /// When the server does not answer.
    #[must_use]
    pub fn raw_with(method: &str, path: &str, json: &str) -> (String, Vec<u8>) {
        let url = endpoint();
        let host = url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(host).unwrap_or_else(|e| {
            panic!("the S3 test server at {url} (scripts/ensure-s3.sh) does not answer: {e}")
        });
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
            json.len()
        );
        let mut out = Vec::new();
        let exchanged = stream
            .write_all(request.as_bytes())
            .and_then(|()| stream.read_to_end(&mut out));
        if let Err(e) = exchanged {
            panic!("the S3 test server at {url}: {e}");
        }
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(out.len());
        let body = out.get(split + 4..).unwrap_or_default().to_vec();
        (String::from_utf8_lossy(&out[..split]).into_owned(), body)
    }

    /// Makes a new, empty bucket on the test server and returns the settings that
    /// reach it.
    ///
    /// # Panics
    /// When the server does not make it.
    #[must_use]
    pub fn new_bucket() -> BucketConfig {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "napiatke-test-{}-{nanos}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (head, _) = raw("PUT", &format!("/{name}"));
        assert!(
            head.starts_with("HTTP/1.1 200"),
            "bucket {name} not made: {head}"
        );
        BucketConfig {
            endpoint: Some(endpoint()),
            region: Some("us-east-1".to_owned()),
            access_key_id: Some("test".to_owned()),
            secret_access_key: Some("test".to_owned()),
            ..BucketConfig::new(name)
        }
    }

    /// Lets anyone read the variants under `prefix` of `bucket` (the bucket policy
    /// docs/operations.md gives for MEDIA_PUBLIC_URL: keys of the form
    /// `PREFIX/??/...`, so `PREFIX/originals/` stays out).
    ///
    /// # Panics
    /// When the server refuses the policy.
    pub fn publish_variants(bucket: &str, prefix: &str) {
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/{prefix}/??/*"}}]}}"#
        );
        let (head, _) = raw_with("PUT", &format!("/{bucket}?policy"), &policy);
        assert!(head.starts_with("HTTP/1.1 2"), "policy refused: {head}");
    }

    /// The keys in `bucket`, as its listing gives them.
    #[must_use]
    pub fn keys(bucket: &str) -> Vec<String> {
        let (_, body) = raw("GET", &format!("/{bucket}?list-type=2"));
        let body = String::from_utf8_lossy(&body);
        body.split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}
