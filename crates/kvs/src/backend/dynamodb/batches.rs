//! BatchGetItem and BatchWriteItem, in DynamoDB's chunk sizes, retrying
//! what comes back unprocessed.

use super::items::{deadline_of, value_of};
use super::{DynamoDbStore, MAX_ATTEMPTS};
use crate::deadline::is_live;
use crate::Result;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, WriteRequest};
use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;

/// DynamoDB's limits on one BatchGetItem and one BatchWriteItem.
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;

impl DynamoDbStore {
    /// The live values of `keys` (distinct), by BatchGetItem in chunks of
    /// 100, retrying what DynamoDB returns unprocessed.
    pub(super) async fn batch_get(&self, keys: &[&str]) -> Result<HashMap<String, Bytes>> {
        self.open_check()?;
        let mut found = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.iter().map(|k| self.key_of(k)).collect()))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| self.build_error("BatchGetItem", e))?,
            );
            let mut attempt = 0;
            while let Some(request) = pending.take() {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| self.error("BatchGetItem", e))?;
                let now = self.now();
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default();
                for item in items {
                    if !is_live(deadline_of(&item), now) {
                        continue;
                    }
                    if let Some(AttributeValue::S(sk)) = item.get("sk") {
                        found.insert(sk.clone(), value_of(&item));
                    }
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys.is_empty());
                if pending.is_some() && attempt >= MAX_ATTEMPTS {
                    return Err(self.gave_up("BatchGetItem"));
                }
            }
        }
        Ok(found)
    }

    /// Runs `requests` (at most one per key) by BatchWriteItem in chunks of
    /// 25, retrying what DynamoDB returns unprocessed.
    pub(super) async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
        self.open_check()?;
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| self.error("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
                if !pending.is_empty() && attempt >= MAX_ATTEMPTS {
                    return Err(self.gave_up("BatchWriteItem"));
                }
            }
        }
        Ok(())
    }
}

/// A random wait, growing with `attempt` up to about 50 ms.
pub(super) fn backoff(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ceiling = 2u64.saturating_pow(attempt.min(6)).min(50);
    Duration::from_millis(1 + u64::from(nanos) % ceiling)
}
