//! `kvs bench`: runs the `kvs-bench` binary, as `git` and `cargo` run their
//! external subcommands. The benchmark links the peers it compares kvs with
//! (OpenDAL, openkeyv, keyv, the AWS SDK, ...), which a user who only wants
//! `get` and `set` should not have to build, so it is a binary of its own;
//! when it is not installed, the command says how to get it.

use crate::fail;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The benchmark's name, which `kvs bench` looks for.
const BENCH: &str = "kvs-bench";

/// What `kvs bench` passes on: everything after `bench`, untouched.
#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// The benchmark's own arguments (`kvs bench --help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// Runs `kvs-bench` with the `--store` and `--json` that `kvs` parsed (they
/// are options of every `kvs` command) followed by the rest, and exits as
/// it exits.
pub fn run(stores: Vec<String>, json: bool, args: BenchArgs) -> ExitCode {
    let Some(program) = find(
        std::env::current_exe().ok().as_deref(),
        std::env::var_os("PATH"),
    ) else {
        return fail(
            "`kvs bench` runs the kvs-bench binary, which is not installed beside kvs or on PATH \
             (in the kvs repository: cargo run --release -p kvs-bench -- --quick)",
        );
    };
    let mut command = Command::new(&program);
    for store in stores {
        command.arg("--store").arg(store);
    }
    if json {
        command.arg("--json");
    }
    command.args(args.args);
    match command.status() {
        // A code the child chose, or 1 if a signal ended it.
        Ok(status) => match status.code() {
            Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            None => ExitCode::FAILURE,
        },
        Err(e) => fail(&format!("cannot run {}: {e}", program.display())),
    }
}

/// `kvs-bench` beside the running `kvs` first (an install puts both in one
/// `bin` directory, a build both in `target/<profile>`), then on PATH.
fn find(current_exe: Option<&Path>, path: Option<OsString>) -> Option<PathBuf> {
    let name = format!("{BENCH}{}", std::env::consts::EXE_SUFFIX);
    let beside = current_exe.and_then(Path::parent).map(Path::to_path_buf);
    let on_path = path
        .as_deref()
        .map(|path| std::env::split_paths(path).collect::<Vec<_>>())
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .map(|dir| dir.join(OsStr::new(&name)))
        .find(|candidate| candidate.is_file())
}
