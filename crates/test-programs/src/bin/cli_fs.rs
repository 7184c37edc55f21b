//! Filesystem probe: `read PATH`, `write PATH CONTENT`, `list PATH`, `rename OLD NEW`,
//! `link OLD NEW` (a hard link), `mkdir PATH`, and `symlink TARGET NAME` (NAME inside the first
//! preopen, through `wasi:filesystem` directly). Prints `ok: ...` or `error: ...` and exits 0
//! or 1, so tests can tell a denial from a crash.
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
        Some("rename") => std::fs::rename(&args[2], &args[3]).map(|()| "ok: renamed".to_string()),
        Some("link") => std::fs::hard_link(&args[2], &args[3]).map(|()| "ok: linked".to_string()),
        Some("mkdir") => std::fs::create_dir_all(&args[2]).map(|()| "ok: made".to_string()),
        Some("symlink") => symlink(&args[2], &args[3]),
        _ => {
            eprintln!(
                "usage: cli_fs read PATH | write PATH CONTENT | list PATH | rename OLD NEW | link OLD NEW | mkdir PATH | symlink TARGET NAME"
            );
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

fn symlink(target: &str, name: &str) -> std::io::Result<String> {
    let dirs = wasip2::filesystem::preopens::get_directories();
    let Some((dir, _)) = dirs.first() else { return Err(std::io::Error::other("no preopened directory")) };
    dir.symlink_at(target, name)
        .map(|()| "ok: symlinked".to_string())
        .map_err(|e| std::io::Error::other(format!("{e:?}")))
}
