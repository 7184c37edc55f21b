//! The load: publishes N messages to `work.<i>` as fast as it can and counts the `done.<i>`
//! answers (throughput), then M messages one at a time, each timed from publish to its
//! answer (latency: publish -> handler -> the handler's message back).
//! Usage: driver NATS_URL N M; prints `MSGS_PER_S P50_US P99_US RECEIVED`.
use std::time::{Duration, Instant};

use futures_util::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, n, m] = args.as_slice() else { return Err("usage: driver NATS_URL N M".into()) };
    let (n, m): (usize, usize) = (n.parse()?, m.parse()?);
    let client = async_nats::ConnectOptions::new().subscription_capacity(1 << 20).connect(url.as_str()).await?;
    let mut done = client.subscribe("done.*").await?;
    client.flush().await?;

    // Warm up (and wait until the handler answers at all).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        client.publish("work.warm", "warm".into()).await?;
        if let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(500), done.next()).await {
            break;
        }
        if Instant::now() > deadline {
            return Err("the handler never answered".into());
        }
    }
    for i in 0..200 {
        client.publish(format!("work.w{i}"), format!("w{i}").into()).await?;
    }
    let mut warm = 0;
    while warm < 200 {
        match tokio::time::timeout(Duration::from_secs(10), done.next()).await {
            Ok(Some(msg)) if msg.subject.as_str() != "done.warm" => warm += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), done.next()).await {}

    // Throughput.
    let start = Instant::now();
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..n {
                client.publish(format!("work.{i}"), i.to_string().into()).await.map_err(|e| e.to_string())?;
            }
            client.flush().await.map_err(|e| e.to_string())
        })
    };
    let mut seen = vec![false; n];
    let mut received = 0;
    let mut last = start;
    while received < n {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(10), done.next()).await else { break };
        if let Some(i) = std::str::from_utf8(&msg.payload).ok().and_then(|s| s.parse::<usize>().ok()) {
            if i < n && !seen[i] {
                seen[i] = true;
                received += 1;
                last = Instant::now();
            }
        }
    }
    publisher.await??;
    let rate = received as f64 / last.duration_since(start).as_secs_f64();

    // Latency, one message at a time.
    let mut micros = Vec::with_capacity(m);
    for i in 0..m {
        let id = format!("L{i}");
        let sent = Instant::now();
        client.publish(format!("work.{id}"), id.clone().into()).await?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), done.next()).await?.ok_or("closed")?;
            if msg.payload == id.as_bytes() {
                break;
            }
        }
        micros.push(sent.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    let pct = |p: f64| micros.get(((micros.len() as f64 * p) as usize).min(micros.len().saturating_sub(1))).copied();
    println!("{rate:.0} {} {} {received}", pct(0.50).unwrap_or(0), pct(0.99).unwrap_or(0));
    Ok(())
}
