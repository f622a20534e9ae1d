//! The table: the client, and creating the table with its TTL turned on.

use super::errors::causes;
use super::BACKEND;
use crate::config::DynamoDbConfig;
use crate::{Error, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

pub(super) async fn client(config: &DynamoDbConfig) -> Client {
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
pub(super) async fn create_table(client: &Client, table: &str) -> Result<()> {
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
