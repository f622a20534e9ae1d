//! `kvs index build`: the ordered index of a Redis namespace that already
//! holds keys (see the Redis backend's `index` setting).

use crate::Failure;
use kvs::{BackendKind, Config};

#[derive(clap::Subcommand, Debug, Clone, Copy)]
pub(crate) enum IndexCommand {
    /// Build the ordered index of the namespace of a Redis --store, from
    /// one SCAN pass, while the application goes on (open its stores with
    /// index=true first: their writes keep the index, and their listings
    /// wait for it). Interrupted, it goes on from where it stopped when run
    /// again.
    Build,
}

pub(crate) async fn run(config: Config, command: IndexCommand, json: bool) -> Result<(), Failure> {
    let IndexCommand::Build = command;
    if config.backend != BackendKind::Redis {
        return Err(Failure::Usage(format!(
            "`kvs index build` is for Redis stores (redis://…); a {} store keeps its keys in order already",
            config.backend.name()
        )));
    }
    build(config, json).await
}

#[cfg(feature = "redis")]
async fn build(config: Config, json: bool) -> Result<(), Failure> {
    use std::ops::ControlFlow;
    let mut steps = 0u64;
    let build = kvs::RedisStore::build_index_with(&config.namespace, config.redis.clone(), |b| {
        steps += 1;
        // A line on stderr every 100 steps (up to 100,000 scanned keys),
        // so that a long build shows it moves; each is recorded on the
        // server, so an interruption after it loses none of that work.
        if steps.is_multiple_of(100) {
            eprintln!("kvs: {} keys indexed so far", b.added);
        }
        ControlFlow::Continue(())
    })
    .await?;
    if json {
        println!(
            "{{\"complete\":{},\"resumed\":{},\"added\":{}}}",
            build.complete, build.resumed, build.added
        );
    } else if build.added == 0 && !build.resumed {
        println!("the index of namespace {:?} is complete", config.namespace);
    } else {
        println!(
            "the index of namespace {:?} is complete: {} keys added{}",
            config.namespace,
            build.added,
            if build.resumed {
                " (an interrupted build, resumed)"
            } else {
                ""
            }
        );
    }
    Ok(())
}

#[cfg(not(feature = "redis"))]
async fn build(config: Config, _json: bool) -> Result<(), Failure> {
    Err(Failure::Message(
        crate::missing_backend(config.backend).unwrap_or_default(),
    ))
}
