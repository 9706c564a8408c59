//! Namespaces and the key scheme: `{prefix}:{name}:{version}:{generation}:{key}`, the
//! generation counters (`{prefix}:gen:{name}`) that invalidate a namespace in one
//! INCR, and keeping this process's copy of them current.

use super::*;

/// A family of keys with one TTL and one value type, invalidated together by
/// [`Cache::invalidate_namespace`]. Cheap to clone; create once at start-up with
/// [`Cache::namespace`].
#[derive(Clone)]
pub struct Namespace {
    pub(crate) state: Arc<NsState>,
    pub(crate) ttl: Duration,
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.state.name)
            .field("version", &self.state.version)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Namespace {
    /// Its name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.state.name
    }
    /// How long its entries live.
    #[must_use]
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

pub(crate) struct NsState {
    pub(crate) name: String,
    pub(crate) version: u32,
    pub(crate) generation: AtomicU64,
    /// Whether `generation` has been read from Redis since (re)connecting.
    pub(crate) synced: AtomicBool,
    pub(crate) counters: NsCounters,
}

impl Cache {
    /// Declares a namespace: `name` (lower-case letters, digits, `_` and `-`),
    /// `version` (bump it when the cached type changes shape) and the TTL of its
    /// entries. Declaring the same name again shares its generation and counters.
    ///
    /// # Panics
    /// On a name outside that alphabet or the reserved name `gen`: namespaces are
    /// fixed in code, so this is a programming error found at start-up.
    #[must_use]
    #[allow(clippy::panic)]
    pub fn namespace(&self, name: &str, version: u32, ttl: Duration) -> Namespace {
        assert!(
            !name.is_empty()
                && name != "gen"
                && name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'_'
                    || b == b'-'),
            "bad cache namespace name {name:?}"
        );
        let key = format!("{name}:{version}");
        let mut map = self
            .inner
            .namespaces
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let state = map
            .entry(key)
            .or_insert_with(|| {
                Arc::new(NsState {
                    name: name.to_owned(),
                    version,
                    generation: AtomicU64::new(0),
                    synced: AtomicBool::new(false),
                    counters: NsCounters::default(),
                })
            })
            .clone();
        Namespace { state, ttl }
    }

    /// Built by hand: every lookup makes one, and `format!` (its machinery, and a
    /// string grown twice) cost a cached page about 180 ns a lookup.
    pub(crate) fn full_key(&self, ns: &Namespace, key: &str) -> String {
        let s = &ns.state;
        let (prefix, name) = (&*self.inner.prefix, &*s.name);
        let mut version = itoa::Buffer::new();
        let mut generation = itoa::Buffer::new();
        let (version, generation) = (
            version.format(s.version),
            generation.format(s.generation.load(Relaxed)),
        );
        let mut full = String::with_capacity(
            prefix.len() + name.len() + version.len() + generation.len() + key.len() + 4,
        );
        full.push_str(prefix);
        for part in [name, version, generation, key] {
            full.push(':');
            full.push_str(part);
        }
        full
    }

    pub(crate) fn gen_key(&self, name: &str) -> String {
        format!("{}:gen:{name}", self.inner.prefix)
    }

    /// One INCR of a namespace's generation counter: the new generation.
    pub(crate) async fn incr_generation(
        &self,
        l2: &L2,
        name: &str,
    ) -> Result<(u64, bool), L2Error> {
        let key = self.gen_key(name);
        l2.run("incr generation", |mut c| async move {
            redis::cmd("INCR")
                .arg(&key)
                .query_async::<u64>(&mut c)
                .await
        })
        .await
    }

    /// Reads the namespace's generation from Redis once after each (re)connection.
    pub(crate) async fn sync_generation(&self, ns: &Namespace) {
        let Some(l2) = &self.inner.l2 else { return };
        if ns.state.synced.load(Relaxed) {
            return;
        }
        let key = self.gen_key(&ns.state.name);
        if let Ok((gen, recovered)) = l2
            .run("get generation", |mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<u64>>(&mut c)
                    .await
            })
            .await
        {
            // Never backwards: an INCR or a message may have raised it meanwhile.
            ns.state.generation.fetch_max(gen.unwrap_or(0), Relaxed);
            ns.state.synced.store(true, Relaxed);
            self.after_success(recovered).await;
        }
    }

    pub(crate) fn namespace_states(&self) -> Vec<Arc<NsState>> {
        self.inner
            .namespaces
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// `bytes` as lowercase hex, two digits a byte: fingerprints in keys, session keys,
/// request ids.
///
/// ```
/// assert_eq!(napiatke_cache::hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
/// assert_eq!(napiatke_cache::hex(&0x1234_u64.to_be_bytes()), "0000000000001234");
/// ```
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    push_hex(&mut text, bytes);
    text
}

/// [`hex`] appended to `out`. Digits are written as bytes, eight input bytes at a
/// time on the stack, then checked once: a `char` pushed per digit (each one UTF-8
/// encoded) cost about 20 instructions a digit, on every request.
///
/// ```
/// let mut key = String::from("k:");
/// napiatke_cache::push_hex(&mut key, &[0xab, 0x01]);
/// assert_eq!(key, "k:ab01");
/// ```
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.chunks(8) {
        let mut digits = [0u8; 16];
        for (pair, &b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
        }
        // Always ASCII: the check cannot fail.
        if let Ok(text) = std::str::from_utf8(&digits[..chunk.len() * 2]) {
            out.push_str(text);
        }
    }
}

/// Each byte's two hex digits, so a byte is one load and one store.
static HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        pairs[b] = [DIGITS[b >> 4], DIGITS[b & 0x0f]];
        b += 1;
    }
    pairs
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::{Cache, CacheConfig};

    #[test]
    fn a_full_key_is_prefix_name_version_generation_key() {
        let cache = Cache::local(CacheConfig {
            prefix: "napiatke-test".to_owned(),
            ..CacheConfig::default()
        });
        let ns = cache.namespace("html", 12, Duration::from_secs(60));
        ns.state
            .generation
            .store(345, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            cache.full_key(&ns, "/lessons/|t2:x"),
            "napiatke-test:html:12:345:/lessons/|t2:x"
        );
        assert_eq!(cache.full_key(&ns, ""), "napiatke-test:html:12:345:");
        assert_eq!(crate::hex(&[0x00, 0x9f, 0xa0, 0xff]), "009fa0ff");
        assert_eq!(crate::hex(&u64::MAX.to_be_bytes()), "ffffffffffffffff");
        assert_eq!(crate::hex(&[]), "");
        let nine: Vec<u8> = (1..=9).collect();
        assert_eq!(
            crate::hex(&nine),
            "010203040506070809",
            "past one chunk of eight"
        );
    }
}
