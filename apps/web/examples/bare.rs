//! The floor for a cached page: actix-web answering every request with one fixed
//! body from memory, no routing, middleware, session or cache. scripts/load.sh runs
//! it beside napiatke with the bytes of a cached page, so "a warm cached page reaches
//! N % of sending stored bytes" is measured in the same run.
//!
//! ```sh
//! BIND=127.0.0.1:8190 CONTENT_ENCODING=br cargo run --release --example bare -- page.br
//! ```

use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpResponse, HttpServer};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let Some(file) = std::env::args().nth(1) else {
        eprintln!("usage: bare BODY_FILE (env BIND, CONTENT_ENCODING)");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(&file)?);
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8190".to_owned());
    let encoding = std::env::var("CONTENT_ENCODING").ok();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    HttpServer::new(move || {
        let (body, encoding) = (body.clone(), encoding.clone());
        App::new().default_service(web::to(move || {
            let mut res = HttpResponse::Ok();
            res.insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"));
            if let Some(e) = &encoding {
                res.insert_header((header::CONTENT_ENCODING, e.as_str()));
            }
            let body = body.clone();
            async move { res.body(body) }
        }))
    })
    // As napiatke serves: without it a two-part write stalls on Nagle.
    .tcp_nodelay(true)
    .workers(workers)
    .bind(bind)?
    .run()
    .await
}
