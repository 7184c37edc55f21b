//! Network probe. Prints `ok: ...` or `error: ...` (exit 1) so tests can tell a denial from a
//! crash:
//! - `connect HOST:PORT`: opens a TCP connection, sends `ping`, prints the reply.
//! - `resolve NAME`: looks NAME up, prints the addresses (space-separated).
//! - `udp HOST:PORT`: a connected UDP socket sends `ping` and prints the reply datagram.
//! - `udp-to HOST:PORT`: the same with an unconnected socket (`send_to`/`recv_from`).
//! - `listen HOST:PORT`: binds and listens (a server inside the guest), accepts one connection
//!   and writes `pong` to it.
use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

fn connect(addr: &str) -> std::io::Result<String> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.write_all(b"ping")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

fn resolve(name: &str) -> std::io::Result<String> {
    let addrs: Vec<String> = (name, 0).to_socket_addrs()?.map(|a| a.ip().to_string()).collect();
    Ok(addrs.join(" "))
}

fn udp(addr: &str, connected: bool) -> std::io::Result<String> {
    let peer: SocketAddr = addr.to_socket_addrs()?.next().ok_or(std::io::ErrorKind::NotFound)?;
    let local = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
    let socket = UdpSocket::bind(local)?;
    let mut buf = [0u8; 512];
    let (n, from) = if connected {
        socket.connect(peer)?;
        socket.send(b"ping")?;
        (socket.recv(&mut buf)?, peer)
    } else {
        socket.send_to(b"ping", peer)?;
        socket.recv_from(&mut buf)?
    };
    Ok(format!("{} from {from}", String::from_utf8_lossy(&buf[..n])))
}

fn listen(addr: &str) -> std::io::Result<String> {
    let listener = std::net::TcpListener::bind(addr)?;
    println!("listening: {}", listener.local_addr()?);
    let (mut stream, from) = listener.accept()?;
    stream.write_all(b"pong")?;
    Ok(format!("accepted {from}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (command, target) = match args.as_slice() {
        [_, command, target] => (command.as_str(), target.as_str()),
        _ => panic!("usage: cli_net connect|resolve|udp|udp-to|listen TARGET"),
    };
    let result = match command {
        "connect" => connect(target),
        "resolve" => resolve(target),
        "udp" => udp(target, true),
        "udp-to" => udp(target, false),
        "listen" => listen(target),
        other => panic!("unknown command {other}"),
    };
    match result {
        Ok(reply) => println!("ok: {reply}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
