//! `kvs-bench`: kvs measured against the raw clients of its engines and
//! against other key-value libraries. A binary of its own because it links
//! those peers (OpenDAL, openkeyv, keyv, the AWS SDK, ...), which a user who
//! only wants `kvs get` and `kvs set` should not have to build; `kvs bench`
//! runs this binary when it is installed beside `kvs`.
//!
//! ```text
//! kvs-bench --quick                              # the embedded backends
//! kvs-bench --store redis://127.0.0.1:6379/0     # and a server
//! ```

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Measure kvs against the raw clients of its engines and against other
/// key-value libraries (default: the embedded backends, in a temporary
/// directory; --store for others, e.g. redis://127.0.0.1:6379/0).
#[derive(Parser, Debug)]
#[command(name = "kvs-bench", version)]
struct BenchArgs {
    /// A store to measure, as a URL; more than once to compare several.
    #[arg(long, value_name = "URL", action = clap::ArgAction::Append)]
    store: Vec<String>,
    /// A short run (10,000 keys, 50 ms per measurement): under 20 s on the
    /// embedded backends, once built.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per line instead of tables.
    #[arg(long)]
    json: bool,
    /// Keys in the data set (default 100,000; 10,000 with --quick).
    #[arg(long)]
    keys: Option<usize>,
    /// How long each measurement runs (default 1s; 50ms with --quick).
    #[arg(long, value_parser = parse_ttl)]
    duration: Option<Duration>,
    /// Measurements per subject and workload, the subjects taking turns;
    /// the best counts (default 3; 1 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Task counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    tasks: Vec<usize>,
    /// Workloads, comma-separated (default: all of get_100B, get_4KB,
    /// mix_90_10, list_100, count_100, set_100B, set_4KB).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Skip the peers that cannot be built with kvs (OpenDAL's and keyv's
    /// SQLite, openkeyv's DynamoDB), which `bench/peers` builds with cargo
    /// on first use.
    #[arg(long, alias = "no-sqlx-peers")]
    no_external_peers: bool,
    /// Instead of the workloads: `kvs copy` of --keys keys (100,000) from a
    /// SQLite file into the Redis of --store, against Redis `set_many`
    /// alone on the same server.
    #[arg(long)]
    copy: bool,
    /// Instead of the workloads: each layer (observability, typed JSON,
    /// compression, encryption) against the bare store, on memory and
    /// SQLite.
    #[arg(long)]
    layers: bool,
    /// Instead of the workloads: the cache (tiered hits against Redis and
    /// moka, hit ratios on a Zipf trace, a get_or_set stampede) on the
    /// Redis of --store.
    #[arg(long)]
    cache: bool,
    /// Where file backends put their files (default: the temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn workload(name: &str) -> Result<kvs_bench::Workload, String> {
    kvs_bench::Workload::from_name(name).ok_or_else(|| {
        let names: Vec<String> = kvs_bench::Workload::ALL.iter().map(|w| w.name()).collect();
        format!(
            "unknown workload {name:?}; expected one of {}",
            names.join(", ")
        )
    })
}

fn parse_ttl(text: &str) -> Result<Duration, String> {
    kvs::parse_duration(text).map_err(|e| match e {
        kvs::Error::InvalidConfig { message } => message,
        e => e.to_string(),
    })
}

fn fail(message: &str) -> ExitCode {
    eprintln!("kvs-bench: {message}");
    ExitCode::FAILURE
}

/// Runs on a multi-threaded runtime (64 tasks need more than one thread),
/// prints tables or JSON lines.
fn main() -> ExitCode {
    let args = BenchArgs::parse();
    let stores = args.store.clone();
    if args.copy {
        return copy(&stores, &args);
    }
    if args.layers {
        return layers(&args);
    }
    if args.cache {
        return cache(&stores, &args);
    }
    let mut options = if args.quick {
        kvs_bench::Options::quick()
    } else {
        kvs_bench::Options::full()
    };
    options.stores = stores;
    if let Some(keys) = args.keys {
        options.keys = keys;
    }
    if let Some(duration) = args.duration {
        options.duration = duration;
    }
    if let Some(rounds) = args.rounds {
        options.rounds = rounds;
    }
    options.tasks = args.tasks.clone();
    if !args.workloads.is_empty() {
        match args.workloads.iter().map(|w| workload(w)).collect() {
            Ok(workloads) => options.workloads = workloads,
            Err(e) => return fail(&format!("--workloads: {e}")),
        }
    }
    options.external = !args.no_external_peers;
    options.dir = args.dir.clone();
    options.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if options.tasks.contains(&0) {
        return fail("--tasks: every task count must be at least 1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let report = match runtime.block_on(kvs_bench::run(&options)) {
        Ok(report) => report,
        Err(e) => return fail(&format!("bench: {e}")),
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut result = Ok(());
        for line in &report.lines {
            result = result.and_then(|()| json_line(&mut out, line));
        }
        for comparison in &report.comparisons {
            result = result.and_then(|()| json_line(&mut out, comparison));
        }
        result
    } else {
        let met = report.comparisons.iter().filter(|c| c.met()).count();
        write!(
            out,
            "{}\n{}\n{met} of {} comparisons met their target (raw clients: 0.9×, other libraries: 1.0×, group commit: 5×).\n",
            kvs_bench::report::results_table(&report.lines),
            kvs_bench::report::comparisons_table(&report.comparisons),
            report.comparisons.len()
        )
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing to stdout: {e}")),
    }
}

fn json_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// The directory file backends write to: `--dir`, or a fresh one named
/// after `what` under the temporary directory (which [`remove_scratch`]
/// removes).
fn scratch_dir(args: &BenchArgs, what: &str) -> Result<PathBuf, ExitCode> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("kvs-bench-{what}-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| fail(&format!("--dir {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Removes `dir` unless the user gave it with `--dir`.
fn remove_scratch(args: &BenchArgs, dir: &std::path::Path) {
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Prints `lines` as JSON lines with `--json`, else as `table`.
fn print_lines<L: serde::Serialize>(
    json: bool,
    lines: &[L],
    table: impl FnOnce(&[L]) -> String,
) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let written = if json {
        lines.iter().try_for_each(|line| json_line(&mut out, line))
    } else {
        write!(out, "{}", table(lines))
    };
    match written.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing to stdout: {e}")),
    }
}

/// `--copy`.
fn copy(stores: &[String], args: &BenchArgs) -> ExitCode {
    let [url] = stores else {
        return fail("--copy: give the Redis to copy into, once: --store redis://HOST:PORT/DB");
    };
    let dir = match scratch_dir(args, "copy") {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let keys = args
        .keys
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let result = runtime.block_on(kvs_bench::copy::run(url, &dir, keys, 100, 1000, rounds));
    remove_scratch(args, &dir);
    match result {
        Ok(lines) => print_lines(args.json, &lines, kvs_bench::copy::table),
        Err(e) => fail(&format!("bench --copy: {e}")),
    }
}

/// `--layers`.
fn layers(args: &BenchArgs) -> ExitCode {
    let dir = match scratch_dir(args, "layers") {
        Ok(dir) => dir,
        Err(code) => return code,
    };
    // One task on one thread: what is measured is the layer's own cost.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let duration = args.duration.unwrap_or(if args.quick {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1)
    });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let keys = args.keys.unwrap_or(10_000);
    let result = runtime.block_on(kvs_bench::layers::run(&dir, duration, rounds, keys));
    remove_scratch(args, &dir);
    match result {
        Ok(lines) => print_lines(args.json, &lines, kvs_bench::layers::table),
        Err(e) => fail(&format!("bench --layers: {e}")),
    }
}

/// `--cache`.
fn cache(stores: &[String], args: &BenchArgs) -> ExitCode {
    let [url] = stores else {
        return fail("--cache: give the Redis to measure on, once: --store redis://HOST:PORT/DB");
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let duration = args.duration.unwrap_or(if args.quick {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(1)
    });
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let keys = args
        .keys
        .unwrap_or(if args.quick { 10_000 } else { 100_000 });
    match runtime.block_on(kvs_bench::cache::run(url, duration, rounds, keys)) {
        Ok(lines) => print_lines(args.json, &lines, kvs_bench::cache::table),
        Err(e) => fail(&format!("bench --cache: {e}")),
    }
}
