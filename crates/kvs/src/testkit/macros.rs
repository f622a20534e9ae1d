//! `conformance_tests!`: one `#[test]` per case, twice.

/// Expands to one `#[test]` per conformance case, each running on a fresh
/// harness from `$harness`, an `async fn() -> Option<H>` where
/// `H: kvs::testkit::Harness` (`None` skips the backend).
///
/// Every key-value case runs a second time in the module
/// `through_documents`, on the store that the harness's `open_documents`
/// returns ([`ThroughDocuments`](crate::testkit::ThroughDocuments)): a
/// document store must keep the whole key-value contract too. (The
/// document cases and the state machine run once; they open document
/// stores already.)
///
/// The case list lives here once; adding a case to [`cases`](crate::testkit::cases)
/// and to this list runs it on every backend, through both entry points.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:path) => {
        $crate::__conformance_key_value_cases!($harness, |h| h);

        /// The key-value cases on the store `open_documents` returns.
        mod through_documents {
            use super::*;
            $crate::__conformance_key_value_cases!($harness, $crate::testkit::ThroughDocuments);
        }

        $crate::__conformance_cases!($harness, |h| h, CurrentThread:
            documents_upsert_and_timestamps,
            documents_filters,
            documents_isolation,
            documents_bad_input,
            documents_close,
            documents_restore_and_collections,
        );
        $crate::__conformance_cases!($harness, |h| h, MultiThread:
            documents_many,
        );

        #[test]
        fn state_machine() {
            let rt = $crate::testkit::runtime($crate::testkit::Flavor::CurrentThread);
            if let Some(harness) = rt.block_on($harness()) {
                $crate::testkit::cases::state_machine(&rt, &harness);
            }
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_key_value_cases {
    ($harness:path, $wrap:expr) => {
        $crate::__conformance_cases!($harness, $wrap, CurrentThread:
            set_get_overwrite,
            missing_keys,
            exists_follows_writes,
            empty_value,
            binary_values,
            large_value,
            ttl_expiry_is_visible_everywhere,
            ttl_overwrite_without_ttl_is_permanent,
            ttl_overwrite_replaces_ttl,
            ttl_zero_and_long_survive,
            ttl_delete_then_set,
            ttl_reports_time_left,
            ttl_beyond_the_limit_changes_nothing,
            list_prefix_and_all,
            list_sorted_by_bytes,
            list_matches_special_characters_literally,
            list_is_case_sensitive,
            list_non_ascii,
            list_many_keys,
            namespaces_are_isolated,
            namespace_rules,
            invalid_keys_change_nothing,
            close_then_closed,
            closed_refuses_even_empty_batches,
            same_namespace_shares_state,
            reopen_keeps_values_and_ttls,
            batches,
            batches_larger_than_one_request,
            set_if_absent_is_a_lock,
            compare_and_swap,
            increment,
            counters_read_as_redis_reads_them,
            expire_and_persist,
            get_and_touch_slides_expiry,
            paging_and_scan,
            entries_pages,
            delete_prefix_and_clear,
        );
        $crate::__conformance_cases!($harness, $wrap, MultiThread:
            close_races,
            concurrent_tasks,
            atomic_under_concurrency,
            cache_single_flight_and_tags,
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($harness:path, $wrap:expr, $flavor:ident: $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testkit::runtime($crate::testkit::Flavor::$flavor).block_on(async {
                    if let Some(harness) = $harness().await {
                        let wrap = $wrap;
                        $crate::testkit::cases::$case(&wrap(harness)).await;
                    }
                });
            }
        )*
    };
}
