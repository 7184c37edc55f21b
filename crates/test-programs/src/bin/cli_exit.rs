//! `cli_exit N` exits with code N through `wasi:cli/exit.exit-with-code` (Rust's std can only
//! say success or failure); wasmtime 48 links it by default.
wit_bindgen::generate!({
    inline: "
        package wasi:cli@0.2.6;
        interface exit {
            @since(version = 0.2.0)
            exit: func(status: result);
            @unstable(feature = cli-exit-with-code)
            exit-with-code: func(status-code: u8);
        }
        world exiter { import exit; }
    ",
    world: "exiter",
    features: ["cli-exit-with-code"],
});

fn main() {
    let code: u8 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    wasi::cli::exit::exit_with_code(code);
}
