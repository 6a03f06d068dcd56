//! Harness for barge's root integration suite.
//!
//! Every test builds a [`Container`]: a fresh bundle directory whose
//! `config.json` is the test image's runc-style default config (edited as a
//! [`serde_json::Value`]) with `root.path` pointing at the shared, read-only
//! rootfs built by `scripts/build-image.sh`, a unique container id and its own
//! `--root` state directory. The runtime under test is `$BARGE_RUNTIME` or
//! `<workspace>/target/release/barge-runtime`; the image is `$BARGE_IMAGE` or
//! `<workspace>/build`.
//!
//! Dropping a [`Container`] force-deletes it and runs the leak checker: no
//! state directory, no cgroup directory named after the id (anywhere under
//! `/sys/fs/cgroup`), no mount mentioning the bundle or the id may remain.
//!
//! All runtime invocations write stdout/stderr to files (never pipes: a
//! detached container inherits them) and are killed after a timeout.

#![allow(
    clippy::missing_panics_doc,
    clippy::must_use_candidate,
    clippy::unwrap_used
)]

use std::fs;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// Set to a user name (`BARGE_TEST_ROOTLESS=barge-rootless`), the engine
/// suite runs every `barge` command as that unprivileged user (rootless
/// mode) while the test process stays root; see [`RootlessUser`].
pub const ROOTLESS_ENV: &str = "BARGE_TEST_ROOTLESS";

/// An unprivileged user barge runs as in rootless mode.
///
/// Its commands run through `setpriv --reuid --regid --init-groups env
/// HOME=… XDG_RUNTIME_DIR=… XDG_CONFIG_HOME=… BARGE ARGS`, so they find the
/// helpers (runtime, monitor, pause) beside the real binary. The runtime
/// directory is the test's own (`/tmp/barge-test-run-UID-HASH`, one per
/// `barge` binary, owned by the user, 0700): its pause process (pid file
/// `RUNDIR/barge/pause.pid`) is shared by all tests of the run and stays
/// when they end.
#[derive(Debug, Clone)]
pub struct RootlessUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// `XDG_RUNTIME_DIR` of the user's commands.
    pub runtime_dir: PathBuf,
    /// `XDG_CONFIG_HOME` of the user's commands (for `containers.conf`).
    pub config_home: PathBuf,
}

/// The user of a rootless run (`$BARGE_TEST_ROOTLESS`), set up on first
/// use; `None` in a normal run. Panics when the variable names no user
/// or when not root: a rootless run must not silently pass.
pub fn rootless() -> Option<&'static RootlessUser> {
    static USER: std::sync::OnceLock<Option<RootlessUser>> = std::sync::OnceLock::new();
    USER.get_or_init(|| {
        let name = std::env::var(ROOTLESS_ENV).ok().filter(|v| !v.is_empty())?;
        assert!(
            is_root(),
            "{ROOTLESS_ENV}={name}: the test process must be root"
        );
        Some(RootlessUser::lookup(&name).unwrap_or_else(|e| {
            panic!("{ROOTLESS_ENV}={name}: {e} (scripts/install-deps.sh creates barge-rootless)")
        }))
    })
    .as_ref()
}

/// Name, uid, gid and home of `name` from /etc/passwd.
pub fn passwd_entry(name: &str) -> Option<(u32, u32, PathBuf)> {
    fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6 && f[0] == name)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?, PathBuf::from(f[5]))))?
        })
}

impl RootlessUser {
    /// The user `name` with this test binary's runtime and config
    /// directories (created, owned by the user).
    pub fn lookup(name: &str) -> Result<Self, String> {
        use std::hash::{Hash, Hasher};
        let (uid, gid, home) =
            passwd_entry(name).ok_or_else(|| format!("no user {name} in /etc/passwd"))?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        barge_bin().hash(&mut h);
        let base = PathBuf::from(format!(
            "/tmp/barge-test-run-{uid}-{:08x}",
            h.finish() as u32
        ));
        let user = RootlessUser {
            name: name.to_string(),
            uid,
            gid,
            home,
            runtime_dir: base.clone(),
            config_home: base.join("config"),
        };
        for d in [&user.runtime_dir, &user.config_home] {
            fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
            user.chown(d);
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&user.runtime_dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("chmod {}: {e}", user.runtime_dir.display()))?;
        Ok(user)
    }

    /// `program` run as the user (see the type's docs); add arguments.
    pub fn command(&self, program: &Path) -> Command {
        self.command_with(program, &[])
    }

    /// [`Self::command`] with more environment variables (`NAME=VALUE`).
    pub fn command_with(&self, program: &Path, vars: &[String]) -> Command {
        // Absolute paths: tests may run barge with a PATH of their own.
        let mut c = Command::new("/usr/bin/setpriv");
        c.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("/usr/bin/env")
            .arg("-u")
            .arg("XDG_DATA_HOME")
            .arg(format!("HOME={}", self.home.display()))
            .arg(format!("USER={}", self.name))
            .arg(format!("LOGNAME={}", self.name))
            .arg(format!("XDG_RUNTIME_DIR={}", self.runtime_dir.display()))
            .arg(format!("XDG_CONFIG_HOME={}", self.config_home.display()))
            .args(vars)
            .arg(program);
        c
    }

    /// Makes `p` the user's (not following symlinks).
    pub fn chown(&self, p: &Path) {
        std::os::unix::fs::lchown(p, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {} to {}: {e}", p.display(), self.name));
    }

    /// The user's pause process (holding its user and mount namespaces)
    /// when it runs.
    pub fn pause_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.runtime_dir.join("barge/pause.pid")).ok()?;
        let pid: i32 = text.split_whitespace().next()?.parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// The mount table the user's containers' mounts live in: the pause
    /// process's (empty when none runs).
    pub fn mountinfo(&self) -> String {
        self.pause_pid()
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok())
            .unwrap_or_default()
    }
}

/// Default timeout for one runtime invocation.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root (parent of this crate).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The runtime binary under test: `$BARGE_RUNTIME`, else
/// `$CARGO_TARGET_DIR/release/barge-runtime` (default target dir: `<workspace>/target`).
pub fn runtime() -> PathBuf {
    match std::env::var_os("BARGE_RUNTIME") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            // Honour CARGO_TARGET_DIR (inherited from the cargo invocation).
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .filter(|t| !t.is_empty())
                .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
            target.join("release/barge-runtime")
        }
    }
}

/// The `barge` CLI under test: `$BARGE`, else the newest of
/// `$CARGO_TARGET_DIR/{debug,release}/barge` (default target dir:
/// `<workspace>/target`). Shared by the `cli` and `engine` suites.
pub fn barge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
    ["debug/barge", "release/barge"]
        .iter()
        .map(|p| target.join(p))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "no barge binary under {}: run `cargo build -p barge` (or set BARGE)",
                target.display()
            )
        })
}

/// True when the runtime under test is runc (some checks document runc's
/// known deviations).
pub fn is_runc() -> bool {
    runtime()
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("runc"))
}

/// Where runc is known to deviate from the OCI spec (or from what barge
/// implements), a test calls this when the check fails: against runc it
/// prints a note and returns true (the test stops there); against any other
/// runtime it returns false and the test goes on to fail.
pub fn runc_deviation(what: &str) -> bool {
    if is_runc() {
        eprintln!("NOTE runc deviation: {what}");
        true
    } else {
        false
    }
}

/// The image directory produced by `scripts/build-image.sh`.
pub fn image_dir() -> PathBuf {
    match std::env::var_os("BARGE_IMAGE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => workspace().join("build"),
    }
}

pub fn rootfs() -> PathBuf {
    image_dir().join("bundle/rootfs")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Skip (return from) the test with a printed reason unless we are root and
/// the runtime and image exist. A missing runtime or image when root is a
/// failure, not a skip: the suite must not silently pass.
#[macro_export]
macro_rules! need_root {
    () => {
        if !$crate::is_root() {
            eprintln!("SKIP {}: the integration suite needs root", module_path!());
            return;
        }
        $crate::preflight();
    };
}

/// Panics with a helpful message if the runtime or the image is missing.
pub fn preflight() {
    let rt = runtime();
    assert!(
        rt.exists(),
        "runtime {} not found: run `cargo build --release` or set BARGE_RUNTIME",
        rt.display()
    );
    assert!(
        rootfs().join("usr/bin/barge-check").exists(),
        "test image {} not found: run scripts/build-image.sh build (or set BARGE_IMAGE)",
        rootfs().display()
    );
}

/// The result of one runtime (or other) invocation.
#[derive(Debug, Clone)]
pub struct Out {
    /// Exit code; 128+N when killed by signal N; -1 on timeout.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl Out {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// Assert exit code 0; returns self for chaining.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success, got {self:#?}");
        self
    }

    /// Assert a non-zero exit (and no timeout).
    #[track_caller]
    pub fn fails(&self) -> &Self {
        assert!(!self.timed_out, "timed out: {self:#?}");
        assert_ne!(self.code, 0, "expected failure, got {self:#?}");
        self
    }

    /// The last line of stdout that parses as JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        parse_last_json(&self.stdout).unwrap_or_else(|| panic!("no JSON on stdout: {self:#?}"))
    }
}

/// The last line of `s` that parses as a JSON object or array.
pub fn parse_last_json(s: &str) -> Option<Value> {
    s.lines().rev().find_map(|l| {
        let l = l.trim();
        if l.starts_with('{') || l.starts_with('[') {
            serde_json::from_str(l).ok()
        } else {
            None
        }
    })
}

/// All JSON lines of `s`.
pub fn json_lines(s: &str) -> Vec<Value> {
    s.lines()
        .filter_map(|l| serde_json::from_str(l.trim()).ok())
        .collect()
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A unique name: `bt-<tag>-<pid>-<seq>` (the fixed-width sequence makes
/// sure no id is a substring of another).
pub fn unique(tag: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    format!("bt-{tag}-{}-{n:04}", std::process::id())
}

/// Run a command with stdout/stderr to files, killing it after `timeout`.
pub fn run_cmd(mut cmd: Command, timeout: Duration) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let so = dir.path().join("stdout");
    let se = dir.path().join("stderr");
    cmd.stdout(fs::File::create(&so).unwrap());
    cmd.stderr(fs::File::create(&se).unwrap());
    if cmd.get_program().is_empty() {
        panic!("empty command");
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("spawn {cmd:?}: {e}"),
    };
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let code = if timed_out {
        -1
    } else {
        status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
    };
    Out {
        code,
        stdout: String::from_utf8_lossy(&fs::read(&so).unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&se).unwrap_or_default()).into_owned(),
        timed_out,
    }
}

/// Poll `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The image's default config.json with `root.path` set to the shared rootfs
/// (read-only), `terminal` false and `args` set to `barge-check help`.
pub fn base_config() -> Value {
    let p = image_dir().join("bundle/config.json");
    let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["root"] = json!({"path": rootfs().to_string_lossy(), "readonly": true});
    v["process"]["terminal"] = json!(false);
    v["process"]["args"] = json!(["barge-check", "help"]);
    v["hostname"] = json!("barge-test");
    v
}

/// Extra host state a test created and the leak checker should clean up.
type Cleanup = Box<dyn FnOnce() + Send>;

/// One test container: its id, state root, bundle and config.
pub struct Container {
    pub id: String,
    pub state_root: tempfile::TempDir,
    pub bundle: tempfile::TempDir,
    pub config: Value,
    /// Run after the container is deleted, before the leak check.
    pub cleanups: Vec<Cleanup>,
    /// Extra strings that must not appear in mountinfo after the test.
    pub mount_markers: Vec<String>,
    calls: u32,
}

impl Container {
    pub fn new(tag: &str) -> Self {
        let id = unique(tag);
        let state_root = tempfile::Builder::new()
            .prefix("barge-state-")
            .tempdir()
            .unwrap();
        let bundle = tempfile::Builder::new()
            .prefix(&format!("barge-bundle-{id}-"))
            .tempdir()
            .unwrap();
        Container {
            id,
            state_root,
            bundle,
            config: base_config(),
            cleanups: Vec::new(),
            mount_markers: Vec::new(),
            calls: 0,
        }
    }

    /// Set `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    pub fn bundle_path(&self) -> &Path {
        self.bundle.path()
    }

    pub fn write_config(&self) {
        fs::write(
            self.bundle.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    /// `runtime --root <state>`; add arguments and run with [`run_cmd`].
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(runtime());
        c.arg("--root").arg(self.state_root.path());
        c.stdin(Stdio::null());
        c
    }

    /// Run the runtime with `args` (after `--root`).
    pub fn rt(&self, args: &[&str]) -> Out {
        let mut c = self.cmd();
        c.args(args);
        run_cmd(c, TIMEOUT)
    }

    /// Run the runtime with `args`, the container's stdout/stderr going to
    /// files in the bundle (`stdout.N`, `stderr.N`); returns the runtime's
    /// exit status plus whatever was written so far.
    pub fn rt_files(&mut self, args: &[&str]) -> Out {
        self.rt_files_with(args, |_| {})
    }

    pub fn rt_files_with(&mut self, args: &[&str], f: impl FnOnce(&mut Command)) -> Out {
        self.calls += 1;
        let so = self.bundle.path().join(format!("stdout.{}", self.calls));
        let se = self.bundle.path().join(format!("stderr.{}", self.calls));
        let mut c = self.cmd();
        c.args(args);
        c.stdout(fs::File::create(&so).unwrap());
        c.stderr(fs::File::create(&se).unwrap());
        f(&mut c);
        let mut child = c
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", runtime().display()));
        let deadline = Instant::now() + TIMEOUT;
        let mut timed_out = false;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let code = if timed_out {
            -1
        } else {
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        };
        Out {
            code,
            stdout: read_lossy(&so),
            stderr: read_lossy(&se),
            timed_out,
        }
    }

    /// Contents of the container's stdout file from invocation `n`.
    pub fn stdout_of(&self, n: u32) -> String {
        read_lossy(&self.bundle.path().join(format!("stdout.{n}")))
    }

    /// Number of the last [`Container::rt_files`] invocation.
    pub fn last_call(&self) -> u32 {
        self.calls
    }

    /// `run --bundle B ID` attached; the container's output is the result.
    pub fn run(&mut self) -> Out {
        self.write_config();
        let b = self.bundle.path().to_string_lossy().into_owned();
        let id = self.id.clone();
        self.rt_files(&["run", "--bundle", &b, &id])
    }

    /// `run --detach`.
    pub fn run_detached(&mut self) -> Out {
        self.write_config();
        let b = self.bundle.path().to_string_lossy().into_owned();
        let id = self.id.clone();
        self.rt_files(&["run", "--detach", "--bundle", &b, &id])
    }

    /// `create --bundle B ID`; the container's stdout goes to `stdout.N`.
    pub fn create(&mut self) -> Out {
        self.write_config();
        let b = self.bundle.path().to_string_lossy().into_owned();
        let id = self.id.clone();
        self.rt_files(&["create", "--bundle", &b, &id])
    }

    pub fn start(&self) -> Out {
        self.rt(&["start", &self.id])
    }

    /// `state ID` parsed; panics if the runtime fails.
    #[track_caller]
    pub fn state(&self) -> Value {
        let o = self.rt(&["state", &self.id]);
        o.ok();
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}): {o:#?}"))
    }

    pub fn status(&self) -> String {
        let o = self.rt(&["state", &self.id]);
        serde_json::from_str::<Value>(&o.stdout)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Wait until `state` reports `status`.
    #[track_caller]
    pub fn wait_status(&self, status: &str, timeout: Duration) {
        let ok = wait_until(timeout, || self.status() == status);
        assert!(
            ok,
            "container {} did not reach status {status:?}; state: {}",
            self.id,
            self.status()
        );
    }

    pub fn pid(&self) -> i32 {
        self.state()["pid"].as_i64().unwrap_or(0) as i32
    }

    pub fn kill(&self, sig: &str) -> Out {
        self.rt(&["kill", &self.id, sig])
    }

    pub fn delete(&self) -> Out {
        self.rt(&["delete", &self.id])
    }

    pub fn delete_force(&self) -> Out {
        self.rt(&["delete", "--force", &self.id])
    }

    /// `exec ID ARGS...` with inline flags before the id.
    pub fn exec(&mut self, flags: &[&str], args: &[&str]) -> Out {
        let mut a: Vec<&str> = vec!["exec"];
        a.extend_from_slice(flags);
        let id = self.id.clone();
        a.push(&id);
        a.extend_from_slice(args);
        self.rt_files(&a)
    }

    /// A default config's `linux.namespaces` entry of `kind`, mutable.
    pub fn namespaces_mut(&mut self) -> &mut Vec<Value> {
        self.config["linux"]["namespaces"].as_array_mut().unwrap()
    }

    /// Append a mount.
    pub fn add_mount(&mut self, m: Value) {
        self.config["mounts"].as_array_mut().unwrap().push(m);
    }

    /// Leak check, also run on drop. Returns the list of leaks found.
    pub fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        if let Ok(rd) = fs::read_dir(self.state_root.path()) {
            for e in rd.flatten() {
                leaks.push(format!("state entry {}", e.path().display()));
            }
        }
        for c in find_cgroups(&self.id) {
            leaks.push(format!("cgroup {}", c.display()));
        }
        let bundle = self.bundle.path().to_string_lossy().into_owned();
        let mut markers = vec![bundle, self.id.clone()];
        markers.extend(self.mount_markers.iter().cloned());
        for l in fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if markers.iter().any(|m| l.contains(m.as_str())) {
                leaks.push(format!("mount {l}"));
            }
        }
        leaks
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let st = self.rt(&["state", &self.id]);
        if st.success() {
            let _ = self.delete_force();
        }
        for c in self.cleanups.drain(..) {
            c();
        }
        let mut leaks = self.leaks();
        // cgroup removal can race a just-reaped process; give it a moment.
        if !leaks.is_empty() {
            std::thread::sleep(Duration::from_millis(500));
            leaks = self.leaks();
        }
        if !leaks.is_empty() {
            // Clean up so that one failure does not cascade into other tests.
            for c in find_cgroups(&self.id) {
                let _ = fs::remove_dir(&c);
            }
            if !std::thread::panicking() {
                panic!("LEAK CHECK failed for container {}: {leaks:#?}", self.id);
            }
            eprintln!("LEAK CHECK failed for container {}: {leaks:#?}", self.id);
        }
    }
}

fn read_lossy(p: &Path) -> String {
    String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned()
}

/// Directories under /sys/fs/cgroup (all v1 hierarchies and the unified
/// one) whose name contains `id`, deepest first.
pub fn find_cgroups(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    fn walk(dir: &Path, id: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth > 12 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() {
                continue;
            }
            let p = e.path();
            walk(&p, id, depth + 1, out);
            if e.file_name().to_string_lossy().contains(id) {
                out.push(p);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0, &mut out);
    out
}

/// Run `barge-check ARGS` in a fresh default container (attached) and return
/// the output; the helper for one-shot checks.
pub fn check(tag: &str, args: &[&str], edit: impl FnOnce(&mut Container)) -> Out {
    let mut c = Container::new(tag);
    let mut a = vec!["barge-check"];
    a.extend_from_slice(args);
    c.args(&a);
    edit(&mut c);
    c.run()
}

/// A host helper command (ip, mount, ...) that must succeed.
#[track_caller]
pub fn host(cmd: &str, args: &[&str]) -> Out {
    let mut c = Command::new(cmd);
    c.args(args).stdin(Stdio::null());
    let o = run_cmd(c, TIMEOUT);
    assert!(o.success(), "host command {cmd} {args:?} failed: {o:#?}");
    o
}

/// Give a child command an extra inherited fd (dup'd to `target`, not
/// close-on-exec): used to check that host fds do not leak into containers.
pub fn inherit_fd(cmd: &mut Command, fd: i32, target: i32) {
    // SAFETY: dup2 is async-signal-safe; fd stays open in the parent until
    // the child has been spawned.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                // dup2 onto itself keeps FD_CLOEXEC: clear it instead.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Receive one file descriptor (SCM_RIGHTS) plus data from a connected unix
/// stream socket; used for `--console-socket` and seccomp `listenerPath`.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> std::io::Result<(i32, Vec<u8>)> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 8192];
    let mut cmsg = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: msg points at valid buffers for the call's duration.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    // SAFETY: walking the control messages the kernel filled in.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !c.is_null() {
        // SAFETY: c points into cmsg, validated by CMSG_FIRSTHDR/NXTHDR.
        let h = unsafe { &*c };
        if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: SCM_RIGHTS data holds at least one int.
            let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()) };
            return Ok((fd, buf));
        }
        // SAFETY: as above.
        c = unsafe { libc::CMSG_NXTHDR(&raw const msg, c) };
    }
    Err(std::io::Error::other("no SCM_RIGHTS fd received"))
}

/// Read everything from `fd` until EOF/EIO or `timeout`; closes `fd`.
pub fn read_fd_all(fd: i32, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // SAFETY: p is a valid pollfd.
        let r = unsafe { libc::poll(&raw mut p, 1, left.as_millis().min(1000) as i32) };
        if r == 0 {
            continue;
        }
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    // SAFETY: fd is ours.
    unsafe { libc::close(fd) };
    String::from_utf8_lossy(&out).into_owned()
}

/// A bind mount on the host (for propagation / rbind tests); undone by
/// [`umount`].
pub fn mount_bind(src: &Path, dst: &Path) {
    host(
        "mount",
        &["--bind", &src.to_string_lossy(), &dst.to_string_lossy()],
    );
}

pub fn umount(p: &Path) {
    let _ = Command::new("umount").arg("-l").arg(p).status();
}
