//! barge-monitor driven as the engine drives it: spawn it with a sync pipe,
//! wait for its first process, read `{"pid":N}`, attach over the
//! SOCK_SEQPACKET socket, `RUNTIME start`, then check the attach frames, the
//! exit file and the log. The monitor binary is `$BARGE_MONITOR` or
//! `$CARGO_TARGET_DIR/release/barge-monitor` (`cargo build --release`).

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use barge_integration::{inherit_fd, need_root, runtime, wait_until, workspace, Container, Value};

fn monitor_bin() -> PathBuf {
    match std::env::var_os("BARGE_MONITOR") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .filter(|t| !t.is_empty())
                .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
            target.join("release/barge-monitor")
        }
    }
}

macro_rules! need_monitor {
    () => {
        need_root!();
        assert!(
            monitor_bin().exists(),
            "{} not found: run `cargo build --release -p barge-monitor` or set BARGE_MONITOR",
            monitor_bin().display()
        );
    };
}

/// One container under a monitor. Dropping it waits for the monitor to go
/// (after a forced delete) and then the container's own leak check runs.
struct Mon {
    c: Container,
    dir: tempfile::TempDir,
    /// The sync line the monitor wrote.
    sync: Value,
}

impl Mon {
    fn new(tag: &str, args: &[&str]) -> Mon {
        let mut c = Container::new(tag);
        c.args(args);
        let dir = tempfile::Builder::new()
            .prefix("barge-mon-")
            .tempdir()
            .unwrap();
        Mon {
            c,
            dir,
            sync: Value::Null,
        }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir().join("ctr.log")
    }

    /// Spawn the monitor with `extra` flags; returns the sync line.
    fn spawn(&mut self, extra: &[&str]) -> Value {
        self.c.write_config();
        let (mut reader, writer) = std::io::pipe().unwrap();
        let mut cmd = Command::new(monitor_bin());
        cmd.arg("--id")
            .arg(&self.c.id)
            .arg("--runtime")
            .arg(runtime())
            .arg("--runtime-arg")
            .arg("--root")
            .arg("--runtime-arg")
            .arg(self.c.state_root.path())
            .arg("--bundle")
            .arg(self.c.bundle_path())
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--sync-fd")
            .arg("9")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        inherit_fd(&mut cmd, writer.as_raw_fd(), 9);
        let st = cmd.status().unwrap();
        assert!(st.success(), "monitor's first process failed: {st:?}");
        drop(writer);
        // Read until EOF, with a timeout.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = reader.read_to_string(&mut s);
            let _ = tx.send(s);
        });
        let text = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("sync fd: no EOF within 30 s");
        self.sync = serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("sync line {text:?} is not JSON: {e}"));
        self.sync.clone()
    }

    /// Spawn, expecting success.
    fn create(&mut self, extra: &[&str]) -> i32 {
        let v = self.spawn(extra);
        let pid = v["pid"]
            .as_i64()
            .unwrap_or_else(|| panic!("monitor reported {v}"));
        assert!(pid > 0);
        pid as i32
    }

    fn monitor_pid(&self) -> i32 {
        fs::read_to_string(self.dir().join("monitor.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn attach(&self) -> Attach {
        Attach::connect(&self.dir().join("attach"))
    }

    fn start(&self) {
        self.c.start().ok();
    }

    /// Wait for the monitor process to exit.
    #[track_caller]
    fn wait_monitor_gone(&self) {
        let pid = self.monitor_pid();
        let gone = wait_until(Duration::from_secs(20), || {
            !Path::new(&format!("/proc/{pid}")).exists()
        });
        assert!(gone, "monitor {pid} still running");
    }

    fn exit_file(&self) -> Value {
        let p = self.dir().join("exit");
        assert!(
            wait_until(Duration::from_secs(10), || p.exists()),
            "no exit file"
        );
        serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap()
    }
}

impl Drop for Mon {
    fn drop(&mut self) {
        if self.c.status() != "" {
            let _ = self.c.delete_force();
        }
        if let Ok(pid) = fs::read_to_string(self.dir().join("monitor.pid")) {
            let pid = pid.trim().to_string();
            let gone = wait_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{pid}")).exists()
            });
            if !gone && !std::thread::panicking() {
                panic!("LEAK: monitor {pid} still running");
            }
        }
    }
}

/// A SOCK_SEQPACKET attach connection.
struct Attach(OwnedFd);

#[derive(Debug, Default)]
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    exit: Option<i32>,
    /// The connection closed after the exit frame.
    closed: bool,
}

impl Attach {
    fn connect(path: &Path) -> Attach {
        // SAFETY: plain socket creation; the fd is owned right away.
        let fd =
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh socket nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_un is plain data; all-zero is valid.
        let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_encoded_bytes();
        assert!(bytes.len() < addr.sun_path.len(), "socket path too long");
        for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = *s as libc::c_char;
        }
        // SAFETY: addr is a valid sockaddr_un of the given size.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
            )
        };
        assert_eq!(
            r,
            0,
            "connect {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        Attach(fd)
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer for its length.
        let n = unsafe {
            libc::send(
                self.0.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    fn stdin(&self, data: &[u8]) {
        let mut f = vec![0u8];
        f.extend_from_slice(data);
        self.send(&f);
    }

    /// One frame, or None on EOF / timeout.
    fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let mut p = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: p is a valid pollfd.
        let r = unsafe { libc::poll(&raw mut p, 1, timeout.as_millis() as i32) };
        if r <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            return None;
        }
        buf.truncate(n as usize);
        Some(buf)
    }

    /// Read frames until the exit frame and the close that follows it.
    fn collect(&self, timeout: Duration) -> Collected {
        let deadline = Instant::now() + timeout;
        let mut c = Collected::default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "attach: timed out; so far {c:?}");
            let Some(f) = self.recv(left) else {
                c.closed = true;
                return c;
            };
            match f[0] {
                1 => c.stdout.extend_from_slice(&f[1..]),
                2 => c.stderr.extend_from_slice(&f[1..]),
                3 => {
                    assert_eq!(f.len(), 5, "exit frame {f:?}");
                    c.exit = Some(i32::from_le_bytes([f[1], f[2], f[3], f[4]]));
                }
                t => panic!("unknown frame type {t}"),
            }
        }
    }
}

fn s(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn output_exit_and_k8s_file_log() {
    need_monitor!();
    let mut m = Mon::new(
        "mon-k8s",
        &[
            "sh",
            "-c",
            "echo out1; echo err1 >&2; echo out2; printf part; exit 3",
        ],
    );
    let log = m.log_path();
    let pid = m.create(&[
        "--log-driver",
        "k8s-file",
        "--log-path",
        log.to_str().unwrap(),
    ]);
    assert_eq!(m.c.pid(), pid);
    // Monitor and container: the container's init is the monitor's child.
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ppid,
        m.monitor_pid(),
        "the monitor must be the init's parent"
    );
    let a = m.attach();
    m.start();
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(s(&got.stdout), "out1\nout2\npart");
    assert_eq!(s(&got.stderr), "err1\n");
    assert_eq!(got.exit, Some(3));
    assert!(got.closed);

    let exit = m.exit_file();
    assert_eq!(exit["exit_code"], 3);
    assert_eq!(exit["oom_killed"], false);
    let at = exit["exited_at"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(
        at <= now && now - at < 60_000_000_000,
        "exited_at {at} vs now {now}"
    );
    m.wait_monitor_gone();
    assert!(
        !m.dir().join("attach").exists(),
        "attach socket left behind"
    );

    let text = fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "log:\n{text}");
    let mut by_stream: Vec<(String, String, String)> = Vec::new();
    for l in &lines {
        let mut parts = l.splitn(4, ' ');
        let ts = parts.next().unwrap();
        // 2026-12-01T02:03:04.123456789+00:00
        assert_eq!(ts.len(), 35, "timestamp {ts}");
        assert!(
            ts.ends_with("+00:00") && ts.as_bytes()[10] == b'T',
            "timestamp {ts}"
        );
        by_stream.push((
            parts.next().unwrap().to_string(),
            parts.next().unwrap().to_string(),
            parts.next().unwrap_or("").to_string(),
        ));
    }
    let stdout: Vec<_> = by_stream.iter().filter(|l| l.0 == "stdout").collect();
    assert_eq!(
        stdout
            .iter()
            .map(|l| (l.1.as_str(), l.2.as_str()))
            .collect::<Vec<_>>(),
        vec![("F", "out1"), ("F", "out2"), ("P", "part")]
    );
    assert!(by_stream.contains(&("stderr".into(), "F".into(), "err1".into())));
}

#[test]
fn json_file_log() {
    need_monitor!();
    let mut m = Mon::new(
        "mon-json",
        &["sh", "-c", "echo 'a \"q\" \\ b'; echo e >&2; printf x"],
    );
    let log = m.log_path();
    m.create(&[
        "--log-driver",
        "json-file",
        "--log-path",
        log.to_str().unwrap(),
    ]);
    let a = m.attach();
    m.start();
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(got.exit, Some(0));
    m.wait_monitor_gone();
    let text = fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let joined = |stream: &str| -> String {
        entries
            .iter()
            .filter(|e| e["stream"] == stream)
            .map(|e| e["log"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(joined("stdout"), "a \"q\" \\ b\nx");
    assert_eq!(joined("stderr"), "e\n");
    for e in &entries {
        let t = e["time"].as_str().unwrap();
        assert!(t.ends_with('Z') && t.len() == 30, "time {t}");
    }
}

#[test]
fn stdin_round_trip_and_close() {
    need_monitor!();
    let mut m = Mon::new("mon-stdin", &["cat"]);
    m.create(&["--stdin"]);
    let a = m.attach();
    m.start();
    a.stdin(b"hello ");
    a.stdin(b"world\n");
    a.send(&[2]);
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(s(&got.stdout), "hello world\n");
    assert_eq!(got.exit, Some(0));
    assert_eq!(m.exit_file()["exit_code"], 0);
}

#[test]
fn no_stdin_means_dev_null_and_no_fd_leaks() {
    need_monitor!();
    let mut m = Mon::new(
        "mon-fds",
        &["sh", "-c", "cat; ls /proc/self/fd | tr '\\n' ' '"],
    );
    m.create(&[]);
    let a = m.attach();
    m.start();
    let got = a.collect(Duration::from_secs(20));
    // cat read EOF at once; ls sees 0-2 plus its own directory fd.
    assert_eq!(s(&got.stdout).trim(), "0 1 2 3", "{got:?}");
    assert_eq!(got.exit, Some(0));
}

#[test]
fn terminal_resize_and_input() {
    need_monitor!();
    let mut m = Mon::new("mon-tty", &["sh", "-c", "read x; stty size; echo got=$x"]);
    m.c.config["process"]["terminal"] = serde_json::json!(true);
    let log = m.log_path();
    m.create(&["--terminal", "--stdin", "--log-path", log.to_str().unwrap()]);
    let a = m.attach();
    // rows 40, cols 123; handled before the input that follows it.
    let mut f = vec![1u8];
    f.extend_from_slice(&40u16.to_le_bytes());
    f.extend_from_slice(&123u16.to_le_bytes());
    a.send(&f);
    m.start();
    a.stdin(b"abc\n");
    let got = a.collect(Duration::from_secs(20));
    let out = s(&got.stdout);
    assert!(out.contains("40 123\r\n"), "{out:?}");
    assert!(out.contains("got=abc"), "{out:?}");
    assert!(got.stderr.is_empty());
    assert_eq!(got.exit, Some(0));
    m.wait_monitor_gone();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains(" stdout F 40 123\r"), "log:\n{text}");
    assert!(!text.contains(" stderr "), "log:\n{text}");
}

#[test]
fn create_failure_is_reported() {
    need_monitor!();
    // A command that does not exist (the runtime checks it at create), and
    // a rootfs that does not exist.
    for (tag, bad_rootfs, needle) in [
        ("mon-badcmd", false, "/nonexistent-cmd"),
        ("mon-badroot", true, "/nonexistent/barge-rootfs"),
    ] {
        let mut m = Mon::new(tag, &["/nonexistent-cmd"]);
        if bad_rootfs {
            m.c.args(&["true"]);
            m.c.config["root"]["path"] = serde_json::json!("/nonexistent/barge-rootfs");
        }
        let v = m.spawn(&[]);
        let err = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(err.contains(needle), "{v}");
        assert!(err == err.trim(), "not trimmed: {err:?}");
        let code = v["exit_code"].as_i64().unwrap();
        assert_ne!(code, 0, "{v}");
        m.wait_monitor_gone();
        assert!(!m.dir().join("attach").exists());
        assert!(!m.dir().join("exit").exists());
    }
}

#[test]
fn bad_command_line_is_reported() {
    need_monitor!();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new(monitor_bin());
    cmd.args(["--id", "x", "--sync-fd", "9", "--bogus", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    inherit_fd(&mut cmd, writer.as_raw_fd(), 9);
    let st = cmd.status().unwrap();
    drop(writer);
    assert!(!st.success());
    let mut text = String::new();
    reader.read_to_string(&mut text).unwrap();
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("unknown option"),
        "{v}"
    );
}

#[test]
fn sigkill_gives_137() {
    need_monitor!();
    let mut m = Mon::new("mon-kill", &["sleep", "100"]);
    m.create(&[]);
    let a = m.attach();
    m.start();
    m.c.kill("KILL").ok();
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(got.exit, Some(137));
    assert_eq!(m.exit_file()["exit_code"], 137);
    m.wait_monitor_gone();
}

#[test]
fn deleted_before_start() {
    need_monitor!();
    let mut m = Mon::new("mon-del", &["true"]);
    m.create(&[]);
    let a = m.attach();
    m.c.delete_force().ok();
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(got.exit, Some(137));
    m.wait_monitor_gone();
    assert_eq!(m.exit_file()["exit_code"], 137);
}

#[test]
fn exit_command_runs_detached() {
    need_monitor!();
    let mut m = Mon::new("mon-exitcmd", &["true"]);
    let marker = m.dir().join("exit-command-ran");
    let script = format!(
        "echo \"$0 $1 sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$\" > {}",
        marker.display()
    );
    m.create(&[
        "--exit-command",
        "/bin/sh",
        "--exit-command-arg",
        "-c",
        "--exit-command-arg",
        &script,
        "--exit-command-arg",
        "argzero",
        "--exit-command-arg",
        "arg1",
    ]);
    m.start();
    assert!(
        wait_until(Duration::from_secs(20), || fs::read_to_string(&marker)
            .is_ok_and(|t| t.ends_with('\n'))),
        "exit command did not run"
    );
    let t = fs::read_to_string(&marker).unwrap();
    assert!(t.starts_with("argzero arg1 "), "{t:?}");
    // Its own session: session id == its pid.
    let sid = t.split("sid=").nth(1).unwrap().split(' ').next().unwrap();
    let pid = t.split("pid=").nth(1).unwrap().trim();
    assert_eq!(sid, pid, "{t:?}");
    m.wait_monitor_gone();
    assert_eq!(m.exit_file()["exit_code"], 0);
}

#[test]
fn slow_client_does_not_block_the_container() {
    need_monitor!();
    // 4 MiB of output; one client never reads, another does.
    let mut m = Mon::new(
        "mon-slow",
        &[
            "sh",
            "-c",
            "dd if=/dev/zero bs=4096 count=1024 2>/dev/null | tr '\\0' x; echo; echo end",
        ],
    );
    let log = m.log_path();
    m.create(&[
        "--log-driver",
        "k8s-file",
        "--log-path",
        log.to_str().unwrap(),
    ]);
    let stuck = m.attach();
    let reader = m.attach();
    m.start();
    let got = reader.collect(Duration::from_secs(60));
    assert_eq!(got.exit, Some(0));
    m.wait_monitor_gone();
    // The log has everything.
    let text = fs::read_to_string(&log).unwrap();
    let xs: usize = text
        .lines()
        .filter(|l| l.contains(" stdout "))
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or("").len())
        .sum::<usize>();
    assert_eq!(xs, 4 * 1024 * 1024 + 3, "x bytes plus 'end'");
    assert!(text.ends_with(" stdout F end\n"));
    drop(stuck);
}

#[test]
fn log_size_max_truncates() {
    need_monitor!();
    let mut m = Mon::new(
        "mon-logmax",
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
        ],
    );
    let log = m.log_path();
    m.create(&[
        "--log-path",
        log.to_str().unwrap(),
        "--log-size-max",
        "2000",
    ]);
    let a = m.attach();
    m.start();
    assert_eq!(a.collect(Duration::from_secs(20)).exit, Some(0));
    m.wait_monitor_gone();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.len() <= 2000, "log is {} bytes", text.len());
    assert!(text.ends_with(" stdout F line-199\n"), "log:\n{text}");
}

#[test]
fn oom_kill_is_recorded() {
    need_monitor!();
    let mut m = Mon::new("mon-oom", &["barge-check", "alloc", "200"]);
    let lim = 32 * 1024 * 1024;
    m.c.config["linux"]["resources"]["memory"] = serde_json::json!({"limit": lim, "swap": lim});
    m.create(&[]);
    let a = m.attach();
    m.start();
    let got = a.collect(Duration::from_secs(30));
    assert_eq!(got.exit, Some(137), "{got:?}");
    let exit = m.exit_file();
    assert_eq!(exit["exit_code"], 137);
    assert_eq!(exit["oom_killed"], true, "{exit}");
    m.wait_monitor_gone();
}

#[test]
fn monitor_survives_sigterm_and_resets_signals() {
    need_monitor!();
    let mut m = Mon::new("mon-term", &["sleep", "100"]);
    m.create(&[]);
    let a = m.attach();
    m.start();
    let mon = m.monitor_pid();
    // SAFETY: kill(2) on a pid we know; no memory involved.
    unsafe {
        libc::kill(mon, libc::SIGTERM);
        libc::kill(mon, libc::SIGINT);
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        Path::new(&format!("/proc/{mon}")).exists(),
        "monitor died of SIGTERM"
    );
    // Whatever the caller ignored or blocked, the container starts with
    // default dispositions and an empty mask (the test harness ignores
    // signal 32, say; the monitor blocks CHLD/PIPE/TERM/INT/HUP).
    let status = fs::read_to_string(format!("/proc/{}/status", m.c.pid())).unwrap();
    for key in ["SigBlk:", "SigIgn:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        assert!(line.ends_with("0000000000000000"), "container init {line}");
    }
    m.c.kill("KILL").ok();
    assert_eq!(a.collect(Duration::from_secs(20)).exit, Some(137));
    m.wait_monitor_gone();
}

#[test]
fn caller_gone_before_sync() {
    need_monitor!();
    // The engine's CLI may die right after the monitor's first process
    // exits: the sync write then fails (EPIPE) and the monitor carries on.
    let m = Mon::new("mon-orphan", &["sh", "-c", "echo still-here"]);
    m.c.write_config();
    let (reader, writer) = std::io::pipe().unwrap();
    let mut cmd = Command::new(monitor_bin());
    cmd.arg("--id")
        .arg(&m.c.id)
        .arg("--runtime")
        .arg(runtime())
        .args(["--runtime-arg", "--root", "--runtime-arg"])
        .arg(m.c.state_root.path())
        .arg("--bundle")
        .arg(m.c.bundle_path())
        .arg("--dir")
        .arg(m.dir.path())
        .args(["--sync-fd", "9"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    inherit_fd(&mut cmd, writer.as_raw_fd(), 9);
    drop(reader);
    assert!(cmd.status().unwrap().success());
    drop(writer);
    let attach = m.dir().join("attach");
    let pidfile = m.dir().join("pidfile");
    assert!(
        wait_until(Duration::from_secs(20), || attach.exists()
            && pidfile.exists()),
        "monitor did not create the container"
    );
    // The pidfile is written by `create`; wait for `created`.
    m.c.wait_status("created", Duration::from_secs(20));
    let a = m.attach();
    m.start();
    let got = a.collect(Duration::from_secs(20));
    assert_eq!(s(&got.stdout), "still-here\n");
    assert_eq!(got.exit, Some(0));
    m.wait_monitor_gone();
}

#[test]
fn long_dir_paths_use_proc_fd() {
    need_monitor!();
    let mut m = Mon::new("mon-long", &["sh", "-c", "read x; echo tty-$x"]);
    m.c.config["process"]["terminal"] = serde_json::json!(true);
    // DIR/attach longer than sockaddr_un allows (the old dir is removed).
    m.dir = tempfile::Builder::new()
        .prefix(&"long".repeat(30))
        .tempdir()
        .unwrap();
    assert!(m.dir().join("attach").as_os_str().len() > 108);
    m.create(&["--terminal", "--stdin"]);
    let dirfd = fs::File::open(m.dir()).unwrap();
    let a = Attach::connect(Path::new(&format!(
        "/proc/self/fd/{}/attach",
        dirfd.as_raw_fd()
    )));
    m.start();
    a.stdin(b"ok\n");
    let got = a.collect(Duration::from_secs(20));
    assert!(s(&got.stdout).contains("tty-ok"), "{got:?}");
    assert_eq!(got.exit, Some(0));
    m.wait_monitor_gone();
    assert!(!m.dir().join("attach").exists());
    assert!(!m.dir().join("console.sock").exists());
}
