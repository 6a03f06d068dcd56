//! podman as a real client of barge-runtime.
//!
//! Every test drives `podman --runtime <RUNTIME>` where RUNTIME is
//! `$BARGE_RUNTIME` or `<workspace>/target/release/barge-runtime`. Validate
//! the suite itself against runc with `BARGE_RUNTIME=$(command -v runc)`.
//!
//! `scripts/podman-setup.sh` runs once per test binary (containers.conf with
//! runc/cgroupfs/lowered ulimits, storage check, the image
//! `localhost/barge-busybox:latest` imported from `build/bundle/rootfs`).
//! podman's storage is shared, so the tests hold one global lock. Each test
//! names its containers and pods `barge-pt-<pid>-<test>...`, removes them
//! with `podman rm -f` / `pod rm -f` (also when the test fails) and then
//! checks nothing leaked: no container left in podman, no runtime state
//! directory `<root>/<id>` under `/run/barge-runtime` or `/run/runc` (podman
//! passes no `--root`, so the runtime's default root is used), no cgroup
//! `libpod-<id>` under `/sys/fs/cgroup/*/libpod_parent`.
//!
//! Needs root and podman; without root every test prints SKIP and passes.
//! Only std and serde_json: commands write to files (never pipes, since a
//! detached conmon could inherit them) and are killed after a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/barge-busybox:latest";
const TIMEOUT: Duration = Duration::from_mins(2);

static SETUP: Once = Once::new();
static LOCK: Mutex<()> = Mutex::new(());
static SEQ: AtomicU32 = AtomicU32::new(0);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn runtime() -> PathBuf {
    match std::env::var_os("BARGE_RUNTIME") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                std::env::current_dir().unwrap().join(p)
            }
        }
        _ => workspace().join("target/release/barge-runtime"),
    }
}

fn is_root() -> bool {
    // /proc/self/status "Uid:" line: real, effective, ...
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The output of one finished command.
struct Out {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    what: String,
}

impl Out {
    fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    #[track_caller]
    fn ok(self) -> Self {
        assert!(
            self.status.success(),
            "{} failed ({}):\nstdout: {}\nstderr: {}",
            self.what,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
    #[track_caller]
    fn code_is(self, want: i32) -> Self {
        assert_eq!(
            self.code(),
            want,
            "{}: exit code\nstdout: {}\nstderr: {}",
            self.what,
            self.stdout,
            self.stderr
        );
        self
    }
}

fn tmpfile(tag: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "barge-podman-test-{}-{n}-{tag}",
        std::process::id()
    ))
}

/// Spawns `cmd` with stdout/stderr going to files; `input` (if any) is
/// written to its stdin, which stays open until the process exits.
fn run_cmd(mut cmd: Command, input: Option<&str>, timeout: Duration) -> Out {
    let what = format!("{cmd:?}");
    let (po, pe) = (tmpfile("out"), tmpfile("err"));
    cmd.stdout(fs::File::create(&po).unwrap())
        .stderr(fs::File::create(&pe).unwrap());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child: Child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdin = input.map(|s| {
        let mut w = child.stdin.take().unwrap();
        w.write_all(s.as_bytes()).unwrap();
        w
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let (o, e) = (
                fs::read_to_string(&po).unwrap_or_default(),
                fs::read_to_string(&pe).unwrap_or_default(),
            );
            let _ = (fs::remove_file(&po), fs::remove_file(&pe));
            panic!("{what} timed out after {timeout:?}\nstdout: {o}\nstderr: {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let stdout = String::from_utf8_lossy(&fs::read(&po).unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&fs::read(&pe).unwrap_or_default()).into_owned();
    let _ = (fs::remove_file(&po), fs::remove_file(&pe));
    Out {
        status,
        stdout,
        stderr,
        what,
    }
}

fn podman_cmd(args: &[&str]) -> Command {
    let mut c = Command::new("podman");
    c.arg("--runtime").arg(runtime()).args(args);
    c
}

fn podman(args: &[&str]) -> Out {
    run_cmd(podman_cmd(args), None, TIMEOUT)
}

/// Shell-quotes one word for `script -c`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs podman under a real pty (`script` from util-linux/bsdutils), typing `input`.
fn podman_tty(args: &[&str], input: &str) -> Out {
    let mut line = format!(
        "exec podman --runtime {}",
        sh_quote(runtime().to_str().unwrap())
    );
    for a in args {
        line.push(' ');
        line.push_str(&sh_quote(a));
    }
    let mut c = Command::new("script");
    c.args(["-q", "-e", "-c", &line, "/dev/null"]);
    run_cmd(c, Some(input), TIMEOUT)
}

/// Per-test context: takes the global lock, runs setup once, tracks the
/// containers and pods to remove and check for leaks.
struct Ctx {
    name: String,
    containers: Vec<String>,
    pods: Vec<String>,
    ids: Vec<String>,
    cidfiles: Vec<PathBuf>,
    _guard: MutexGuard<'static, ()>,
}

impl Ctx {
    /// `None` (test skipped) when not root.
    fn new(test: &str) -> Option<Self> {
        if !is_root() {
            eprintln!("SKIP {test}: the podman suite needs root");
            return None;
        }
        let guard = LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let rt = runtime();
        assert!(rt.is_file(), "runtime {} not found: build it (cargo build --release -p barge-runtime) or set BARGE_RUNTIME", rt.display());
        SETUP.call_once(|| {
            let mut c = Command::new(workspace().join("scripts/podman-setup.sh"));
            c.env("BARGE_RUNTIME", &rt);
            run_cmd(c, None, Duration::from_mins(5)).ok();
        });
        Some(Ctx {
            name: format!("barge-pt-{}-{test}", std::process::id()),
            containers: Vec::new(),
            pods: Vec::new(),
            ids: Vec::new(),
            cidfiles: Vec::new(),
            _guard: guard,
        })
    }

    /// A container name owned by this test (removed at the end).
    fn ctr(&mut self, suffix: &str) -> String {
        let n = format!("{}-{suffix}", self.name);
        // Leftover from an earlier crashed run with the same pid: remove.
        let _ = podman(&["rm", "-f", "-t", "0", &n]);
        self.containers.push(n.clone());
        n
    }

    /// A fresh `--cidfile` path: the id it receives is leak-checked in `finish`
    /// (for `--rm` containers, which are gone before `track` could see them).
    fn cidfile(&mut self) -> String {
        let p = tmpfile("cid");
        self.cidfiles.push(p.clone());
        p.to_str().unwrap().to_string()
    }

    fn pod(&mut self, suffix: &str) -> String {
        let n = format!("{}-{suffix}", self.name);
        let _ = podman(&["pod", "rm", "-f", "-t", "0", &n]);
        self.pods.push(n.clone());
        n
    }

    /// Remembers a container's full id (for the leak check) by name.
    fn track(&mut self, name: &str) {
        let out = podman(&["inspect", "--format", "{{.Id}}", name]);
        if out.status.success() {
            let id = out.stdout.trim().to_string();
            if !id.is_empty() && !self.ids.contains(&id) {
                self.ids.push(id);
            }
        }
    }

    fn track_pod_infra(&mut self, pod: &str) {
        let out = podman(&["pod", "inspect", "--format", "{{.InfraContainerID}}", pod]);
        if out.status.success() && !out.stdout.trim().is_empty() {
            self.ids.push(out.stdout.trim().to_string());
        }
    }

    fn cleanup(&mut self) {
        for c in self.containers.drain(..) {
            let _ = podman(&["rm", "-f", "-t", "0", &c]);
        }
        for p in self.pods.drain(..) {
            let _ = podman(&["pod", "rm", "-f", "-t", "0", &p]);
        }
    }

    /// Removes everything and asserts nothing leaked.
    fn finish(mut self) {
        self.cleanup();
        for f in std::mem::take(&mut self.cidfiles) {
            if let Ok(id) = fs::read_to_string(&f) {
                if !id.trim().is_empty() {
                    self.ids.push(id.trim().to_string());
                }
            }
            let _ = fs::remove_file(&f);
        }
        let ps = podman(&["ps", "-a", "--format", "{{.Names}}"]).ok();
        let left: Vec<&str> = ps
            .stdout
            .lines()
            .filter(|l| l.starts_with(&self.name))
            .collect();
        assert!(left.is_empty(), "containers left in podman: {left:?}");
        let pods = podman(&["pod", "ps", "--format", "{{.Name}}"]).ok();
        let left: Vec<&str> = pods
            .stdout
            .lines()
            .filter(|l| l.starts_with(&self.name))
            .collect();
        assert!(left.is_empty(), "pods left in podman: {left:?}");
        let mut roots: Vec<PathBuf> = vec!["/run/barge-runtime".into(), "/run/runc".into()];
        if let Some(r) = std::env::var_os("BARGE_RUNTIME_ROOT") {
            roots.push(r.into());
        }
        let cgroups = libpod_cgroups();
        for id in &self.ids {
            for r in &roots {
                let d = r.join(id);
                assert!(!d.exists(), "runtime state left behind: {}", d.display());
            }
            let leaked: Vec<&PathBuf> = cgroups
                .iter()
                .filter(|p| p.to_string_lossy().contains(id.as_str()))
                .collect();
            assert!(
                leaked.is_empty(),
                "cgroups left behind for {id}: {leaked:?}"
            );
        }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.cleanup();
        for f in &self.cidfiles {
            let _ = fs::remove_file(f);
        }
    }
}

/// Every directory below `/sys/fs/cgroup/<hierarchy>/libpod_parent` (depth ≤ 3).
fn libpod_cgroups() -> Vec<PathBuf> {
    fn walk(d: &Path, depth: u32, out: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        if let Ok(rd) = fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                    walk(&e.path(), depth - 1, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup/libpod_parent"), 3, &mut out);
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            walk(&e.path().join("libpod_parent"), 3, &mut out);
        }
    }
    out
}

fn inspect(name: &str) -> serde_json::Value {
    let out = podman(&["inspect", name]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("inspect {name}: {e}: {}", out.stdout));
    v[0].clone()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------- tests

#[test]
fn run_rm_output_and_exit_code() {
    let Some(mut cx) = Ctx::new("runrm") else {
        return;
    };
    let a = cx.ctr("a");
    let cid = cx.cidfile();
    let out = podman(&[
        "run",
        "--rm",
        "--cidfile",
        &cid,
        "--name",
        &a,
        IMAGE,
        "echo",
        "hi",
    ])
    .ok();
    assert_eq!(out.stdout, "hi\n", "stderr: {}", out.stderr);
    let b = cx.ctr("b");
    let cid = cx.cidfile();
    podman(&[
        "run",
        "--rm",
        "--cidfile",
        &cid,
        "--name",
        &b,
        IMAGE,
        "sh",
        "-c",
        "exit 3",
    ])
    .code_is(3);
    // stderr of the container reaches podman's stderr.
    let c = cx.ctr("c");
    let out = podman(&[
        "run",
        "--rm",
        "--name",
        &c,
        IMAGE,
        "sh",
        "-c",
        "echo to-stderr >&2; exit 0",
    ])
    .ok();
    assert!(out.stderr.contains("to-stderr"), "stderr: {}", out.stderr);
    // --rm removed them already.
    for n in [&a, &b, &c] {
        assert!(
            !podman(&["container", "exists", n]).status.success(),
            "{n} not removed by --rm"
        );
    }
    cx.finish();
}

#[test]
fn detached_exec_stop() {
    let Some(mut cx) = Ctx::new("detached") else {
        return;
    };
    let n = cx.ctr("d");
    podman(&["run", "-d", "--name", &n, IMAGE, "sleep", "1000"]).ok();
    cx.track(&n);
    let st = inspect(&n);
    assert_eq!(st["State"]["Status"], "running", "{}", st["State"]);
    // podman really used the runtime under test.
    let used = st["OCIRuntime"].as_str().unwrap_or_default();
    let rt = runtime();
    assert!(
        used == rt.to_str().unwrap() || Some(used) == rt.file_name().and_then(|f| f.to_str()),
        "podman used runtime {used:?}, not {}",
        rt.display()
    );
    assert!(
        st["State"]["Pid"].as_i64().unwrap_or(0) > 0,
        "{}",
        st["State"]
    );

    let host = podman(&["exec", &n, "cat", "/etc/hostname"]).ok();
    let want = st["Config"]["Hostname"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!host.stdout.trim().is_empty(), "empty /etc/hostname");
    assert_eq!(host.stdout.trim(), want, "exec saw another hostname");
    // exec shares the container's pid namespace and propagates exit codes.
    let ps = podman(&["exec", &n, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]).ok();
    assert!(
        ps.stdout.starts_with("sleep 1000"),
        "pid 1 in exec's view: {:?}",
        ps.stdout
    );
    podman(&["exec", &n, "sh", "-c", "exit 5"]).code_is(5);
    // exec with a tty through a pty.
    let t = podman_tty(
        &["exec", "-it", &n, "sh", "-c", "tty; echo exec-$((40+2))"],
        "",
    );
    assert!(t.status.success(), "exec -it: {}\n{}", t.stdout, t.stderr);
    assert!(
        t.stdout.contains("/dev/pts/") && t.stdout.contains("exec-42"),
        "exec -it output: {:?}",
        t.stdout
    );

    // sleep as pid 1 ignores SIGTERM: stop escalates to SIGKILL after 2 s.
    let t0 = Instant::now();
    podman(&["stop", "-t", "2", &n]).ok();
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "stop took {:?}",
        t0.elapsed()
    );
    let st = inspect(&n);
    assert_eq!(st["State"]["Status"], "exited", "{}", st["State"]);
    assert_eq!(st["State"]["Running"], false);
    assert_eq!(st["State"]["ExitCode"], 137, "{}", st["State"]);
    // A stopped container starts again.
    podman(&["start", &n]).ok();
    assert_eq!(inspect(&n)["State"]["Status"], "running");
    podman(&["kill", &n]).ok();
    podman(&["wait", &n]).ok();
    cx.finish();
}

#[test]
fn interactive_tty() {
    let Some(mut cx) = Ctx::new("tty") else {
        return;
    };
    let n = cx.ctr("it");
    let cid = cx.cidfile();
    let out = podman_tty(
        &[
            "run",
            "-it",
            "--rm",
            "--cidfile",
            &cid,
            "--name",
            &n,
            IMAGE,
            "sh",
        ],
        "tty; echo $((6*7)); exit 7\n",
    );
    assert_eq!(
        out.code(),
        7,
        "exit code through the pty; output: {:?}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    assert!(out.stdout.contains("42"), "no 42 in {:?}", out.stdout);
    assert!(
        out.stdout.contains("/dev/pts/"),
        "stdin is not a pty inside: {:?}",
        out.stdout
    );
    // Window size reaches the container (script's pty has a size; stty reads it).
    let n2 = cx.ctr("it2");
    let out = podman_tty(
        &["run", "-it", "--rm", "--name", &n2, IMAGE, "stty", "size"],
        "",
    );
    assert!(
        out.status.success(),
        "stty size: {:?} {}",
        out.stdout,
        out.stderr
    );
    cx.finish();
}

/// Reads the first existing file of `paths` inside a container with `args`.
fn read_limit(cx: &mut Ctx, suffix: &str, args: &[&str], paths: &[&str]) -> String {
    let n = cx.ctr(suffix);
    let script = paths
        .iter()
        .map(|p| format!("cat {p} 2>/dev/null"))
        .collect::<Vec<_>>()
        .join(" || ");
    let cid = cx.cidfile();
    let mut a = vec!["run", "--rm", "--cidfile", &cid, "--name", &n];
    a.extend_from_slice(args);
    a.extend_from_slice(&[IMAGE, "sh", "-c", &script]);
    podman(&a).ok().stdout.trim().to_string()
}

#[test]
fn memory_limit() {
    let Some(mut cx) = Ctx::new("memory") else {
        return;
    };
    let v = read_limit(
        &mut cx,
        "read",
        &["--memory", "32m"],
        &[
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory.max",
        ],
    );
    assert_eq!(v, "33554432");
    // Enforced: a 128 MiB shell string under a 32 MiB limit (swap limit 64 MiB) is OOM-killed.
    let n = cx.ctr("hog");
    let out = podman(&[
        "run",
        "--name",
        &n,
        "--memory",
        "32m",
        IMAGE,
        "sh",
        "-c",
        "x=$(head -c 128m /dev/zero | tr '\\0' a); echo survived ${#x}",
    ]);
    cx.track(&n);
    assert_eq!(
        out.code(),
        137,
        "memory hog not killed: {}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stdout.contains("survived"));
    assert_eq!(inspect(&n)["State"]["ExitCode"], 137);
    cx.finish();
}

#[test]
fn pids_limit() {
    let Some(mut cx) = Ctx::new("pids") else {
        return;
    };
    let v = read_limit(
        &mut cx,
        "read",
        &["--pids-limit", "10"],
        &["/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"],
    );
    assert_eq!(v, "10");
    // Enforced: forking 20 sleepers fails.
    let n = cx.ctr("fork");
    let cid = cx.cidfile();
    let out = podman(&[
        "run",
        "--rm",
        "--cidfile",
        &cid,
        "--name",
        &n,
        "--pids-limit",
        "10",
        IMAGE,
        "sh",
        "-c",
        "for i in $(seq 1 20); do sleep 2 & done; wait; echo all-forked",
    ]);
    assert!(
        !out.stdout.contains("all-forked"),
        "20 processes under pids.max 10: {}",
        out.stdout
    );
    assert!(
        out.stderr.contains("can't fork")
            || out.stderr.contains("Resource temporarily unavailable"),
        "stderr: {}",
        out.stderr
    );
    cx.finish();
}

#[test]
fn pod_with_two_containers() {
    let Some(mut cx) = Ctx::new("pod") else {
        return;
    };
    let p = cx.pod("p");
    podman(&["pod", "create", "--name", &p]).ok();
    let web = cx.ctr("web");
    podman(&[
        "run",
        "-d",
        "--pod",
        &p,
        "--name",
        &web,
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo barge-pod-ok > /www/index.html && exec httpd -f -p 8080 -h /www",
    ])
    .ok();
    cx.track(&web);
    cx.track_pod_infra(&p);
    let client = cx.ctr("client");
    podman(&[
        "run", "-d", "--pod", &p, "--name", &client, IMAGE, "sh", "-c",
        "for i in $(seq 1 100); do wget -qO- http://127.0.0.1:8080/index.html && exit 0; sleep 0.1; done; exit 1",
    ])
    .ok();
    cx.track(&client);
    let code = podman(&["wait", &client]).ok();
    let logs = podman(&["logs", &client]);
    assert_eq!(
        code.stdout.trim(),
        "0",
        "client could not reach httpd in the pod; logs: {} {}",
        logs.stdout,
        logs.stderr
    );
    assert_eq!(logs.stdout.trim(), "barge-pod-ok");
    // Both containers share the infra container's network namespace.
    let st = inspect(&web);
    assert_eq!(st["State"]["Status"], "running");
    let pi = podman(&["pod", "inspect", &p]).ok();
    let pv: serde_json::Value = serde_json::from_str(&pi.stdout).unwrap();
    let pv = if pv.is_array() { pv[0].clone() } else { pv };
    assert_eq!(
        pv["Containers"].as_array().map_or(0, Vec::len),
        3,
        "infra + 2: {}",
        pv["Containers"]
    );
    let t0 = Instant::now();
    podman(&["pod", "rm", "-f", "-t", "2", &p]).ok();
    wait_until("pod removal", Duration::from_secs(30), || {
        !podman(&["pod", "exists", &p]).status.success()
    });
    assert!(t0.elapsed() < Duration::from_secs(30));
    for c in [&web, &client] {
        assert!(
            !podman(&["container", "exists", c]).status.success(),
            "{c} survived pod rm"
        );
    }
    cx.finish();
}

/// podman maps the runtime's error message (read from `--log`, JSON with
/// `--log-format=json`) to exit codes: "no such file or directory" /
/// "executable file not found" → 127, "permission denied" / "operation not
/// permitted" → 126. The runtime's errors must carry those strerror texts.
#[test]
fn failed_exec_exit_codes() {
    let Some(mut cx) = Ctx::new("execfail") else {
        return;
    };
    let a = cx.ctr("missing");
    let cid = cx.cidfile();
    let out = podman(&[
        "run",
        "--rm",
        "--cidfile",
        &cid,
        "--name",
        &a,
        IMAGE,
        "/nonexistent",
    ])
    .code_is(127);
    assert!(
        out.stderr.contains("/nonexistent"),
        "error does not name the command: {}",
        out.stderr
    );
    let b = cx.ctr("noexec");
    let cid = cx.cidfile();
    podman(&[
        "run",
        "--rm",
        "--cidfile",
        &cid,
        "--name",
        &b,
        IMAGE,
        "/etc/passwd",
    ])
    .code_is(126);
    let d = cx.ctr("d");
    podman(&["run", "-d", "--name", &d, IMAGE, "sleep", "1000"]).ok();
    cx.track(&d);
    podman(&["exec", &d, "/nonexistent"]).code_is(127);
    podman(&["exec", &d, "/etc/passwd"]).code_is(126);
    // The container survives failed execs.
    assert_eq!(inspect(&d)["State"]["Status"], "running");
    cx.finish();
}
