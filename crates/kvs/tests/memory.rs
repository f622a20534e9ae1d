//! The conformance suite on the memory backend, with an injected clock.

use kvs::testkit::MemoryHarness;

async fn harness() -> Option<MemoryHarness> {
    Some(MemoryHarness::default())
}

kvs::conformance_tests!(harness);
