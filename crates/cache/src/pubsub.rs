//! The invalidation channel: what travels on it, and the listener that keeps this
//! process subscribed.
//!
//! The listener holds one dedicated pub/sub connection. TCP can keep a half-open
//! connection quiet for hours, so the listener pings it every
//! [`CacheConfig::keepalive`](crate::CacheConfig::keepalive); only a real failure (no
//! reply in time, an error, a closed stream) counts as a lost subscription. A lost
//! subscription may have missed messages, so the reconnect empties L1 and re-reads
//! the generations; in healthy operation that never happens.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Weak;
use std::time::Duration;

use bb8_redis::redis;
use futures_util::StreamExt;

use crate::{unix_ms, Cache, Inner};

/// The longest a (re)subscription may take, and the least a keep-alive PING waits
/// for its reply (it waits a whole interval when that is longer: a busy machine
/// must not pass for a dead link).
const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// What travels on the invalidation channel.
pub(crate) enum Message {
    Keys(Vec<String>),
    Namespace(String, u32, u64),
}

impl Message {
    pub(crate) fn encode(&self, sender: u64, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&sender.to_le_bytes());
        out.extend_from_slice(&seq.to_le_bytes());
        match self {
            Message::Keys(keys) => {
                out.push(b'k');
                out.extend_from_slice(keys.join("\n").as_bytes());
            }
            Message::Namespace(name, version, gen) => {
                out.push(b'n');
                out.extend_from_slice(format!("{name}\n{version}\n{gen}").as_bytes());
            }
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<(u64, u64, Message)> {
        let sender = u64::from_le_bytes(bytes.get(0..8)?.try_into().ok()?);
        let seq = u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?);
        let body = std::str::from_utf8(bytes.get(17..)?).ok()?;
        let message = match bytes.get(16)? {
            b'k' => Message::Keys(body.split('\n').map(str::to_owned).collect()),
            b'n' => {
                let mut parts = body.split('\n');
                let name = parts.next()?.to_owned();
                let version = parts.next()?.parse().ok()?;
                let gen = parts.next()?.parse().ok()?;
                Message::Namespace(name, version, gen)
            }
            _ => return None,
        };
        Some((sender, seq, message))
    }
}

/// Whether `reply` answers a PING. A subscribed RESP2 connection answers with the
/// array `["pong", ""]` (not the simple string `PONG` of a normal connection); RESP3
/// answers `PONG` either way. Reading it as a string failed on every ping, which
/// dropped the subscription and emptied L1 every interval (issue 19).
pub(crate) fn is_pong(reply: &redis::Value) -> bool {
    use redis::Value;
    let pong = |v: &Value| match v {
        Value::SimpleString(s) => s.eq_ignore_ascii_case("pong"),
        Value::BulkString(b) => b.eq_ignore_ascii_case(b"pong"),
        _ => false,
    };
    match reply {
        Value::Array(items) => items.first().is_some_and(pong),
        other => pong(other),
    }
}

/// Listens for invalidations from other processes, reconnecting with backoff. Holds
/// only a weak reference, and is aborted when the cache is dropped.
pub(crate) async fn subscriber(weak: Weak<Inner>) {
    let mut backoff = Duration::from_millis(100);
    // Whether this listener has been subscribed before: every later subscription is
    // a reconnect, and the L1 it empties counts as a reset.
    let mut subscribed_before = false;
    let mut failed_before = false;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let Some(l2) = &inner.l2 else { return };
        let client = l2.client().clone();
        let (channel, ack_channel) = (l2.channel.clone(), l2.ack_channel.clone());
        let keepalive = inner.keepalive;
        drop(inner);
        let connected = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            ps.subscribe(&ack_channel).await?;
            Ok::<_, redis::RedisError>(ps)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, connected).await {
            Ok(Ok(ps)) => {
                backoff = Duration::from_millis(100);
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let cache = Cache { inner };
                    // Messages sent while we were away are lost: start clean. The
                    // first subscription, made at start, empties what the first
                    // milliseconds of requests may have cached; it is no reset.
                    let reset = subscribed_before || failed_before;
                    cache.resync(reset).await;
                    if let Some(l2) = &cache.inner.l2 {
                        if subscribed_before {
                            l2.counters.reconnects.fetch_add(1, Relaxed);
                            l2.counters
                                .last_reconnect_unix_ms
                                .store(unix_ms().max(1), Relaxed);
                            tracing::info!(
                                target: "napiatke_cache",
                                "invalidation channel subscribed again; L1 emptied"
                            );
                        }
                        l2.subscribed.store(true, Relaxed);
                    }
                }
                subscribed_before = true;
                let failure = listen(&weak, ps, &ack_channel, keepalive).await;
                let Some(failure) = failure else { return };
                let Some(inner) = weak.upgrade() else { return };
                if let Some(l2) = &inner.l2 {
                    l2.subscribed.store(false, Relaxed);
                    l2.log_throttled("subscribe", &failure);
                }
            }
            Ok(Err(e)) => {
                failed_before = true;
                let Some(inner) = weak.upgrade() else { return };
                if let Some(l2) = &inner.l2 {
                    l2.log_throttled("subscribe", &e);
                }
            }
            Err(_) => {
                failed_before = true;
                let Some(inner) = weak.upgrade() else { return };
                if let Some(l2) = &inner.l2 {
                    l2.log_throttled("subscribe", &"timed out");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Why a subscription ended.
#[derive(Debug)]
enum Lost {
    Closed,
    PingTimeout(Duration),
    PingError(redis::RedisError),
    NotPong(redis::Value),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::Closed => f.write_str("invalidation channel closed; reconnecting"),
            Lost::PingTimeout(t) => write!(
                f,
                "invalidation channel did not answer a ping within {} ms; reconnecting",
                t.as_millis()
            ),
            Lost::PingError(e) => write!(f, "invalidation channel ping failed ({e}); reconnecting"),
            Lost::NotPong(v) => write!(
                f,
                "invalidation channel answered a ping with {v:?}; reconnecting"
            ),
        }
    }
}

/// Applies messages until the subscription is lost (`Some(why)`) or the cache is
/// dropped (`None`).
async fn listen(
    weak: &Weak<Inner>,
    ps: redis::aio::PubSub,
    ack_channel: &str,
    keepalive: Duration,
) -> Option<Lost> {
    let (mut sink, mut stream) = ps.split();
    let reply_timeout = REPLY_TIMEOUT.max(keepalive);
    let mut ping = tokio::time::interval(keepalive);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = stream.next() => {
                let Some(msg) = msg else { return Some(Lost::Closed) };
                let inner = weak.upgrade()?;
                let cache = Cache { inner };
                if msg.get_channel_name() == ack_channel {
                    cache.receive_ack(msg.get_payload_bytes());
                } else {
                    cache.receive(msg.get_payload_bytes()).await;
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(reply_timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(reply)) if is_pong(&reply) => {}
                    Ok(Ok(reply)) => return Some(Lost::NotPong(reply)),
                    Ok(Err(e)) => return Some(Lost::PingError(e)),
                    Err(_) => return Some(Lost::PingTimeout(reply_timeout)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn pongs_of_every_protocol_are_pongs() {
        // RESP2, subscribed: ["pong", ""].
        let subscribed = Value::Array(vec![
            Value::BulkString(b"pong".to_vec()),
            Value::BulkString(Vec::new()),
        ]);
        assert!(is_pong(&subscribed));
        // RESP2 unsubscribed and RESP3: +PONG.
        assert!(is_pong(&Value::SimpleString("PONG".to_owned())));
        assert!(!is_pong(&Value::SimpleString("OK".to_owned())));
        assert!(!is_pong(&Value::Array(vec![Value::BulkString(
            b"message".to_vec()
        )])));
        assert!(!is_pong(&Value::Nil));
        assert!(!is_pong(&Value::Array(Vec::new())));
    }

    #[test]
    fn messages_round_trip() {
        let keys = Message::Keys(vec!["a:1".to_owned(), "b:2".to_owned()]);
        let Some((sender, seq, Message::Keys(k))) = Message::decode(&keys.encode(7, 9)) else {
            panic!("keys message did not decode");
        };
        assert_eq!(
            (sender, seq, k),
            (7, 9, vec!["a:1".to_owned(), "b:2".to_owned()])
        );
        let ns = Message::Namespace("weeks".to_owned(), 2, 41);
        let Some((_, _, Message::Namespace(name, version, gen))) =
            Message::decode(&ns.encode(1, 2))
        else {
            panic!("namespace message did not decode");
        };
        assert_eq!((name.as_str(), version, gen), ("weeks", 2, 41));
        assert!(Message::decode(b"short").is_none());
    }
}
