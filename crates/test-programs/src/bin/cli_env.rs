//! Prints every environment variable the guest can see, one `NAME=VALUE` per line.
fn main() {
    for (k, v) in std::env::vars() {
        println!("{k}={v}");
    }
}
