//! Registry credentials go only to their own registry, and never over plain HTTP to a host
//! `--insecure` did not name: two real registries that accept the same password, and fake
//! token services that record what they were sent (all on 127.0.0.1).
use std::process::Command;

use test_programs_artifacts::CLI_ECHO;

use crate::oci::Env;
use crate::registry::{FakeServer, Reply, TestRegistry};
use crate::util::{assert_one_clean_error, run, run_with_stdin};

fn with_env_credentials(mut cmd: Command, registry: &str) -> Command {
    cmd.env("WHARF_REGISTRY_USERNAME", "alice")
        .env("WHARF_REGISTRY_PASSWORD", "pa55")
        .env("WHARF_REGISTRY_HOST", registry);
    cmd
}

#[test]
fn explicit_credentials_go_to_their_registry_only() {
    // Both registries would accept alice's password: only the named one may get it.
    let (a, b) = (TestRegistry::with_basic_auth("alice", "pa55"), TestRegistry::with_basic_auth("alice", "pa55"));
    let env = Env::new();
    let push = |registry: &TestRegistry, named: &str| {
        let cmd = env.wharf(&["push", "--insecure", &registry.host, CLI_ECHO, &registry.reference("app:v1")]);
        run(with_env_credentials(cmd, named))
    };
    push(&a, &a.host).expect_code(0);
    let out = push(&b, &a.host).expect_code(1);
    assert_one_clean_error(&out, &format!("{}: authentication failed", b.host));
    // Without a registry to bind them to, they are refused outright.
    let mut cmd = env.wharf(&["pull", "--insecure", &a.host, &a.reference("app:v1")]);
    cmd.env("WHARF_REGISTRY_USERNAME", "alice").env("WHARF_REGISTRY_PASSWORD", "pa55");
    assert_one_clean_error(&run(cmd).expect_code(2), "WHARF_REGISTRY_HOST");
}

#[test]
fn credentials_never_go_over_plain_http_unless_insecure_names_the_host() {
    let registry = TestRegistry::with_basic_auth("alice", "pa55");
    let host = registry.host.clone();
    let setup = Env::new();
    run(with_env_credentials(
        setup.wharf(&["push", "--insecure", &host, CLI_ECHO, &registry.reference("app:v1")]),
        &host,
    ))
    .expect_code(0);
    let plain = format!("http://{}", registry.reference("app:v1"));

    // Every source of credentials, one at a time.
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-wharftest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread s\nprintf '{\"ServerURL\":\"%s\",\"Username\":\"alice\",\"Secret\":\"pa55\"}' \"$s\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    for source in ["env", "login", "auths", "credHelpers", "credsStore"] {
        let env = Env::new();
        let config = env.docker.path().join("config.json");
        match source {
            "login" => {
                let login = env.wharf(&["login", "-u", "alice", "--password-stdin", &host]);
                run_with_stdin(login, b"pa55\n").expect_code(0);
            }
            // base64("alice:pa55")
            "auths" => {
                std::fs::write(&config, format!(r#"{{"auths":{{"{host}":{{"auth":"YWxpY2U6cGE1NQ=="}}}}}}"#)).unwrap()
            }
            "credHelpers" => std::fs::write(&config, format!(r#"{{"credHelpers":{{"{host}":"wharftest"}}}}"#)).unwrap(),
            "credsStore" => std::fs::write(&config, r#"{"credsStore":"wharftest"}"#).unwrap(),
            _ => {}
        }
        let command = |args: &[&str]| {
            let mut cmd = env.wharf(args);
            cmd.env("PATH", &path);
            if source == "env" { with_env_credentials(cmd, &host) } else { cmd }
        };
        for verb in ["inspect", "pull"] {
            let out = run(command(&[verb, &plain])).expect_code(1);
            assert_one_clean_error(&out, "not sent over plain HTTP (pass --insecure");
            run(command(&[verb, "--insecure", &host, &plain])).expect_code(0);
        }
    }
}

#[test]
fn a_token_service_gets_credentials_only_over_https_or_a_named_host() {
    // A registry whose challenge sends clients to a token service on another port.
    let tokens = FakeServer::start(|_| Reply::Full("401 Unauthorized", vec![], b"{}".to_vec()));
    let realm = format!("http://{}/token", tokens.host);
    let registry = FakeServer::start(move |_| {
        let challenge = format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\"");
        Reply::Full("401 Unauthorized", vec![challenge], br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec())
    });
    let reference = format!("{}/app:v1", registry.host);
    let env = Env::new();
    let cmd = env.wharf(&["inspect", "--insecure", &registry.host, &reference]);
    let out = run(with_env_credentials(cmd, &registry.host)).expect_code(1);
    assert_one_clean_error(&out, "not sent to its token service");
    let seen = tokens.seen();
    assert!(seen.iter().any(|s| s.path.starts_with("/token?")), "the token service was asked (anonymously): {seen:?}");
    assert!(seen.iter().all(|s| s.header("authorization").is_none()), "credentials leaked: {seen:?}");

    // Named insecure too: now it may have them.
    let cmd = env.wharf(&["inspect", "--insecure", &registry.host, "--insecure", &tokens.host, &reference]);
    run(with_env_credentials(cmd, &registry.host)).expect_code(1);
    assert!(tokens.seen().iter().any(|s| s.header("authorization").is_some_and(|a| a.starts_with("Basic "))));
}
