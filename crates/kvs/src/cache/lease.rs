//! Single flight across processes: a lease key that one loader holds.
//!
//! The lease is a key beside the value (`_kvs/lease/<key>`) taken with
//! [`Store::set_if_absent`] and a TTL, holding a token of this load:
//!
//! | lease value          | meaning                                        |
//! |----------------------|------------------------------------------------|
//! | `L<token>`           | held: `<token>` is loading                     |
//! | `F<token>\n<message>`| `<token>`'s load failed with `<message>`       |
//! | `R`                  | released after a successful load               |
//!
//! The holder renews the lease every third of its TTL while the loader
//! runs, so a slow loader keeps it; a holder that dies stops renewing, the
//! lease expires, and a waiter takes it over. Waiters poll (the value
//! first, then the lease) with growing, jittered pauses. A waiter that
//! saw `<token>` hold the lease and then finds `F<token>` returns that
//! failure: the error reaches the waiters of every process. A failure
//! marker from a load it never waited on is stale, and is taken over.
//!
//! Release and failure markers are written by compare-and-swap from the
//! holder's own `L<token>`, so a holder whose lease expired and was taken
//! over never disturbs the new holder.

use super::{load_error, Cache, Found};
use crate::{Error, Result, Store};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How the processes sharing a store agree on one loader per key (see
/// [`CacheBuilder::distributed`](super::CacheBuilder::distributed)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// How long a lease lives without renewal: how soon a waiter takes
    /// over from a holder that died. The holder renews it every third of
    /// this while its loader runs.
    pub ttl: Duration,
    /// The first pause of a waiter between two polls; pauses grow by half
    /// each time, up to `max_poll`, with random jitter.
    pub poll: Duration,
    /// The longest pause between two polls.
    pub max_poll: Duration,
    /// How long a waiter waits in all before it gives up with
    /// [`Error::Load`].
    pub max_wait: Duration,
}

impl Default for Lease {
    /// A 10 s lease, polls from 5 ms to 100 ms, giving up after 60 s.
    fn default() -> Lease {
        Lease {
            ttl: Duration::from_secs(10),
            poll: Duration::from_millis(5),
            max_poll: Duration::from_millis(100),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// How long a failure marker stays: long enough for every waiter to poll
/// it (they poll at least every `max_poll`).
fn failure_ttl(options: &Lease) -> Duration {
    (options.max_poll * 4).max(Duration::from_secs(1))
}

/// The outcome of waiting for the lease.
pub(crate) enum Acquired<'a> {
    /// This process loads.
    Held(Held<'a>),
    /// Another process loaded the value meanwhile.
    Filled(Found),
    /// Another process's load, which this one waited on, failed.
    Failed(String),
}

/// A lease this process holds.
pub(crate) struct Held<'a> {
    store: &'a dyn Store,
    key: String,
    held: Vec<u8>,
    token: String,
    options: Lease,
}

/// Waits until this process holds the lease of `key`, another process
/// has filled the value, or the load it waited on has failed.
pub(crate) async fn acquire<'a>(
    cache: &'a Cache,
    key: &str,
    options: &Lease,
) -> Result<Acquired<'a>> {
    let store = cache.store().as_ref();
    let lease_key = super::meta_key("lease", key);
    let token = token();
    let held = format!("L{token}").into_bytes();
    let mut seen: Vec<String> = Vec::new();
    let mut jitter = Jitter::new(&token);
    let mut pause = options.poll;
    let started = Instant::now();
    let holding = |lease_key: String| Held {
        store,
        key: lease_key,
        held: held.clone(),
        token: token.clone(),
        options: *options,
    };
    loop {
        if store
            .set_if_absent(&lease_key, &held, Some(options.ttl))
            .await?
        {
            return Ok(Acquired::Held(holding(lease_key)));
        }
        match store.get(&lease_key).await {
            // Released in between: try again at once.
            Err(Error::NotFound) => continue,
            Err(e) => return Err(e),
            Ok(current) => match parse(&current) {
                Marker::Failed { token, message } if seen.iter().any(|t| t == token) => {
                    return Ok(Acquired::Failed(message.to_owned()));
                }
                Marker::Failed { .. } | Marker::Junk => {
                    // A failure this process did not wait on (or a value
                    // that is no lease): stale, take it over.
                    if store
                        .compare_and_swap(&lease_key, Some(&current), &held, Some(options.ttl))
                        .await?
                    {
                        return Ok(Acquired::Held(holding(lease_key)));
                    }
                    continue;
                }
                Marker::Held(token) => {
                    if !seen.iter().any(|t| t == token) {
                        seen.push(token.to_owned());
                    }
                }
                Marker::Released => {}
            },
        }
        if started.elapsed() >= options.max_wait {
            return Err(load_error(
                key,
                format!(
                    "gave up after {} waiting for another process's load",
                    crate::format_duration(options.max_wait)
                ),
            ));
        }
        tokio::time::sleep(jitter.apply(pause)).await;
        pause = pause.mul_f64(1.5).min(options.max_poll);
        if let Some(found) = cache.lookup(key).await? {
            return Ok(Acquired::Filled(found));
        }
    }
}

/// The lease of `key` if nobody holds it now; never waits (a background
/// refresh that finds another process loading leaves it to them).
pub(crate) async fn try_acquire<'a>(
    store: &'a dyn Store,
    key: &str,
    options: &Lease,
) -> Result<Option<Held<'a>>> {
    let lease_key = super::meta_key("lease", key);
    let token = token();
    let held = format!("L{token}").into_bytes();
    let won = store
        .set_if_absent(&lease_key, &held, Some(options.ttl))
        .await?;
    Ok(won.then_some(Held {
        store,
        key: lease_key,
        held,
        token,
        options: *options,
    }))
}

impl Held<'_> {
    /// Runs `work`, renewing the lease every third of its TTL until
    /// `work` ends or the lease is found lost.
    pub(crate) async fn keep_while<T>(&self, work: impl Future<Output = T>) -> T {
        let renew = async {
            loop {
                tokio::time::sleep(self.options.ttl / 3).await;
                let renewed = self
                    .store
                    .compare_and_swap(
                        &self.key,
                        Some(&self.held),
                        &self.held,
                        Some(self.options.ttl),
                    )
                    .await;
                match renewed {
                    Ok(true) => {}
                    // Lost (it expired and another took it) or unreachable:
                    // the load goes on unrenewed.
                    Ok(false) | Err(_) => return,
                }
            }
        };
        tokio::pin!(work);
        tokio::pin!(renew);
        tokio::select! {
            out = &mut work => return out,
            () = &mut renew => {}
        }
        work.await
    }

    /// Ends the lease: `R` after a successful load, the failure's message
    /// for the waiters after a failed one.
    pub(crate) async fn release(self, failure: Option<&Error>) {
        let (marker, ttl) = match failure {
            // Gone almost at once: the value is written, and the next load
            // (after it expires) must not wait on a stale lease.
            None => (b"R".to_vec(), Duration::from_millis(1)),
            Some(e) => (
                format!("F{}\n{}", self.token, failure_message(e)).into_bytes(),
                failure_ttl(&self.options),
            ),
        };
        let released = self
            .store
            .compare_and_swap(&self.key, Some(&self.held), &marker, Some(ttl))
            .await;
        if let Err(e) = released {
            // The lease then expires by itself; waiters take over after it.
            tracing::debug!(error = %e, "kvs cache: could not release a lease");
        }
    }
}

/// What a waiter shows of a failure: the loader's own message.
fn failure_message(e: &Error) -> String {
    match e {
        Error::Load { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

enum Marker<'a> {
    Held(&'a str),
    Failed { token: &'a str, message: &'a str },
    Released,
    Junk,
}

fn parse(value: &[u8]) -> Marker<'_> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Marker::Junk;
    };
    match text.split_at_checked(1) {
        Some(("L", token)) => Marker::Held(token),
        Some(("R", "")) => Marker::Released,
        Some(("F", rest)) => match rest.split_once('\n') {
            Some((token, message)) => Marker::Failed { token, message },
            None => Marker::Junk,
        },
        _ => Marker::Junk,
    }
}

/// A token no other load, in this process or another, will have: 128 bits
/// from the process id, the time, a counter and a per-process random seed.
pub(crate) fn token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seeds = foldhash::quality::RandomState::default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = seeds.build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u128(nanos);
        h.write_u64(count);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

/// Random factors in [½, 1] for the pauses, so waiters spread out.
struct Jitter(u64);

impl Jitter {
    fn new(token: &str) -> Jitter {
        let seed = token.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        Jitter(seed | 1)
    }

    fn apply(&mut self, pause: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        pause.mul_f64(0.5 + unit / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_parse() {
        assert!(matches!(parse(b"Labc"), Marker::Held("abc")));
        assert!(matches!(parse(b"R"), Marker::Released));
        assert!(matches!(
            parse(b"Fabc\nno route"),
            Marker::Failed {
                token: "abc",
                message: "no route"
            }
        ));
        for junk in [&b""[..], b"F", b"Fabc", b"x", b"\xff", b"Rx"] {
            assert!(matches!(parse(junk), Marker::Junk), "{junk:?}");
        }
    }

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<_> = (0..1000).map(|_| token()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| t.len() == 32));
    }

    #[test]
    fn jitter_stays_within_half_and_whole() {
        let mut jitter = Jitter::new("seed");
        for _ in 0..1000 {
            let d = jitter.apply(Duration::from_millis(100));
            assert!(
                d >= Duration::from_millis(50) && d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
}
