//! The conformance suite on a Redis Cluster: the three masters
//! `scripts/test` starts on 127.0.0.1:7101-7103, named by
//! `KVS_TEST_REDIS_CLUSTER_URL` (`redis://127.0.0.1:7101?cluster=true`).

use kvs::testkit::redis::RedisHarness;

async fn harness() -> Option<RedisHarness> {
    RedisHarness::from_env("KVS_TEST_REDIS_CLUSTER_URL", "redis cluster")
}

kvs::conformance_tests!(harness);
