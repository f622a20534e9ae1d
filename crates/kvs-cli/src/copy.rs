//! `kvs copy SRC DST`: moving a store's keys to another backend.
//!
//! The copy itself is the library's [`kvs::copy_with_progress`]; this file
//! adds what a command line needs around it: opening the source so that
//! nothing writes to it, a progress bar, and a checkpoint file so that an
//! interrupted copy can be finished with `--resume`.
//!
//! The checkpoint lives in `<data dir>/kvs/copies/` (`$XDG_DATA_HOME` on
//! Linux), named by a hash of the two stores and the prefix, so that it
//! never holds a URL (which may carry a password). It is rewritten, by
//! rename, after every page the destination acknowledges, and removed when
//! the copy step completes.

use crate::{missing_backend, store_config, Failure};
use indicatif::{ProgressBar, ProgressStyle};
use kvs::{
    BackendKind, Config, CopyOptions, CopyPhase, CopyProgress, CopyReport, DocumentStore, Error,
    Store,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Copy every key (and its TTL) from one store to another.
///
/// SRC and DST are store URLs or configuration files; the source is only
/// read. Re-running a copy is safe: it overwrites what it copied before.
#[derive(clap::Args, Debug)]
pub(crate) struct CopyArgs {
    /// The store to read: a URL (sqlite://./app.db) or a YAML/JSON file.
    src: String,
    /// The store to write: a URL (redis://127.0.0.1:6379/0) or a file.
    dst: String,
    /// Only the keys starting with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Keys read and written per batch.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    batch: u32,
    /// Read and count everything; write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Afterwards, read every key back from both stores and compare values
    /// and TTLs (within a second); exit 1 if any differs.
    #[arg(long)]
    verify: bool,
    /// Afterwards, delete DST's keys (under --prefix) that SRC lacks.
    #[arg(long)]
    delete_missing: bool,
    /// Also copy every document of every collection, with its timestamps
    /// (after the keys; not resumable, and safe to repeat).
    #[arg(long)]
    documents: bool,
    /// Finish an interrupted copy of the same stores and prefix, after the
    /// last key it saved.
    #[arg(long)]
    resume: bool,
    /// Print the report as JSON on stdout (also the global --json).
    #[arg(skip)]
    json: bool,
}

/// What `--resume` reads back.
#[derive(Serialize, Deserialize, Debug)]
struct Checkpoint {
    last_key: String,
    copied: u64,
    bytes: u64,
}

pub(crate) async fn run(
    mut args: CopyArgs,
    namespace: Option<String>,
    json: bool,
) -> Result<(), Failure> {
    args.json |= json;
    let mut src = store_config(&args.src).map_err(usage)?;
    let mut dst = store_config(&args.dst).map_err(usage)?;
    if let Some(namespace) = namespace {
        src.namespace.clone_from(&namespace);
        dst.namespace = namespace;
    }
    for config in [&src, &dst] {
        if let Some(message) = missing_backend(config.backend) {
            return Err(Failure::Message(message));
        }
    }
    if src.same_store(&dst) {
        return Err(Failure::Usage(
            "SRC and DST are the same store (same backend, place and namespace); \
             nothing to copy"
                .into(),
        ));
    }
    read_only(&mut src);
    let checkpoint = checkpoint_path(&src, &dst, &args.prefix)?;
    let start_after = if args.resume {
        Some(read_checkpoint(&checkpoint)?)
    } else {
        None
    };

    let src_store = kvs::open(&src).await?;
    // With --documents the destination is opened with its documents (the
    // same keys, and the rest).
    let opened = if args.documents {
        kvs::open_documents(&dst)
            .await
            .map(|d| (Arc::clone(&d) as Arc<dyn Store>, Some(d)))
    } else {
        kvs::open(&dst).await.map(|s| (s, None))
    };
    let (dst_store, dst_docs) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let _ = src_store.close().await;
            return Err(e.into());
        }
    };
    let result = async {
        let keys = copy(&args, &*src_store, &*dst_store, &checkpoint, start_after).await?;
        let documents = match &dst_docs {
            Some(dst_docs) => Some(copy_documents(&args, &src, &**dst_docs).await?),
            None => None,
        };
        Ok::<_, Failure>((keys, documents))
    }
    .await;
    let closed = (src_store.close().await, dst_store.close().await);
    let (report, documents) = result?;
    closed.0?;
    closed.1?;
    summarize(&args, &report, documents.as_ref())
}

/// The documents of the source (opened, like its keys, without creating
/// anything: a source that never held a document has none to copy).
async fn copy_documents(
    args: &CopyArgs,
    src: &Config,
    dst: &dyn DocumentStore,
) -> Result<CopyReport, Failure> {
    let src = match kvs::open_documents(src).await {
        Ok(src) => src,
        Err(Error::NoStore { .. }) => return Ok(CopyReport::default()),
        Err(e) => return Err(e.into()),
    };
    let options = CopyOptions::new().dry_run(args.dry_run).verify(args.verify);
    let report = kvs::copy_documents(&*src, dst, &options).await;
    let closed = src.close().await;
    let report = report?;
    closed?;
    Ok(report)
}

/// Opens the source so that copying never writes to it: no expiry sweep
/// (it deletes), and nothing created where nothing is.
fn read_only(config: &mut Config) {
    config.sqlite.cleanup_interval = Duration::ZERO;
    config.sqlite.create_if_missing = false;
    config.leveldb.cleanup_interval = Duration::ZERO;
    config.leveldb.create_if_missing = false;
    config.memory.cleanup_interval = Duration::ZERO;
    config.dynamodb.create_table = false;
}

async fn copy(
    args: &CopyArgs,
    src: &dyn kvs::Store,
    dst: &dyn kvs::Store,
    checkpoint: &std::path::Path,
    resumed: Option<Checkpoint>,
) -> Result<CopyReport, Failure> {
    // The total, for the bar's ETA: one count, cheap everywhere but on
    // Redis (a SCAN), and worth it there too for a long copy.
    let total = src.count(&args.prefix).await?;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {pos}/{len} keys, {msg}, {per_sec}, ETA {eta}",
        )
        .map_err(|e| Failure::Message(format!("progress bar: {e}")))?
        .progress_chars("=> "),
    );
    bar.set_prefix("copying");
    let (done_before, bytes_before) = resumed.as_ref().map_or((0, 0), |c| (c.copied, c.bytes));
    if let Some(resumed) = &resumed {
        bar.suspend(|| {
            eprintln!(
                "kvs: resuming after {:?} ({} keys copied before)",
                resumed.last_key, resumed.copied
            )
        });
        bar.set_position(resumed.copied);
    }
    let options = CopyOptions::new()
        .prefix(args.prefix.clone())
        .batch_size(args.batch as usize)
        .start_after(resumed.map(|c| c.last_key))
        .dry_run(args.dry_run)
        .verify(args.verify)
        .delete_missing(args.delete_missing);
    let mut saving: Result<(), String> = Ok(());
    let mut phase = CopyPhase::Copy;
    let report = kvs::copy_with_progress(src, dst, &options, |p: &CopyProgress| {
        if p.phase != phase {
            phase = p.phase;
            bar.set_prefix(match phase {
                CopyPhase::DeleteMissing => "deleting",
                CopyPhase::Verify => "checking",
                _ => "copying",
            });
            bar.set_position(0);
        }
        bar.set_position(done_before * u64::from(phase == CopyPhase::Copy) + p.keys);
        bar.set_message(format_bytes(bytes_before + p.bytes));
        if phase == CopyPhase::Copy && !args.dry_run && saving.is_ok() {
            if let Some(last_key) = &p.last_key {
                saving = write_checkpoint(
                    checkpoint,
                    &Checkpoint {
                        last_key: last_key.clone(),
                        copied: done_before + p.keys,
                        bytes: bytes_before + p.bytes,
                    },
                );
            }
        }
    })
    .await;
    bar.finish_and_clear();
    let mut report = report?;
    saving.map_err(Failure::Message)?;
    if !args.dry_run {
        // The copy step is complete: nothing is left to resume.
        let _ = std::fs::remove_file(checkpoint);
    }
    report.copied += done_before;
    report.bytes += bytes_before;
    Ok(report)
}

fn summarize(
    args: &CopyArgs,
    report: &CopyReport,
    documents: Option<&CopyReport>,
) -> Result<(), Failure> {
    let secs = report.elapsed.as_secs_f64().max(1e-9);
    let verb = if args.dry_run { "would copy" } else { "copied" };
    let mut line = format!(
        "{verb} {} keys ({}) in {}, {:.0} keys/s",
        report.copied,
        format_bytes(report.bytes),
        kvs::format_duration(Duration::from_millis(report.elapsed.as_millis() as u64)),
        report.copied as f64 / secs
    );
    if args.delete_missing {
        let verb = if args.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        line += &format!("; {verb} {} keys DST had and SRC has not", report.deleted);
    }
    if args.verify {
        line += &format!(
            "; verified {} keys, {} differ",
            report.verified, report.mismatch_count
        );
    }
    if let Some(docs) = documents {
        let verb = if args.dry_run { "would copy" } else { "copied" };
        line += &format!("; {verb} {} documents", docs.copied);
        if args.verify {
            line += &format!(", {} differ", docs.mismatch_count);
        }
    }
    eprintln!("kvs: {line}");
    if args.json {
        let json = serde_json::json!({
            "copied": report.copied,
            "bytes": report.bytes,
            "deleted": report.deleted,
            "verified": report.verified,
            "mismatches": report.mismatch_count,
            "differ": report.mismatches.iter()
                .map(|m| serde_json::json!({"key": m.key, "problem": m.problem}))
                .collect::<Vec<_>>(),
            "last_key": report.last_key,
            "documents": documents.map(|d| d.copied),
            "document_mismatches": documents.map(|d| d.mismatch_count),
            "dry_run": args.dry_run,
            "elapsed_ms": report.elapsed.as_millis() as u64,
        });
        println!("{json}");
    }
    if report.mismatch_count > 0 {
        for mismatch in report.mismatches.iter().take(10) {
            eprintln!("kvs: differs: {mismatch}");
        }
        return Err(Failure::Message(format!(
            "verification failed: {} of {} keys differ in DST",
            report.mismatch_count, report.verified
        )));
    }
    if let Some(docs) = documents.filter(|d| d.mismatch_count > 0) {
        for mismatch in docs.mismatches.iter().take(10) {
            eprintln!("kvs: differs: document {mismatch}");
        }
        return Err(Failure::Message(format!(
            "verification failed: {} of {} documents differ in DST",
            docs.mismatch_count, docs.verified
        )));
    }
    Ok(())
}

/// `12.3 MB`.
fn format_bytes(bytes: u64) -> String {
    match bytes {
        b if b < 10_000 => format!("{b} B"),
        b if b < 10_000_000 => format!("{:.1} kB", b as f64 / 1e3),
        b if b < 10_000_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b => format!("{:.1} GB", b as f64 / 1e9),
    }
}

fn usage(e: Error) -> Failure {
    Failure::Usage(e.to_string())
}

/// `<data dir>/kvs/copies/<hash>.json`, the hash of what identifies the copy.
fn checkpoint_path(src: &Config, dst: &Config, prefix: &str) -> Result<PathBuf, Failure> {
    let dir = dirs::data_dir().ok_or_else(|| {
        Failure::Message("this platform has no data directory to keep a copy's progress in".into())
    })?;
    let mut hash = Fnv::default();
    for part in [identity(src), identity(dst), prefix.to_owned()] {
        hash.write(part.as_bytes());
        hash.write(&[0xff]);
    }
    Ok(dir
        .join("kvs")
        .join("copies")
        .join(format!("{:016x}.json", hash.0)))
}

/// What names a store (backend, place, namespace), passwords left out.
fn identity(config: &Config) -> String {
    let place = match config.backend {
        BackendKind::Sqlite => absolute(&config.sqlite.path),
        BackendKind::LevelDb => absolute(&config.leveldb.path),
        BackendKind::Redis => format!(
            "{}/{}/{}",
            config.redis.addr,
            config.redis.cluster_nodes.join(","),
            config.redis.db
        ),
        BackendKind::DynamoDb => format!(
            "{}/{}/{}",
            config.dynamodb.endpoint, config.dynamodb.region, config.dynamodb.table_name
        ),
        // The URL without its password.
        BackendKind::Postgres => format!(
            "{:?}/{}",
            kvs::raw::RedactedUrl(&config.postgres.url),
            config.postgres.table
        ),
        _ => String::new(),
    };
    format!("{}\u{0}{place}\u{0}{}", config.backend, config.namespace)
}

fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// FNV-1a, 64 bits: stable across Rust versions, unlike `DefaultHasher`.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn read_checkpoint(path: &std::path::Path) -> Result<Checkpoint, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::Message(match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "--resume: no interrupted copy of these stores and prefix to resume \
                 (no {})",
                path.display()
            ),
            _ => format!("--resume: cannot read {}: {e}", path.display()),
        })
    })?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::Message(format!(
            "--resume: {} is damaged ({e}); copy again without --resume",
            path.display()
        ))
    })
}

/// Replaces the checkpoint by rename, so that a kill leaves the old one or
/// the new one, never half of one.
fn write_checkpoint(path: &std::path::Path, checkpoint: &Checkpoint) -> Result<(), String> {
    let failed =
        |e: std::io::Error| format!("saving the copy's progress in {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let text = serde_json::to_string(checkpoint).map_err(|e| e.to_string())?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(failed)?;
    std::fs::rename(&partial, path).map_err(failed)
}
