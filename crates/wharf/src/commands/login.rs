//! `wharf login` / `wharf logout`: remember or forget registry credentials.
use std::io::{BufRead as _, IsTerminal as _};
use std::process::ExitCode;

use clap::Args;

use crate::exit::BadInput;

/// Store credentials for a registry in wharf's login file (Docker's `config.json` format,
/// mode 0600, under the data directory). The password is read from stdin.
#[derive(Args, Debug)]
pub struct LoginCommand {
    /// The user name.
    #[arg(short, long)]
    username: String,

    /// Read the password from stdin (the only way: never from a flag, so it stays out of
    /// shell history and `ps`). Accepted for compatibility with `docker login`.
    #[arg(long)]
    password_stdin: bool,

    /// The registry, `host[:port]`.
    registry: String,
}

impl LoginCommand {
    /// Reads the password and writes the login file.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let registry = normalize(&self.registry)?;
        if std::io::stdin().is_terminal() {
            eprint!("Password for {}@{registry}: ", self.username);
        }
        let mut password = String::new();
        std::io::stdin().lock().read_line(&mut password)?;
        let password = password.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(BadInput("no password on stdin (use `--password-stdin` and pipe it in)".into()).into());
        }
        let file = super::oci::login_file();
        wharf_oci::auth::store_login(&file, &registry, &self.username, password)?;
        eprintln!("Login for {registry} saved in {}", file.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// Forget the credentials `wharf login` stored for a registry.
#[derive(Args, Debug)]
pub struct LogoutCommand {
    /// The registry, `host[:port]`.
    registry: String,
}

impl LogoutCommand {
    /// Removes the registry from the login file.
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let registry = normalize(&self.registry)?;
        if wharf_oci::auth::remove_login(&super::oci::login_file(), &registry)? {
            eprintln!("Removed login for {registry}");
        } else {
            eprintln!("Not logged in to {registry}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// `https://host:port/` -> `host:port`; rejects things that are not a host.
fn normalize(registry: &str) -> anyhow::Result<String> {
    let host = registry.strip_prefix("https://").or_else(|| registry.strip_prefix("http://")).unwrap_or(registry);
    let host = host.trim_end_matches('/');
    if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
        return Err(BadInput(format!("{registry:?} is not a registry host (expected host[:port])")).into());
    }
    Ok(host.to_ascii_lowercase())
}
