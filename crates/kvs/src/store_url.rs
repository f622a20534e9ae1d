//! Store URLs, the one-line form of a [`Config`] used by the command line
//! and `KVS_STORE`:
//!
//! | URL                                             | backend  |
//! |-------------------------------------------------|----------|
//! | `memory://`                                     | memory   |
//! | `sqlite://PATH` (`sqlite:///abs.db`, `sqlite://./rel.db`) | SQLite |
//! | `leveldb://PATH`                                | LevelDB  |
//! | `redis://[user:pass@]host[:port][/db]`          | Redis    |
//! | `rediss://...`                                  | Redis over TLS |
//! | `dynamodb://TABLE?region=R&endpoint=URL`        | DynamoDB |
//! | `postgres://[user[:pass]@]host[:port]/db`, `postgresql://…` | PostgreSQL |
//!
//! Query parameters: `namespace` (all); `sync_writes`, `cleanup_interval`
//! (sqlite, leveldb); `cleanup_interval` (memory); `pool_size`,
//! `connect_timeout`, `command_timeout`, `cluster=true` (redis: the host
//! is a seed node of a Redis Cluster) and `index=true` (redis: keep an
//! ordered index of the namespace's keys);
//! `region`, `endpoint`, `create_table` (dynamodb); `pool_size`, `table`,
//! `create_table`, `connect_timeout`, `command_timeout`,
//! `cleanup_interval` (postgres, whose other parameters, such as
//! `sslmode`, stay in the connection URL). Paths and credentials
//! are percent-decoded. An unknown parameter is an error, and no error ever
//! repeats a password.

use crate::duration::parse_duration;
use crate::{BackendKind, Config, Error, Result};
use percent_encoding::percent_decode_str;
use std::path::PathBuf;

pub(crate) fn parse(text: &str) -> Result<Config> {
    let text = text.trim();
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(Error::config(
            "a store URL looks like sqlite://PATH, leveldb://PATH, memory://, \
             redis://HOST:PORT/DB or dynamodb://TABLE",
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut config = match scheme.as_str() {
        "memory" => Config::new(BackendKind::Memory),
        "sqlite" => {
            let mut config = Config::new(BackendKind::Sqlite);
            config.sqlite.path = path(&scheme, location)?;
            config
        }
        "leveldb" => {
            let mut config = Config::new(BackendKind::LevelDb);
            config.leveldb.path = path(&scheme, location)?;
            config
        }
        "redis" | "rediss" => redis(&scheme, rest)?,
        "postgres" | "postgresql" => return postgres(text, location, query),
        "dynamodb" => {
            let mut config = Config::new(BackendKind::DynamoDb);
            let table = decode(location, "table name")?;
            if table.is_empty() {
                return Err(Error::config("dynamodb:// URL needs a table name: dynamodb://TABLE"));
            }
            config.dynamodb.table_name = table;
            config
        }
        other => {
            return Err(Error::config(format!(
                "unknown store URL scheme {other:?}; expected memory, sqlite, leveldb, redis, rediss, dynamodb, postgres or postgresql"
            )))
        }
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value, name)?;
        apply(&mut config, &scheme, name, &value)?;
    }
    Ok(config)
}

/// A PostgreSQL URL: kvs's own parameters are taken out, the rest (the
/// connection's: `sslmode`, `application_name`, …) stay in the URL that
/// the client reads.
fn postgres(text: &str, location: &str, query: &str) -> Result<Config> {
    let mut config = Config::new(BackendKind::Postgres);
    if location.is_empty() {
        return Err(Error::config(
            "a postgres:// URL needs a host: postgres://USER@HOST:PORT/DATABASE",
        ));
    }
    let base = &text[..text.len() - query.len()].trim_end_matches('?');
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(raw, name)?;
        let number = |what: &str| {
            value.parse::<usize>().map_err(|_| {
                Error::config(format!(
                    "{what}={value:?} in the store URL must be a number"
                ))
            })
        };
        match name {
            "namespace" => config.namespace = value.clone(),
            "pool_size" => config.postgres.pool_size = number("pool_size")?,
            "table" => config.postgres.table = value.clone(),
            "create_table" => config.postgres.create_table = boolean(name, &value)?,
            "connect_timeout" => config.postgres.connect_timeout = parse_duration(&value)?,
            "command_timeout" => config.postgres.command_timeout = parse_duration(&value)?,
            "cleanup_interval" => config.postgres.cleanup_interval = parse_duration(&value)?,
            _ => kept.push(pair),
        }
    }
    config.postgres.url = if kept.is_empty() {
        (*base).to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(config)
}

fn decode(text: &str, what: &str) -> Result<String> {
    percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::config(format!("the {what} in the store URL is not valid UTF-8")))
}

fn path(scheme: &str, location: &str) -> Result<PathBuf> {
    let path = decode(location, "path")?;
    if path.is_empty() {
        return Err(Error::config(format!(
            "{scheme}:// URL needs a path: {scheme}:///absolute/path or {scheme}://relative/path"
        )));
    }
    Ok(PathBuf::from(path))
}

/// Refuses a `redis://` URL whose user name or password holds an
/// unescaped `?`, `#`, `@` or `/`: each of them ends the credentials early,
/// and the rest of the password would then be read as the host, the
/// database or a parameter — and could be echoed in an error. So an `@`
/// may appear only once, in the host part (before the first `/`, `?` or
/// `#`); an `@` in a parameter's value is written `%40`. The message shows
/// no part of the URL.
fn check_credentials(scheme: &str, rest: &str) -> Result<()> {
    let host_part = rest.split(['/', '?', '#']).next().unwrap_or("");
    let ats_in_host = host_part.matches('@').count();
    if ats_in_host > 1 || (ats_in_host == 0 && rest.contains('@')) {
        return Err(Error::config(format!(
            "the {scheme}:// URL has an '@' outside its user:password@host part; \
             in a user name or password write ? # @ / as %3F %23 %40 %2F, \
             and in a parameter write @ as %40"
        )));
    }
    Ok(())
}

fn redis(scheme: &str, rest: &str) -> Result<Config> {
    check_credentials(scheme, rest)?;
    let mut config = Config::new(BackendKind::Redis);
    config.redis.tls = scheme == "rediss";
    // Parse with the `url` crate, but never echo the URL: it may hold a password.
    let url = url::Url::parse(&format!("redis://{rest}"))
        .map_err(|e| Error::config(format!("invalid {scheme}:// URL: {e}")))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::config(format!("{scheme}:// URL needs a host")))?;
    config.redis.addr = format!("{host}:{}", url.port().unwrap_or(6379));
    config.redis.username = decode(url.username(), "user name")?;
    config.redis.password = decode(url.password().unwrap_or(""), "password")?;
    let db = url.path().trim_matches('/');
    if !db.is_empty() {
        config.redis.db = db.parse().map_err(|_| {
            Error::config(format!(
                "the database in a {scheme}:// URL must be a number, not {db:?}"
            ))
        })?;
    }
    Ok(config)
}

/// A `true`/`false` parameter `name`.
fn boolean(name: &str, value: &str) -> Result<bool> {
    match value {
        "" | "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" => Ok(false),
        other => Err(Error::config(format!(
            "{name}={other:?} in the store URL must be true or false"
        ))),
    }
}

fn apply(config: &mut Config, scheme: &str, name: &str, value: &str) -> Result<()> {
    let flag = |value: &str| boolean(name, value);
    match (config.backend, name) {
        (_, "namespace") => config.namespace = value.to_owned(),
        (BackendKind::Memory, "cleanup_interval") => {
            config.memory.cleanup_interval = parse_duration(value)?
        }
        (BackendKind::Sqlite, "sync_writes") => config.sqlite.sync_writes = flag(value)?,
        (BackendKind::Sqlite, "cleanup_interval") => {
            config.sqlite.cleanup_interval = parse_duration(value)?
        }
        (BackendKind::LevelDb, "sync_writes") => config.leveldb.sync_writes = flag(value)?,
        (BackendKind::LevelDb, "cleanup_interval") => {
            config.leveldb.cleanup_interval = parse_duration(value)?
        }
        (BackendKind::Redis, "cluster") => {
            if flag(value)? {
                config.redis.cluster_nodes = vec![config.redis.addr.clone()];
            }
        }
        (BackendKind::Redis, "pool_size") => {
            config.redis.pool_size = value.parse().map_err(|_| {
                Error::config(format!(
                    "pool_size={value:?} in the store URL must be a number"
                ))
            })?;
        }
        (BackendKind::Redis, "index") => config.redis.index = flag(value)?,
        (BackendKind::Redis, "connect_timeout") => {
            config.redis.connect_timeout = parse_duration(value)?
        }
        (BackendKind::Redis, "command_timeout") => {
            config.redis.command_timeout = parse_duration(value)?
        }
        (BackendKind::DynamoDb, "region") => config.dynamodb.region = value.to_owned(),
        (BackendKind::DynamoDb, "endpoint") => config.dynamodb.endpoint = value.to_owned(),
        (BackendKind::DynamoDb, "create_table") => config.dynamodb.create_table = flag(value)?,
        _ => {
            return Err(Error::config(format!(
                "unknown parameter {name:?} for a {scheme}:// store URL"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn postgres_urls_keep_the_connections_parameters_and_take_ours() {
        let c = parse(
            "postgresql://app:s3cret@db.internal:5433/app?sslmode=require&namespace=s&table=cache&pool_size=4&command_timeout=2s",
        )
        .unwrap();
        assert_eq!(
            (c.backend, c.namespace.as_str()),
            (BackendKind::Postgres, "s")
        );
        assert_eq!(
            c.postgres.url,
            "postgresql://app:s3cret@db.internal:5433/app?sslmode=require"
        );
        assert_eq!(
            (c.postgres.table.as_str(), c.postgres.pool_size),
            ("cache", 4)
        );
        assert_eq!(c.postgres.command_timeout, Duration::from_secs(2));
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("db.internal"),
            "{shown}"
        );
        assert!(parse("postgres://").is_err());
        assert!(parse("postgres://h/db?pool_size=many").is_err());
        let c = parse("postgres://h/db").unwrap();
        assert_eq!(c.postgres.url, "postgres://h/db");
    }

    #[test]
    fn every_scheme() {
        let c = parse("memory://?namespace=cache&cleanup_interval=1m").unwrap();
        assert_eq!(
            (c.backend, c.namespace.as_str()),
            (BackendKind::Memory, "cache")
        );
        assert_eq!(c.memory.cleanup_interval, Duration::from_secs(60));

        let c = parse("sqlite://./data/kvs.db?sync_writes=true").unwrap();
        assert_eq!(c.sqlite.path, Path::new("./data/kvs.db"));
        assert!(c.sqlite.sync_writes);
        assert_eq!(
            parse("sqlite:///abs/my%20db.db").unwrap().sqlite.path,
            Path::new("/abs/my db.db")
        );

        let c = parse("leveldb:///var/lib/kvs?namespace=a%3Ab").unwrap();
        assert_eq!(
            (c.leveldb.path.as_path(), c.namespace.as_str()),
            (Path::new("/var/lib/kvs"), "a:b")
        );

        let c = parse("redis://127.0.0.1:7001/3?namespace=s").unwrap();
        assert_eq!(
            (c.redis.addr.as_str(), c.redis.db, c.redis.tls),
            ("127.0.0.1:7001", 3, false)
        );
        let c = parse("rediss://user:p%40ss@cache.example").unwrap();
        assert_eq!(
            (c.redis.username.as_str(), c.redis.password.as_str()),
            ("user", "p@ss")
        );
        assert_eq!(
            (c.redis.addr.as_str(), c.redis.tls),
            ("cache.example:6379", true)
        );

        let c = parse("dynamodb://Sessions?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A8000&create_table=1").unwrap();
        assert_eq!(c.dynamodb.table_name, "Sessions");
        assert_eq!(c.dynamodb.endpoint, "http://127.0.0.1:8000");
        assert!(c.dynamodb.create_table);
    }

    #[test]
    fn errors_name_the_problem_and_never_the_password() {
        for (url, needle) in [
            ("nope", "looks like"),
            ("mongo://x", "\"mongo\""),
            ("sqlite://", "needs a path"),
            ("sqlite://x.db?bogus=1", "\"bogus\""),
            ("sqlite://x.db?sync_writes=maybe", "true or false"),
            ("redis://u:hunter2@h:1/x", "number"),
            ("redis://u:hunter2@:1/0", "host"),
            ("dynamodb://", "table"),
            ("memory://?cleanup_interval=5", "\"5\""),
        ] {
            let err = parse(url).unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { .. }), "{url}");
            let text = err.to_string();
            assert!(text.contains(needle), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
    }

    /// A `?`, `#`, `@` or `/` left unescaped in a password cuts it short:
    /// the rest would be read as host, database or parameter, and shown in
    /// an error. Every such URL is refused with a message that holds no
    /// part of the password; escaped, each works.
    #[test]
    fn an_unescaped_separator_in_a_password_is_refused_without_echo() {
        for special in ['?', '#', '@', '/'] {
            for password in [format!("sec{special}retpw"), format!("98{special}76")] {
                for url in [
                    format!("redis://app:{password}@cache.example:6379/0"),
                    format!("rediss://:{password}@cache.example"),
                    format!("redis://{password}@cache.example:6379"),
                ] {
                    let err = parse(&url).expect_err(&url);
                    assert!(matches!(err, Error::InvalidConfig { .. }), "{url}");
                    let text = err.to_string();
                    for part in ["sec", "retpw", "98", "76"] {
                        assert!(!text.contains(part), "{url}: {text}");
                    }
                }
            }
            let escaped = percent_encoding::utf8_percent_encode(
                &format!("sec{special}retpw"),
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            let c = parse(&format!("redis://app:{escaped}@cache.example/2")).unwrap();
            assert_eq!(c.redis.password, format!("sec{special}retpw"));
            assert_eq!(
                (c.redis.addr.as_str(), c.redis.db),
                ("cache.example:6379", 2)
            );
        }
        // An '@' in a parameter is written %40.
        let c = parse("redis://h/0?namespace=team%40example").unwrap();
        assert_eq!(c.namespace, "team@example");
        assert!(parse("redis://h/0?namespace=team@example").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,60}") {
            let _ = parse(&text);
        }
    }
}
