//! `kvs`: the command line of the kvs key-value library.

use clap::Parser;

/// Get, set and list keys in any kvs store (memory, SQLite, LevelDB, Redis, DynamoDB).
///
/// The commands arrive with the embedded backends; this build only prints
/// its help and version.
#[derive(Parser, Debug)]
#[command(name = "kvs", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
