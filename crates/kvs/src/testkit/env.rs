//! Where the test servers are: environment variables set by `scripts/test`.
//!
//! | variable                      | what                                   |
//! |-------------------------------|----------------------------------------|
//! | `KVS_TEST_REDIS_URL`          | a standalone Redis of the test script  |
//! | `KVS_TEST_REDIS_CLUSTER_URL`  | a Redis Cluster of the test script     |
//! | `KVS_TEST_DYNAMODB_ENDPOINT`  | the DynamoDB emulators, comma-separated |
//! | `KVS_TEST_REQUIRE_ALL`        | `1`: a missing server fails the test   |
//! | `KVS_FAULT_REPORT`            | a file the fault cases append to       |
//!
//! `CI=true` implies `KVS_TEST_REQUIRE_ALL=1`.

/// Whether a missing server must fail the tests instead of skipping them.
pub fn require_all() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| matches!(v.trim(), "1" | "true" | "yes"));
    set("KVS_TEST_REQUIRE_ALL") || set("CI")
}

/// The value of `variable`, which names a test server for `backend`.
///
/// When it is unset or empty, prints a loud skip line and returns `None`,
/// or panics if [`require_all`] says servers are mandatory.
///
/// # Panics
///
/// When the variable is missing and [`require_all`] is true.
pub fn server(variable: &str, backend: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if require_all() => panic!(
            "{backend} tests: {variable} is not set and KVS_TEST_REQUIRE_ALL/CI demand every \
             backend; run them through scripts/test, which starts the servers"
        ),
        _ => {
            eprintln!(
                "!!!!! SKIPPED: {backend} conformance case — {variable} is not set \
                 (scripts/test starts the server and sets it) !!!!!"
            );
            None
        }
    }
}

/// Records one fault-injection case's figures: prints them, and appends
/// them to the file `KVS_FAULT_REPORT` names, from which `scripts/test`
/// prints the suite's total. Call it only once every check has passed: the
/// line says no acknowledged write was lost.
pub fn report_faults(case: &str, faults: usize, checked: usize) {
    use std::io::Write as _;
    let line =
        format!("{case}: {faults} faults injected, {checked} acknowledged writes checked, 0 lost");
    eprintln!("fault suite: {line}");
    let Ok(path) = std::env::var("KVS_FAULT_REPORT") else {
        return;
    };
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| writeln!(file, "{line}"));
    if let Err(e) = appended {
        eprintln!("!!!!! could not append to KVS_FAULT_REPORT={path}: {e} !!!!!");
    }
}
