//! "compiling X, cached afterwards" on a terminal. The first compile of a large component
//! (a 20 MB Python one takes 5-20 s in a release build) is otherwise silence that looks like a
//! hang. Said only when stderr is a terminal (never into a log or a pipe), only when a compile
//! really runs (never on a cache hit), and only once it has taken longer than [`AFTER`].
use std::io::IsTerminal;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a compile runs before it is announced: shorter ones go unnoticed anyway.
const AFTER: Duration = Duration::from_secs(1);

/// Prints the notice from a timer thread unless dropped (the compile ended) before [`AFTER`].
/// Given to `Host::load_with`: `host.load_with(name, bytes, || Notice::start(name))`.
pub struct Notice(Option<(mpsc::Sender<()>, JoinHandle<()>)>);

impl Notice {
    /// Called when the compile of `name` starts; the notice is due [`AFTER`] from now.
    pub fn start(name: &str) -> Notice {
        if !std::io::stderr().is_terminal() {
            return Notice(None);
        }
        // Without a cache directory the next run compiles again: do not promise otherwise.
        let cached = if crate::dirs::cache_dir().is_some() { ", cached afterwards" } else { "" };
        let line = format!("compiling {name}{cached}");
        let (done, wait) = mpsc::channel::<()>();
        let timer = std::thread::Builder::new().name("wharf-compile-notice".into()).spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(AFTER) {
                eprintln!("{line}");
            }
        });
        // No thread, no notice: it is a courtesy, never a reason to fail.
        Notice(timer.ok().map(|timer| (done, timer)))
    }
}

impl Drop for Notice {
    fn drop(&mut self) {
        if let Some((done, timer)) = self.0.take() {
            drop(done);
            // Joined so that the notice, if printed, comes before anything the guest writes.
            let _ = timer.join();
        }
    }
}
