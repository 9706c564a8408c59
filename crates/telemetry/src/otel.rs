//! OpenTelemetry traces over OTLP/HTTP (protobuf): `tracing` spans become OTel spans
//! through tracing-opentelemetry, exported in batches by the SDK's own thread, so a
//! slow or unreachable collector costs requests nothing (spans beyond the queue are
//! dropped). W3C `traceparent` from a request continues the caller's trace.
//!
//! The collector is reached over plain HTTP by a small blocking client of this
//! module (the usual set-up is a collector or agent beside the app); an `https://`
//! endpoint is refused at start with a message, rather than pulling a TLS stack into
//! every build.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// What the exporter needs to know.
#[derive(Debug, Clone)]
pub struct OtlpOptions {
    /// OTEL_EXPORTER_OTLP_ENDPOINT: the collector's base URL (`http://host:4318`);
    /// spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// `service.version`.
    pub service_version: String,
    /// `deployment.environment.name`.
    pub environment: String,
}

/// Why the exporter could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// The endpoint is not an `http://host[:port][/path]` URL.
    #[error("OTEL_EXPORTER_OTLP_ENDPOINT {0:?}: expected http://HOST:PORT (https needs a collector or agent beside napiatke)")]
    Endpoint(String),
    /// The SDK refused the exporter.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Whether spans are exported (a provider was built): callers skip work that only
/// exporters use.
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process exports spans.
#[must_use]
pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The tracer provider for `options`: batch export off the request path (a queue
/// of 4,096 spans, sent every second or per 512).
///
/// ```
/// use napiatke_telemetry::otel::{provider, OtlpOptions};
/// let options = |endpoint: &str| OtlpOptions {
///     endpoint: endpoint.to_owned(),
///     service_name: "napiatke".to_owned(),
///     service_version: "0.1.0".to_owned(),
///     environment: "development".to_owned(),
/// };
/// assert!(provider(&options("http://127.0.0.1:4318")).is_ok());
/// assert!(provider(&options("https://collector.example")).is_err());
/// ```
pub fn provider(options: &OtlpOptions) -> Result<SdkTracerProvider, OtelError> {
    let target = Target::parse(&options.endpoint)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(PlainHttp {
            target: target.clone(),
        })
        .with_endpoint(target.url())
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let batch = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(4096)
                .with_max_export_batch_size(512)
                .with_scheduled_delay(Duration::from_secs(1))
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(options.service_name.clone())
        .with_attributes([
            opentelemetry::KeyValue::new("service.version", options.service_version.clone()),
            opentelemetry::KeyValue::new(
                "deployment.environment.name",
                options.environment.clone(),
            ),
        ])
        .build();
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_resource(resource)
        .build())
}

/// The `tracing` layer that turns spans into OTel spans of `provider`'s tracer.
pub(crate) fn layer<S>(
    provider: &SdkTracerProvider,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("napiatke"))
        .with_tracked_inactivity(false)
}

/// Makes `span` (not yet entered) continue the trace a request's W3C `traceparent`
/// (and `tracestate`) names. Nothing happens without a valid header or without an
/// OTel layer.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = std::collections::HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.to_owned());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if opentelemetry::trace::TraceContextExt::span(&cx)
        .span_context()
        .is_valid()
    {
        let _ = span.set_parent(cx);
    }
}

#[derive(Debug, Clone)]
struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(endpoint: &str) -> Result<Target, OtelError> {
        let bad = || OtelError::Endpoint(endpoint.to_owned());
        let rest = endpoint.trim().strip_prefix("http://").ok_or_else(bad)?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (authority, 80),
        };
        if host.is_empty() {
            return Err(bad());
        }
        let base = path.trim_end_matches('/');
        Ok(Target {
            host: host.to_owned(),
            port,
            path: if base.is_empty() {
                "/v1/traces".to_owned()
            } else {
                format!("/{base}/v1/traces")
            },
        })
    }

    fn url(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.path)
    }
}

/// A blocking HTTP/1.1 POST over one connection per export (a batch a second at
/// most), with short timeouts: it runs on the batch processor's thread only.
#[derive(Debug)]
struct PlainHttp {
    target: Target,
}

impl PlainHttp {
    fn post(&self, request: &http::Request<Bytes>) -> std::io::Result<http::Response<Bytes>> {
        let timeout = Duration::from_secs(2);
        let address = (self.target.host.as_str(), self.target.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("collector host has no address"))?;
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.target.path,
            self.target.host,
            self.target.port,
            request.body().len()
        );
        for (name, value) in request.headers() {
            if let Ok(v) = value.to_str() {
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(request.body())?;
        let mut answer = Vec::new();
        stream.take(1 << 20).read_to_end(&mut answer)?;
        let status = std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| t.split(' ').nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| std::io::Error::other("collector answered no HTTP status"))?;
        let body_at = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(answer.len(), |i| i + 4);
        http::Response::builder()
            .status(status)
            .body(Bytes::copy_from_slice(&answer[body_at..]))
            .map_err(std::io::Error::other)
    }
}

/// The trait is an `async_trait`; this is its expansion, without the macro crate.
/// The future does blocking I/O: it is only ever polled by the batch processor's
/// own thread.
impl opentelemetry_http::HttpClient for PlainHttp {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: http::Request<Bytes>,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = Result<http::Response<Bytes>, opentelemetry_http::HttpError>,
                > + Send
                + 'b,
        >,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move { self.post(&request).map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn endpoints_are_bases_for_v1_traces() {
        let t = Target::parse("http://collector:4318").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.url(), "http://collector:4318/v1/traces");
        let t = Target::parse("http://10.0.0.5:4318/otlp/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.url(), "http://10.0.0.5:4318/otlp/v1/traces");
        assert_eq!(
            Target::parse("http://agent")
                .map(|t| t.url())
                .ok()
                .as_deref(),
            Some("http://agent:80/v1/traces")
        );
        for bad in [
            "https://x:4318",
            "collector:4318",
            "http://:4318",
            "http://x:port",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
