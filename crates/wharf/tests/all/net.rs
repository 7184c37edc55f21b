//! Network grants attacked: name lookups, DNS rebinding, userinfo, UDP replies, stuck lookups.
//! Names are answered by the debug binary's `WHARF_TEST_RESOLVE` table (see
//! `crates/wharf/src/resolver.rs`); every server is on 127.0.0.1, and answers that name other
//! addresses (169.254.169.254, 93.184.216.34) are never connected to: the tests check that.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use test_programs_artifacts::{CLI_NET, HTTP_ECHO, P3_CLI};

use crate::util::{Run, Served, get, run, wharf};

const TABLE: &str = "api.test=127.0.0.1 mapped.test=::ffff:127.0.0.1 a.wild.test=127.0.0.1 \
                     meta.test=169.254.169.254 public.test=93.184.216.34 evil.test=93.184.216.35 \
                     mixed.test=169.254.169.254,10.1.2.3,fd00::1,93.184.216.36";

/// `wharf ARGS` answering names from [`TABLE`], logging each query to `log`.
fn wharf_resolving(log: &Path, args: &[&str]) -> Command {
    let mut cmd = wharf(args);
    cmd.env("WHARF_TEST_RESOLVE", TABLE).env("WHARF_TEST_RESOLVE_LOG", log);
    cmd
}

/// `wharf run --timeout 10s [--allow-net G]... cli_net COMMAND TARGET`.
fn cli_net(log: &Path, grants: &[&str], command: &str, target: &str) -> Run {
    let mut args = vec!["run", "--timeout", "10s"];
    for grant in grants {
        args.extend(["--allow-net", grant]);
    }
    args.extend([CLI_NET, command, target]);
    run(wharf_resolving(log, &args))
}

#[track_caller]
fn assert_denied(out: Run) {
    assert_eq!(out.code, 1, "expected a denial; stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stdout.starts_with("error: "), "{}", out.stdout);
}

/// A TCP server on 127.0.0.1 that answers `pong:` + what it read, for a bounded time.
fn pong_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten().take(100) {
            let mut buf = Vec::new();
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.read_to_end(&mut buf);
            let _ = stream.write_all(&[b"pong:".as_slice(), &buf].concat());
        }
    });
    port
}

#[test]
fn lookups_only_of_granted_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    let grants = ["public.test:443", "mixed.test:443"];
    let out = cli_net(&log, &grants, "resolve", "public.test").expect_code(0);
    assert_eq!(out.stdout, "ok: 93.184.216.34\n");
    // Names the policy does not grant fail without a query: exfiltration through lookups of
    // `SECRET.anything` is closed, and so is probing what the host can resolve.
    for name in ["evil.test", "localhost", "secret-data.public.test", "api.test", "PUBLIC.test.evil.test"] {
        assert_denied(cli_net(&log, &grants, "resolve", name));
    }
    // Answers are filtered by the address rules: only the public address is given.
    let out = cli_net(&log, &grants, "resolve", "mixed.test").expect_code(0);
    assert_eq!(out.stdout, "ok: 93.184.216.36\n");
    // A trailing dot and upper case name the same host.
    cli_net(&log, &grants, "resolve", "Public.Test.").expect_code(0);
    let queries = std::fs::read_to_string(&log).unwrap();
    assert_eq!(queries, "public.test\nmixed.test\npublic.test\n", "only granted names may be queried");
}

/// `wharf run --timeout 10s [--allow-net G]... p3_cli COMMAND TARGET`: the WASI 0.3 twin of
/// [`cli_net`] (`ip-name-lookup@0.3`, `wasi:sockets@0.3`).
fn p3_net(log: &Path, grants: &[&str], command: &str, target: &str) -> Run {
    let mut args = vec!["run", "--timeout", "10s"];
    for grant in grants {
        args.extend(["--allow-net", grant]);
    }
    args.extend([P3_CLI, command, target]);
    run(wharf_resolving(log, &args))
}

#[track_caller]
fn assert_p3_denied(out: Run, code: &str) {
    assert_eq!(out.code, 1, "expected a denial; stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains(code), "expected {code}: {}", out.stderr);
}

#[test]
fn p3_lookups_only_of_granted_names() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    let grants = ["public.test:443", "mixed.test:443"];
    assert_eq!(p3_net(&log, &grants, "resolve", "public.test").expect_code(0).stdout, "93.184.216.34\n");
    for name in ["evil.test", "localhost", "secret-data.public.test", "api.test", "PUBLIC.test.evil.test"] {
        assert_p3_denied(p3_net(&log, &grants, "resolve", name), "AccessDenied");
    }
    assert_p3_denied(p3_net(&log, &grants, "resolve", "bad name!"), "InvalidArgument");
    // No grant at all: no lookup either.
    assert_p3_denied(p3_net(&log, &[], "resolve", "public.test"), "AccessDenied");
    assert_eq!(p3_net(&log, &grants, "resolve", "mixed.test").expect_code(0).stdout, "93.184.216.36\n");
    p3_net(&log, &grants, "resolve", "Public.Test.").expect_code(0);
    let queries = std::fs::read_to_string(&log).unwrap();
    assert_eq!(queries, "public.test\nmixed.test\npublic.test\n", "only granted names may be queried");
}

#[test]
fn p3_names_never_reach_internal_addresses() {
    let port = pong_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    for (name, grant) in [
        ("localhost", format!("localhost:{port}")),
        ("api.test", format!("api.test:{port}")),
        ("mapped.test", format!("mapped.test:{port}")),
        ("a.wild.test", "*.wild.test".to_string()),
    ] {
        // The name resolves only to 127.0.0.1: a name rule gives no address.
        assert_p3_denied(p3_net(&log, &[&grant], "connect", &format!("{name}:{port}")), "NameUnresolvable");
        // An address rule grants it explicitly; the looked-up address is then connectable.
        let address = format!("127.0.0.1:{port}");
        let out = p3_net(&log, &[&grant, &address], "connect", &format!("{name}:{port}")).expect_code(0);
        assert_eq!(out.stdout, "connected\n");
    }
    // Granted by name, an internal address is reachable neither directly nor by the name.
    assert_p3_denied(p3_net(&log, &["meta.test:80"], "connect", "169.254.169.254:80"), "AccessDenied");
    assert_p3_denied(p3_net(&log, &["meta.test:80"], "connect", "meta.test:80"), "NameUnresolvable");
}

#[test]
fn names_never_reach_internal_addresses() {
    let port = pong_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    let pong = "ok: pong:ping\n";
    for (name, grant) in [
        ("localhost", format!("localhost:{port}")),
        ("api.test", format!("api.test:{port}")),
        ("mapped.test", format!("mapped.test:{port}")),
        ("a.wild.test", "*.wild.test".to_string()),
    ] {
        // The name resolves to 127.0.0.1 (DNS rebinding): not reachable through a name rule.
        assert_denied(cli_net(&log, &[&grant], "connect", &format!("{name}:{port}")));
        // An address rule grants it explicitly.
        let address = format!("127.0.0.1:{port}");
        assert_eq!(cli_net(&log, &[&grant, &address], "connect", &format!("{name}:{port}")).stdout, pong);
        assert_eq!(cli_net(&log, &[&grant, "127.0.0.0/8"], "connect", &format!("{name}:{port}")).stdout, pong);
    }
    // Granted by name, an internal address is not reachable directly either.
    assert_denied(cli_net(&log, &["meta.test:80"], "connect", "169.254.169.254:80"));
    assert_denied(cli_net(&log, &["meta.test:80"], "connect", "meta.test:80"));
}

/// A UDP server on 127.0.0.1 answering `pong:` + each datagram, from its own port or, with
/// `other_port`, from a second socket. Ends after a bounded number of datagrams or 60 s.
fn udp_server(other_port: bool) -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    std::thread::spawn(move || {
        let replier = if other_port { UdpSocket::bind("127.0.0.1:0").unwrap() } else { socket.try_clone().unwrap() };
        let mut buf = [0u8; 512];
        for _ in 0..20 {
            let Ok((n, from)) = socket.recv_from(&mut buf) else { return };
            let _ = replier.send_to(&[b"pong:".as_slice(), &buf[..n]].concat(), from);
        }
    });
    port
}

#[test]
fn udp_peers_can_answer() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    let port = udp_server(false);
    let peer = format!("127.0.0.1:{port}");
    for command in ["udp", "udp-to"] {
        let out = cli_net(&log, &[&peer], command, &peer).expect_code(0);
        assert_eq!(out.stdout, format!("ok: pong:ping from {peer}\n"), "{command}");
        assert_denied(cli_net(&log, &[], command, &peer));
        assert_denied(cli_net(&log, &[&format!("127.0.0.1:{}", port.wrapping_add(1))], command, &peer));
    }
    // A reply from an address the policy does not grant (another port) is dropped: the guest
    // waits until its timeout.
    let port = udp_server(true);
    let peer = format!("127.0.0.1:{port}");
    let args = ["run", "--timeout", "2s", "--allow-net", &peer, CLI_NET, "udp-to", &peer];
    let out = run(wharf_resolving(&log, &args));
    assert_eq!(out.code, 124, "{}\n{}", out.stdout, out.stderr);
}

/// An HTTP server on 127.0.0.1 that answers each request with the `Host` header it received.
fn host_echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(100) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let mut reader = BufReader::new(&stream);
            let mut host = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("host:") {
                    host = value.trim().to_string();
                }
                line.clear();
            }
            let body = format!("host={host}");
            let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = (&stream).write_all(reply.as_bytes());
        }
    });
    port
}

fn serve_resolving(log: &Path, grants: &[String]) -> Served {
    let mut cmd = wharf_resolving(log, &["serve", "--listen", "127.0.0.1:0", "--timeout", "20s"]);
    for grant in grants {
        cmd.args(["--allow-net", grant]);
    }
    cmd.arg(HTTP_ECHO);
    Served::spawn(cmd)
}

#[test]
fn outbound_http_connects_only_to_checked_addresses() {
    let port = host_echo_server();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("queries");
    let fetch = |server: &Served, authority: &str| get(&server.url(&format!("/fetch?url=http://{authority}/x")));
    let denied = (502, "outbound request failed: ErrorCode::HttpRequestDenied".to_string());
    let names = ["localhost", "api.test", "mapped.test", "a.wild.test"];
    let mut grants: Vec<String> = names.iter().map(|n| format!("http://{n}:{port}")).collect();
    grants[3] = format!("http://*.wild.test:{port}");
    grants.extend(["http://meta.test".to_string(), "http://mixed.test".to_string()]);

    // Granted names that resolve to loopback, link-local or private addresses are refused.
    let by_name = serve_resolving(&log, &grants);
    for name in names {
        assert_eq!(fetch(&by_name, &format!("{name}:{port}")), denied, "{name}");
    }
    let started = Instant::now();
    assert_eq!(fetch(&by_name, "meta.test"), denied);
    assert!(started.elapsed() < Duration::from_secs(5), "no connection to 169.254.169.254 may be tried");
    // Userinfo is refused before anything else.
    assert_eq!(fetch(&by_name, &format!("api.test:{port}@127.0.0.1:{port}")), denied);
    let seen = by_name.log_with(&["resolves only to addresses outside the policy"]);
    assert!(seen.contains("resolves only to addresses outside the policy"), "{seen}");

    // With an address rule, the request goes to the address wharf checked: `api.test` exists
    // only in wharf's resolver, so a second lookup (by hyper or the system) would fail. The
    // upstream still sees the name in `Host`.
    grants.push(format!("127.0.0.1:{port}"));
    let with_address = serve_resolving(&log, &grants);
    for name in names {
        let expected = (200, format!("upstream 200: host={name}:{port}"));
        assert_eq!(fetch(&with_address, &format!("{name}:{port}")), expected, "{name}");
    }
    for userinfo in
        [format!("x@api.test:{port}"), format!("api.test:{port}@127.0.0.1:{port}"), format!("a:b@localhost:{port}")]
    {
        assert_eq!(fetch(&with_address, &userinfo), denied, "{userinfo}");
    }
    let queries = std::fs::read_to_string(&log).unwrap();
    assert!(!queries.contains("@") && !queries.contains("127.0.0.1"), "{queries}");
}

#[test]
fn stuck_lookups_do_not_delay_file_io() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "contents").unwrap();
    let grant_dir = format!("{}::/data", dir.path().display());
    let mut cmd = wharf(&["serve", "--listen", "127.0.0.1:0", "--dir", &grant_dir, "--allow-net", "*.stall.test:80"]);
    cmd.arg(HTTP_ECHO).env("WHARF_TEST_RESOLVE", "*.stall.test=stall");
    let server = Served::spawn(cmd);
    // One request starts 3,000 lookups that hang for 30 s each, then returns.
    let (status, body) = get(&server.url("/lookups?name=stall.test&n=3000"));
    assert_eq!((status, body.as_str()), (200, "started 1024, refused 1976"), "lookups per instance are capped");
    // Other requests' file I/O (tokio's blocking pool) goes on at once.
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(get(&server.url("/read?path=/data/file")), (200, "contents".to_string()));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "file reads waited {:?}", started.elapsed());
}

#[test]
fn p3_stuck_lookups_are_capped_and_do_not_delay_file_io() {
    // The WASI 0.3 twin of `stuck_lookups_do_not_delay_file_io`: one run starts 3,000 lookups
    // of a granted name that hangs for 30 s; 1,024 wait (4 at a time reach wharf's DNS
    // threads), 1,976 are refused at once, and the file read after them is answered at once.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("file"), "contents").unwrap();
    let grant_dir = format!("{}::/data", dir.path().display());
    let lookups = |name: &str| {
        let args = ["run", "--timeout", "20s", "--dir", &grant_dir, "--allow-net", "*.stall.test:80"];
        let mut cmd = wharf(&args);
        cmd.args([P3_CLI, "lookups", name, "3000", "file"]).env("WHARF_TEST_RESOLVE", "*.stall.test=stall");
        let started = Instant::now();
        let out = run(cmd).expect_code(0);
        (out.stdout, started.elapsed())
    };
    // What the last session saw ("all 3,000 refused"): `*.stall.test` grants names below
    // `stall.test`, not `stall.test` itself, so each lookup is refused before any query. (Run
    // first: it also puts the component in the compile cache before the timed run.)
    let (stdout, _) = lookups("stall.test");
    assert_eq!(stdout, "refused 3000\ncontents");
    let (stdout, took) = lookups("a.stall.test");
    assert_eq!(stdout, "refused 1976\ncontents", "lookups per store are capped as for WASI 0.2");
    assert!(took < Duration::from_secs(10), "the run waited for the stuck lookups: {took:?}");
}

#[test]
fn guests_cannot_listen_even_with_address_grants() {
    // A server inside the guest would take connections from anyone: no rule grants `listen`,
    // whatever it names (wasmtime-wasi checks `TcpListen` for WASI 0.2 and 0.3 alike).
    for target in ["0.0.0.0:0", "127.0.0.1:0", "[::]:0"] {
        let args = ["run", "--allow-net", "127.0.0.0/8", "--allow-net", "0.0.0.0/0", CLI_NET, "listen", target];
        let out = run(wharf(&args)).expect_code(1);
        assert!(out.stdout.starts_with("error:") && !out.stdout.contains("listening"), "{target}: {}", out.stdout);
    }
}
