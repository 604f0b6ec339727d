//! Process control: runs the built `keiko-dns` binary, as a one-shot
//! command (`check`, `test`) or as a [`Server`] on a [`Workspace`], waits
//! for it to answer, reloads it with SIGHUP, and stops it by its PID
//! (SIGTERM, then SIGKILL) when the test is done with it.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

use super::dns::{QueryExt, UdpClient};
use super::fixtures::{ORIGIN, Workspace, default_config, default_zone};

/// How long the server may take to answer its first query after spawning.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `keiko-dns` binary Cargo built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_keiko-dns")
}

/// stdout and stderr of a finished command, for assertions and messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Workspace {
    /// Runs `keiko-dns ARGS...` to completion (for `check` and friends).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(binary())
            .args(args)
            .current_dir(self.path())
            .env_remove("KEIKO_ADMIN_TOKEN")
            .output()
            .expect("run keiko-dns")
    }

    /// Everything a server spawned on this workspace wrote to stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path().join("server.log")).unwrap_or_default()
    }

    /// `keiko-dns check --config <this config>`.
    pub fn check(&self) -> Output {
        let config = self.config_path();
        self.run(&["check", "--config", config.to_str().unwrap()])
    }
}

/// Calls `f` every `poll` until it gives Some or `timeout` passes; the
/// value and the time it took.
pub fn wait_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(poll);
    }
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `keiko-dns serve`; SIGTERMed (then killed) on drop.
pub struct Server {
    pub ws: Workspace,
    child: Child,
}

impl Server {
    /// Starts the server on free ports and waits until it answers the SOA
    /// query over UDP. Panics with the server log if it never does.
    pub fn start(config: &str, zone: &str) -> Server {
        // A port found free can be taken by a parallel test before the server
        // binds it: start again on fresh ports when that is why it failed.
        for _ in 0..3 {
            let ws = Workspace::new(config, zone);
            match Server::spawn(ws) {
                Ok(server) => return server,
                Err(log) if log.contains("cannot bind") => continue,
                Err(log) => panic!("keiko-dns did not start; its log:\n{log}"),
            }
        }
        panic!("keiko-dns could not bind free ports in 3 tries");
    }

    /// The default test config and the shipped zone.
    pub fn start_default() -> Server {
        Server::start(&default_config(), &default_zone())
    }

    fn spawn(ws: Workspace) -> Result<Server, String> {
        let child = spawn_child(&ws, false);
        let mut server = Server { ws, child };
        server
            .wait_started(
                &Message::query_for(ORIGIN, RecordType::SOA),
                Duration::from_millis(100),
            )
            .map(|_| server)
    }

    /// Sends `probe` until the server answers it (the first answer is
    /// returned), polling every `poll`.
    fn wait_started(&mut self, probe: &Message, poll: Duration) -> Result<Message, String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let client = UdpClient::new(self.dns_addr(), poll);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("(exited with {status})\n{}", self.log()));
            }
            if let Some(answer) = client.try_exchange(probe) {
                return Ok(answer);
            }
        }
        Err(format!(
            "(no answer to {:?} within {START_TIMEOUT:?})\n{}",
            probe.queries,
            self.log()
        ))
    }

    /// Stops the server with SIGTERM and waits up to 5 s for it to exit
    /// (then kills it); its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().expect("wait for keiko-dns")
    }

    /// Stops the server (SIGTERM) and starts a new process on the same
    /// workspace (config, ports, `state_dir`, health stubs); its log is
    /// appended to the same file. Returns once the new one answers SOA.
    pub fn restart(&mut self) {
        let soa = Message::query_for(ORIGIN, RecordType::SOA);
        self.restart_with(&soa);
    }

    /// Like [`Server::restart`], but polls with `probe` every 5 ms from the
    /// moment the process is spawned and returns the very first answer the
    /// new process gives to it (for "what does it say before its first
    /// health round" checks).
    pub fn restart_with(&mut self, probe: &Message) -> Message {
        let status = self.stop();
        assert!(
            status.success(),
            "keiko-dns did not stop cleanly on SIGTERM ({status}); log:\n{}",
            self.log()
        );
        self.child = spawn_child(&self.ws, true);
        self.wait_started(probe, Duration::from_millis(5))
            .unwrap_or_else(|log| panic!("keiko-dns did not restart; its log:\n{log}"))
    }

    /// Starts `PROGRAM serve --takeover EXTRA...` on this workspace and
    /// makes it this server's process; returns the process it takes over,
    /// still running (see [`wait_exit`]).
    pub fn take_over_with(&mut self, program: &Path, extra: &[&str]) -> Child {
        let mut args = vec!["--takeover"];
        args.extend_from_slice(extra);
        let new = spawn_serve(&self.ws, program, &args, true);
        std::mem::replace(&mut self.child, new)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.is_alive(),
            "keiko-dns exited; its log:\n{}",
            self.log()
        );
    }

    pub fn sighup(&self) {
        signal(self.pid(), libc::SIGHUP);
    }

    /// Sends SIGHUP, waits until the server logs the outcome of the reload
    /// ("reloaded ..." or "reload failed ..."; the reload runs in the
    /// background, so the signal alone says nothing), and returns what it
    /// logged since the signal.
    pub fn reload(&self) -> String {
        const OUTCOMES: [&str; 2] = ["reloaded", "reload failed"];
        let before = self.log().len();
        self.sighup();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let new = self.log()[before..].to_string();
            if OUTCOMES.iter().any(|o| new.to_lowercase().contains(o)) {
                // The error text follows on the next lines; let it land.
                std::thread::sleep(Duration::from_millis(100));
                return self.log()[before..].to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no reload outcome logged within 10 s of SIGHUP; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn rewrite_config(&self, text: &str) {
        self.ws.write_config(text);
    }

    pub fn rewrite_zone(&self, text: &str) {
        self.ws.write_zone(text);
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.ws.log()
    }
}

/// Spawns `keiko-dns serve` on the workspace's config, stderr to
/// `server.log` (appended to when `append`).
pub fn spawn_child(ws: &Workspace, append: bool) -> Child {
    spawn_serve(ws, Path::new(binary()), &[], append)
}

/// Spawns `PROGRAM serve --config <the workspace's config> EXTRA...` (a
/// copy of the binary, for upgrades), stderr to `server.log` (appended to
/// when `append`).
pub fn spawn_serve(ws: &Workspace, program: &Path, extra: &[&str], append: bool) -> Child {
    serve_command(ws, program, extra, append)
        .spawn()
        .expect("spawn keiko-dns")
}

/// The command [`spawn_serve`] runs, to add to before spawning it.
pub fn serve_command(ws: &Workspace, program: &Path, extra: &[&str], append: bool) -> Command {
    let path = ws.path().join("server.log");
    if !append {
        fs::write(&path, "").expect("create log file");
    }
    // Always appending: two processes write at once during a takeover.
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log file");
    let mut command = Command::new(program);
    command
        .args(["serve", "--config"])
        .arg(ws.config_path())
        .args(extra)
        .current_dir(ws.path())
        .env_remove("KEIKO_ADMIN_TOKEN")
        // A test server never talks to a systemd the tests run under.
        .env_remove("NOTIFY_SOCKET")
        // Debug level would flood the log in the load tests.
        .env("KEIKO_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    command
}

impl Drop for Server {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to `timeout` for `child` to exit: its status and how long it
/// took, or None (and the child is killed) if it did not.
pub fn wait_exit(
    child: &mut Child,
    timeout: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let found = wait_until(timeout, Duration::from_millis(5), || {
        child.try_wait().ok().flatten()
    });
    if found.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    found
}

/// Sends `sig` to `pid`, which must be a child of this test that has not
/// been reaped yet (so the pid cannot have been reused).
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) takes no pointers; per the contract above the pid is
    // our own unreaped child's.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
}
