//! The harness for [`RedisStore`] on a test server (standalone or cluster).

use super::{env, unique_namespace, Capabilities, Harness};
use crate::key::{DEFAULT_NAMESPACE, MAX_NAMESPACE_LEN};
use crate::{Config, DocumentStore, RedisConfig, RedisStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

/// Opens stores on the server named by an environment variable, each case
/// and run in namespaces of its own.
#[derive(Debug, Clone)]
pub struct RedisHarness {
    config: RedisConfig,
    /// Keeps this run's keys apart from other runs and cases on the server.
    prefix: String,
}

impl RedisHarness {
    /// A harness for the server in `variable` (a `redis://` URL), or `None`
    /// after a skip line (see [`env::server`]).
    ///
    /// # Panics
    ///
    /// If the variable holds something other than a Redis URL.
    pub fn from_env(variable: &str, name: &str) -> Option<RedisHarness> {
        let url = env::server(variable, name)?;
        let config = match Config::from_url(&url) {
            Ok(config) => config,
            Err(e) => panic!("{variable} is not a redis:// URL: {e}"),
        };
        Some(RedisHarness {
            config: config.redis,
            prefix: unique_namespace(),
        })
    }

    /// The settings the harness connects with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// This run's name for `namespace`. A name too long to prefix (the
    /// 255-byte case) is used as it is, emptied first.
    async fn namespace(&self, namespace: &str) -> Result<String> {
        // "" means "default" before the prefix, as it does after.
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        let prefixed = format!("{}{namespace}", self.prefix);
        if prefixed.len() <= MAX_NAMESPACE_LEN {
            return Ok(prefixed);
        }
        if namespace.len() <= MAX_NAMESPACE_LEN {
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
