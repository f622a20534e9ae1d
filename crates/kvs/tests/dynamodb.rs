//! The conformance suite on DynamoDB: the emulator (`moto_server`) that
//! `scripts/test` starts on a loopback port, named by
//! `KVS_TEST_DYNAMODB_ENDPOINT`. Expiry is computed by kvs and checked on
//! every read, so the stores read an injected clock.

use kvs::expiry::ManualClock;
use kvs::testkit::{env, unique_namespace, Capabilities, Harness};
use kvs::{DocumentStore, DynamoDbConfig, DynamoDbStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

struct DynamoHarness {
    config: DynamoDbConfig,
    prefix: String,
    clock: ManualClock,
}

impl DynamoHarness {
    /// This run's name for `namespace` (see the Redis harness).
    async fn namespace(&self, namespace: &str) -> Result<String> {
        let namespace = if namespace.is_empty() {
            kvs::key::DEFAULT_NAMESPACE
        } else {
            namespace
        };
        let prefixed = format!("{}{namespace}", self.prefix);
        if prefixed.len() <= kvs::key::MAX_NAMESPACE_LEN {
            return Ok(prefixed);
        }
        if namespace.len() <= kvs::key::MAX_NAMESPACE_LEN {
            let store = DynamoDbStore::open(namespace, self.config.clone()).await?;
            store.clear().await?;
            store.close().await?;
        }
        Ok(namespace.to_owned())
    }
}

#[async_trait::async_trait]
impl Harness for DynamoHarness {
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>> {
        let namespace = self.namespace(namespace).await?;
        let clock = Arc::new(self.clock.clone());
        Ok(Arc::new(
            DynamoDbStore::open_with_clock(&namespace, self.config.clone(), clock).await?,
        ))
    }

    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>> {
        let namespace = self.namespace(namespace).await?;
        DynamoDbStore::open_documents(
            &namespace,
            self.config.clone(),
            Arc::new(self.clock.clone()),
        )
        .await
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        caps.max_value_size = Some(400 * 1024);
        caps
    }

    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

async fn harness() -> Option<DynamoHarness> {
    let endpoint = env::server("KVS_TEST_DYNAMODB_ENDPOINT", "dynamodb")?;
    let mut config = DynamoDbConfig::default();
    config.endpoint = endpoint;
    config.region = "us-east-1".into();
    config.table_name = "kvs-test".into();
    config.create_table = true;
    Some(DynamoHarness {
        config,
        prefix: unique_namespace(),
        clock: ManualClock::new(1_700_000_000_000),
    })
}

kvs::conformance_tests!(harness);
