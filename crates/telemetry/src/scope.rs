//! Which request the current thread is working for, without a span.
//!
//! The web shell polls each request's future inside [`RequestCost::scope`]: for the
//! length of every poll the request's cost sits in a thread-local, and the
//! [`AccountingLayer`](crate::AccountingLayer) adds the statement, cache and render
//! events emitted on that thread to it. A span made during the poll (the work a
//! service moves to a blocking thread or a task of its own, target [`WORK_TARGET`])
//! takes the request's cost along, so what runs inside that span elsewhere counts
//! too.
//!
//! A `tracing` span per request did the same job for many times the instructions
//! (a slot in the span slab, the registry's span stack, every layer's filter on each
//! enter and exit, the close): docs/performance.md, "Telemetry's cost in
//! instructions".
//!
//! ```
//! use napiatke_telemetry::{AccountingLayer, RequestCost, CACHE_TARGET};
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
//! tracing::subscriber::with_default(subscriber, || {
//!     let cost = RequestCost::new("r-1");
//!     cost.in_scope(|| {
//!         tracing::debug!(target: CACHE_TARGET, ns = "html", tier = "l1", hit = true, duration_us = 0u64);
//!     });
//!     tracing::debug!(target: CACHE_TARGET, ns = "html", tier = "l1", hit = true, duration_us = 0u64);
//!     assert_eq!(cost.cache().l1_hits, 1, "the second lookup was outside the request");
//! });
//! ```

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::RequestCost;

/// The target of the spans services put work in when it leaves the request's task
/// (a blocking thread, a task of its own). Such a span, made inside a request's
/// scope, carries the request's cost. Kept equal to napiatke-services' constant (a
/// test in apps/web checks they agree).
pub const WORK_TARGET: &str = "napiatke::work";

thread_local! {
    static CURRENT: Cell<Option<RequestCost>> = const { Cell::new(None) };
}

/// Puts `previous` back into the thread-local when dropped, a panic included, and
/// hands what it replaces to `back` (the scope's own cost, moved rather than
/// cloned: a poll costs no reference counting).
struct Restore<'a> {
    previous: Option<RequestCost>,
    back: &'a mut Option<RequestCost>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        *self.back = CURRENT.with(|c| c.replace(self.previous.take()));
    }
}

/// Runs `f` with the cost of the request this thread is working for, if any. (`f`
/// must not panic: the cost would leave the scope for the rest of the poll.)
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&RequestCost>) -> R) -> R {
    CURRENT.with(|c| {
        let cost = c.take();
        let r = f(cost.as_ref());
        c.set(cost);
        r
    })
}

impl RequestCost {
    /// Runs `f` as part of this request: events on this thread count for it.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let mut mine = Some(self.clone());
        let _back = Restore {
            previous: CURRENT.with(|c| c.replace(mine.take())),
            back: &mut mine,
        };
        f()
    }

    /// The future `make` returns, made and then polled as part of this request:
    /// [`RequestCost::in_scope`] and [`RequestCost::scope`] in one, with one
    /// reference count taken instead of two.
    ///
    /// ```
    /// use std::future::Future;
    /// use std::task::{Context, Poll, Waker};
    /// use napiatke_telemetry::{AccountingLayer, RequestCost, CACHE_TARGET};
    /// use tracing_subscriber::layer::SubscriberExt;
    ///
    /// let lookup = || tracing::debug!(target: CACHE_TARGET, ns = "html", tier = "l1", hit = true);
    /// let subscriber = tracing_subscriber::registry().with(AccountingLayer::default());
    /// tracing::subscriber::with_default(subscriber, || {
    ///     let cost = RequestCost::new("r-1");
    ///     let mut fut = std::pin::pin!(cost.scope_with(|| {
    ///         lookup(); // while the future is made
    ///         async move {
    ///             lookup(); // and while it is polled
    ///             42
    ///         }
    ///     }));
    ///     let mut cx = Context::from_waker(Waker::noop());
    ///     assert_eq!(fut.as_mut().poll(&mut cx), Poll::Ready(42));
    ///     lookup(); // outside
    ///     assert_eq!(cost.cache().l1_hits, 2);
    /// });
    /// ```
    pub fn scope_with<F: Future>(&self, make: impl FnOnce() -> F) -> Scoped<F> {
        let mut cost = Some(self.clone());
        let fut = {
            let _back = Restore {
                previous: CURRENT.with(|c| c.replace(cost.take())),
                back: &mut cost,
            };
            make()
        };
        Scoped { cost, fut }
    }

    /// `fut`, polled as part of this request (see [`RequestCost::in_scope`]).
    pub fn scope<F: Future>(&self, fut: F) -> Scoped<F> {
        Scoped {
            cost: Some(self.clone()),
            fut,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future polled inside its request's scope ([`RequestCost::scope`]).
    #[derive(Debug)]
    pub struct Scoped<F> {
        cost: Option<RequestCost>,
        #[pin]
        fut: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _back = Restore {
            previous: CURRENT.with(|c| c.replace(this.cost.take())),
            back: this.cost,
        };
        this.fut.poll(cx)
    }
}
