//! The DynamoDB raw client: `aws-sdk-dynamodb`, on the same endpoint and
//! in the same table as the kvs store, sending what kvs sends — a
//! strongly consistent `GetItem`, `PutItem`, and a paginated `Query` on one
//! partition with `begins_with` on the sort key (`Select=COUNT` to count).
//! Its items have kvs's layout, in a partition of their own, so that a kvs
//! store opened on that partition's namespace can load them before the run
//! (`set_many`: BatchWriteItem; the load is not measured) and clear them
//! after it.

use crate::subject::{OpError, OpResult, Subject};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use aws_sdk_dynamodb::Client;
use kvs::{DynamoDbConfig, Store};
use std::collections::HashMap;
use std::sync::Arc;

/// The namespace (and partition) the raw client writes in.
pub const RAW_NAMESPACE: &str = "kvs-bench-raw";

/// `aws-sdk-dynamodb`, one `Client` shared by every task.
pub struct RawDynamoDb {
    client: Client,
    table: String,
    pk: AttributeValue,
    /// A kvs store on [`RAW_NAMESPACE`], for the load only.
    loader: Arc<dyn Store>,
}

impl RawDynamoDb {
    /// A client built as kvs builds its own: region and endpoint from
    /// `config`, credentials from the environment. `loader` is a kvs store
    /// on [`RAW_NAMESPACE`] in the same table.
    pub async fn connect(config: &DynamoDbConfig, loader: Arc<dyn Store>) -> RawDynamoDb {
        let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if !config.region.is_empty() {
            sdk = sdk.region(aws_config::Region::new(config.region.clone()));
        }
        if !config.endpoint.is_empty() {
            sdk = sdk.endpoint_url(config.endpoint.clone());
        }
        RawDynamoDb {
            client: Client::new(&sdk.load().await),
            table: config.table_name.clone(),
            pk: AttributeValue::S(kvs::raw::escape_namespace(RAW_NAMESPACE)),
            loader,
        }
    }

    fn key(&self, key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("pk".to_owned(), self.pk.clone()),
            ("sk".to_owned(), AttributeValue::S(key.to_owned())),
        ])
    }

    fn query(
        &self,
        prefix: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .consistent_read(true)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", self.pk.clone())
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.to_owned()))
    }
}

impl Subject for RawDynamoDb {
    async fn set(&self, key: &str, value: &[u8]) -> OpResult<()> {
        let mut item = self.key(key);
        item.insert("v".to_owned(), AttributeValue::B(Blob::new(value)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map(drop)
            .map_err(|e| OpError::failed("PutItem", e.into_service_error()))
    }

    async fn get(&self, key: &str) -> OpResult<Option<usize>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| OpError::failed("GetItem", e.into_service_error()))?;
        Ok(out.item.map(|item| match item.get("v") {
            Some(AttributeValue::B(blob)) => blob.as_ref().to_vec().len(),
            _ => 0,
        }))
    }

    async fn list(&self, prefix: &str) -> OpResult<usize> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .query(prefix)
                .projection_expression("sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| OpError::failed("Query", e.into_service_error()))?;
            for item in out.items.unwrap_or_default() {
                if let Some(AttributeValue::S(key)) = item.get("sk") {
                    keys.push(key.clone());
                }
            }
            match out.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(keys.len()),
            }
        }
    }

    async fn count(&self, prefix: &str) -> OpResult<usize> {
        let mut total = 0;
        let mut start = None;
        loop {
            let out = self
                .query(prefix)
                .select(Select::Count)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| OpError::failed("Query (COUNT)", e.into_service_error()))?;
            total += usize::try_from(out.count).unwrap_or(0);
            match out.last_evaluated_key {
                Some(last) => start = Some(last),
                None => return Ok(total),
            }
        }
    }

    async fn load(&self, entries: Vec<(String, Vec<u8>)>) -> OpResult<()> {
        crate::subjects::kvs::Kvs(Arc::clone(&self.loader))
            .load(entries)
            .await
    }
}
