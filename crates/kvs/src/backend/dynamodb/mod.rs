//! The DynamoDB backend: [`DynamoDbStore`] (feature `dynamodb`).
//!
//! # Layout
//!
//! One table holds every namespace:
//!
//! | attribute | type | holds |
//! |-----------|------|-------|
//! | `pk`      | S (partition key) | the escaped namespace ([`escape_namespace`](crate::raw::escape_namespace)) |
//! | `sk`      | S (sort key)      | the key |
//! | `v`       | B    | the value (absent on a counter) |
//! | `n`       | N    | a counter's value, instead of `v` |
//! | `exp`     | N    | deadline in epoch **seconds**, for DynamoDB's own TTL |
//! | `exp_ms`  | N    | deadline in epoch milliseconds, checked on every read |
//!
//! `increment` is `UpdateItem … ADD n :delta` (atomic on the server, one
//! request); a value written by `set` is turned into a counter by one
//! conditional put the first time it is incremented. Reads give a
//! counter's value as its decimal text, as for every backend.
//!
//! `list`/`count` are a `Query` on the namespace's partition with
//! `begins_with(sk, prefix)` (`Select=COUNT` for `count`), paginated to the
//! end — never a table `Scan`. DynamoDB deletes expired items up to days
//! late, so every read filters on `exp_ms` as well. Documents use the
//! partition `<escaped namespace>\d`, which no namespace can have.
//!
//! Trade-off: one partition per namespace keeps prefix queries cheap and
//! ordered, but a single very hot namespace is bounded by one partition's
//! throughput (about 3,000 reads and 1,000 writes per second); spread heavy
//! traffic over namespaces.
//!
//! # Limits
//!
//! An item holds at most 400 KB; a larger value is `ValueTooLarge` before
//! any request is sent. Throttling and transient errors are retried by the
//! SDK's standard retry policy; a final failure names the operation and
//! the table.

mod batches;
mod errors;
mod items;
mod query;
mod table;

use crate::config::DynamoDbConfig;
use crate::deadline::{check_batch_ttl, check_ttl, deadline_ms, remaining, NEVER};
use crate::document::{DocSpace, Documents};
use crate::expiry::{Clock, SystemClock};
use crate::future::check;
use crate::generic::{last_of_each, validate_all};
use crate::key::{escape_namespace, normalize_namespace, validate_key, validate_prefix};
use crate::{DocumentStore, Error, Result, Store, StoreFuture};
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, PutRequest, ReturnValue, Select, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use batches::backoff;
use bytes::Bytes;
use items::{holding, value_of, values, Item};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BACKEND: &str = "dynamodb";
/// DynamoDB's item size limit.
const MAX_ITEM: usize = 400 * 1024;
/// Room kept in an item for the attribute names and the numbers.
const ITEM_OVERHEAD: usize = 64;
/// Attempts of an optimistic read-modify-write, or of a batch whose items
/// DynamoDB keeps returning unprocessed, before giving up.
const MAX_ATTEMPTS: u32 = 200;

/// A store in an Amazon DynamoDB table (or a local emulator).
pub struct DynamoDbStore {
    client: Client,
    table: String,
    /// The partition key of this namespace.
    pk: String,
    clock: Arc<dyn Clock>,
    closed: AtomicBool,
}

impl DynamoDbStore {
    /// Opens `namespace` in the table of `config`, creating the table if
    /// `config.create_table`.
    pub async fn open(namespace: &str, config: DynamoDbConfig) -> Result<DynamoDbStore> {
        DynamoDbStore::open_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`DynamoDbStore::open`], reading time from `clock`.
    pub async fn open_with_clock(
        namespace: &str,
        config: DynamoDbConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<DynamoDbStore> {
        let namespace = normalize_namespace(namespace)?;
        let client = table::client(&config).await;
        if config.create_table {
            table::create_table(&client, &config.table_name).await?;
        }
        Ok(DynamoDbStore {
            client,
            table: config.table_name,
            pk: escape_namespace(&namespace),
            clock,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens `namespace` with its document layer: documents live in a
    /// partition of the same table that no namespace can have.
    pub async fn open_documents(
        namespace: &str,
        config: DynamoDbConfig,
    ) -> Result<Arc<dyn DocumentStore>> {
        DynamoDbStore::open_documents_with_clock(namespace, config, Arc::new(SystemClock)).await
    }

    /// Like [`DynamoDbStore::open_documents`], reading time from `clock`.
    pub async fn open_documents_with_clock(
        namespace: &str,
        config: DynamoDbConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<dyn DocumentStore>> {
        let keys = DynamoDbStore::open_with_clock(namespace, config, Arc::clone(&clock)).await?;
        let mut docs = DynamoDbStore {
            client: keys.client.clone(),
            table: keys.table.clone(),
            pk: String::new(),
            clock: Arc::clone(&clock),
            closed: AtomicBool::new(false),
        };
        // `\d` after an escaped namespace is no escape: no namespace has this partition.
        docs.pk = format!("{}\\d", keys.pk);
        Ok(Arc::new(Documents::new(keys, docs, clock)))
    }

    fn open_check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        Ok(())
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }
}

/// The value limit for `key` in partition `pk`: the item limit less what
/// the rest of the item takes.
fn too_large(key: &str, value: &[u8], pk: &str) -> Result<()> {
    let limit = MAX_ITEM.saturating_sub(key.len() + pk.len() + ITEM_OVERHEAD);
    Error::check_value_size(BACKEND, key, value.len(), limit)
}

/// `keys` without repeats, in first-seen order.
fn distinct<'k>(keys: &[&'k str]) -> Vec<&'k str> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.iter().copied().filter(|k| seen.insert(*k)).collect()
}

impl DynamoDbStore {
    /// `expire` and `get_and_touch`: one conditional `UpdateItem` ("present
    /// and live") that sets or removes the deadline and answers with the
    /// attributes `returning` asks for.
    async fn touch(
        &self,
        key: &str,
        ttl: Duration,
        returning: ReturnValue,
    ) -> Result<Option<Item>> {
        self.open_check()?;
        let now = self.now();
        let deadline = deadline_ms(now, Some(ttl));
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(key)))
            .return_values(returning)
            .condition_expression(
                "attribute_exists(sk) AND (attribute_not_exists(exp_ms) OR exp_ms >= :now)",
            );
        request = if deadline == NEVER {
            request
                .update_expression("REMOVE exp, exp_ms")
                .set_expression_attribute_values(Some(values(&[(
                    ":now",
                    AttributeValue::N(now.to_string()),
                )])))
        } else {
            request
                .update_expression("SET exp = :exp, exp_ms = :exp_ms")
                .set_expression_attribute_values(Some(values(&[
                    (":now", AttributeValue::N(now.to_string())),
                    (":exp", AttributeValue::N((deadline / 1000 + 1).to_string())),
                    (":exp_ms", AttributeValue::N(deadline.to_string())),
                ])))
        };
        match request.send().await {
            Ok(out) => Ok(out.attributes),
            // The condition is "present and live".
            Err(e) => self.refused("UpdateItem", e).and(Err(Error::NotFound)),
        }
    }
}

impl Store for DynamoDbStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Bytes> {
        check!(validate_key(key));
        StoreFuture::boxed(
            async move { self.read(key).await?.map(|(v, _)| v).ok_or(Error::NotFound) },
        )
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| too_large(key, value, &self.pk)));
        StoreFuture::boxed(async move {
            let item = self.item(key, value, deadline_ms(self.now(), ttl));
            self.put(item, None).await.map(drop)
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, ()> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            self.open_check()?;
            self.client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(self.key_of(key)))
                .send()
                .await
                .map(drop)
                .map_err(|e| self.error("DeleteItem", e))
        })
    }

    fn exists<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        check!(validate_key(key));
        StoreFuture::boxed(async move { Ok(self.read(key).await?.is_some()) })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move { Ok(self.query_page(prefix, None, usize::MAX).await?.0) })
    }

    fn count<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(async move {
            self.open_check()?;
            let mut total = 0usize;
            let mut start = None;
            loop {
                let out = self
                    .query(prefix)
                    .select(Select::Count)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| self.error("Query (COUNT)", e))?;
                total += usize::try_from(out.count).unwrap_or(0);
                match out.last_evaluated_key {
                    Some(last) => start = Some(last),
                    None => return Ok(total),
                }
            }
        })
    }

    /// BatchGetItem, 100 keys a request; a key given twice is read once.
    fn get_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, Vec<Option<Bytes>>> {
        check!(validate_all(keys.iter().copied()));
        StoreFuture::boxed(async move {
            // DynamoDB refuses a batch that names a key twice.
            let found = self.batch_get(&distinct(keys)).await?;
            Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
        })
    }

    /// BatchWriteItem, 25 items a request; a key given twice is written
    /// once, with its last value. Not atomic as a whole: a failure part-way
    /// leaves the earlier chunks written.
    fn set_many<'a>(
        &'a self,
        entries: &'a [(&'a str, &'a [u8])],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        check!(check_batch_ttl(entries, ttl));
        check!(entries
            .iter()
            .try_for_each(|(k, v)| validate_key(k).and_then(|()| too_large(k, v, &self.pk))));
        StoreFuture::boxed(async move {
            let expires_at = deadline_ms(self.now(), ttl);
            let entries = last_of_each(entries);
            let mut requests = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let put = PutRequest::builder()
                    .set_item(Some(self.item(key, value, expires_at)))
                    .build()
                    .map_err(|e| self.build_error("BatchWriteItem", e))?;
                requests.push(WriteRequest::builder().put_request(put).build());
            }
            self.batch_write(requests).await
        })
    }

    /// BatchGetItem to count the live keys, then BatchWriteItem to delete.
    fn delete_many<'a>(&'a self, keys: &'a [&'a str]) -> StoreFuture<'a, usize> {
        check!(validate_all(keys.iter().copied()));
        StoreFuture::boxed(async move {
            let keys = distinct(keys);
            let present = self.batch_get(&keys).await?.len();
            let mut requests = Vec::with_capacity(keys.len());
            for key in &keys {
                let delete = DeleteRequest::builder()
                    .set_key(Some(self.key_of(key)))
                    .build()
                    .map_err(|e| self.build_error("BatchWriteItem", e))?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            self.batch_write(requests).await?;
            Ok(present)
        })
    }

    fn close(&self) -> StoreFuture<'_, ()> {
        self.closed.store(true, Ordering::Release);
        StoreFuture::ready(Ok(()))
    }

    fn ttl<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Duration>> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let (_, deadline) = self.read(key).await?.ok_or(Error::NotFound)?;
            Ok(remaining(deadline, self.now()))
        })
    }

    fn set_if_absent<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        self.compare_and_swap(key, None, value, ttl)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(check_ttl(key, ttl));
        check!(validate_key(key).and_then(|()| too_large(key, new, &self.pk)));
        StoreFuture::boxed(async move {
            let condition = holding(expected, self.now());
            let item = self.item(key, new, deadline_ms(self.now(), ttl));
            self.put(item, Some(condition)).await
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                if let Some(count) = self.add(key, delta).await? {
                    return Ok(count);
                }
                // ADD refused: the key holds bytes, has expired, or would
                // overflow. Settle that with one conditional put, or retry
                // if another writer got there first.
                if let Some(count) = self.increment_slowly(key, delta).await? {
                    return Ok(count);
                }
            }
            Err(Error::backend(
                BACKEND,
                format!("incrementing {key:?} on table {}", self.table),
                format!("too much contention: gave up after {MAX_ATTEMPTS} attempts"),
            ))
        })
    }

    fn expire<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, ()> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        StoreFuture::boxed(async move { self.touch(key, ttl, ReturnValue::None).await.map(drop) })
    }

    fn get_and_touch<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, Bytes> {
        check!(check_ttl(key, Some(ttl)));
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            let item = self.touch(key, ttl, ReturnValue::AllNew).await?;
            Ok(item.as_ref().map(value_of).unwrap_or_default())
        })
    }

    fn list_page<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
        limit: usize,
    ) -> StoreFuture<'a, (Vec<String>, Option<String>)> {
        check!(validate_prefix(prefix));
        StoreFuture::boxed(self.query_page(prefix, start_after, limit))
    }

    /// DynamoDB has no range delete: pages of `Query`, each removed by
    /// BatchWriteItem (see `delete_many`).
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, usize> {
        check!(validate_prefix(prefix));
        crate::generic::delete_prefix_by_pages(self, prefix)
    }
}

impl DocSpace for DynamoDbStore {
    fn scan_values<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<(String, Bytes)>> {
        StoreFuture::boxed(async move {
            self.open_check()?;
            let mut pairs = Vec::new();
            let mut start = None;
            loop {
                let out = self
                    .query(prefix)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| self.error("Query", e))?;
                for item in out.items.unwrap_or_default() {
                    if let (Some(AttributeValue::S(sk)), Some(AttributeValue::B(v))) =
                        (item.get("sk"), item.get("v"))
                    {
                        pairs.push((sk.clone(), Bytes::copy_from_slice(v.as_ref())));
                    }
                }
                match out.last_evaluated_key {
                    Some(last) => start = Some(last),
                    None => return Ok(pairs),
                }
            }
        })
    }
}

impl std::fmt::Debug for DynamoDbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbStore")
            .field("table", &self.table)
            .field("partition", &self.pk)
            .finish_non_exhaustive()
    }
}
