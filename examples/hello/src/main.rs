//! Greets whoever is named on the command line, and shows what the sandbox lets it see.
fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "world".to_string());
    println!("Hello, {name}! (from a WebAssembly component)");
    let env: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    println!("environment variables I can see: {}", if env.is_empty() { "none".into() } else { env.join(", ") });
    match std::fs::read_dir("/") {
        Ok(_) => println!("I can list /"),
        Err(e) => println!("I cannot list /: {e}"),
    }
}
