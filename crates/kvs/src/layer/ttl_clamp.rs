//! The TTL-clamp layer: every TTL a write sets lies between a minimum and a
//! maximum, and a write without one gets a default.

use crate::duration::format_duration;
use crate::forward::{forward_documents, forward_store};
use crate::{DocumentStore, Error, Result, Store, StoreFuture};
use std::time::Duration;

/// Keeps the TTLs that writes set within bounds.
///
/// - A TTL shorter than `min` becomes `min`; longer than `max`, `max`.
/// - A write without a TTL (`None` or `Some(Duration::ZERO)`) gets
///   `default`; with no `default` it never expires, as on the bare store:
///   `max` bounds the TTLs that are given.
/// - `expire` is clamped the same way; with a `default`, `persist` and
///   `expire(key, ZERO)` set the default instead of removing the TTL, so no
///   key of the store lives forever.
/// - `increment` keeps a key's TTL and passes through: a counter it creates
///   has no TTL, even with a `default`.
///
/// Reads, and documents (which have no TTL), pass through. In a
/// configuration file: `layers: [{ ttl_clamp: { min: 1s, max: 24h, default: 1h } }]`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// use kvs::layer::{LayerExt, TtlClamp};
///
/// let hour = Duration::from_secs(3600);
/// let clamp = TtlClamp::new(None, Some(hour), Some(Duration::from_secs(60)))?;
/// let store = kvs::open(&kvs::Config::from_yaml("type: memory")?).await?.layer(clamp);
/// store.set("week", b"v", Some(hour * 24 * 7)).await?;
/// store.set("none", b"v", None).await?;
/// assert!(store.ttl("week").await?.unwrap() <= hour);
/// assert!(store.ttl("none").await?.unwrap() <= Duration::from_secs(60));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlClamp {
    min: Option<Duration>,
    max: Option<Duration>,
    default: Option<Duration>,
}

impl TtlClamp {
    /// A clamp to `[min, max]` with `default` for writes without a TTL;
    /// `None` leaves that bound (or the default) out.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if a duration is zero, longer than
    /// [`MAX_TTL`](crate::expiry::MAX_TTL), `min` is above `max`, or
    /// `default` lies outside them.
    pub fn new(
        min: Option<Duration>,
        max: Option<Duration>,
        default: Option<Duration>,
    ) -> Result<TtlClamp> {
        for (name, value) in [("min", min), ("max", max), ("default", default)] {
            match value {
                Some(Duration::ZERO) => {
                    return Err(Error::config(format!(
                        "ttl_clamp: `{name}` is 0; leave it out for no {name}"
                    )))
                }
                Some(d) if d > crate::expiry::MAX_TTL => {
                    return Err(Error::config(format!(
                        "ttl_clamp: `{name}` of {} is longer than the longest TTL, {}",
                        format_duration(d),
                        format_duration(crate::expiry::MAX_TTL)
                    )))
                }
                _ => {}
            }
        }
        let outside = |what: &str, a: Duration, relation: &str, b: &str, bv: Duration| {
            Error::config(format!(
                "ttl_clamp: `{what}` of {} is {relation} `{b}` of {}",
                format_duration(a),
                format_duration(bv)
            ))
        };
        if let (Some(lo), Some(hi)) = (min, max) {
            if lo > hi {
                return Err(outside("min", lo, "above", "max", hi));
            }
        }
        if let Some(d) = default {
            if let Some(lo) = min.filter(|lo| d < *lo) {
                return Err(outside("default", d, "below", "min", lo));
            }
            if let Some(hi) = max.filter(|hi| d > *hi) {
                return Err(outside("default", d, "above", "max", hi));
            }
        }
        Ok(TtlClamp { min, max, default })
    }

    /// The TTL a write that asks for `ttl` sets.
    fn clamp(&self, ttl: Option<Duration>) -> Option<Duration> {
        match ttl.filter(|t| !t.is_zero()) {
            None => self.default,
            Some(t) => Some(match (self.min, self.max) {
                (Some(lo), _) if t < lo => lo,
                (_, Some(hi)) if t > hi => hi,
                _ => t,
            }),
        }
    }
}

super::layer_wraps_with!(TtlClamp, |layer, inner| TtlClampStore::new(inner, *layer));

/// A store behind the [`TtlClamp`] layer.
#[derive(Debug, Clone)]
pub struct TtlClampStore<S> {
    inner: S,
    clamp: TtlClamp,
}

impl<S> TtlClampStore<S> {
    /// `inner`, with its TTLs clamped by `clamp`.
    pub fn new(inner: S, clamp: TtlClamp) -> TtlClampStore<S> {
        TtlClampStore { inner, clamp }
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: Store> Store for TtlClampStore<S> {
    forward_store!(|this| this.inner;
        get, delete, exists, list, count, close, ttl, get_many, delete_many, increment,
        list_page, scan, entries_page, delete_prefix, clear);

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.inner.set(key, value, self.clamp.clamp(ttl))
    }

    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.inner.set_many(entries, self.clamp.clamp(ttl))
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.inner.set_if_absent(key, value, self.clamp.clamp(ttl))
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        self.inner
            .compare_and_swap(key, expected, new, self.clamp.clamp(ttl))
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        // `expire(ZERO)` removes the TTL on the bare store; `clamp` turns
        // that into the default, if there is one.
        self.inner
            .expire(key, self.clamp.clamp(Some(ttl)).unwrap_or(Duration::ZERO))
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, crate::Bytes> {
        // As `expire`: ZERO means "no TTL", which the clamp may replace.
        self.inner
            .get_and_touch(key, self.clamp.clamp(Some(ttl)).unwrap_or(Duration::ZERO))
    }

    fn persist<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        match self.clamp.default {
            Some(default) => self.inner.expire(key, default),
            None => self.inner.persist(key),
        }
    }
}

#[deny(clippy::missing_trait_methods)]
impl<S: DocumentStore> DocumentStore for TtlClampStore<S> {
    forward_documents!(|this| this.inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ttls_are_kept_within_bounds_and_a_missing_one_gets_the_default() {
        let clamp = TtlClamp::new(Some(10 * S), Some(100 * S), Some(50 * S)).unwrap();
        assert_eq!(clamp.clamp(Some(S)), Some(10 * S));
        assert_eq!(clamp.clamp(Some(20 * S)), Some(20 * S));
        assert_eq!(clamp.clamp(Some(1000 * S)), Some(100 * S));
        assert_eq!(clamp.clamp(None), Some(50 * S));
        assert_eq!(clamp.clamp(Some(Duration::ZERO)), Some(50 * S));
        let open = TtlClamp::new(None, None, None).unwrap();
        for ttl in [None, Some(S), Some(crate::expiry::MAX_TTL)] {
            assert_eq!(open.clamp(ttl), ttl);
        }
        assert_eq!(open.clamp(Some(Duration::ZERO)), None);
    }

    #[test]
    fn settings_that_cannot_work_are_refused_naming_the_field() {
        let cases = [
            (Some(Duration::ZERO), None, None, "`min` is 0"),
            (
                Some(10 * S),
                Some(5 * S),
                None,
                "`min` of 10s is above `max` of 5s",
            ),
            (
                None,
                Some(5 * S),
                Some(6 * S),
                "`default` of 6s is above `max` of 5s",
            ),
            (
                Some(5 * S),
                None,
                Some(S),
                "`default` of 1s is below `min` of 5s",
            ),
            (None, Some(Duration::MAX), None, "`max` of"),
        ];
        for (min, max, default, want) in cases {
            let err = TtlClamp::new(min, max, default).unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
