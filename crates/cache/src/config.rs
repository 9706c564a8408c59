//! How a cache is built, and the one error building it can give.

use super::*;

/// How to build a [`Cache`].
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `redis://host:port/db`; `None` runs L1 only.
    pub redis_url: Option<String>,
    /// Put before every Redis key and channel, so deployments (and tests) sharing a
    /// Redis never see each other's entries.
    pub prefix: String,
    /// L1 bound in bytes (encoded value plus key); 0 turns L1 off (every read goes
    /// to Redis: for measuring L2, or processes that must never serve a local copy).
    pub l1_capacity_bytes: u64,
    /// Per-operation Redis timeout; capped at [`MAX_OP_TIMEOUT`].
    pub op_timeout: Duration,
    /// How long an invalidation waits for other processes to drop their L1 copies.
    pub ack_timeout: Duration,
    /// Redis connections (each is multiplexed).
    pub pool_size: u32,
    /// How often the invalidation listener pings its connection, so a half-open one
    /// is noticed; a ping unanswered within this interval (at least a second) counts
    /// as a lost subscription.
    pub keepalive: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            prefix: "napiatke".to_owned(),
            l1_capacity_bytes: 64 * 1024 * 1024,
            op_timeout: MAX_OP_TIMEOUT,
            ack_timeout: MAX_OP_TIMEOUT,
            pool_size: 8,
            keepalive: Duration::from_secs(5),
        }
    }
}

/// Errors building a cache: only a malformed Redis URL (an unreachable Redis is not
/// an error, the cache degrades to L1 and retries).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The Redis URL cannot be parsed.
    #[error("not a Redis URL: {0}")]
    BadUrl(String),
}
