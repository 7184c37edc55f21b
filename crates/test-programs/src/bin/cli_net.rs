//! Network probe: `connect HOST:PORT` opens a TCP connection, sends `ping`, prints the reply.
//! Prints `ok: REPLY` or `error: ...` (exit 1) so tests can tell a denial from a crash.
use std::io::{Read, Write};

fn main() {
    let addr = std::env::args().nth(2).expect("usage: cli_net connect HOST:PORT");
    let result = std::net::TcpStream::connect(&addr).and_then(|mut stream| {
        stream.write_all(b"ping")?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    });
    match result {
        Ok(reply) => println!("ok: {reply}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
