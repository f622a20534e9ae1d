//! The conformance suite on a Redis Cluster: the three masters
//! `scripts/test` starts on 127.0.0.1:7101-7103, named by
//! `KVS_TEST_REDIS_CLUSTER_URL` (`redis://127.0.0.1:7101?cluster=true`).

use kvs::testkit::{Capabilities, ConfigHarness};

/// Stores opened from the cluster's URL through `kvs::open`.
async fn harness() -> Option<ConfigHarness> {
    let mut caps = Capabilities::new();
    caps.shared_namespaces = true;
    caps.persistent = true;
    caps.manual_clock = false;
    ConfigHarness::from_env("KVS_TEST_REDIS_CLUSTER_URL", "redis cluster", caps)
}

kvs::conformance_tests!(harness);
