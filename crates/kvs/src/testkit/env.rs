//! Where the test servers are: environment variables set by `scripts/test`.
//!
//! | variable                      | what                                   |
//! |-------------------------------|----------------------------------------|
//! | `KVS_TEST_REDIS_URL`          | a standalone Redis of the test script  |
//! | `KVS_TEST_REDIS_CLUSTER_URL`  | a Redis Cluster of the test script     |
//! | `KVS_TEST_DYNAMODB_ENDPOINT`  | the DynamoDB emulators, comma-separated |
//! | `KVS_TEST_POSTGRES_URL`       | a PostgreSQL server of the test script |
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

/// `url` with the query parameters `params` (`name=value&…`) added.
///
/// ```
/// use kvs::testkit::env::with_query;
/// assert_eq!(with_query("redis://h:1/0", "index=true"), "redis://h:1/0?index=true");
/// assert_eq!(with_query("redis://h:1?cluster=true", "index=true"), "redis://h:1?cluster=true&index=true");
/// ```
pub fn with_query(url: &str, params: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
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

/// The configuration of `kind` that a user would write, for one test
/// store called `tag`: YAML with a file (or folder) under `dir` for the
/// embedded backends, the test server's store URL for the others, and a
/// fresh namespace ending in `tag`. `None` after a skip line (a failure in
/// CI, see [`server`]) when the backend's server is not set.
///
/// # Panics
///
/// On a [`BackendKind`](crate::BackendKind) this function does not know
/// yet: a new backend must be added here to be tested.
pub fn user_config(
    kind: crate::BackendKind,
    dir: &std::path::Path,
    tag: &str,
) -> Option<crate::Config> {
    use crate::{BackendKind, Config};
    let d = dir.display();
    let mut config = match kind {
        BackendKind::Memory => Config::from_yaml("type: memory").ok()?,
        BackendKind::Sqlite => Config::from_yaml(&format!(
            "type: sqlite\nsqlite: {{ path: \"{d}/{tag}.db\" }}"
        ))
        .ok()?,
        BackendKind::LevelDb => Config::from_yaml(&format!(
            "type: leveldb\nleveldb: {{ path: \"{d}/{tag}-ldb\" }}"
        ))
        .ok()?,
        BackendKind::Redis => Config::from_url(&server("KVS_TEST_REDIS_URL", "redis")?).ok()?,
        BackendKind::DynamoDb => {
            let endpoints = server("KVS_TEST_DYNAMODB_ENDPOINT", "dynamodb")?;
            let endpoint = endpoints.split(',').next()?.trim().to_owned();
            Config::from_url(&format!(
                "dynamodb://kvs-test?endpoint={endpoint}&region=us-east-1&create_table=true"
            ))
            .ok()?
        }
        BackendKind::Postgres => {
            let url = server("KVS_TEST_POSTGRES_URL", "postgres")?;
            Config::from_url(&url).ok()?
        }
        #[allow(unreachable_patterns)]
        other => panic!("testkit::env::user_config does not know {other}"),
    };
    config.namespace = format!("{}{tag}", super::unique_namespace());
    Some(config)
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
