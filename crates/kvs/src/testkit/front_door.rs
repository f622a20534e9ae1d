//! [`ConfigHarness`]: a harness that opens every store the way users do,
//! from a [`Config`] parsed out of YAML or a store URL, through
//! [`kvs::open`](crate::open) and [`kvs::open_documents`](crate::open_documents);
//! and [`ThroughDocuments`], which runs the key-value cases on the store
//! that `open_documents` returns.

use super::{env, unique_namespace, Capabilities, Harness};
use crate::expiry::{Clock, ManualClock, SystemClock};
use crate::key::{DEFAULT_NAMESPACE, MAX_NAMESPACE_LEN};
use crate::{Config, DocumentStore, Result, Store};
use std::sync::Arc;
use std::time::Duration;

/// Opens stores through the front door: `kvs::open_with_clock` and
/// `kvs::open_documents_with_clock` on a [`Config`] with the case's
/// namespace.
///
/// ```no_run
/// use kvs::testkit::ConfigHarness;
///
/// async fn harness() -> Option<ConfigHarness> {
///     Some(ConfigHarness::memory())
/// }
/// kvs::conformance_tests!(harness);
/// ```
pub struct ConfigHarness {
    /// The backend's settings; a namespace picks one of them by a stable
    /// hash of its name (several emulators sharing the load), so every
    /// store of one namespace meets the same data.
    configs: Vec<Config>,
    /// `Some`: every store reads this clock and `advance` moves it.
    /// `None`: the backend keeps time itself (Redis) and `advance` sleeps.
    clock: Option<ManualClock>,
    /// On a shared server, this run's namespaces start with it, so runs and
    /// cases never meet.
    prefix: Option<String>,
    capabilities: Capabilities,
    /// Kept for the stores' lifetime, removed with the harness.
    _dir: Option<tempfile::TempDir>,
}

impl ConfigHarness {
    /// A harness for `config`, with a manual clock if
    /// `capabilities.manual_clock`.
    pub fn new(config: Config, capabilities: Capabilities) -> ConfigHarness {
        ConfigHarness {
            configs: vec![config],
            clock: capabilities
                .manual_clock
                .then(|| ManualClock::new(1_700_000_000_000)),
            prefix: None,
            capabilities,
            _dir: None,
        }
    }

    /// A harness for the YAML configuration `yaml`.
    ///
    /// # Panics
    ///
    /// If `yaml` is not a valid configuration.
    pub fn from_yaml(yaml: &str, capabilities: Capabilities) -> ConfigHarness {
        match Config::from_yaml(yaml) {
            Ok(config) => ConfigHarness::new(config, capabilities),
            Err(e) => panic!("the harness's YAML does not parse: {e}\n{yaml}"),
        }
    }

    /// The memory backend (`type: memory`), on a manual clock.
    pub fn memory() -> ConfigHarness {
        ConfigHarness::from_yaml("type: memory\n", Capabilities::new())
    }

    /// A file or directory backend (`type: sqlite` or `type: leveldb`) in a
    /// fresh temporary directory: `yaml` is the configuration with
    /// `{dir}` standing for that directory.
    ///
    /// # Panics
    ///
    /// If no temporary directory can be made or the YAML does not parse.
    pub fn in_temp_dir(yaml: &str) -> ConfigHarness {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot make a temporary directory: {e}"),
        };
        let yaml = yaml.replace("{dir}", &dir.path().display().to_string());
        let mut caps = Capabilities::new();
        caps.shared_namespaces = true;
        caps.persistent = true;
        let mut harness = ConfigHarness::from_yaml(&yaml, caps);
        harness._dir = Some(dir);
        harness
    }

    /// A harness for the server in the environment variable `variable` (a
    /// store URL, or several comma-separated), or `None` after a loud skip
    /// line (see [`env::server`]); see [`ConfigHarness::from_urls`].
    ///
    /// # Panics
    ///
    /// If the variable holds something other than store URLs.
    pub fn from_env(
        variable: &str,
        backend: &str,
        capabilities: Capabilities,
    ) -> Option<ConfigHarness> {
        let urls = env::server(variable, backend)?;
        let urls: Vec<&str> = urls.split(',').collect();
        Some(ConfigHarness::from_urls(&urls, capabilities))
    }

    /// A harness for the servers of the store URLs `urls` (each serving
    /// some namespaces), with namespaces prefixed by this run.
    ///
    /// # Panics
    ///
    /// If `urls` is empty or holds something other than store URLs.
    pub fn from_urls(urls: &[&str], capabilities: Capabilities) -> ConfigHarness {
        let configs: Vec<Config> = urls
            .iter()
            .map(|url| url.trim())
            .filter(|url| !url.is_empty())
            .map(|url| match Config::from_url(url) {
                Ok(config) => config,
                Err(e) => panic!("{url:?} is not a store URL: {e}"),
            })
            .collect();
        let Some(first) = configs.first() else {
            panic!("a harness needs at least one store URL");
        };
        let mut harness = ConfigHarness::new(first.clone(), capabilities);
        harness.configs = configs;
        harness.prefix = Some(unique_namespace());
        harness
    }

    /// This harness with `layers` (see [`crate::layer`]) around every
    /// store it opens, the first innermost: the suite then runs on the
    /// stack, through [`kvs::open`](crate::open) as users open it.
    pub fn with_layers(mut self, layers: &[crate::layer::LayerConfig]) -> ConfigHarness {
        for config in &mut self.configs {
            config.layers = layers.to_vec();
        }
        self
    }

    /// The configuration of the first server or file.
    pub fn config(&self) -> &Config {
        &self.configs[0]
    }

    /// The configuration that opens `namespace` (already mapped).
    fn config_for(&self, namespace: &str) -> Config {
        // FNV-1a: stable across runs and processes, unlike std's hasher.
        let hash = namespace.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let mut config = self.configs[(hash % self.configs.len() as u64) as usize].clone();
        config.namespace = namespace.to_owned();
        config
    }

    fn clock(&self) -> Arc<dyn Clock> {
        match &self.clock {
            Some(clock) => Arc::new(clock.clone()),
            None => Arc::new(SystemClock),
        }
    }

    /// This run's name for `namespace`. A name too long to prefix (the
    /// 255-byte case) is used as it is, emptied first.
    async fn namespace(&self, namespace: &str) -> Result<String> {
        let Some(prefix) = &self.prefix else {
            return Ok(namespace.to_owned());
        };
        // "" means "default" before the prefix, as it does after.
        let namespace = if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        };
        let prefixed = format!("{prefix}{namespace}");
        if prefixed.len() <= MAX_NAMESPACE_LEN {
            return Ok(prefixed);
        }
        if namespace.len() <= MAX_NAMESPACE_LEN {
            // Every run and every test binary shares this name, some with
            // Redis's ordered index and some without; a store without it
            // empties the keys written without it, which a store with it
            // would refuse to open (on a cluster) or to clear (until the
            // index is built), and uses the index where there is one.
            #[allow(unused_mut)]
            let mut config = self.config_for(namespace);
            #[cfg(feature = "redis")]
            {
                config.redis.index = false;
            }
            let store = crate::open_with_clock(&config, self.clock()).await?;
            store.clear().await?;
            store.close().await?;
        }
        Ok(namespace.to_owned())
    }
}

#[async_trait::async_trait]
impl Harness for ConfigHarness {
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>> {
        let namespace = self.namespace(namespace).await?;
        crate::open_with_clock(&self.config_for(&namespace), self.clock()).await
    }

    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>> {
        let namespace = self.namespace(namespace).await?;
        crate::open_documents_with_clock(&self.config_for(&namespace), self.clock()).await
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn advance(&self, by: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(by),
            // The backend keeps time itself: real time must pass.
            None => tokio::time::sleep(by).await,
        }
    }
}

/// The harness `H`, but every store it opens for the key-value cases is
/// the one `open_documents` returns: the suite then checks that the
/// document store keeps the whole key-value contract too.
pub struct ThroughDocuments<H>(pub H);

#[async_trait::async_trait]
impl<H: Harness> Harness for ThroughDocuments<H> {
    async fn open(&self, namespace: &str) -> Result<Arc<dyn Store>> {
        let store: Arc<dyn Store> = self.0.open_documents(namespace).await?;
        Ok(store)
    }

    async fn open_documents(&self, namespace: &str) -> Result<Arc<dyn DocumentStore>> {
        self.0.open_documents(namespace).await
    }

    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }

    async fn advance(&self, by: Duration) {
        self.0.advance(by).await;
    }
}
