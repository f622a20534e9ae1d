//! PostgreSQL's errors as kvs's: the one place they are mapped.
//!
//! Temporary (worth retrying): a lost or refused connection, a server
//! shutting down or starting, too many connections, a serialization
//! failure or deadlock, a lock not available, a pool that timed out.
//! Everything else (a bad statement, a missing table, a wrong password) is
//! not. Messages name the table and server, never the password.

use super::BACKEND;
use crate::Error;

/// SQLSTATE classes and codes after which the same call may succeed.
fn temporary_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
        || matches!(code, "40001" | "40P01" | "55P03" | "53300" | "53400")
}

pub(super) fn postgres_error(place: &str, what: &str, e: tokio_postgres::Error) -> Error {
    let temporary = match e.code() {
        Some(state) => temporary_state(state.code()),
        // No SQLSTATE: the connection itself failed (I/O, closed, timeout).
        None => true,
    };
    let message = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => with_sources(&e),
    };
    Error::backend(BACKEND, format!("{what} on {place}"), message).temporary_if(temporary)
}

/// `e` and its causes on one line: "error performing TLS handshake" alone
/// does not say that the certificate was the trouble.
fn with_sources(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

pub(super) fn pool_error(place: &str, what: &str, e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => postgres_error(place, what, e),
        other => Error::backend(
            BACKEND,
            format!("{what} on {place}"),
            format!("no connection: {other}"),
        )
        .temporary_if(!matches!(other, deadpool_postgres::PoolError::Closed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_and_contention_states_are_temporary() {
        for state in [
            "08006", "08001", "57P01", "57P03", "40001", "40P01", "53300",
        ] {
            assert!(temporary_state(state), "{state}");
        }
        for state in ["42P01", "28P01", "22021", "23505"] {
            assert!(!temporary_state(state), "{state}");
        }
    }
}
