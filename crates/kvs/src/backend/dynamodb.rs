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

use crate::config::DynamoDbConfig;
use crate::document::{DocSpace, Documents};
use crate::expiry::{check_ttl, deadline_ms, is_live, remaining, Clock, SystemClock, NEVER};
use crate::future::check;
use crate::generic::{last_of_each, next_counter, validate_all};
use crate::key::{escape_namespace, normalize_namespace, validate_key, validate_prefix};
use crate::{DocumentStore, Error, Result, Store, StoreFuture};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    KeysAndAttributes, PutRequest, ReturnValue, ScalarAttributeType, Select,
    TimeToLiveSpecification, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_runtime_api::client::result::CreateUnhandledError;
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
/// Attempts of an optimistic read-modify-write, or of a batch whose items
/// DynamoDB keeps returning unprocessed, before giving up.
const MAX_ATTEMPTS: u32 = 200;
/// DynamoDB's limits on one BatchGetItem and one BatchWriteItem.
const BATCH_GET_MAX: usize = 100;
const BATCH_WRITE_MAX: usize = 25;

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

    /// The one mapping of the SDK's errors: `Ok(())` if DynamoDB refused
    /// the request's condition (`ConditionalCheckFailedException`, which
    /// conditional writes read as "not written"), else the error.
    ///
    /// Worth retrying: timeouts, connections that failed or broke, replies
    /// that could not be read, throttling and DynamoDB's own internal
    /// errors. Not: a bad request, missing credentials, a missing table.
    fn refused<E, R>(&self, operation: &str, e: SdkError<E, R>) -> Result<()>
    where
        E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata + CreateUnhandledError,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let temporary = match &e {
            SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
            SdkError::DispatchFailure(failure) => failure.is_io() || failure.is_timeout(),
            SdkError::ServiceError(service) => matches!(
                service.err().code(),
                Some(
                    "ProvisionedThroughputExceededException"
                        | "ThrottlingException"
                        | "RequestLimitExceeded"
                        | "InternalServerError"
                        | "ServiceUnavailable"
                        | "TransactionConflictException"
                )
            ),
            _ => false,
        };
        let e = e.into_service_error();
        if e.code() == Some("ConditionalCheckFailedException") {
            return Ok(());
        }
        let detail = match (e.code(), e.message()) {
            (Some(code), Some(message)) => format!(" ({code}: {message})"),
            (Some(code), None) => format!(" ({code})"),
            // No answer from DynamoDB (no credentials, no connection): the
            // cause is down the error's source chain.
            _ => format!(" ({})", causes(&e)),
        };
        let context = format!("{operation} on table {}{detail}", self.table);
        Err(Error::backend(BACKEND, context, e).temporary_if(temporary))
    }

    /// The error of a request that has no condition.
    fn error<E, R>(&self, operation: &str, e: SdkError<E, R>) -> Error
    where
        E: std::error::Error + Send + Sync + 'static + ProvideErrorMetadata + CreateUnhandledError,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match self.refused(operation, e) {
            Err(e) => e,
            // Only a conditional request can fail its condition.
            Ok(()) => Error::backend(
                BACKEND,
                format!("{operation} on table {}", self.table),
                "DynamoDB refused a condition this request does not have",
            ),
        }
    }

    fn key_of(&self, key: &str) -> Item {
        HashMap::from([
            ("pk".to_owned(), AttributeValue::S(self.pk.clone())),
            ("sk".to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    fn item(&self, key: &str, value: &[u8], expires_at: u64) -> Item {
        self.item_holding(key, AttributeValue::B(Blob::new(value)), expires_at)
    }

    /// The item of a counter: `n` instead of `v`.
    fn counter_item(&self, key: &str, count: i64, expires_at: u64) -> Item {
        self.item_holding(key, AttributeValue::N(count.to_string()), expires_at)
    }

    fn item_holding(&self, key: &str, value: AttributeValue, expires_at: u64) -> Item {
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

    /// The live values of `keys` (distinct), by BatchGetItem in chunks of
    /// 100, retrying what DynamoDB returns unprocessed.
    async fn batch_get(&self, keys: &[&str]) -> Result<HashMap<String, Bytes>> {
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
    async fn batch_write(&self, requests: Vec<WriteRequest>) -> Result<()> {
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

    fn build_error(&self, operation: &str, e: aws_sdk_dynamodb::error::BuildError) -> Error {
        Error::backend(
            BACKEND,
            format!("building a {operation} request for table {}", self.table),
            e,
        )
    }

    fn gave_up(&self, operation: &str) -> Error {
        Error::backend(
            BACKEND,
            format!("{operation} on table {}", self.table),
            format!("items still unprocessed after {MAX_ATTEMPTS} attempts (throttled)"),
        )
    }

    /// Writes `key` if `condition` holds (always, without one); returns
    /// whether it was written.
    async fn put(&self, item: Item, condition: Option<(&str, Item)>) -> Result<bool> {
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
    async fn add(&self, key: &str, delta: i64) -> Result<Option<i64>> {
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
    async fn increment_slowly(&self, key: &str, delta: i64) -> Result<Option<i64>> {
        let current = self.read(key).await?;
        let expected = current.as_ref().map(|(v, _)| &v[..]);
        let next = next_counter(key, expected, delta)?;
        let condition = holding(expected, self.now());
        // Gone or expired since ADD was refused: start over, without a TTL.
        let deadline = current.as_ref().map_or(NEVER, |(_, d)| *d);
        let item = self.counter_item(key, next, deadline);
        Ok(self.put(item, Some(condition)).await?.then_some(next))
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
                .map_err(|e| self.error("Query", e))?;
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

/// `e` and its sources, each as it displays itself, joined by `: ` — the
/// SDK's own errors say only "dispatch failure" at the top. (Not the SDK's
/// `DisplayErrorContext`, which appends a `Debug` dump of the response.)
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// A random wait, growing with `attempt` up to about 50 ms.
fn backoff(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let ceiling = 2u64.saturating_pow(attempt.min(6)).min(50);
    Duration::from_millis(1 + u64::from(nanos) % ceiling)
}

/// The value an item holds: its bytes, or a counter's decimal text.
fn value_of(item: &Item) -> Bytes {
    match (item.get("v"), item.get("n")) {
        (Some(AttributeValue::B(blob)), _) => Bytes::copy_from_slice(blob.as_ref()),
        (_, Some(AttributeValue::N(n))) => Bytes::copy_from_slice(n.as_bytes()),
        _ => Bytes::new(),
    }
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
                return Err(fail("creating the table", causes(&e)));
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

/// The condition of a conditional put: the item is absent or expired
/// (`expected` is `None`), or live and holding `expected`, as bytes or as
/// the counter whose text it is (a counter holds `n`, read back as text).
fn holding(expected: Option<&[u8]>, now_ms: u64) -> (&'static str, Item) {
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

/// `keys` without repeats, in first-seen order.
fn distinct<'k>(keys: &[&'k str]) -> Vec<&'k str> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    keys.iter().copied().filter(|k| seen.insert(*k)).collect()
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
        check!(entries
            .first()
            .map_or(Ok(()), |(key, _)| check_ttl(key, ttl)));
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
                // The condition is "present and live".
                Err(e) => self.refused("UpdateItem", e).and(Err(Error::NotFound)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn an_sdk_error_names_its_causes() {
        let e = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "other",
                Some(Box::new(Layer("no credentials in the environment", None))),
            ))),
        );
        assert_eq!(
            causes(&e),
            "dispatch failure: other: no credentials in the environment"
        );
        // A cause its parent already spells out is not repeated.
        let e = Layer("timed out: io", Some(Box::new(Layer("io", None))));
        assert_eq!(causes(&e), "timed out: io");
    }
}
