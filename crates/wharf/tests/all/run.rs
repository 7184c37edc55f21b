//! `wharf run` basics: arguments, stdio and exit codes.
use test_programs_artifacts::{CLI_ECHO, CLI_EXIT};

use crate::util::{run, run_with_stdin, wharf};

#[test]
pub fn cli_echo() {
    let out = run(wharf(&["run", CLI_ECHO])).expect_code(0);
    assert_eq!(out.stdout, "hello from a wharf guest\n");

    // Everything after the component (with or without `--`) belongs to the guest, flags too.
    let out = run(wharf(&["run", CLI_ECHO, "args", "--env", "x y", "-v"])).expect_code(0);
    assert_eq!(out.stdout, format!("{CLI_ECHO}\nargs\n--env\nx y\n-v\n"));
    let out = run(wharf(&["run", CLI_ECHO, "--", "args", "--timeout"])).expect_code(0);
    assert_eq!(out.stdout, format!("{CLI_ECHO}\nargs\n--timeout\n"));
}

#[test]
fn stdin_and_stderr_pass_through() {
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut cmd = wharf(&["run", CLI_ECHO, "stdin", "stderr", "to stderr"]);
    cmd.stdout(std::process::Stdio::piped());
    let out = cmd.stdin(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut child = out;
    let mut stdin = child.stdin.take().unwrap();
    let writer = {
        let input = input.clone();
        std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input).unwrap())
    };
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(output.stdout, input);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "to stderr\n");

    let out = run_with_stdin(wharf(&["run", CLI_ECHO, "stdin"]), b"line one\nline two\n").expect_code(0);
    assert_eq!(out.stdout, "line one\nline two\n");
}

#[test]
pub fn cli_exit() {
    for code in [0, 1, 3, 42, 255] {
        run(wharf(&["run", CLI_EXIT, &code.to_string()])).expect_code(code);
    }
    // std's `process::exit` with a nonzero code can only report failure (1).
    run(wharf(&["run", CLI_ECHO, "exit", "9"])).expect_code(1);
}
