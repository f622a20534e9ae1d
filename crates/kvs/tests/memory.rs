//! The conformance suite on the memory backend, opened as users open it
//! (`type: memory` through `kvs::open`), on an injected clock.

use kvs::testkit::ConfigHarness;

async fn harness() -> Option<ConfigHarness> {
    Some(ConfigHarness::memory())
}

kvs::conformance_tests!(harness);

/// The same suite on a bounded memory store (`max_entries`, `max_bytes`)
/// whose bound the cases never reach: bounding changes nothing else.
mod bounded {
    use kvs::testkit::{Capabilities, ConfigHarness};

    async fn harness() -> Option<ConfigHarness> {
        Some(ConfigHarness::from_yaml(
            "type: memory\nmemory: { max_entries: 1000000, max_bytes: 1073741824 }\n",
            Capabilities::new(),
        ))
    }

    kvs::conformance_tests!(harness);
}
