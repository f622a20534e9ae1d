//! Copying the keys of one store into another: what `kvs copy` runs.
//!
//! The copy walks the source in pages of
//! [`entries_page`](Store::entries_page) (byte order: each key with its
//! value and remaining TTL), and writes each page with
//! [`set_many`](Store::set_many), one call per distinct TTL. While a page is
//! being written the next one is read, so the copy runs at the pace of the
//! slower side rather than at the sum of both.
//!
//! Invariants:
//! - The source is only read. (Opening it is the caller's business: the
//!   `kvs` command opens it with its sweep off and without creating it.)
//! - Progress is reported after a page is acknowledged by the destination,
//!   so a `last_key` from [`CopyProgress`] is a safe point to resume from
//!   ([`CopyOptions::start_after`]): every key up to it has been written.
//! - A key that expires (or is deleted) between being listed and being read
//!   is not copied.

use crate::generic::{set_entries, values_and_ttls};
use crate::{Config, Document, DocumentStore, Entry, Error, Result, Store};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How far a copied TTL may be from the source's, on verification: the
/// time between reading one and the other, and the rounding of backends
/// that keep whole seconds.
pub const TTL_TOLERANCE: Duration = Duration::from_secs(1);

/// How many mismatches a [`CopyReport`] lists by key (all are counted).
pub const MAX_LISTED_MISMATCHES: usize = 100;

/// What to copy, and how. Built with [`CopyOptions::new`] and its setters.
///
/// ```
/// let options = kvs::CopyOptions::new().prefix("user:").verify(true);
/// assert_eq!(options.batch_size, 1000);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyOptions {
    /// Only the keys starting with this (`""`: every key of the namespace).
    pub prefix: String,
    /// Keys per page read and per batch written (default 1000).
    pub batch_size: usize,
    /// Start after this key: the `last_key` of an interrupted copy.
    pub start_after: Option<String>,
    /// Read and count everything, write nothing.
    pub dry_run: bool,
    /// Afterwards, read every key back from both stores and compare values
    /// and TTLs (within [`TTL_TOLERANCE`]).
    pub verify: bool,
    /// Afterwards, delete the destination's keys (under the prefix) that the
    /// source does not have, so that the destination equals the source.
    pub delete_missing: bool,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            prefix: String::new(),
            batch_size: 1000,
            start_after: None,
            dry_run: false,
            verify: false,
            delete_missing: false,
        }
    }
}

impl CopyOptions {
    /// Every key, in pages of 1000, no verification.
    pub fn new() -> CopyOptions {
        CopyOptions::default()
    }

    /// Only the keys starting with `prefix`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> CopyOptions {
        self.prefix = prefix.into();
        self
    }

    /// Keys per page and per batch (at least 1).
    pub fn batch_size(mut self, keys: usize) -> CopyOptions {
        self.batch_size = keys.max(1);
        self
    }

    /// Resume after `key`.
    pub fn start_after(mut self, key: Option<String>) -> CopyOptions {
        self.start_after = key;
        self
    }

    /// Write nothing; report what would be written.
    pub fn dry_run(mut self, on: bool) -> CopyOptions {
        self.dry_run = on;
        self
    }

    /// Compare both stores afterwards.
    pub fn verify(mut self, on: bool) -> CopyOptions {
        self.verify = on;
        self
    }

    /// Make the destination equal the source under the prefix.
    pub fn delete_missing(mut self, on: bool) -> CopyOptions {
        self.delete_missing = on;
        self
    }
}

/// The step a copy is in, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyPhase {
    /// Copying keys (or counting them, in a dry run).
    Copy,
    /// Deleting the destination's extra keys.
    DeleteMissing,
    /// Reading both stores back.
    Verify,
}

/// Where a copy has got to; passed to the callback of
/// [`copy_with_progress`] after every page.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyProgress {
    /// The current step.
    pub phase: CopyPhase,
    /// Keys done in this step (copied, deleted or compared).
    pub keys: u64,
    /// Value bytes done in this step.
    pub bytes: u64,
    /// In the copy step: the last key the destination has acknowledged,
    /// the point to resume after.
    pub last_key: Option<String>,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyReport {
    /// Keys written to the destination (would be, in a dry run).
    pub copied: u64,
    /// Their value bytes.
    pub bytes: u64,
    /// The destination's keys that the source lacks, deleted with
    /// [`CopyOptions::delete_missing`] (or that would be, in a dry run).
    pub deleted: u64,
    /// Keys compared by [`CopyOptions::verify`].
    pub verified: u64,
    /// How many keys differ after the copy (verification only).
    pub mismatch_count: u64,
    /// The first [`MAX_LISTED_MISMATCHES`] of them.
    pub mismatches: Vec<Mismatch>,
    /// The last key copied.
    pub last_key: Option<String>,
    /// Wall time of the whole copy.
    pub elapsed: Duration,
}

/// A key that verification found different in the destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The key.
    pub key: String,
    /// What differs, in words: "missing from the destination", "the value
    /// differs", "TTL 59.1s in the source, none in the destination".
    pub problem: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.key, self.problem)
    }
}

/// Copies the keys of `src` under [`CopyOptions::prefix`] into `dst`, with
/// their values and remaining TTLs.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use std::time::Duration;
/// let config = kvs::Config::new(kvs::BackendKind::Memory);
/// let (src, dst) = (kvs::open(&config).await?, kvs::open(&config).await?);
/// src.set("user:1", b"ada", Some(Duration::from_secs(60))).await?;
/// src.set("other", b"x", None).await?;
///
/// let options = kvs::CopyOptions::new().prefix("user:").verify(true);
/// let report = kvs::copy(&*src, &*dst, &options).await?;
/// assert_eq!((report.copied, report.mismatch_count), (1, 0));
/// assert_eq!(dst.list("").await?, ["user:1"]);
/// assert!(dst.ttl("user:1").await?.is_some());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::InvalidConfig`] if `src` and `dst` are the same object (see
/// [`Config::same_store`] for stores opened twice), and the first error
/// either store returns; keys written before it stay written, and the last
/// progress report says after which key to resume.
pub async fn copy<S, D>(src: &S, dst: &D, options: &CopyOptions) -> Result<CopyReport>
where
    S: Store + ?Sized,
    D: Store + ?Sized,
{
    copy_with_progress(src, dst, options, |_| {}).await
}

/// [`copy`], calling `progress` after every page of every step.
pub async fn copy_with_progress<S, D, F>(
    src: &S,
    dst: &D,
    options: &CopyOptions,
    mut progress: F,
) -> Result<CopyReport>
where
    S: Store + ?Sized,
    D: Store + ?Sized,
    F: FnMut(&CopyProgress) + Send,
{
    if std::ptr::addr_eq(src as *const S, dst as *const D) {
        return Err(same_store());
    }
    let started = Instant::now();
    let batch = options.batch_size.max(1);
    let mut report = CopyReport::default();
    copy_keys(src, dst, options, batch, &mut report, &mut progress).await?;
    if options.delete_missing {
        delete_missing(src, dst, options, batch, &mut report, &mut progress).await?;
    }
    if options.verify {
        verify(src, dst, options, batch, &mut report, &mut progress).await?;
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Copies every document of every collection of `src` into `dst`, with
/// their timestamps ([`DocumentStore::restore`]). Of the options, only
/// `dry_run` and `verify` apply (the prefix is for keys). A collection is
/// read whole, with one `query`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kvs::Result<()> {
/// use kvs::{BackendKind, Config, Document, DocumentStore};
/// let config = Config::new(BackendKind::Memory);
/// let (src, dst) = (kvs::open_documents(&config).await?, kvs::open_documents(&config).await?);
/// src.put("users", Document::new("ada", serde_json::Map::new())).await?;
/// let report = kvs::copy_documents(&*src, &*dst, &kvs::CopyOptions::new().verify(true)).await?;
/// assert_eq!((report.copied, report.mismatch_count), (1, 0));
/// assert_eq!(dst.get_doc("users", "ada").await?, src.get_doc("users", "ada").await?);
/// # Ok(())
/// # }
/// ```
pub async fn copy_documents<S, D>(src: &S, dst: &D, options: &CopyOptions) -> Result<CopyReport>
where
    S: DocumentStore + ?Sized,
    D: DocumentStore + ?Sized,
{
    if std::ptr::addr_eq(src as *const S, dst as *const D) {
        return Err(same_store());
    }
    let started = Instant::now();
    let mut report = CopyReport::default();
    let everything = serde_json::Map::new();
    for collection in src.collections().await? {
        let docs = src.query(&collection, &everything).await?;
        if !options.dry_run {
            for doc in &docs {
                dst.restore(&collection, doc.clone()).await?;
            }
        }
        report.copied += docs.len() as u64;
        if options.verify {
            let copied = dst.query(&collection, &everything).await?;
            let theirs: BTreeMap<&str, &Document> =
                copied.iter().map(|d| (d.id.as_str(), d)).collect();
            for doc in &docs {
                report.verified += 1;
                let problem = match theirs.get(doc.id.as_str()) {
                    None => "missing from the destination",
                    Some(got) if *got != doc => "the document differs",
                    Some(_) => continue,
                };
                report.mismatch_count += 1;
                if report.mismatches.len() < MAX_LISTED_MISMATCHES {
                    report.mismatches.push(Mismatch {
                        key: format!("{collection}/{}", doc.id),
                        problem: problem.into(),
                    });
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

fn same_store() -> Error {
    Error::InvalidConfig {
        message: "the source and the destination of a copy are the same store".into(),
    }
}

/// One page of the source, read: the live keys with value and TTL.
struct Page {
    entries: Vec<Entry>,
    /// The page's last key (the resume point once the page is written).
    last: Option<String>,
    /// Whether another page follows.
    more: bool,
}

async fn copy_keys<S, D, F>(
    src: &S,
    dst: &D,
    options: &CopyOptions,
    batch: usize,
    report: &mut CopyReport,
    progress: &mut F,
) -> Result<()>
where
    S: Store + ?Sized,
    D: Store + ?Sized,
    F: FnMut(&CopyProgress) + Send,
{
    let prefix = options.prefix.as_str();
    let mut page = read_page(src, prefix, options.start_after.clone(), batch).await?;
    loop {
        let write = async {
            if options.dry_run {
                Ok(())
            } else {
                set_entries(dst, &page.entries).await.map(drop)
            }
        };
        let next = async {
            match (&page.last, page.more) {
                (Some(last), true) => read_page(src, prefix, Some(last.clone()), batch)
                    .await
                    .map(Some),
                _ => Ok(None),
            }
        };
        let ((), next) = futures_util::future::try_join(write, next).await?;
        report.copied += page.entries.len() as u64;
        report.bytes += page
            .entries
            .iter()
            .map(|e| e.value.len() as u64)
            .sum::<u64>();
        if page.last.is_some() {
            report.last_key.clone_from(&page.last);
        }
        progress(&CopyProgress {
            phase: CopyPhase::Copy,
            keys: report.copied,
            bytes: report.bytes,
            last_key: report.last_key.clone(),
        });
        match next {
            Some(next) => page = next,
            None => return Ok(()),
        }
    }
}

/// Reads the page after `start_after` with [`Store::entries_page`].
async fn read_page<S: Store + ?Sized>(
    src: &S,
    prefix: &str,
    start_after: Option<String>,
    batch: usize,
) -> Result<Page> {
    let (entries, cursor) = src
        .entries_page(prefix, start_after.as_deref(), batch)
        .await?;
    Ok(Page {
        last: cursor
            .clone()
            .or_else(|| entries.last().map(|e| e.key.clone())),
        more: cursor.is_some(),
        entries,
    })
}

/// Deletes the destination's keys under the prefix that the source lacks,
/// by walking both key streams side by side (both are in byte order).
async fn delete_missing<S, D, F>(
    src: &S,
    dst: &D,
    options: &CopyOptions,
    batch: usize,
    report: &mut CopyReport,
    progress: &mut F,
) -> Result<()>
where
    S: Store + ?Sized,
    D: Store + ?Sized,
    F: FnMut(&CopyProgress) + Send,
{
    let mut theirs = src.scan(&options.prefix).peekable();
    let mut ours = dst.scan(&options.prefix);
    let mut extra: Vec<String> = Vec::with_capacity(batch);
    while let Some(key) = ours.next().await.transpose()? {
        let mut in_source = false;
        while let Some(next) = std::pin::Pin::new(&mut theirs).peek().await {
            match next {
                Err(_) => {
                    // Take the error out of the stream to return it.
                    if let Some(Err(e)) = theirs.next().await {
                        return Err(e);
                    }
                }
                Ok(theirs_key) if theirs_key.as_str() < key.as_str() => {
                    theirs.next().await;
                }
                Ok(theirs_key) => {
                    in_source = theirs_key == &key;
                    break;
                }
            }
        }
        if !in_source {
            extra.push(key);
        }
        if extra.len() >= batch {
            flush_deletes(dst, options, &mut extra, report, progress).await?;
        }
    }
    flush_deletes(dst, options, &mut extra, report, progress).await
}

async fn flush_deletes<D, F>(
    dst: &D,
    options: &CopyOptions,
    extra: &mut Vec<String>,
    report: &mut CopyReport,
    progress: &mut F,
) -> Result<()>
where
    D: Store + ?Sized,
    F: FnMut(&CopyProgress) + Send,
{
    if extra.is_empty() {
        return Ok(());
    }
    if !options.dry_run {
        let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
        dst.delete_many(&refs).await?;
    }
    report.deleted += extra.len() as u64;
    extra.clear();
    progress(&CopyProgress {
        phase: CopyPhase::DeleteMissing,
        keys: report.deleted,
        bytes: 0,
        last_key: None,
    });
    Ok(())
}

/// Reads every source key under the prefix back from both stores and
/// compares value and TTL; with `delete_missing`, also that the
/// destination holds no other key.
async fn verify<S, D, F>(
    src: &S,
    dst: &D,
    options: &CopyOptions,
    batch: usize,
    report: &mut CopyReport,
    progress: &mut F,
) -> Result<()>
where
    S: Store + ?Sized,
    D: Store + ?Sized,
    F: FnMut(&CopyProgress) + Send,
{
    let prefix = options.prefix.as_str();
    let mut cursor: Option<String> = None;
    let mut bytes = 0u64;
    loop {
        let source = read_page(src, prefix, cursor.clone(), batch).await?;
        let keys: Vec<&str> = source.entries.iter().map(|e| e.key.as_str()).collect();
        let found = values_and_ttls(dst, &keys).await?;
        for (want, got) in source.entries.iter().zip(found) {
            report.verified += 1;
            bytes += want.value.len() as u64;
            let problem = match got {
                None => Some("missing from the destination".to_owned()),
                Some((got, _)) if got != want.value => Some("the value differs".to_owned()),
                Some((_, got_ttl)) => ttl_problem(want.ttl, got_ttl),
            };
            if let Some(problem) = problem {
                report.mismatch_count += 1;
                if report.mismatches.len() < MAX_LISTED_MISMATCHES {
                    report.mismatches.push(Mismatch {
                        key: want.key.clone(),
                        problem,
                    });
                }
            }
        }
        progress(&CopyProgress {
            phase: CopyPhase::Verify,
            keys: report.verified,
            bytes,
            last_key: source.last.clone(),
        });
        match (source.last, source.more) {
            (Some(last), true) => cursor = Some(last),
            _ => break,
        }
    }
    if options.delete_missing && !options.dry_run {
        let (want, got) =
            futures_util::future::try_join(src.count(prefix), dst.count(prefix)).await?;
        if got > want {
            report.mismatch_count += (got - want) as u64;
            report.mismatches.push(Mismatch {
                key: prefix.to_owned(),
                problem: format!(
                    "the destination holds {got} keys under this prefix, the source {want}"
                ),
            });
        }
    }
    Ok(())
}

/// Why two TTLs read moments apart are not the same TTL, if they are not.
fn ttl_problem(source: Option<Duration>, destination: Option<Duration>) -> Option<String> {
    // Whole seconds, rounded up: finer would only show the time between reads.
    let show = |ttl: Option<Duration>| {
        ttl.map_or("none".to_owned(), |t| {
            let secs = t.as_secs() + u64::from(t.subsec_nanos() > 0);
            crate::format_duration(Duration::from_secs(secs))
        })
    };
    let close = match (source, destination) {
        (None, None) => true,
        (Some(a), Some(b)) => a.abs_diff(b) <= TTL_TOLERANCE,
        _ => false,
    };
    (!close).then(|| {
        format!(
            "TTL {} in the source, {} in the destination",
            show(source),
            show(destination)
        )
    })
}

impl Config {
    /// Whether `self` and `other` name the same keys: the same backend,
    /// location and namespace. `kvs copy` refuses to copy a store onto
    /// itself with this. Memory stores are never the same (each `open` is
    /// private); file paths are compared after resolving them.
    ///
    /// ```
    /// let a = kvs::Config::from_url("sqlite://./app.db").unwrap();
    /// let mut b = kvs::Config::from_url("sqlite://app.db").unwrap();
    /// assert!(a.same_store(&b));
    /// b.namespace = "other".into();
    /// assert!(!a.same_store(&b));
    /// ```
    pub fn same_store(&self, other: &Config) -> bool {
        use crate::BackendKind;
        fn namespace(c: &Config) -> &str {
            match c.namespace.as_str() {
                "" => crate::DEFAULT_NAMESPACE,
                other => other,
            }
        }
        if self.backend != other.backend || namespace(self) != namespace(other) {
            return false;
        }
        match self.backend {
            BackendKind::Memory => false,
            BackendKind::Sqlite => same_path(&self.sqlite.path, &other.sqlite.path),
            BackendKind::LevelDb => same_path(&self.leveldb.path, &other.leveldb.path),
            BackendKind::Redis => {
                let (a, b) = (&self.redis, &other.redis);
                a.db == b.db
                    && (same_host(&a.addr, &b.addr)
                        || a.cluster_nodes
                            .iter()
                            .any(|n| b.cluster_nodes.iter().any(|m| same_host(n, m))))
            }
            BackendKind::DynamoDb => {
                let (a, b) = (&self.dynamodb, &other.dynamodb);
                a.table_name == b.table_name && a.endpoint == b.endpoint && a.region == b.region
            }
            BackendKind::Postgres => {
                let (a, b) = (&self.postgres, &other.postgres);
                a.url == b.url && a.table == b.table
            }
            #[allow(unreachable_patterns)]
            _ => self == other,
        }
    }
}

/// Paths compared as the file system resolves them (`./a.db` is `a.db`),
/// falling back to their text when they do not exist yet.
fn same_path(a: &std::path::Path, b: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        std::fs::canonicalize(p)
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    resolve(a) == resolve(b)
}

/// `host:port` pairs, with `localhost` as the loopback address.
fn same_host(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .to_ascii_lowercase()
            .replace("localhost", "127.0.0.1")
    };
    !a.trim().is_empty() && norm(a) == norm(b)
}
