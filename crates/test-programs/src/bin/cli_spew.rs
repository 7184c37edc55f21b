//! Hostile: writes `GIB` gibibytes (default 4) to stdout and stderr as fast as it can.
use std::io::Write;

fn main() {
    let gib: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let chunk = vec![b'x'; 1 << 20];
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for _ in 0..gib * 1024 {
        if out.write_all(&chunk).is_err() || err.write_all(&chunk[..1024]).is_err() {
            break;
        }
    }
}
