//! Listing: a Query on the namespace's partition, never a table Scan.

use super::items::Item;
use super::DynamoDbStore;
use crate::Result;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

impl DynamoDbStore {
    /// One page of live keys under `prefix` after `start_after`.
    pub(super) async fn query_page(
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
    pub(super) fn query(
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
