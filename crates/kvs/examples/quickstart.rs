//! The README's first command: a session cache on the embedded default.
//!
//! `cargo run --release --example quickstart`

use std::time::Duration;

#[tokio::main]
async fn main() -> kvs::Result<()> {
    // Change this one line to move to SQLite, LevelDB, Redis or DynamoDB.
    let config = kvs::Config::from_yaml("type: memory\nnamespace: sessions")?;
    let store = kvs::open(&config).await?;

    store
        .set(
            "session:ada",
            b"{\"cart\":[1,2]}",
            Some(Duration::from_secs(1800)),
        )
        .await?;
    store
        .set(
            "session:bob",
            b"{\"cart\":[]}",
            Some(Duration::from_secs(1800)),
        )
        .await?;
    store.set("stats:visits", b"2", None).await?;

    let value = store.get("session:ada").await?;
    println!("session:ada = {}", String::from_utf8_lossy(&value));
    println!("sessions    = {:?}", store.list("session:").await?);
    println!("count       = {}", store.count("").await?);

    store.delete("session:bob").await?;
    match store.get("session:bob").await {
        Err(kvs::Error::NotFound) => println!("session:bob = (gone)"),
        other => println!("session:bob = {other:?}"),
    }
    store.close().await
}
