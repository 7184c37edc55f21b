//! `wasi:config` through `wharf run`: values from flags, the policy file and granted host
//! environment variables; a component sees only its own keys.
use test_programs_artifacts::CONFIG_GET;

use crate::util::{assert_one_clean_error, run, wharf};

#[test]
pub fn config_get() {
    // Nothing granted: nothing visible.
    let out = run(wharf(&["run", CONFIG_GET, "api_url"])).expect_code(0);
    assert_eq!(out.stdout, "api_url -> <none>\n");

    let mut cmd = wharf(&[
        "run",
        "--config",
        "api_url=https://api.example.com/?a=b",
        "--config-env",
        "WHARF_TEST_TOKEN",
        "--config-env",
        "home=WHARF_TEST_HOME",
        "--config-env",
        "WHARF_TEST_UNSET",
        CONFIG_GET,
        "api_url",
        "WHARF_TEST_SECRET",
        "WHARF_TEST_UNSET",
    ]);
    cmd.env("WHARF_TEST_TOKEN", "t0k3n").env("WHARF_TEST_HOME", "/home/x").env("WHARF_TEST_SECRET", "not granted");
    cmd.env_remove("WHARF_TEST_UNSET");
    let out = run(cmd).expect_code(0);
    assert_eq!(
        out.stdout,
        "WHARF_TEST_TOKEN=t0k3n\napi_url=https://api.example.com/?a=b\nhome=/home/x\n\
         api_url -> https://api.example.com/?a=b\nWHARF_TEST_SECRET -> <none>\nWHARF_TEST_UNSET -> <none>\n"
    );
}

#[test]
fn config_from_the_policy_file_and_flags_on_top() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "config = [\"a=file\", \"b=file\"]\nconfig_env = [\"c=WHARF_TEST_C\"]\n").unwrap();
    let mut cmd = wharf(&["run", "--policy", policy.to_str().unwrap(), "--config", "b=flag", CONFIG_GET]);
    cmd.env("WHARF_TEST_C", "from env");
    let out = run(cmd).expect_code(0);
    assert_eq!(out.stdout, "a=file\nb=flag\nc=from env\n");

    std::fs::write(&policy, "config = [\"novalue\"]\n").unwrap();
    let out = run(wharf(&["run", "--policy", policy.to_str().unwrap(), CONFIG_GET])).expect_code(2);
    assert_one_clean_error(&out, "invalid config `novalue`: expected KEY=VALUE");
}
