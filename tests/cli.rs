//! Black-box tests of the operator commands (docs/reference.md §1): `status`,
//! `failover`, `readmit`, `test`, `explain` and `demo`, run as the built
//! binary against real servers on loopback. Health endpoints are stubs on
//! 127.0.0.1; the documentation-range addresses only appear as DNS data.

// Test code: a failed unwrap is a failed test, and helpers shared through
// `mod common` are not meant to be reachable from outside.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;

const US: &str = "192.0.2.10";
const EU: &str = "198.51.100.10";

/// The test config plus what `zones/keiko.toml` adds: a geo name, the
/// GeoIP fixture (absolute path, the config lives in a temp folder) and the
/// `[residency.eu]` block.
fn geo_config(extra_server: &str) -> String {
    let db = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip-fixtures/keiko-regions.mmdb");
    let base = replace_once(
        &default_config(),
        "nsid         = \"ns1.test\"\n",
        &format!("nsid         = \"ns1.test\"\n{extra_server}"),
    );
    format!(
        r#"{base}
[[records]]
name   = "api-contracts-geo"
policy = "geo"
ttl    = 60

[geoip]
database = "{}"
default  = ["us-east-1", "eu-west-1", "ap-southeast-1"]

[geoip.continents]
NA = ["us-east-1", "eu-west-1", "ap-southeast-1"]
EU = ["eu-west-1", "us-east-1", "ap-southeast-1"]
AS = ["ap-southeast-1", "eu-west-1", "us-east-1"]

[geoip.countries]
JP = ["ap-southeast-1", "us-east-1", "eu-west-1"]

[residency.eu]
continents = ["EU"]
countries  = []
regions    = ["eu-west-1"]
"#,
        db.display()
    )
}

/// Runs `keiko-dns ARGS...` with `env` (and no token from the test's own
/// environment unless given).
fn keiko(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.args(args).env_remove("KEIKO_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run keiko-dns")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn admin_url(server: &Server) -> String {
    format!("http://{}", server.admin_addr())
}

fn failover_answer(server: &Server) -> Vec<IpAddr> {
    addresses(&server.query_udp(FAILOVER_NAME, RecordType::A))
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn status_failover_readmit_and_explain_against_a_running_server() {
    let mut server = Server::start(&geo_config(""), &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let admin = admin_url(&server);

    let out = keiko(&["status", "--admin", &admin], &[]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    for r in REGIONS {
        assert!(text.contains(r.name), "status names {}:\n{text}", r.name);
    }
    assert!(text.contains("api-contracts-geo"), "{text}");
    assert!(text.contains("\nDNSSEC   off"), "not signed:\n{text}");
    assert_eq!(failover_answer(&server), [ip(US)]);

    // The drill: forced down, the failover name moves to eu-west-1.
    let out = keiko(
        &["failover", "--region", "us-east-1", "--admin", &admin],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(text.contains("before"), "{text}");
    assert!(
        text.contains(&format!("api-contracts                was {US}"))
            && text.contains(&format!("now {EU}")),
        "{text}"
    );
    assert_eq!(failover_answer(&server), [ip(EU)]);

    let out = keiko(
        &[
            "failover",
            "--region",
            "us-east-1",
            "--restore",
            "--admin",
            &admin,
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert_eq!(failover_answer(&server), [ip(US)]);

    // A region that is up is not awaiting readmit: refused, exit 1.
    let out = keiko(
        &["readmit", "--region", "eu-west-1", "--admin", &admin],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(stderr(&out).contains("eu-west-1"), "{}", output_text(&out));
    assert!(stderr(&out).contains("readmit"), "{}", output_text(&out));

    // An unknown region: refused with the regions there are, exit 1, and
    // no "before" table that reads as if a drill had started.
    let out = keiko(&["failover", "--region", "mars-1", "--admin", &admin], &[]);
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(stderr(&out).contains("mars-1"), "{}", output_text(&out));
    for r in REGIONS {
        assert!(
            stderr(&out).contains(r.name),
            "names the valid region {}: {}",
            r.name,
            output_text(&out)
        );
    }
    assert!(!stdout(&out).contains("before"), "{}", output_text(&out));

    // Explain, asked of the running server.
    let out = keiko(
        &[
            "explain",
            "api-contracts-geo",
            "--subnet",
            "81.2.69.142/32",
            "--admin",
            &admin,
        ],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(text.contains("running server"), "{text}");
    for needle in ["eu-west-1", "GB", "EU", "residency.eu", "<- answer", EU] {
        assert!(text.contains(needle), "explain mentions {needle}:\n{text}");
    }
    // Out of zone and missing names are a reported failure.
    let out = keiko(&["explain", "nothing-here", "--admin", &admin], &[]);
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(
        output_text(&out).contains("NXDOMAIN"),
        "{}",
        output_text(&out)
    );
    let out = keiko(
        &["explain", "x", "--subnet", "nonsense", "--admin", &admin],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", output_text(&out));

    // With the server stopped, explain falls back to the config and says so.
    signal(server.pid(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.is_alive() {
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let config = server.ws.config_path();
    let out = keiko(
        &[
            "explain",
            "api-contracts-geo",
            "--subnet",
            "81.2.69.142/32",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(
        text.contains("no server answers") && text.contains("assumed healthy"),
        "{text}"
    );
    assert!(text.contains("eu-west-1") && text.contains("GB"), "{text}");
}

#[test]
fn status_without_a_server_exits_2_and_says_so() {
    let port = free_port();
    let out = keiko(
        &["status", "--admin", &format!("http://127.0.0.1:{port}")],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", output_text(&out));
    let err = stderr(&out);
    assert!(err.contains("is keiko-dns running?"), "{err}");
    assert!(err.contains("connection refused"), "{err}");
}

#[test]
fn a_wrong_token_changes_nothing() {
    let config = geo_config("admin_token  = \"right-token-0123456789\"\n");
    let server = Server::start(&config, &default_zone());
    server.wait_ready(Duration::from_secs(10));
    let admin = admin_url(&server);
    let out = keiko(
        &["failover", "--region", "us-east-1", "--admin", &admin],
        &[("KEIKO_ADMIN_TOKEN", "wrong-token")],
    );
    assert_eq!(code(&out), 2, "{}", output_text(&out));
    assert!(
        stderr(&out).contains("the admin API refused the token"),
        "{}",
        output_text(&out)
    );
    assert!(!stdout(&out).contains("before"), "{}", output_text(&out));
    assert_eq!(failover_answer(&server), [ip(US)]);

    // No token at all: the message says none was sent, and how to send one.
    let out = keiko(
        &["failover", "--region", "us-east-1", "--admin", &admin],
        &[],
    );
    assert_eq!(code(&out), 2, "{}", output_text(&out));
    let err = stderr(&out);
    assert!(err.contains("none was sent"), "{}", output_text(&out));
    assert!(
        err.contains("KEIKO_ADMIN_TOKEN") && err.contains("--token"),
        "{}",
        output_text(&out)
    );
    assert_eq!(failover_answer(&server), [ip(US)]);

    // The right one (as a flag) works.
    let out = keiko(
        &[
            "failover",
            "--region",
            "us-east-1",
            "--admin",
            &admin,
            "--token",
            "right-token-0123456789",
        ],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert_eq!(failover_answer(&server), [ip(EU)]);
}

#[test]
fn test_probes_every_region_and_names_the_failing_one() {
    let closed = format!("127.0.0.1:{}", closed_port());
    let config = replace_once(&default_config(), "{HEALTH1}", &closed);
    let ws = Workspace::new(&config, &default_zone());
    let path = ws.config_path();
    let out = keiko(&["test", "--config", path.to_str().unwrap()], &[]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    let line = |region: &str| {
        text.lines()
            .find(|l| l.starts_with(region))
            .unwrap_or_else(|| panic!("no line for {region}:\n{text}"))
            .to_owned()
    };
    assert!(line("us-east-1").contains("healthy"), "{text}");
    assert!(!line("us-east-1").contains("UNHEALTHY"), "{text}");
    assert!(line("eu-west-1").contains("UNHEALTHY"), "{text}");
    assert!(line("eu-west-1").contains("connection refused"), "{text}");
    assert!(text.contains("unhealthy: eu-west-1"), "{text}");
}

#[test]
fn demo_serves_the_default_zone_until_sigterm() {
    // The demo's ports are fixed; a taken one must fail the test clearly.
    for port in [5300, 9300, 18081, 18082, 18083] {
        let tcp = TcpListener::bind(("127.0.0.1", port));
        assert!(
            tcp.is_ok(),
            "keiko-dns demo needs 127.0.0.1:{port} (TCP), but it is taken: {:?}",
            tcp.err()
        );
    }
    let udp = UdpSocket::bind("127.0.0.1:5300");
    assert!(
        udp.is_ok(),
        "keiko-dns demo needs 127.0.0.1:5300 (UDP), but it is taken: {:?}",
        udp.err()
    );
    drop(udp);

    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let out = std::fs::File::create(dir.path().join("demo.out")).unwrap();
    // Run from an empty folder, as an installed program is: the shipped
    // config is named by KEIKO_CONFIG.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/keiko.toml");
    let mut child = Command::new(binary())
        .arg("demo")
        .current_dir(dir.path())
        .env_remove("KEIKO_ADMIN_TOKEN")
        .env("KEIKO_CONFIG", &shipped)
        .env("KEIKO_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(log)
        .spawn()
        .expect("spawn keiko-dns demo");
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();

    let client = UdpClient::new(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 5300)),
        Duration::from_millis(200),
    );
    let query =
        <hickory_proto::op::Message as QueryExt>::query_for(&fqdn(FAILOVER_NAME), RecordType::A);
    let deadline = Instant::now() + Duration::from_secs(15);
    let answer = loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "demo exited with {status}; log:\n{}\n{}",
                read("demo.out"),
                read("demo.log")
            );
        }
        if let Some(answer) = client.try_exchange(&query) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "demo did not answer on 127.0.0.1:5300 within 15 s; log:\n{}",
            read("demo.log")
        );
    };
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    let regions: Vec<IpAddr> = REGIONS.iter().map(|r| IpAddr::V4(r.v4)).collect();
    let got = addresses(&answer);
    assert!(
        got.len() == 1 && regions.contains(&got[0]),
        "api-contracts answers a region: {answer:#?}"
    );
    let endpoint = SocketAddr::from((Ipv4Addr::LOCALHOST, 18081));
    let health = http_request(endpoint, "GET", "/health", &[], b"");
    assert_eq!(health.ok().map(|r| r.status), Some(200), "demo stand-in");
    let guide = read("demo.out");
    for needle in [
        "dig @127.0.0.1 -p 5300",
        "+subnet=81.2.69.142/32",
        "keiko-dns failover --region us-east-1",
        "127.0.0.1:18081/fail",
    ] {
        assert!(
            guide.contains(needle),
            "demo guide mentions {needle}:\n{guide}"
        );
    }

    signal(child.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("demo did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.success(),
        "demo exit: {status}; log:\n{}",
        read("demo.log")
    );
    // Its state is apart from a plain serve's `var/`.
    let demo_state = Path::new(env!("CARGO_MANIFEST_DIR")).join("var/demo");
    assert!(
        guide.contains(&format!("kept in {}", demo_state.display())),
        "{guide}"
    );
    assert!(
        demo_state.join("keiko-demo.toml").is_file(),
        "the demo serves its own config copy"
    );
    // Logs written to a file carry no colour codes.
    assert!(!read("demo.log").contains('\x1b'), "{}", read("demo.log"));
}

#[test]
fn the_config_is_found_by_flag_then_env_then_the_usual_places() {
    let ws = Workspace::new(&default_config(), &default_zone());
    let config = ws.config_path();
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: Option<&Path>| {
        let mut cmd = Command::new(binary());
        cmd.args(args)
            .current_dir(empty.path())
            .env_remove("KEIKO_ADMIN_TOKEN")
            .env_remove("KEIKO_CONFIG");
        if let Some(path) = env {
            cmd.env("KEIKO_CONFIG", path);
        }
        cmd.output().expect("run keiko-dns")
    };

    // KEIKO_CONFIG, from a folder with no zones/keiko.toml.
    let out = run(&["check"], Some(&config));
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(
        stdout(&out).contains(config.to_str().unwrap()),
        "{}",
        output_text(&out)
    );
    // --config beats KEIKO_CONFIG.
    let missing = empty.path().join("missing.toml");
    let out = run(
        &["check", "--config", config.to_str().unwrap()],
        Some(&missing),
    );
    assert_eq!(code(&out), 0, "{}", output_text(&out));

    // Neither: a binary run elsewhere never falls back to the source tree.
    if !Path::new("/etc/keiko-dns/keiko.toml").exists() {
        let out = run(&["check"], None);
        assert_eq!(code(&out), 1, "{}", output_text(&out));
        let err = stderr(&out);
        for place in [
            "zones/keiko.toml",
            "/etc/keiko-dns/keiko.toml",
            "KEIKO_CONFIG",
            "--config",
        ] {
            assert!(err.contains(place), "names {place}: {err}");
        }
        let out = run(&["serve"], None);
        assert_eq!(code(&out), 1, "{}", output_text(&out));
        assert!(
            stderr(&out).contains("no config file found"),
            "{}",
            output_text(&out)
        );
    }
}

#[test]
fn serve_without_the_stand_ins_says_so_once_and_logs_no_colour() {
    // Ports nothing listens on: bound, then released.
    let closed: Vec<String> = (0..3)
        .map(|_| {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut config = default_config();
    for (i, addr) in closed.iter().enumerate() {
        config = replace_once(&config, &format!("{{HEALTH{i}}}"), addr);
    }
    let server = Server::start(&config, &default_zone());
    let log = server.log();
    assert_eq!(
        log.matches("keiko-dns demo").count(),
        1,
        "one hint naming the demo:\n{log}"
    );
    assert!(log.contains(&closed[0]), "{log}");
    assert!(
        !log.contains('\x1b'),
        "no colour codes in a log file:\n{log}"
    );

    // With the endpoints up, no hint.
    let server = Server::start_default();
    server.wait_ready(Duration::from_secs(10));
    let log = server.log();
    assert!(log.contains("keiko-dns serving"), "{log}");
    assert!(!log.contains("keiko-dns demo"), "{log}");
    assert!(!log.contains('\x1b'), "{log}");
}

/// The `[fleet]` block `fleet certs` printed for `name`, as printed.
fn printed_fleet_block(stdout: &str, name: &str) -> String {
    let start = stdout
        .find(&format!("# on {name}:"))
        .unwrap_or_else(|| panic!("no block for {name}:\n{stdout}"));
    stdout[start..]
        .lines()
        .take_while(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn fleet_certs_writes_what_a_fleet_config_accepts() {
    use std::os::unix::fs::PermissionsExt;
    let ws = Workspace::new(&default_config(), &default_zone());
    let dir = ws.path().join("fleet");
    let dir_arg = dir.to_str().unwrap();
    let certs = |extra: &[&str]| {
        let mut args = vec!["fleet", "certs", "--out", dir_arg, "ns1.test", "ns2.test"];
        args.extend(["--ip", "127.0.0.1"]);
        args.extend(extra);
        keiko(&args, &[])
    };
    let out = certs(&[]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    let text = stdout(&out);
    let mode = |f: &str| std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
    for (file, want) in [
        ("ca.pem", None),
        ("ca.key", Some(0o600)),
        ("ns1.test.pem", None),
        ("ns1.test.key", Some(0o600)),
        ("ns2.test.pem", None),
        ("ns2.test.key", Some(0o600)),
    ] {
        let path = dir.join(file).display().to_string();
        assert!(text.contains(&format!("wrote {path}")), "{file}:\n{text}");
        match want {
            Some(m) => assert_eq!(mode(file), m, "{file}"),
            None => assert_eq!(mode(file) & 0o022, 0, "{file} not writable by others"),
        }
    }
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let ca = read("ca.pem");
    let chain = read("ns1.test.pem");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2, "{chain}");
    assert!(chain.ends_with(&ca), "the leaf, then the CA");
    assert!(read("ns1.test.key").starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(read("ca.key").starts_with("-----BEGIN PRIVATE KEY-----"));

    // A config naming the files relative to itself passes `check`; a peer
    // entry that is this instance's own listen address is allowed.
    let port = free_port();
    let fleet = format!(
        "\n[fleet]\ninstance     = \"ns1.test\"\nlisten       = \"127.0.0.1:{port}\"\n\
         peers        = [\"https://127.0.0.1:{port}\", \"https://ns2.test:9443\"]\n\
         ca_file      = \"fleet/ca.pem\"\ncert_file    = \"fleet/ns1.test.pem\"\n\
         key_file     = \"fleet/ns1.test.key\"\ndown_quorum  = \"majority\"\n\
         peer_timeout = \"5s\"\n"
    );
    ws.write_config(&format!("{}{fleet}", default_config()));
    let config = ws.config_path();
    let check = || keiko(&["check", "--config", config.to_str().unwrap()], &[]);
    let out = check();
    assert_eq!(code(&out), 0, "{}", output_text(&out));

    // The printed lines for ns2, pasted as they are, pass too.
    let block = printed_fleet_block(&text, "ns2.test");
    assert!(
        block.contains("[fleet]\ninstance  = \"ns2.test\""),
        "{block}"
    );
    ws.write_config(&format!("{}\n{block}", default_config()));
    let out = check();
    assert_eq!(code(&out), 0, "{block}\n{}", output_text(&out));

    // A key readable by others is refused, with the fix.
    let key = dir.join("ns2.test.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check();
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("fleet.key_file") && err.contains(&format!("chmod 600 {}", key.display())),
        "{err}"
    );

    // Nothing is overwritten without --force; with it the instances are
    // issued again under the same CA.
    let before = read("ns1.test.pem");
    let out = certs(&[]);
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(stderr(&out).contains("--force"), "{}", output_text(&out));
    assert_eq!(read("ns1.test.pem"), before);
    let out = certs(&["--force"]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert_ne!(read("ns1.test.pem"), before);
    assert_eq!(read("ca.pem"), ca);
    assert_eq!(mode("ns2.test.key"), 0o600);
    let out = check();
    assert_eq!(code(&out), 0, "{}", output_text(&out));

    // A later instance joins the same CA.
    let out = keiko(&["fleet", "certs", "--out", dir_arg, "ns3.test"], &[]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(
        stdout(&out).contains("using the fleet CA"),
        "{}",
        output_text(&out)
    );
    assert!(read("ns3.test.pem").ends_with(&ca));

    // A name that cannot be an instance: the command line is wrong.
    let out = keiko(&["fleet", "certs", "--out", dir_arg, "NS4"], &[]);
    assert_eq!(code(&out), 2, "{}", output_text(&out));
    assert!(stderr(&out).contains("lower case"), "{}", output_text(&out));
    assert!(!dir.join("NS4.pem").exists());
}

// ---------------------------------------------------------------------------
// keiko-dns dnssec keygen / ds (docs/reference.md §10.4)
// ---------------------------------------------------------------------------

/// The zone-file records of `text` (comments left out), as fields.
fn zone_records(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split(';').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// A DS record as `(key tag, algorithm, digest type, digest)`, whatever
/// TTL or class the tool printed.
fn ds_rdata(fields: &[String]) -> (String, String, String, String) {
    let at = fields
        .iter()
        .position(|f| f == "DS")
        .unwrap_or_else(|| panic!("not a DS record: {fields:?}"));
    let rdata = &fields[at + 1..];
    assert_eq!(
        rdata.len(),
        4,
        "DS rdata is tag, alg, type, digest: {fields:?}"
    );
    (
        rdata[0].clone(),
        rdata[1].clone(),
        rdata[2].clone(),
        rdata[3].to_uppercase(),
    )
}

/// BIND's `dnssec-dsfromkey -2 -f - ORIGIN` over `dnskeys` (zone-file
/// DNSKEY records): the DS records an independent implementation computes.
fn dsfromkey(dnskeys: &str) -> Vec<(String, String, String, String)> {
    let child = Command::new("dnssec-dsfromkey")
        .args(["-2", "-f", "-", "keiko.example.com."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "dnssec-dsfromkey is needed to check DS records independently and cannot be run \
             ({e}); install it: apt-get install -y bind9-utils"
        ),
    };
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dnskeys.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dnssec-dsfromkey failed on\n{dnskeys}\n{}",
        output_text(&out)
    );
    zone_records(&stdout(&out))
        .iter()
        .map(|r| ds_rdata(r))
        .collect()
}

/// `keiko-dns dnssec keygen --out PATH ARGS...`.
fn keygen(path: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["dnssec", "keygen", "--out", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    keiko(&args, &[])
}

#[test]
fn dnssec_keygen_writes_a_private_key_once_and_prints_its_dnskey_and_ds() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.pem");
    let out = keygen(&path, &["--origin", "keiko.example.com"]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    let text = stdout(&out);

    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key is its owner's only");
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(
        pem.starts_with("-----BEGIN PRIVATE KEY-----\n")
            && pem.trim_end().ends_with("-----END PRIVATE KEY-----"),
        "PKCS#8 PEM: {pem}"
    );

    let records = zone_records(&text);
    assert_eq!(records.len(), 2, "one DNSKEY and one DS:\n{text}");
    let dnskey = &records[0];
    assert_eq!(
        dnskey[..7],
        [
            "keiko.example.com.",
            "3600",
            "IN",
            "DNSKEY",
            "257",
            "3",
            "13"
        ],
        "{text}"
    );
    let ds = ds_rdata(&records[1]);
    assert_eq!(records[1][..4], ["keiko.example.com.", "3600", "IN", "DS"]);
    assert_eq!((ds.1.as_str(), ds.2.as_str()), ("13", "2"), "{text}");
    assert!(
        text.contains(&format!("key tag {}", ds.0)),
        "the key tag is printed: {text}"
    );
    // BIND computes the same DS from the printed DNSKEY.
    assert_eq!(
        dsfromkey(&format!("{}\n", dnskey.join(" "))),
        std::slice::from_ref(&ds)
    );

    // Never replaced: a second run fails and the key stays.
    let out = keygen(&path, &["--origin", "keiko.example.com"]);
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(
        stderr(&out).contains("never replaced"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);

    // Without --origin the config's zone origin is the owner; a bad
    // origin is a wrong command line and writes nothing.
    let ws = Workspace::new(&default_config(), &default_zone());
    let other = dir.path().join("other.pem");
    let config = ws.config_path();
    let out = keygen(&other, &["--config", config.to_str().unwrap()]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    assert!(
        zone_records(&stdout(&out))
            .iter()
            .all(|r| r[0] == "keiko.example.com."),
        "{}",
        output_text(&out)
    );
    assert_ne!(ds_rdata(&zone_records(&stdout(&out))[1]), ds, "a new key");
    let bad = dir.path().join("bad.pem");
    let out = keygen(&bad, &["--origin", "a..b"]);
    assert_eq!(code(&out), 2, "{}", output_text(&out));
    assert!(!bad.exists());
}

#[test]
fn dnssec_ds_prints_the_ds_of_every_key_as_bind_computes_it_from_the_served_dnskeys() {
    let keys = tempfile::tempdir().unwrap();
    let paths: Vec<_> = ["signing.pem", "next.pem"]
        .iter()
        .map(|f| keys.path().join(f))
        .collect();
    let mut tags = Vec::new();
    for p in &paths {
        let out = keygen(p, &["--origin", "keiko.example.com."]);
        assert_eq!(code(&out), 0, "{}", output_text(&out));
        tags.push(ds_rdata(&zone_records(&stdout(&out))[1]).0);
    }
    let config = format!(
        "{}\n[dnssec]\nkeys = [\"{}\", \"{}\"]\n",
        default_config(),
        paths[0].display(),
        paths[1].display()
    );
    let server = Server::start(&config, &default_zone());
    let config_path = server.ws.config_path();
    let out = keiko(
        &["dnssec", "ds", "--config", config_path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    let text = stdout(&out);
    let records = zone_records(&text);
    assert_eq!(records.len(), 2, "one DS per key:\n{text}");
    let printed: Vec<_> = records
        .iter()
        .map(|r| {
            assert_eq!(r[..4], ["keiko.example.com.", "3600", "IN", "DS"], "{text}");
            ds_rdata(r)
        })
        .collect();
    let printed_tags: Vec<_> = printed.iter().map(|d| d.0.clone()).collect();
    assert_eq!(printed_tags, tags, "in config order, the signing key first");
    assert!(
        text.contains("(signs)") && text.contains("(published only)"),
        "{text}"
    );

    // The DNSKEY RRset as the server serves it, read by dig, through BIND.
    let dig = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &server.ws.dns_port.to_string(),
            "keiko.example.com.",
            "DNSKEY",
            "+noall",
            "+answer",
            "+norecurse",
        ])
        .output()
        .unwrap_or_else(|e| panic!("dig is needed (apt-get install -y bind9-dnsutils): {e}"));
    assert!(dig.status.success(), "{}", output_text(&dig));
    let served = stdout(&dig);
    assert_eq!(
        served.matches("DNSKEY").count(),
        2,
        "two keys served:\n{served}"
    );
    let mut from_bind = dsfromkey(&served);
    let mut ours = printed.clone();
    from_bind.sort();
    ours.sort();
    assert_eq!(ours, from_bind, "keiko-dns dnssec ds vs dnssec-dsfromkey");

    // `status` shows the key tags, the algorithm and the earliest expiry.
    let out = keiko(&["status", "--admin", &admin_url(&server)], &[]);
    assert_eq!(code(&out), 0, "{}", output_text(&out));
    let text = stdout(&out);
    let want = format!(
        "\nDNSSEC   algorithm 13 (ECDSAP256SHA256), signing key tag {}, published key tags {}, {}\n",
        tags[0], tags[0], tags[1]
    );
    assert!(text.contains(&want), "{want:?} not in:\n{text}");
    // The default validity: 14 days from an hour ago.
    assert!(
        text.contains("signatures, earliest expires ") && text.contains("(in 13d 22h)"),
        "{text}"
    );

    // Without [dnssec] there is no DS to publish: a clear error.
    server.ws.write_config(&default_config());
    let out = keiko(
        &["dnssec", "ds", "--config", config_path.to_str().unwrap()],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", output_text(&out));
    assert!(
        stderr(&out).contains("no [dnssec]"),
        "{}",
        output_text(&out)
    );
    assert!(stdout(&out).is_empty());
}
