//! The invalidation bus of tiered stores: Redis pub/sub, one channel per
//! namespace (`kvs:invalidate:<namespace>`).
//!
//! Every write through a [`TieredStore`](super::TieredStore) publishes
//! what it changed (a key, a prefix); every other instance subscribed to
//! the namespace drops it from its local tier. Messages carry the sending
//! instance's id, so an instance ignores its own.
//!
//! Pub/sub delivers only to connected subscribers: a message sent while an
//! instance is disconnected is lost to it. So the subscriber, on every
//! (re)subscription, tells its store to drop its whole local tier, and
//! while it is not subscribed the store reads past its local tier (see
//! [`Bus::is_live`]). It reconnects by itself, with growing pauses, after a
//! restart of the server or a lost connection.
//!
//! Publishing happens on a task of its own, in the order of the writes,
//! so a write does not wait for a second round trip; a publication that
//! fails after one reconnection is logged and dropped, and the other
//! instances' local TTL then bounds their staleness.

#[cfg(feature = "redis")]
pub(crate) use redis_bus::Bus;

/// Without the `redis` feature there is no bus: `Tiered::bus` refuses to
/// configure one, so no value of this type is ever made.
#[cfg(not(feature = "redis"))]
pub(crate) enum Bus {}

#[cfg(not(feature = "redis"))]
impl Bus {
    pub(crate) fn is_live(&self) -> bool {
        match *self {}
    }
    pub(crate) fn send(&self, _: &Invalidation) {
        match *self {}
    }
    pub(crate) fn stop(&self) {
        match *self {}
    }
}

/// What a message tells the other instances to drop.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // sent and read by the Redis bus
pub(crate) enum Invalidation {
    Key(String),
    Prefix(String),
    /// Everything: this instance may have missed messages.
    All,
}

/// A message of another instance, or `None` for one of ours or junk.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
fn parse(payload: &[u8], own_id: &str) -> Option<Invalidation> {
    let text = std::str::from_utf8(payload).ok()?;
    let (id, rest) = text.split_once('\n')?;
    if id == own_id {
        return None;
    }
    let (kind, body) = rest.split_once('\n')?;
    match kind {
        "k" => Some(Invalidation::Key(body.to_owned())),
        "p" => Some(Invalidation::Prefix(body.to_owned())),
        "a" => Some(Invalidation::All),
        _ => None,
    }
}

#[cfg(feature = "redis")]
mod redis_bus {
    use super::{parse, Invalidation};
    use futures_util::StreamExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::mpsc;

    /// A running bus: its subscriber and publisher tasks end when it drops.
    pub(crate) struct Bus {
        id: String,
        outbox: mpsc::UnboundedSender<Vec<u8>>,
        live: Arc<AtomicBool>,
        tasks: Vec<tokio::task::JoinHandle<()>>,
    }

    impl std::fmt::Debug for Bus {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            // No URL: it may hold a password.
            f.debug_struct("Bus")
                .field("live", &self.is_live())
                .finish_non_exhaustive()
        }
    }

    impl Bus {
        /// Starts the bus of `namespace` on the Redis at `url`, calling
        /// `apply` for every invalidation another instance sends (and with
        /// [`Invalidation::All`] on each subscription). Needs a tokio runtime.
        pub(crate) fn start(
            url: &str,
            namespace: &str,
            apply: Arc<dyn Fn(Invalidation) + Send + Sync>,
        ) -> crate::Result<Bus> {
            let client = redis::Client::open(url).map_err(|e| {
                // The message, never the URL (it may carry a password).
                crate::Error::config(format!("tiered: the bus URL is not a Redis URL: {e}"))
            })?;
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                crate::Error::unsupported("tiered: the invalidation bus needs a tokio runtime")
            })?;
            let channel = format!("kvs:invalidate:{namespace}");
            let id = crate::cache::lease::token();
            let live = Arc::new(AtomicBool::new(false));
            let (outbox, inbox) = mpsc::unbounded_channel();
            let subscriber = runtime.spawn(subscribe(
                client.clone(),
                channel.clone(),
                id.clone(),
                Arc::clone(&live),
                apply,
            ));
            let publisher = runtime.spawn(publish(client, channel, inbox));
            Ok(Bus {
                id,
                outbox,
                live,
                tasks: vec![subscriber, publisher],
            })
        }

        /// Whether the subscriber is subscribed now: only then can the local
        /// tier be trusted.
        pub(crate) fn is_live(&self) -> bool {
            self.live.load(Ordering::Acquire)
        }

        /// Tells the other instances to drop `what`.
        pub(crate) fn send(&self, what: &Invalidation) {
            let (kind, text) = match what {
                Invalidation::Key(key) => ("k", key.as_str()),
                Invalidation::Prefix(prefix) => ("p", prefix.as_str()),
                Invalidation::All => ("a", ""),
            };
            let message = format!("{}\n{kind}\n{text}", self.id).into_bytes();
            // Fails only once the publisher has ended, at close.
            let _ = self.outbox.send(message);
        }

        /// Stops both tasks.
        pub(crate) fn stop(&self) {
            for task in &self.tasks {
                task.abort();
            }
            self.live.store(false, Ordering::Release);
        }
    }

    impl Drop for Bus {
        fn drop(&mut self) {
            self.stop();
        }
    }

    const FIRST_PAUSE: Duration = Duration::from_millis(50);
    const LONGEST_PAUSE: Duration = Duration::from_secs(2);

    async fn subscribe(
        client: redis::Client,
        channel: String,
        id: String,
        live: Arc<AtomicBool>,
        apply: Arc<dyn Fn(Invalidation) + Send + Sync>,
    ) {
        let mut pause = FIRST_PAUSE;
        loop {
            match client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                    Ok(()) => {
                        // Whatever was sent while this instance was not
                        // listening is lost: start from an empty local tier.
                        apply(Invalidation::All);
                        live.store(true, Ordering::Release);
                        pause = FIRST_PAUSE;
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Some(what) = parse(message.get_payload_bytes(), &id) {
                                apply(what);
                            }
                        }
                        live.store(false, Ordering::Release);
                        tracing::debug!(
                            "kvs tiered store: the invalidation bus lost its connection"
                        );
                    }
                    Err(e) => tracing::debug!(error = %e, "kvs tiered store: SUBSCRIBE failed"),
                },
                Err(e) => tracing::debug!(error = %e, "kvs tiered store: cannot reach the bus"),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }

    async fn publish(
        client: redis::Client,
        channel: String,
        mut inbox: mpsc::UnboundedReceiver<Vec<u8>>,
    ) {
        let mut connection = None;
        while let Some(message) = inbox.recv().await {
            for _attempt in 0..2 {
                if connection.is_none() {
                    connection = client.get_multiplexed_async_connection().await.ok();
                }
                let Some(conn) = connection.as_mut() else {
                    continue;
                };
                let sent = redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(conn)
                    .await;
                match sent {
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "kvs tiered store: PUBLISH failed");
                        connection = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_own_ones_are_ignored() {
        assert_eq!(
            parse(b"other\nk\nuser:1", "me"),
            Some(Invalidation::Key("user:1".into()))
        );
        assert_eq!(
            parse(b"other\np\n", "me"),
            Some(Invalidation::Prefix(String::new()))
        );
        assert_eq!(
            parse(b"other\nk\na\nb", "me"),
            Some(Invalidation::Key("a\nb".into()))
        );
        assert_eq!(parse(b"other\na\n", "me"), Some(Invalidation::All));
        assert_eq!(parse(b"me\nk\nuser:1", "me"), None);
        for junk in [&b""[..], b"x", b"other\nz\nk", b"other\nk", b"\xff\nk\nx"] {
            assert_eq!(parse(junk, "me"), None, "{junk:?}");
        }
    }
}
