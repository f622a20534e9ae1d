//! The reference model for the state-machine case: a `BTreeMap` with
//! deadlines, and random operation sequences to replay against a store.

use super::Harness;
use crate::{Error, Store};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

/// A TTL the model gives, chosen so that no check lands on a deadline.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ttl {
    None,
    Zero,
    /// 1 s: expires after two `Advance` steps of 700 ms, never exactly on one.
    Short,
    /// 1 h: never reached.
    Long,
}

const SHORT_MS: u64 = 1_000;
const LONG_MS: u64 = 3_600_000;
const ADVANCE_MS: u64 = 700;

impl Ttl {
    fn duration(self) -> Option<Duration> {
        match self {
            Ttl::None => None,
            Ttl::Zero => Some(Duration::ZERO),
            Ttl::Short => Some(Duration::from_millis(SHORT_MS)),
            Ttl::Long => Some(Duration::from_millis(LONG_MS)),
        }
    }

    fn lifetime_ms(self) -> Option<u64> {
        match self {
            Ttl::None | Ttl::Zero => None,
            Ttl::Short => Some(SHORT_MS),
            Ttl::Long => Some(LONG_MS),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Set(String, Vec<u8>, Ttl),
    Get(String),
    Delete(String),
    Exists(String),
    List(String),
    Count(String),
    /// `get_and_touch`; `Ttl::None` touches with `ZERO` (no TTL).
    Touch(String, Ttl),
    Advance,
}

/// Keys from a small alphabet of characters that wildcards, escapes and
/// separators treat specially, so that prefixes overlap often.
fn key() -> impl Strategy<Value = String> {
    "[ab_%*:\\\\]{1,3}"
}

fn prefix() -> impl Strategy<Value = String> {
    "[ab_%*:\\\\]{0,2}"
}

pub(crate) fn ops(manual_clock: bool) -> impl Strategy<Value = Vec<Op>> {
    let ttl = if manual_clock {
        prop_oneof![
            Just(Ttl::None),
            Just(Ttl::Zero),
            Just(Ttl::Short),
            Just(Ttl::Long)
        ]
        .boxed()
    } else {
        prop_oneof![Just(Ttl::None), Just(Ttl::Zero), Just(Ttl::Long)].boxed()
    };
    let advance_weight = if manual_clock { 2 } else { 0 };
    let touch_ttl = ttl.clone();
    let op = prop_oneof![
        4 => (key(), prop::collection::vec(any::<u8>(), 0..8), ttl).prop_map(|(k, v, t)| Op::Set(k, v, t)),
        2 => key().prop_map(Op::Get),
        1 => key().prop_map(Op::Delete),
        1 => key().prop_map(Op::Exists),
        1 => prefix().prop_map(Op::List),
        1 => prefix().prop_map(Op::Count),
        1 => (key(), touch_ttl).prop_map(|(k, t)| Op::Touch(k, t)),
        advance_weight => Just(Op::Advance),
    ];
    prop::collection::vec(op, 1..40)
}

#[derive(Default)]
struct Model {
    now_ms: u64,
    /// key -> (value, deadline in model time)
    entries: BTreeMap<String, (Vec<u8>, Option<u64>)>,
}

impl Model {
    fn live(&self, key: &str) -> Option<&[u8]> {
        let (value, deadline) = self.entries.get(key)?;
        match deadline {
            Some(deadline) if self.now_ms > *deadline => None,
            _ => Some(value),
        }
    }

    fn list(&self, prefix: &str) -> Vec<String> {
        self.entries
            .keys()
            .filter(|k| k.starts_with(prefix) && self.live(k).is_some())
            .cloned()
            .collect()
    }
}

/// Replays `ops` on a fresh store and on the model; the first difference is
/// the error.
pub(crate) async fn check(
    harness: &dyn Harness,
    namespace: &str,
    ops: &[Op],
) -> Result<(), String> {
    let store = harness
        .open(namespace)
        .await
        .map_err(|e| format!("open: {e}"))?;
    let result = replay(harness, store.as_ref(), ops).await;
    store.close().await.map_err(|e| format!("close: {e}"))?;
    result
}

async fn replay(harness: &dyn Harness, store: &dyn Store, ops: &[Op]) -> Result<(), String> {
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let fail = |what: String| format!("step {step} {op:?}: {what}");
        match op {
            Op::Set(key, value, ttl) => {
                store
                    .set(key, value, ttl.duration())
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let deadline = ttl.lifetime_ms().map(|ms| model.now_ms + ms);
                model.entries.insert(key.clone(), (value.clone(), deadline));
            }
            Op::Get(key) => {
                let got = match store.get(key).await {
                    Ok(v) => Some(v.to_vec()),
                    Err(Error::NotFound) => None,
                    Err(e) => return Err(fail(e.to_string())),
                };
                let want = model.live(key).map(<[u8]>::to_vec);
                if got != want {
                    return Err(fail(format!("store has {got:?}, model has {want:?}")));
                }
            }
            Op::Delete(key) => {
                store.delete(key).await.map_err(|e| fail(e.to_string()))?;
                model.entries.remove(key);
            }
            Op::Exists(key) => {
                let got = store.exists(key).await.map_err(|e| fail(e.to_string()))?;
                let want = model.live(key).is_some();
                if got != want {
                    return Err(fail(format!("store says {got}, model says {want}")));
                }
            }
            Op::List(prefix) => {
                let got = store.list(prefix).await.map_err(|e| fail(e.to_string()))?;
                let want = model.list(prefix);
                if got != want {
                    return Err(fail(format!("store lists {got:?}, model lists {want:?}")));
                }
            }
            Op::Count(prefix) => {
                let got = store.count(prefix).await.map_err(|e| fail(e.to_string()))?;
                let want = model.list(prefix).len();
                if got != want {
                    return Err(fail(format!("store counts {got}, model counts {want}")));
                }
            }
            Op::Touch(key, ttl) => {
                let touch = ttl.duration().unwrap_or(Duration::ZERO);
                let got = match store.get_and_touch(key, touch).await {
                    Ok(v) => Some(v.to_vec()),
                    Err(Error::NotFound) => None,
                    Err(e) => return Err(fail(e.to_string())),
                };
                let want = model.live(key).map(<[u8]>::to_vec);
                if got != want {
                    return Err(fail(format!("store has {got:?}, model has {want:?}")));
                }
                let now = model.now_ms;
                if let (Some(_), Some((_, deadline))) = (&want, model.entries.get_mut(key)) {
                    *deadline = ttl.lifetime_ms().map(|ms| now + ms);
                }
            }
            Op::Advance => {
                harness.advance(Duration::from_millis(ADVANCE_MS)).await;
                model.now_ms += ADVANCE_MS;
            }
        }
    }
    Ok(())
}
