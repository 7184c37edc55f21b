#![no_main]
//! A WASI 0.3 command (`wasi:cli/run@0.3.0`, async `run`) built with the `wasip3` crate. Its
//! first argument picks what it does, so one component covers the sandbox twins of the 0.2
//! tests and the hostile cases; all output goes through 0.3 stdio streams.
//!
//! - (none) or `hello`: greets on stdout.
//! - `echo`: copies stdin to stdout until stdin closes.
//! - `env`: prints every environment variable (`wasi:cli/environment@0.3.0`), `NAME=VALUE`.
//! - `read PATH` / `write PATH`: reads a file from (writes one into) the first preopen.
//! - `connect HOST:PORT`: opens a TCP connection (`wasi:sockets@0.3.0`); a name is looked up
//!   first (`ip-name-lookup`) and its first address used.
//! - `resolve NAME`: looks NAME up, prints the addresses (space-separated).
//! - `symlink TARGET NAME`: creates symlink NAME -> TARGET in the first preopen.
//! - `lookups NAME N [PATH]`: N concurrent lookups of NAME; after 500 ms prints how many had
//!   failed at once (`refused K`), then (with PATH) reads that file of the first preopen while
//!   the rest are still pending, and returns, leaving them behind.
//! - `exit N`: exits with code N.
//! - `spin`: four async tasks that compute forever (only a timeout ends them).
//! - `hog`: allocates 1 MiB at a time from spawned tasks, forever.
//! - `pending`: awaits a future nobody will ever write (a task that never finishes).
//! - `unclosed`: hands stdout a stream it never closes, then waits on it.
//! - `swarm N`: N concurrent subtasks, each a host `wait-for` call; prints how many finished.
use std::cell::Cell;
use std::rc::Rc;

use wasip3::cli::{environment, exit, stdin, stdout};
use wasip3::clocks::monotonic_clock;
use wasip3::filesystem::{preopens, types as fs};
use wasip3::sockets::ip_name_lookup;
use wasip3::sockets::types::{
    IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress, TcpSocket,
};
use wasip3::wit_bindgen::{spawn_local, yield_async};
use wasip3::{wit_future, wit_stream};

struct Cli;

wasip3::cli::command::export!(Cli);

impl wasip3::exports::cli::run::Guest for Cli {
    async fn run() -> Result<(), ()> {
        let args = environment::get_arguments();
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        match arg(1) {
            "" | "hello" => print("Hello from a WASI 0.3 component!\n").await,
            "echo" => echo().await,
            "env" => {
                let text: String = environment::get_environment().iter().map(|(k, v)| format!("{k}={v}\n")).collect();
                print(&text).await;
            }
            "read" => return read(arg(2)).await,
            "write" => return write(arg(2)).await,
            "connect" => return connect(arg(2)).await,
            "resolve" => match resolve(arg(2)).await {
                Ok(addresses) => {
                    let text: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                    print(&format!("{}\n", text.join(" "))).await;
                }
                Err(e) => {
                    eprint(&format!("resolve {}: {e}\n", arg(2))).await;
                    return Err(());
                }
            },
            "symlink" => return symlink(arg(2), arg(3)).await,
            "lookups" => {
                let refused = Rc::new(Cell::new(0u32));
                for _ in 0..arg(3).parse().unwrap_or(1u32) {
                    let (refused, name) = (refused.clone(), arg(2).to_string());
                    spawn_local(async move {
                        if resolve(&name).await.is_err() {
                            refused.set(refused.get() + 1);
                        }
                    });
                }
                monotonic_clock::wait_for(500_000_000).await;
                print(&format!("refused {}\n", refused.get())).await;
                if !arg(4).is_empty() {
                    return read(arg(4)).await;
                }
            }
            "exit" => exit::exit_with_code(arg(2).parse().unwrap_or(1)),
            "spin" => spin().await,
            "hog" => hog().await,
            "pending" => {
                let (writer, reader) = wit_future::new::<Result<(), wasip3::cli::types::ErrorCode>>(|| Ok(()));
                // Keep the writer alive so the reader never resolves.
                let value = reader.await;
                drop(writer);
                print(&format!("resolved: {value:?}\n")).await;
            }
            "unclosed" => {
                let (tx, rx) = wit_stream::new::<u8>();
                let done = stdout::write_via_stream(rx);
                let _ = done.await;
                drop(tx);
            }
            "swarm" => swarm(arg(2).parse().unwrap_or(1000)).await,
            other => {
                eprint(&format!("unknown mode {other:?}\n")).await;
                return Err(());
            }
        }
        Ok(())
    }
}

/// Writes `text` to stdout through a 0.3 stream and waits until the host consumed it.
async fn print(text: &str) {
    let (mut tx, rx) = wit_stream::new();
    let done = stdout::write_via_stream(rx);
    let rest = tx.write_all(text.as_bytes().to_vec()).await;
    assert!(rest.is_empty(), "stdout closed early");
    drop(tx);
    done.await.expect("stdout failed");
}

async fn eprint(text: &str) {
    let (mut tx, rx) = wit_stream::new();
    let done = wasip3::cli::stderr::write_via_stream(rx);
    tx.write_all(text.as_bytes().to_vec()).await;
    drop(tx);
    let _ = done.await;
}

async fn echo() {
    let (mut input, input_done) = stdin::read_via_stream();
    let (mut tx, rx) = wit_stream::new();
    let output_done = stdout::write_via_stream(rx);
    loop {
        let (status, chunk) = input.read(Vec::with_capacity(64 * 1024)).await;
        if !chunk.is_empty() && !tx.write_all(chunk).await.is_empty() {
            break;
        }
        if matches!(status, wasip3::wit_bindgen::StreamResult::Dropped | wasip3::wit_bindgen::StreamResult::Cancelled) {
            break;
        }
    }
    drop(tx);
    let _ = input_done.await;
    output_done.await.expect("stdout failed");
}

fn first_preopen() -> Option<fs::Descriptor> {
    preopens::get_directories().into_iter().next().map(|(dir, _)| dir)
}

async fn read(path: &str) -> Result<(), ()> {
    let Some(dir) = first_preopen() else {
        eprint("no preopened directory\n").await;
        return Err(());
    };
    let file =
        match dir.open_at(fs::PathFlags::empty(), path.into(), fs::OpenFlags::empty(), fs::DescriptorFlags::READ).await
        {
            Ok(file) => file,
            Err(e) => {
                eprint(&format!("open {path}: {e:?}\n")).await;
                return Err(());
            }
        };
    let (contents, done) = file.read_via_stream(0);
    let bytes = contents.collect().await;
    if let Err(e) = done.await {
        eprint(&format!("read {path}: {e:?}\n")).await;
        return Err(());
    }
    print(&String::from_utf8_lossy(&bytes)).await;
    Ok(())
}

async fn write(path: &str) -> Result<(), ()> {
    let Some(dir) = first_preopen() else {
        eprint("no preopened directory\n").await;
        return Err(());
    };
    let flags = fs::DescriptorFlags::WRITE;
    let file = match dir.open_at(fs::PathFlags::empty(), path.into(), fs::OpenFlags::CREATE, flags).await {
        Ok(file) => file,
        Err(e) => {
            eprint(&format!("open {path}: {e:?}\n")).await;
            return Err(());
        }
    };
    let (mut tx, rx) = wit_stream::new();
    let done = file.write_via_stream(rx, 0);
    tx.write_all(b"written by p3_cli\n".to_vec()).await;
    drop(tx);
    match done.await {
        Ok(()) => {
            print("wrote\n").await;
            Ok(())
        }
        Err(e) => {
            eprint(&format!("write {path}: {e:?}\n")).await;
            Err(())
        }
    }
}

/// Looks `name` up through `wasi:sockets/ip-name-lookup@0.3.0`.
async fn resolve(name: &str) -> Result<Vec<std::net::IpAddr>, String> {
    let addresses = ip_name_lookup::resolve_addresses(name.to_string()).await.map_err(|e| format!("{e:?}"))?;
    Ok(addresses
        .into_iter()
        .map(|address| match address {
            IpAddress::Ipv4((a, b, c, d)) => std::net::IpAddr::from([a, b, c, d]),
            IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => std::net::IpAddr::from([a, b, c, d, e, f, g, h]),
        })
        .collect())
}

async fn connect(target: &str) -> Result<(), ()> {
    let addr = match target.parse::<std::net::SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            let Some((host, Ok(port))) = target.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) else {
                eprint(&format!("not HOST:PORT: {target}\n")).await;
                return Err(());
            };
            match resolve(host).await.map(|a| a.into_iter().next()) {
                Ok(Some(ip)) => std::net::SocketAddr::new(ip, port),
                Ok(None) => {
                    eprint(&format!("resolve {host}: no address\n")).await;
                    return Err(());
                }
                Err(e) => {
                    eprint(&format!("resolve {host}: {e}\n")).await;
                    return Err(());
                }
            }
        }
    };
    let (family, remote) = match addr {
        std::net::SocketAddr::V4(v4) => {
            let [a, b, c, d] = v4.ip().octets();
            (IpAddressFamily::Ipv4, IpSocketAddress::Ipv4(Ipv4SocketAddress { port: v4.port(), address: (a, b, c, d) }))
        }
        std::net::SocketAddr::V6(v6) => {
            let [a, b, c, d, e, f, g, h] = v6.ip().segments();
            let address = (a, b, c, d, e, f, g, h);
            (
                IpAddressFamily::Ipv6,
                IpSocketAddress::Ipv6(Ipv6SocketAddress { port: v6.port(), flow_info: 0, address, scope_id: 0 }),
            )
        }
    };
    let socket = match TcpSocket::create(family) {
        Ok(socket) => socket,
        Err(e) => {
            eprint(&format!("socket: {e:?}\n")).await;
            return Err(());
        }
    };
    match socket.connect(remote).await {
        Ok(()) => {
            print("connected\n").await;
            Ok(())
        }
        Err(e) => {
            eprint(&format!("connect {target}: {e:?}\n")).await;
            Err(())
        }
    }
}

async fn symlink(target: &str, name: &str) -> Result<(), ()> {
    let Some(dir) = first_preopen() else {
        eprint("no preopened directory\n").await;
        return Err(());
    };
    match dir.symlink_at(target.into(), name.into()).await {
        Ok(()) => {
            print("symlinked\n").await;
            Ok(())
        }
        Err(e) => {
            eprint(&format!("symlink {name} -> {target}: {e:?}\n")).await;
            Err(())
        }
    }
}

async fn spin() {
    let counter = Rc::new(Cell::new(0u64));
    for _ in 0..4 {
        let counter = counter.clone();
        spawn_local(async move {
            loop {
                for _ in 0..1_000_000 {
                    counter.set(counter.get().wrapping_add(1));
                }
                yield_async().await;
            }
        });
    }
    // `run` itself computes too, without ever yielding.
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

async fn hog() {
    let held = Rc::new(std::cell::RefCell::new(Vec::new()));
    loop {
        let held = held.clone();
        spawn_local(async move {
            held.borrow_mut().push(vec![1u8; 1 << 20]);
        });
        yield_async().await;
    }
}

async fn swarm(n: u32) {
    let done = Rc::new(Cell::new(0u32));
    for _ in 0..n {
        let done = done.clone();
        spawn_local(async move {
            monotonic_clock::wait_for(1_000_000).await;
            done.set(done.get() + 1);
        });
    }
    while done.get() < n {
        monotonic_clock::wait_for(1_000_000).await;
    }
    print(&format!("{} subtasks finished\n", done.get())).await;
}
