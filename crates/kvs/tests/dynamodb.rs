//! The conformance suite on DynamoDB: the emulator (`moto_server`) that
//! `scripts/test` starts on loopback ports, named by
//! `KVS_TEST_DYNAMODB_ENDPOINT`. Expiry is computed by kvs and checked on
//! every read, so the stores read an injected clock.
//!
//! moto answers on one core, so the script starts two and the variable
//! lists both, comma-separated; each namespace is served by one of them,
//! chosen by its name, so every store of a namespace meets the same data.

use kvs::expiry::ManualClock;
use kvs::testkit::{env, unique_namespace, Capabilities, Harness};
use kvs::{DocumentStore, DynamoDbConfig, DynamoDbStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

struct DynamoHarness {
    config: DynamoDbConfig,
    /// Every emulator; `config.endpoint` is replaced by one of them.
    endpoints: Vec<String>,
    prefix: String,
    clock: ManualClock,
}

impl DynamoHarness {
    /// The settings of the emulator that serves `namespace`.
    fn config_for(&self, namespace: &str) -> DynamoDbConfig {
        // FNV-1a: stable across runs and processes, unlike std's hasher.
        let hash = namespace.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut config = self.config.clone();
        config.endpoint = self.endpoints[(hash % self.endpoints.len() as u64) as usize].clone();
        config
    }

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
            let store = DynamoDbStore::open(namespace, self.config_for(namespace)).await?;
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
            DynamoDbStore::open_with_clock(&namespace, self.config_for(&namespace), clock).await?,
        ))
    }

    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>> {
        let namespace = self.namespace(namespace).await?;
        DynamoDbStore::open_documents(
            &namespace,
            self.config_for(&namespace),
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
    let endpoints = env::server("KVS_TEST_DYNAMODB_ENDPOINT", "dynamodb")?;
    let endpoints: Vec<String> = endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let mut config = DynamoDbConfig::default();
    config.region = "us-east-1".into();
    config.table_name = "kvs-test".into();
    config.create_table = true;
    Some(DynamoHarness {
        config,
        endpoints,
        prefix: unique_namespace(),
        clock: ManualClock::new(1_700_000_000_000),
    })
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the emulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    let operations = std::env::var("KVS_TEST_LOAD_OPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    kvs::testkit::cases::load(&h, 64, operations).await;
}
