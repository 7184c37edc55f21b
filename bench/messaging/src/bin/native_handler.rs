//! The peer: a native async-nats subscriber doing the trivial handler's work (msg_handler's
//! `work.*` branch): for each message on `work.*`, publish its payload to `done.<payload>`.
//! Usage: native_handler NATS_URL
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: native_handler NATS_URL")?;
    let client = async_nats::ConnectOptions::new().subscription_capacity(65_536).connect(url).await?;
    let mut work = client.subscribe("work.*").await?;
    client.flush().await?;
    eprintln!("native handler subscribed");
    while let Some(msg) = work.next().await {
        let id = String::from_utf8_lossy(&msg.payload).into_owned();
        client.publish(format!("done.{id}"), msg.payload).await?;
    }
    Ok(())
}
