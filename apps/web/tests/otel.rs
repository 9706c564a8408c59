//! OpenTelemetry export against a real OTLP/HTTP receiver (a socket in this test that
//! decodes what it is sent with the protocol's own protobuf types): the request span
//! continues the caller's W3C trace, is named by its route template, and its
//! statements are its children with the database conventions' attributes. A test
//! binary of its own: the exporter belongs to the process's one subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "app/common.rs"]
mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::http::StatusCode;
use actix_web::test;
use napiatke_db::testing::FIXTURE_PASSWORD;
use napiatke_db::Engine;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use common::*;

napiatke_db::both_engines! {
    #[actix_web::test] async
    spans_reach_a_collector_with_their_parents => spans_exported;
}

/// Each request received: its request line and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An OTLP/HTTP endpoint on a free port: every POST body kept, 200 answered.
struct Receiver {
    port: u16,
    bodies: Received,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies: Received = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut data = Vec::new();
                let mut buf = [0u8; 8192];
                // Headers, then as many bytes as Content-Length says.
                let (head_end, length) = loop {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break (data.len(), 0);
                    }
                    data.extend_from_slice(&buf[..n]);
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&data[..i]).to_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, length);
                    }
                };
                while data.len() < head_end + length {
                    let n = stream.read(&mut buf).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                let request_line = String::from_utf8_lossy(&data[..head_end])
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let body = data[head_end.min(data.len())..].to_vec();
                kept.lock().unwrap().push((request_line, body));
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Receiver { port, bodies }
    }

    /// Every span received so far, with the request lines they came on.
    fn spans(&self) -> (Vec<String>, Vec<Span>) {
        let bodies = self.bodies.lock().unwrap();
        let lines = bodies.iter().map(|(l, _)| l.clone()).collect();
        let spans = bodies
            .iter()
            .flat_map(|(_, b)| {
                ExportTraceServiceRequest::decode(&b[..])
                    .unwrap()
                    .resource_spans
            })
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect();
        (lines, spans)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attr(span: &Span, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone())
        .and_then(|v| v.value)
}

fn text(span: &Span, key: &str) -> String {
    match attr(span, key) {
        Some(Value::StringValue(s)) => s,
        other => panic!("{key} on {}: {other:?}", span.name),
    }
}

async fn spans_exported(engine: Engine) {
    let receiver = Receiver::start();
    let guard = napiatke_telemetry::init(napiatke_telemetry::Options {
        otlp: Some(napiatke_telemetry::otel::OtlpOptions {
            endpoint: format!("http://127.0.0.1:{}", receiver.port),
            service_name: "napiatke".to_owned(),
            service_version: "test".to_owned(),
            environment: "development".to_owned(),
        }),
        ..napiatke_telemetry::Options::default()
    })
    .unwrap()
    .expect("the first subscriber of this process");
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let page = send(
        &app,
        admin
            .get("/lessons/1/")
            .insert_header(("traceparent", format!("00-{trace}-{parent}-01"))),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.queries() > 0, "a first visit reads the database");
    guard.flush_spans();

    let (lines, spans) = receiver.spans();
    assert!(
        lines.iter().all(|l| l == "POST /v1/traces HTTP/1.1"),
        "{lines:?}"
    );
    let request = spans
        .iter()
        .find(|s| hex(&s.trace_id) == trace && s.kind == SpanKind::Server as i32)
        .unwrap_or_else(|| panic!("no server span of the caller's trace in {spans:#?}"));
    assert_eq!(request.name, "GET /lessons/{id}/");
    assert_eq!(hex(&request.parent_span_id), parent);
    assert_eq!(request.kind, SpanKind::Server as i32);
    assert_eq!(text(request, "http.route"), "/lessons/{id}/");
    assert_eq!(text(request, "http.request.method"), "GET");
    assert_eq!(
        attr(request, "http.response.status_code"),
        Some(Value::IntValue(200))
    );
    let children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == request.span_id)
        .collect();
    let statements: Vec<&Span> = children
        .iter()
        .copied()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert_eq!(statements.len() as u64, page.queries(), "{children:#?}");
    let system = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgresql",
    };
    for s in &statements {
        assert_eq!(text(s, "db.system.name"), system);
        assert_eq!(s.name, format!("{} {system}", text(s, "db.operation.name")));
        let sql = text(s, "db.query.text");
        assert!(sql.starts_with(&text(s, "db.operation.name")), "{sql}");
        assert!(!sql.contains("binds"), "no bind values: {sql}");
        assert_eq!(hex(&s.trace_id), trace);
    }
    assert!(
        children.iter().any(|s| s.name == "render"),
        "the page's render is a child too: {children:#?}"
    );
    // Nothing else in the export names a raw path.
    assert!(spans.iter().all(|s| !s.name.contains("/lessons/1/")));
}
