//! The DynamoDB backend: [`DynamoDbStore`] (feature `dynamodb`).
//!
//! # Layout
//!
//! One table holds every namespace:
//!
//! | attribute | type | holds |
//! |-----------|------|-------|
//! | `pk`      | S (partition key) | the escaped namespace ([`escape_namespace`](crate::key::escape_namespace)) |
//! | `sk`      | S (sort key)      | the key |
//! | `v`       | B    | the value |
//! | `exp`     | N    | deadline in epoch **seconds**, for DynamoDB's own TTL |
//! | `exp_ms`  | N    | deadline in epoch milliseconds, checked on every read |
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

use crate::config::DynamoDbConfig;
use crate::document::{DocSpace, Documents};
use crate::expiry::{deadline_ms, is_live, remaining, Clock, SystemClock, NEVER};
use crate::key::{escape_namespace, normalize_namespace, validate_key, validate_prefix};
use crate::store::{check, next_counter};
use crate::{DocumentStore, Error, Result, Store, StoreFuture};
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, Select, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const BACKEND: &str = "dynamodb";
/// DynamoDB's item size limit.
const MAX_ITEM: usize = 400 * 1024;
/// Room kept in an item for the attribute names and the numbers.
const ITEM_OVERHEAD: usize = 64;
/// Attempts of an optimistic read-modify-write before giving up.
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

type Item = HashMap<String, AttributeValue>;

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
        let client = client(&config).await;
        if config.create_table {
            create_table(&client, &config.table_name).await?;
        }
        Ok(DynamoDbStore {
            client,
            table: config.table_name,
            pk: escape_namespace(&namespace),
            clock,
            closed: AtomicBool::new(false),
        })
    }

    /// Opens `namespace` with its document layer.
    pub async fn open_documents(
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

    fn error<E>(&self, operation: &str, e: E) -> Error
    where
        E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata,
    {
        let detail = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!(" ({code}: {message})"),
            (Some(code), None) => format!(" ({code})"),
            _ => String::new(),
        };
        Error::backend(
            BACKEND,
            format!("{operation} on table {}{detail}", self.table),
            e,
        )
    }

    fn key_of(&self, key: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    fn item(&self, key: &str, value: &[u8], expires_at: u64) -> Item {
        let mut item = self.key_of(key);
        item.insert("v".into(), AttributeValue::B(Blob::new(value)));
        if expires_at != NEVER {
            item.insert(
                "exp".into(),
                AttributeValue::N((expires_at / 1000 + 1).to_string()),
            );
            item.insert("exp_ms".into(), AttributeValue::N(expires_at.to_string()));
        }
        item
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The live item of `key`: its value and deadline.
    async fn read(&self, key: &str) -> Result<Option<(Bytes, u64)>> {
        self.open_check()?;
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key_of(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.error("GetItem", e.into_service_error()))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let deadline = deadline_of(&item);
        if !is_live(deadline, self.now()) {
            return Ok(None);
        }
        let value = match item.get("v") {
            Some(AttributeValue::B(blob)) => Bytes::copy_from_slice(blob.as_ref()),
            _ => Bytes::new(),
        };
        Ok(Some((value, deadline)))
    }

    /// Writes `key` if `condition` holds (always, without one); returns
    /// whether it was written.
    async fn put(
        &self,
        key: &str,
        value: &[u8],
        expires_at: u64,
        condition: Option<(&str, Item)>,
    ) -> Result<bool> {
        self.open_check()?;
        let mut request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(key, value, expires_at)));
        if let Some((expression, values)) = condition {
            request = request
                .condition_expression(expression)
                .set_expression_attribute_values(Some(values));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = e.into_service_error();
                if e.is_conditional_check_failed_exception() {
                    Ok(false)
                } else {
                    Err(self.error("PutItem", e))
                }
            }
        }
    }

    /// One page of live keys under `prefix` after `start_after`.
    async fn query_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<String>, Option<String>)> {
        self.open_check()?;
        let mut keys = Vec::new();
        let mut start: Option<Item> = start_after
            .filter(|a| *a >= prefix)
            .map(|after| self.key_of(after));
        loop {
            let want = i32::try_from(limit.saturating_sub(keys.len()).max(1)).unwrap_or(i32::MAX);
            let out = self
                .query(prefix)
                .projection_expression("sk")
                .set_exclusive_start_key(start.take())
                .limit(want)
                .send()
                .await
                .map_err(|e| self.error("Query", e.into_service_error()))?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(sk)) = item.get("sk") {
                    keys.push(sk.clone());
                }
            }
            match out.last_evaluated_key {
                Some(last) if keys.len() < limit => start = Some(last),
                _ => break,
            }
        }
        keys.truncate(limit);
        let next = (limit > 0 && keys.len() == limit).then(|| keys[limit - 1].clone());
        Ok((keys, next))
    }

    /// A Query of the live items of this partition whose key starts with `prefix`.
    fn query(
        &self,
        prefix: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let mut values = HashMap::from([
            (":pk".to_owned(), AttributeValue::S(self.pk.clone())),
            (":now".to_owned(), AttributeValue::N(self.now().to_string())),
        ]);
        let condition = if prefix.is_empty() {
            "pk = :pk"
        } else {
            values.insert(":prefix".into(), AttributeValue::S(prefix.to_owned()));
            "pk = :pk AND begins_with(sk, :prefix)"
        };
        self.client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression(condition)
            .filter_expression("attribute_not_exists(exp_ms) OR exp_ms >= :now")
            .set_expression_attribute_values(Some(values))
    }
}

/// A random wait, growing with `attempt` up to about 50 ms.
fn backoff(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ceiling = 2u64.saturating_pow(attempt.min(6)).min(50);
    Duration::from_millis(1 + u64::from(nanos) % ceiling)
}

fn deadline_of(item: &Item) -> u64 {
    match item.get("exp_ms") {
        Some(AttributeValue::N(ms)) => ms.parse().unwrap_or(NEVER),
        _ => NEVER,
    }
}

async fn client(config: &DynamoDbConfig) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !config.region.is_empty() {
        loader = loader.region(aws_config::Region::new(config.region.clone()));
    }
    if !config.endpoint.is_empty() {
        loader = loader.endpoint_url(config.endpoint.clone());
    }
    Client::new(&loader.load().await)
}

/// Creates the table (on-demand) and turns on its TTL, if it does not exist.
async fn create_table(client: &Client, table: &str) -> Result<()> {
    let fail = |what: &str, e: String| Error::backend(BACKEND, format!("{what} {table}"), e);
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(|e| fail("describing", e.to_string()))
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .map_err(|e| fail("describing", e.to_string()))
    };
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk")?)
        .attribute_definitions(attribute("sk")?)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) => {
            let e = e.into_service_error();
            if !e.is_resource_in_use_exception() {
                return Err(fail("creating the table", format!("{e} ({:?})", e.code())));
            }
        }
    }
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("exp")
        .build()
        .map_err(|e| fail("describing the TTL of", e.to_string()))?;
    if let Err(e) = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
    {
        // Already on is fine; anything else is worth knowing but not fatal:
        // reads filter expired items either way.
        tracing::debug!(table, error = %e, "could not turn on DynamoDB TTL");
    }
    Ok(())
}

/// The value limit for `key` in partition `pk`: the item limit less what
/// the rest of the item takes.
fn too_large(key: &str, value: &[u8], pk: &str) -> Result<()> {
    let limit = MAX_ITEM.saturating_sub(key.len() + pk.len() + ITEM_OVERHEAD);
    Error::check_value_size(BACKEND, key, value.len(), limit)
}

fn values(pairs: &[(&str, AttributeValue)]) -> Item {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
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
        check!(validate_key(key).and_then(|()| too_large(key, value, &self.pk)));
        StoreFuture::boxed(async move {
            self.put(key, value, deadline_ms(self.now(), ttl), None)
                .await
                .map(drop)
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
                .map_err(|e| self.error("DeleteItem", e.into_service_error()))
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
                    .map_err(|e| self.error("Query (COUNT)", e.into_service_error()))?;
                total += usize::try_from(out.count).unwrap_or(0);
                match out.last_evaluated_key {
                    Some(last) => start = Some(last),
                    None => return Ok(total),
                }
            }
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
        self.compare_and_swap(key, None, value, ttl)
    }

    fn compare_and_swap<'a>(
        &'a self,
        key: &'a str,
        expected: Option<&'a [u8]>,
        new: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, bool> {
        check!(validate_key(key).and_then(|()| too_large(key, new, &self.pk)));
        StoreFuture::boxed(async move {
            let now = AttributeValue::N(self.now().to_string());
            let condition = match expected {
                None => (
                    "attribute_not_exists(sk) OR exp_ms < :now",
                    values(&[(":now", now)]),
                ),
                Some(expected) => (
                    "v = :expected AND (attribute_not_exists(exp_ms) OR exp_ms >= :now)",
                    values(&[
                        (":now", now),
                        (":expected", AttributeValue::B(Blob::new(expected))),
                    ]),
                ),
            };
            self.put(key, new, deadline_ms(self.now(), ttl), Some(condition))
                .await
        })
    }

    fn increment<'a>(&'a self, key: &'a str, delta: i64) -> StoreFuture<'a, i64> {
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            // Optimistic: read, then write only if the value is still the one
            // read; a loser backs off a random, growing while before retrying.
            for attempt in 0..MAX_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                let current = self.read(key).await?;
                let next = next_counter(key, current.as_ref().map(|(v, _)| &v[..]), delta)?;
                let expires_at = current.as_ref().map_or(NEVER, |(_, d)| *d);
                let expected = current.as_ref().map(|(v, _)| &v[..]);
                let now = AttributeValue::N(self.now().to_string());
                let condition = match expected {
                    None => (
                        "attribute_not_exists(sk) OR exp_ms < :now",
                        values(&[(":now", now)]),
                    ),
                    Some(v) => (
                        "v = :expected AND (attribute_not_exists(exp_ms) OR exp_ms >= :now)",
                        values(&[
                            (":now", now),
                            (":expected", AttributeValue::B(Blob::new(v))),
                        ]),
                    ),
                };
                if self
                    .put(
                        key,
                        next.to_string().as_bytes(),
                        expires_at,
                        Some(condition),
                    )
                    .await?
                {
                    return Ok(next);
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
        check!(validate_key(key));
        StoreFuture::boxed(async move {
            self.open_check()?;
            let now = self.now();
            let deadline = deadline_ms(now, Some(ttl));
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(self.key_of(key)))
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
                Ok(_) => Ok(()),
                Err(e) => {
                    let e = e.into_service_error();
                    if e.is_conditional_check_failed_exception() {
                        Err(Error::NotFound)
                    } else {
                        Err(self.error("UpdateItem", e))
                    }
                }
            }
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
                    .map_err(|e| self.error("Query", e.into_service_error()))?;
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
