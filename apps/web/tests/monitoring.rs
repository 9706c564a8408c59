//! Monitoring against real receivers (a socket in this test that keeps what it is
//! sent): OpenTelemetry export, decoded with the protocol's own protobuf types (the
//! request span continues the caller's W3C trace, is named by its route template,
//! and its statements are its children with the database conventions' attributes);
//! and Sentry, sent one event for a 500 with nothing personal in it. A test binary
//! of its own: the exporter and the Sentry client belong to the whole process
//! (nextest runs each test in a process of its own).

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
    a_server_error_reaches_sentry_without_personal_data => sentry_event;
    sentry_transactions_are_named_by_route_and_never_health_checks => sentry_transactions;
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
                // One request per connection, and said so: a client that pooled this
                // connection would send its next POST into a closed socket (the
                // second Sentry event was lost that way in about 1 run in 8).
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
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
    let parent_of = |s: &Span| spans.iter().find(|p| p.span_id == s.parent_span_id);
    let under_request = |s: &Span| {
        let mut at = parent_of(s);
        while let Some(p) = at {
            if p.span_id == request.span_id {
                return true;
            }
            at = parent_of(p);
        }
        false
    };
    // request > service call > (work moved to a database slot >) statement / Redis
    // command.
    assert!(
        children.iter().any(|s| s.name == "service.lesson_page"),
        "the service call is the request's child: {children:#?}"
    );
    let system = match engine {
        Engine::Sqlite => "sqlite",
        Engine::Postgres => "postgresql",
    };
    let of_system = |s: &&Span, name: &str| {
        s.kind == SpanKind::Client as i32
            && attr(s, "db.system.name") == Some(Value::StringValue(name.to_owned()))
    };
    let statements: Vec<&Span> = spans
        .iter()
        .filter(|s| of_system(s, system) && under_request(s))
        .collect();
    assert_eq!(statements.len() as u64, page.queries(), "{spans:#?}");
    for s in &statements {
        let work = parent_of(s).unwrap_or_else(|| panic!("no parent of {s:#?}"));
        assert_eq!(work.name, "work", "a statement runs in a service's work");
        let service = parent_of(work).map(|p| p.name.as_str()).unwrap_or_default();
        assert!(service.starts_with("service."), "work under {service}");
    }
    assert!(
        spans
            .iter()
            .any(|s| of_system(&s, "redis") && under_request(s)),
        "Redis commands are spans too"
    );
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

/// A Sentry client for the whole process sending to `receiver`, transactions at
/// `traces_sample_rate`.
fn report_to(
    receiver: &Receiver,
    traces_sample_rate: f32,
) -> napiatke_telemetry::report::ClientGuard {
    napiatke_telemetry::report::init(&napiatke_telemetry::report::SentryOptions {
        dsn: format!("http://public@127.0.0.1:{}/1", receiver.port),
        environment: "test".to_owned(),
        release: "napiatke@9.9.9".to_owned(),
        traces_sample_rate,
    })
    .unwrap()
}

/// Every JSON payload of `kind` items in the envelopes received.
fn envelope_items(receiver: &Receiver, kind: &str) -> Vec<serde_json::Value> {
    receiver
        .bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, body)| {
            let lines: Vec<serde_json::Value> = String::from_utf8_lossy(body)
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            lines
                .windows(2)
                .filter(|w| w[0]["type"] == kind)
                .map(|w| w[1].clone())
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn sentry_transactions(engine: Engine) {
    let receiver = Receiver::start();
    let _client = report_to(&receiver, 1.0);
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    for path in ["/healthz", "/lessons/1/", "/healthz", "/lessons/2/"] {
        assert_eq!(send(&app, admin.get(path)).await.status, StatusCode::OK);
    }
    assert!(napiatke_telemetry::report::flush(
        std::time::Duration::from_secs(5)
    ));
    let names: Vec<String> = envelope_items(&receiver, "transaction")
        .iter()
        .filter_map(|t| t["transaction"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "GET /lessons/{id}/").count(),
        2,
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("healthz")), "{names:?}");
    assert!(
        names.iter().all(|n| !n.contains("/lessons/1/")),
        "{names:?}"
    );
    assert!(
        envelope_items(&receiver, "event").is_empty(),
        "no error, no event"
    );
}

async fn sentry_event(engine: Engine) {
    let receiver = Receiver::start();
    // Transactions off: the one thing sent is the error.
    let _client = report_to(&receiver, 0.0);
    let t = fixture(engine);
    let app = test::init_service(napiatke_web::app::app(state(&t, false).await)).await;
    let (_, admin) = login(&app, "admin@napiatke.local", FIXTURE_PASSWORD).await;
    let ok = send(&app, admin.get("/lessons/1/")).await;
    assert_eq!(ok.status, StatusCode::OK);
    // The database loses a table the lesson page needs: a 500, as an outage would.
    t.execute(match engine {
        Engine::Sqlite => "DROP TABLE lesson_students",
        Engine::Postgres => "DROP TABLE lesson_students CASCADE",
    })
    .unwrap();
    let broken = send(
        &app,
        admin
            .get("/lessons/2/")
            .insert_header(("x-request-id", "quote-me-42")),
    )
    .await;
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(broken.header("x-request-id"), Some("quote-me-42"));
    // The same failure asked for by htmx: a message in place for the user, and the
    // report still carries the cause.
    let in_place = send(
        &app,
        admin
            .get("/lessons/3/")
            .insert_header(("hx-request", "true"))
            .insert_header(("hx-target", "students"))
            .insert_header(("x-request-id", "quote-me-43")),
    )
    .await;
    assert_eq!(in_place.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(in_place.header("hx-retarget"), Some("#messages"));
    assert!(napiatke_telemetry::report::flush(
        std::time::Duration::from_secs(5)
    ));

    let bodies = receiver.bodies.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .all(|(line, _)| line == "POST /api/1/envelope/ HTTP/1.1"),
        "{:?}",
        bodies.iter().map(|b| &b.0).collect::<Vec<_>>()
    );
    // Envelopes are JSON lines: a header, then item headers each followed by a payload.
    let events = envelope_items(&receiver, "event");
    assert_eq!(events.len(), 2, "two 500s, two events: {events:#?}");
    let htmx_event = events
        .iter()
        .find(|e| e["tags"]["request_id"] == "quote-me-43")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert!(
        htmx_event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("500 answering GET /lessons/{id}/: database")),
        "{htmx_event:#}"
    );
    let event = events
        .iter()
        .find(|e| e["tags"]["request_id"] == "quote-me-42")
        .unwrap_or_else(|| panic!("{events:#?}"));
    // Error is the protocol's default level, so it may go unsaid.
    assert!(
        event["level"].is_null() || event["level"] == "error",
        "{event:#}"
    );
    assert!(
        event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("500 answering GET /lessons/{id}/: database")),
        "{event:#}"
    );
    assert_eq!(event["environment"], "test");
    assert_eq!(event["release"], "napiatke@9.9.9");
    assert_eq!(event["transaction"], "GET /lessons/{id}/");
    assert_eq!(event["tags"]["route"], "/lessons/{id}/");
    assert_eq!(event["tags"]["request_id"], "quote-me-42");
    assert_eq!(event["tags"]["status"], "500");
    assert_eq!(event["user"]["id"], "1");
    assert_eq!(event["user"]["role"], "ADMIN");
    let everything = bodies
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect::<String>();
    let session = admin.session.clone().unwrap();
    for secret in [
        session.as_str(),
        "napiatke_session",
        "admin@napiatke.local",
        "csrf",
        "Cookie",
        "Authorization",
        FIXTURE_PASSWORD,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret:?} was sent: {everything}"
        );
    }
}
