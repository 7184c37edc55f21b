//! Filesystem probe: `read PATH`, `write PATH CONTENT`, `list PATH`. Prints `ok: ...` or
//! `error: ...` and exits 0 or 1, so tests can tell a denial from a crash.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("read") => std::fs::read_to_string(&args[2]).map(|s| format!("ok: {s}")),
        Some("write") => std::fs::write(&args[2], &args[3]).map(|()| "ok: written".to_string()),
        Some("list") => std::fs::read_dir(&args[2]).map(|entries| {
            let names: Vec<String> =
                entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            format!("ok: {}", names.join(","))
        }),
        _ => {
            eprintln!("usage: cli_fs read PATH | write PATH CONTENT | list PATH");
            std::process::exit(2);
        }
    };
    match result {
        Ok(msg) => println!("{msg}"),
        Err(e) => {
            println!("error: {e}");
            std::process::exit(1);
        }
    }
}
