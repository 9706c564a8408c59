//! HTML too long to render before the first byte goes out (a calendar week of
//! thousands of lessons): rendered part by part on a blocking thread, each part sent
//! as soon as it is ready, compressed as a stream (flushed per part), and the whole
//! page stored in the [`HtmlCache`] when the last part is done, so the next request
//! is answered from the stored bytes as any cached page is.

use std::io::Write as _;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::HttpResponse;
use bytes::Bytes;
use napiatke_assets::{negotiate, Coding};
use tokio::sync::mpsc;

use crate::{Effort, FragmentKey, HtmlCache, HtmxError, StoredHtml, Templates};

/// Parts sent ahead of the client: a part is rendered at most this far ahead of
/// what the connection has taken (memory stays a few parts, not the page).
const PARTS_AHEAD: usize = 2;

/// Where a streamed render sends its parts.
pub struct Parts {
    tx: mpsc::Sender<Result<Bytes, HtmxError>>,
    encoder: Encoder,
    whole: String,
    gone: bool,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("sent_bytes", &self.whole.len())
            .finish_non_exhaustive()
    }
}

enum Encoder {
    Identity,
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Parts {
    /// Sends `html` now. `false` when the client has gone: stop rendering (nothing is
    /// stored then).
    pub fn send(&mut self, html: &str) -> bool {
        self.whole.push_str(html);
        let bytes = match &mut self.encoder {
            Encoder::Identity => Some(Bytes::copy_from_slice(html.as_bytes())),
            Encoder::Gzip(w) => w
                .write_all(html.as_bytes())
                .and_then(|()| w.flush())
                .ok()
                .map(|()| Bytes::from(std::mem::take(w.get_mut()))),
            Encoder::Br(w) => w
                .write_all(html.as_bytes())
                .and_then(|()| w.flush())
                .ok()
                .map(|()| Bytes::from(std::mem::take(w.get_mut()))),
        };
        let sent = match bytes {
            Some(b) if b.is_empty() => true,
            Some(b) => self.tx.blocking_send(Ok(b)).is_ok(),
            None => false,
        };
        // A page cut short must not be stored as if whole.
        self.gone |= !sent;
        sent
    }

    /// Ends the compressed stream; the whole page.
    fn finish(self) -> (String, Option<Bytes>) {
        let tail = match self.encoder {
            Encoder::Identity => None,
            Encoder::Gzip(w) => w.finish().ok().map(Bytes::from),
            Encoder::Br(w) => Some(Bytes::from(w.into_inner())),
        };
        (self.whole, tail.filter(|t| !t.is_empty()))
    }
}

impl HtmlCache {
    /// A 200 whose body `render` produces part by part through [`Parts::send`] on a
    /// blocking thread, sent as it goes: br or gzip by the request's
    /// `Accept-Encoding` (identity if neither), without `Content-Length` or `ETag`
    /// (not known before the end), with `X-Cache: MISS`. When `render` has sent
    /// every part, the page is stored under `key` as
    /// [`HtmlCache::get_or_render`] would have stored it. An error in `render` ends
    /// the body early (the client sees a truncated transfer) and stores nothing.
    ///
    /// ```
    /// # actix_web::rt::System::new().block_on(async {
    /// use std::time::Duration;
    /// use actix_web::http::header::HeaderMap;
    /// use napiatke_htmx::{FragmentKey, HtmlCache, Templates};
    /// let t = std::sync::Arc::new(Templates::from_sources(&[])?);
    /// let cache = HtmlCache::new(&napiatke_cache::Cache::local(Default::default()), "week", Duration::from_secs(60));
    /// let key = FragmentKey::new("/calendar/", "all", None, "v1");
    /// let res = cache.render_streamed(&t, &key, &HeaderMap::new(), "private, no-cache", |parts| {
    ///     for day in 1..=7 {
    ///         if !parts.send(&format!("<section>day {day}</section>")) { break; }
    ///     }
    ///     Ok(())
    /// });
    /// let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
    /// assert!(body.starts_with(b"<section>day 1</section>"));
    /// # Ok::<(), napiatke_htmx::HtmxError>(())
    /// # }).unwrap();
    /// ```
    pub fn render_streamed(
        &self,
        templates: &Templates,
        key: &FragmentKey,
        headers: &HeaderMap,
        cache_control: &'static str,
        render: impl FnOnce(&mut Parts) -> Result<(), HtmxError> + Send + 'static,
    ) -> HttpResponse {
        let accept = headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok());
        let coding = negotiate(accept, &Coding::offered(true, true)).unwrap_or(Coding::Identity);
        let encoder = match coding {
            // Streamed: the fast settings, as for any body rendered for one response.
            Coding::Br => Encoder::Br(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                16 * 1024,
                4,
                20,
            ))),
            Coding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(4),
            )),
            Coding::Identity => Encoder::Identity,
        };
        let (tx, mut rx) = mpsc::channel(PARTS_AHEAD);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<String>();
        let cache = self.clone();
        let full = self.full_key(templates, key);
        // Stored once the last part is rendered, whether or not the client stayed.
        actix_web::rt::spawn(async move {
            if let Ok(html) = done_rx.await {
                cache
                    .put_full(&full, StoredHtml::new(html, Effort::Stored))
                    .await;
            }
        });
        actix_web::rt::task::spawn_blocking(move || {
            let mut parts = Parts {
                tx: tx.clone(),
                encoder,
                whole: String::new(),
                gone: false,
            };
            match render(&mut parts) {
                Ok(()) if parts.gone => {}
                Ok(()) => {
                    let (whole, tail) = parts.finish();
                    if let Some(tail) = tail {
                        let _ = tx.blocking_send(Ok(tail));
                    }
                    let _ = done_tx.send(whole);
                }
                Err(e) => {
                    tracing::error!(error = %e, "streamed render failed");
                    let _ = tx.blocking_send(Err(e));
                }
            }
        });
        let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut res = HttpResponse::Ok();
        res.content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, cache_control))
            .insert_header((
                header::VARY,
                HeaderValue::from_static("HX-Request, Accept-Encoding"),
            ))
            .insert_header(("x-cache", "MISS"))
            .insert_header(("server-timing", "html;desc=\"MISS, streamed\""));
        if coding != Coding::Identity {
            res.insert_header((header::CONTENT_ENCODING, coding.as_str()));
        }
        res.streaming(body)
    }
}
