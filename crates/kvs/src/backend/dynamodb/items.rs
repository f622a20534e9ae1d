//! Items: how a key, its value and its deadline are laid out in an item,
//! and the requests on one item (get, conditional put, `ADD`).

use super::{DynamoDbStore, BACKEND};
use crate::deadline::{is_live, NEVER};
use crate::generic::next_counter;
use crate::{Error, Result};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use bytes::Bytes;
use std::collections::HashMap;

/// An item's attributes by name.
pub(super) type Item = HashMap<String, AttributeValue>;

impl DynamoDbStore {
    pub(super) fn key_of(&self, key: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    pub(super) fn item(&self, key: &str, value: &[u8], expires_at: u64) -> Item {
        self.item_holding(key, AttributeValue::B(Blob::new(value)), expires_at)
    }

    /// The item of a counter: `n` instead of `v`.
    pub(super) fn counter_item(&self, key: &str, count: i64, expires_at: u64) -> Item {
        self.item_holding(key, AttributeValue::N(count.to_string()), expires_at)
    }

    pub(super) fn item_holding(&self, key: &str, value: AttributeValue, expires_at: u64) -> Item {
        let mut item = self.key_of(key);
        let name = if matches!(value, AttributeValue::N(_)) {
            "n"
        } else {
            "v"
        };
        item.insert(name.into(), value);
        if expires_at != NEVER {
            item.insert(
                "exp".into(),
                AttributeValue::N((expires_at / 1000 + 1).to_string()),
            );
            item.insert("exp_ms".into(), AttributeValue::N(expires_at.to_string()));
        }
        item
    }

    /// The live item of `key`: its value and deadline.
    pub(super) async fn read(&self, key: &str) -> Result<Option<(Bytes, u64)>> {
        self.open_check()?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let deadline = deadline_of(&item);
        if !is_live(deadline, self.now()) {
            return Ok(None);
        }
        Ok(Some((value_of(&item), deadline)))
    }

    /// Writes `key` if `condition` holds (always, without one); returns
    /// whether it was written.
    pub(super) async fn put(&self, item: Item, condition: Option<(&str, Item)>) -> Result<bool> {
        self.open_check()?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        if let Some((expression, values)) = condition {
            request = request
                .condition_expression(expression)
                .set_expression_attribute_values(Some(values));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => self.refused("PutItem", e).map(|()| false),
        }
    }

    /// `ADD n :delta` on a live counter (or an absent key, which starts at
    /// 0). `None` if the condition refused it: the key holds bytes, has
    /// expired, or the sum would leave the `i64` range.
    pub(super) async fn add(&self, key: &str, delta: i64) -> Result<Option<i64>> {
        self.open_check()?;
        let (low, high) = if delta >= 0 {
            (i64::MIN, i64::MAX - delta)
        } else {
            (i64::MIN - delta, i64::MAX)
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(key)))
            .update_expression("ADD n :delta")
            .condition_expression(
                "attribute_not_exists(v) \
                 AND (attribute_not_exists(exp_ms) OR exp_ms >= :now) \
                 AND (attribute_not_exists(n) OR n BETWEEN :low AND :high)",
            )
            .set_expression_attribute_values(Some(values(&[
                (":delta", AttributeValue::N(delta.to_string())),
                (":now", AttributeValue::N(self.now().to_string())),
                (":low", AttributeValue::N(low.to_string())),
                (":high", AttributeValue::N(high.to_string())),
            ])))
            // ALL_NEW, not UPDATED_NEW: an `ADD n 0` changes no attribute,
            // and then not every implementation echoes `n` (moto does not).
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => match out.attributes.as_ref().and_then(|a| a.get("n")) {
                Some(AttributeValue::N(n)) => n.parse().map(Some).map_err(|_| {
                    Error::backend(
                        BACKEND,
                        format!("UpdateItem on table {}", self.table),
                        format!("the counter {key:?} came back as {n:?}"),
                    )
                }),
                _ => Err(Error::backend(
                    BACKEND,
                    format!("UpdateItem on table {}", self.table),
                    format!("no counter for {key:?} in the reply"),
                )),
            },
            Err(e) => self.refused("UpdateItem", e).map(|()| None),
        }
    }

    /// What ADD refused: turns a value written by `set` into a counter,
    /// restarts an expired key at `delta`, or reports an overflow or a
    /// value that is no integer (`InvalidValue`). `None` if another writer
    /// changed the item meanwhile.
    pub(super) async fn increment_slowly(&self, key: &str, delta: i64) -> Result<Option<i64>> {
        let current = self.read(key).await?;
        let expected = current.as_ref().map(|(v, _)| &v[..]);
        let next = next_counter(key, expected, delta)?;
        let condition = holding(expected, self.now());
        // Gone or expired since ADD was refused: start over, without a TTL.
        let deadline = current.as_ref().map_or(NEVER, |(_, d)| *d);
        let item = self.counter_item(key, next, deadline);
        Ok(self.put(item, Some(condition)).await?.then_some(next))
    }
}

/// The value an item holds: its bytes, or a counter's decimal text.
pub(super) fn value_of(item: &Item) -> Bytes {
    match (item.get("v"), item.get("n")) {
        (Some(AttributeValue::B(blob)), _) => Bytes::copy_from_slice(blob.as_ref()),
        (_, Some(AttributeValue::N(n))) => Bytes::copy_from_slice(n.as_bytes()),
        _ => Bytes::new(),
    }
}

pub(super) fn deadline_of(item: &Item) -> u64 {
    match item.get("exp_ms") {
        Some(AttributeValue::N(ms)) => ms.parse().unwrap_or(NEVER),
        _ => NEVER,
    }
}

/// The condition of a conditional put: the item is absent or expired
/// (`expected` is `None`), or live and holding `expected`, as bytes or as
/// the counter whose text it is (a counter holds `n`, read back as text).
pub(super) fn holding(expected: Option<&[u8]>, now_ms: u64) -> (&'static str, Item) {
    let now = AttributeValue::N(now_ms.to_string());
    let Some(expected) = expected else {
        return (
            "attribute_not_exists(sk) OR exp_ms < :now",
            values(&[(":now", now)]),
        );
    };
    let mut bound = values(&[
        (":now", now),
        (":expected", AttributeValue::B(Blob::new(expected))),
    ]);
    let condition = match crate::generic::parse_counter(expected) {
        Some(count) => {
            bound.insert(":count".into(), AttributeValue::N(count.to_string()));
            "(v = :expected OR n = :count) AND (attribute_not_exists(exp_ms) OR exp_ms >= :now)"
        }
        None => "v = :expected AND (attribute_not_exists(exp_ms) OR exp_ms >= :now)",
    };
    (condition, bound)
}

pub(super) fn values(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}
