//! The conformance suite on a real Redis server: the one `scripts/test`
//! starts on 127.0.0.1:6390 (never the machine's own 6379), named by
//! `KVS_TEST_REDIS_URL`.

use kvs::testkit::{env, unique_namespace, Capabilities, Harness};
use kvs::{Config, DocumentStore, RedisConfig, RedisStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

struct RedisHarness {
    config: RedisConfig,
    /// Keeps this run's keys apart from other runs and cases on the server.
    prefix: String,
}

impl RedisHarness {
    /// This run's name for `namespace`. A name too long to prefix (the
    /// 255-byte case) is used as it is, emptied first.
    async fn namespace(&self, namespace: &str) -> Result<String> {
        // "" means "default" before the prefix, as it does after.
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
            let store = RedisStore::open(namespace, self.config.clone()).await?;
            store.clear().await?;
            store.close().await?;
        }
        Ok(namespace.to_owned())
    }
}

#[async_trait::async_trait]
impl Harness for RedisHarness {
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>> {
        let namespace = self.namespace(namespace).await?;
        Ok(Arc::new(
            RedisStore::open(&namespace, self.config.clone()).await?,
        ))
    }

    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>> {
        let namespace = self.namespace(namespace).await?;
        RedisStore::open_documents(&namespace, self.config.clone()).await
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        caps.manual_clock = false;
        caps
    }

    async fn advance(&self, by: Duration) {
        // Redis expires keys by its own clock: real time must pass.
        tokio::time::sleep(by).await;
    }
}

async fn harness() -> Option<RedisHarness> {
    let url = env::server("KVS_TEST_REDIS_URL", "redis")?;
    let config = Config::from_url(&url).expect("KVS_TEST_REDIS_URL is a redis:// URL");
    Some(RedisHarness {
        config: config.redis,
        prefix: unique_namespace(),
    })
}

kvs::conformance_tests!(harness);

/// Load: 64 tasks × 2,000 mixed operations on the test server, no errors,
/// and each task's keys end as its own model says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_64_tasks_by_2000_operations() {
    let Some(h) = harness().await else { return };
    let store = h.open("load").await.expect("open");
    let mut tasks = Vec::new();
    for t in 0..64u64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut model = std::collections::BTreeMap::new();
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
            for i in 0..2_000u64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("t{t:02}:{}", seed % 32);
                match seed % 5 {
                    0 | 1 => {
                        let value = format!("{t}-{i}");
                        store.set(&key, value.as_bytes(), None).await.expect("set");
                        model.insert(key, value);
                    }
                    2 => {
                        store.delete(&key).await.expect("delete");
                        model.remove(&key);
                    }
                    _ => {
                        let got = store
                            .get(&key)
                            .await
                            .ok()
                            .map(|v| String::from_utf8_lossy(&v).into_owned());
                        assert_eq!(got.as_ref(), model.get(&key), "task {t} read {key}");
                    }
                }
            }
            model
        }));
    }
    let mut want = Vec::new();
    for task in tasks {
        want.extend(task.await.expect("task").into_keys());
    }
    want.sort();
    assert_eq!(store.list("t").await.expect("list"), want);
}
