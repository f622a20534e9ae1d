//! The conformance suite on the memory backend, opened as users open it
//! (`type: memory` through `kvs::open`), on an injected clock.

use kvs::testkit::ConfigHarness;

async fn harness() -> Option<ConfigHarness> {
    Some(ConfigHarness::memory())
}

kvs::conformance_tests!(harness);
