//! Rendered fragments kept by the version of the data they show.

use crate::{HtmxError, Templates};

/// Rendered templates kept by the version of the data they show (key-based expiry):
/// when the data changes, the service that owns it gives it a new version, so a
/// rendered copy is never stale and never needs invalidating here. The key also holds
/// the templates' fingerprint. Only data-only fragments belong here: nothing carrying
/// a CSRF token or another user's data unless that user is in the version.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::time::Duration;
/// use napiatke_htmx::{FragmentCache, Templates};
/// let t = Templates::from_sources(&[("n.html", "<b>{{ n }}</b>")])?;
/// let cache = napiatke_cache::Cache::local(Default::default());
/// let fragments = FragmentCache::new(&cache, Duration::from_secs(60));
/// let ctx = || { let mut c = tera::Context::new(); c.insert("n", &7); c };
/// assert_eq!(*fragments.render(&t, "n.html", "v1", ctx).await?, "<b>7</b>");
/// // Same version: served from the cache, the context is not even built.
/// let again = fragments.render(&t, "n.html", "v1", || unreachable!()).await?;
/// assert_eq!(*again, "<b>7</b>");
/// # Ok::<(), napiatke_htmx::HtmxError>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct FragmentCache {
    cache: napiatke_cache::Cache,
    ns: napiatke_cache::Namespace,
}

impl FragmentCache {
    /// Fragments in `cache`, each kept for `ttl`.
    #[must_use]
    pub fn new(cache: &napiatke_cache::Cache, ttl: std::time::Duration) -> FragmentCache {
        FragmentCache {
            cache: cache.clone(),
            ns: cache.namespace("fragment", 1, ttl),
        }
    }

    /// `name` rendered with the context `ctx` builds, for data at `version`; the
    /// context is only built when the fragment is not cached.
    pub async fn render(
        &self,
        templates: &Templates,
        name: &str,
        version: &str,
        ctx: impl FnOnce() -> tera::Context,
    ) -> Result<std::sync::Arc<String>, HtmxError> {
        let key = format!("{:016x}:{name}:{version}", templates.fingerprint());
        self.cache
            .get_or_compute(&self.ns, &key, || async { templates.render(name, &ctx()) })
            .await
            .map_err(std::sync::Arc::unwrap_or_clone)
    }
}
