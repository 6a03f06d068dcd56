//! The container engine driven through the `barge` CLI as a user would:
//! lifecycle, logs, exec/run/attach through a real pty, stop signals and
//! timeouts, `ps`/`inspect` output, networks and published ports, volumes,
//! the `run` options, pods, exit codes and bad input.
//!
//! Every test gets its own [`Env`]: a fresh `--root` and a short
//! `--runroot` under one temp dir, with the test image (`scripts/build-image.sh`)
//! imported as `localhost/busybox`. Dropping the [`Env`] removes every
//! container, volume and network it made, then runs the leak checker (no
//! mounts under the dir, no veth/netns/published port of any container id
//! the test saw, no cgroup `/sys/fs/cgroup/*/barge/<id>`, no process whose
//! cwd or root is under the dir, no pasta/slirp4netns serving one of those
//! containers).
//!
//! Tests that use bridge networking take [`net_lock`]: all `--root`s share
//! the host's default bridge `barge0` and the user bridge names, so two
//! networked tests in different roots would hand out the same addresses.
//!
//! Needs root, `cargo build --release -p barge -p barge-runtime -p
//! barge-monitor -p barge-check -p barge-pause` (or `BARGE=/path/to/barge`)
//! and the test image.
//!
//! Rootless rerun: with `BARGE_TEST_ROOTLESS=USER` (scripts/test.sh uses
//! `barge-rootless`) every `barge` command runs as that unprivileged user
//! ([`barge_integration::RootlessUser`]) while the test process stays root.
//! The [`Env`] directory is the user's; the leak checker reads the mounts
//! of the user's pause process (its mount namespace holds the containers'
//! mounts), looks for processes by their monitor's command line (rootless
//! barge creates no cgroups here) and still finds no process, mount or
//! cgroup left; the pause process itself stays. Tests
//! (or parts of tests) that need what a rootless user cannot have on this
//! host print `SKIP (rootless): TEST: REASON` straight to stderr (visible
//! without `--nocapture`) and return ([`skip_rootless!`], [`need_network!`],
//! [`rootless_skips_part`]). When the user's default network does not work
//! (probed once, [`rootless_network`]), containers get `netns = "none"`
//! from the user's `containers.conf` and the networking tests skip.
//! `rootless.rs` holds the isolation tests between root and the user
//! (the test process drives both; they run in both runs).

mod bad_input;
mod kube;
mod lifecycle;
mod network;
mod options;
mod output;
mod pods;
mod pty;
mod rootless;
mod rootless_features;

use barge_integration::{barge_bin, rootfs, Out, RootlessUser};
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The image every test imports.
pub const IMG: &str = "localhost/busybox";

/// Timeout of one `barge` invocation.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Serializes the tests that use bridge networking (see the module docs).
pub fn net_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Skip (return) unless root; fail if the binary or the image is missing.
macro_rules! need_root {
    () => {
        if !barge_integration::is_root() {
            eprintln!("SKIP: the engine suite needs root");
            return;
        }
        $crate::preflight();
    };
}
pub(crate) use need_root;

/// The user of a rootless run (`BARGE_TEST_ROOTLESS`), `None` when barge
/// runs as root.
pub fn rootless() -> Option<&'static RootlessUser> {
    barge_integration::rootless()
}

/// Prints `SKIP (rootless): TEST: REASON` to the real stderr (not the
/// test's captured output, so that the list is visible in every run).
pub fn report_skip(reason: &str) {
    use std::io::Write as _;
    let current = std::thread::current();
    let test = current.name().unwrap_or("?");
    let line = format!("SKIP (rootless): {test}: {reason}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// In a rootless run: report the test skipped for REASON (format
/// arguments) and return.
macro_rules! skip_rootless {
    ($($why:tt)+) => {
        if $crate::rootless().is_some() {
            $crate::report_skip(&format!($($why)+));
            return;
        }
    };
}
pub(crate) use skip_rootless;

/// Returns from the test (reported as a rootless skip) when containers
/// get no network: in a rootless run whose user network does not work.
macro_rules! need_network {
    () => {
        if let Err(why) = $crate::rootless_network() {
            $crate::report_skip(&format!("networking: {why}"));
            return;
        }
    };
}
pub(crate) use need_network;

/// In a rootless run: reports PART of the test skipped for `reason` and
/// returns true (the caller leaves that part out).
pub fn rootless_skips_part(part: &str, reason: &str) -> bool {
    if rootless().is_some() {
        report_skip(&format!("{part}: {reason}"));
        true
    } else {
        false
    }
}

/// Like [`rootless_skips_part`] for a part that needs the container
/// network.
pub fn network_skips_part(part: &str) -> bool {
    match rootless_network() {
        Ok(()) => false,
        Err(why) => {
            report_skip(&format!("{part}: networking: {why}"));
            true
        }
    }
}

/// Why containers have no network in this run, if they have none: in a
/// rootless run, `barge run` with the default network is tried once; when
/// it fails, the user's `containers.conf` gets `netns = "none"` (podman's
/// key for the default network mode) and this returns the error.
pub fn rootless_network() -> Result<(), String> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let Some(user) = rootless() else {
        return Ok(());
    };
    PROBE
        .get_or_init(|| {
            let conf_dir = user.config_home.join("containers");
            let conf = conf_dir.join("containers.conf");
            let _ = fs::remove_file(&conf);
            let env = Env::with_image();
            let o = env.run(&["run", "--rm", IMG, "true"]);
            if o.success() {
                return Ok(());
            }
            fs::create_dir_all(&conf_dir).expect("config dir");
            fs::write(
                &conf,
                "# Written by the engine suite: the user's default network does not work.\n[containers]\nnetns = \"none\"\n",
            )
            .expect("containers.conf");
            user.chown(&conf_dir);
            let why = o
                .stderr
                .lines()
                .find_map(|l| l.strip_prefix("Error: "))
                .unwrap_or(o.stderr.trim());
            Err(format!("the rootless default network does not work here ({why})"))
        })
        .clone()
}

pub fn preflight() {
    let b = barge_bin();
    assert!(b.exists(), "{} missing", b.display());
    let helpers: &[&str] = if rootless().is_some() {
        &["barge-runtime", "barge-monitor", "barge-pause"]
    } else {
        &["barge-runtime", "barge-monitor"]
    };
    for &helper in helpers {
        let p = b.with_file_name(helper);
        assert!(
            p.exists() || std::env::var_os("BARGE_RUNTIME").is_some(),
            "{} missing: cargo build --release -p {helper}",
            p.display()
        );
    }
    assert!(
        rootfs().join("usr/bin/barge-check").exists(),
        "test image {} missing: scripts/build-image.sh",
        rootfs().display()
    );
}

/// One test's private engine state.
pub struct Env {
    dir: tempfile::TempDir,
    pub root: PathBuf,
    pub runroot: PathBuf,
    /// Container ids seen in `ROOT/containers` (for the leak check).
    seen: Mutex<BTreeSet<String>>,
    /// User networks to remove on drop (with their bridge names).
    networks: Mutex<Vec<String>>,
    /// Named volumes to remove on drop.
    volumes: Mutex<Vec<String>>,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh root/runroot with the test image imported.
    pub fn new() -> Self {
        // Containers of a rootless run get their network mode from the
        // probe's outcome: probe first.
        if rootless().is_some() {
            let _ = rootless_network();
        }
        Self::with_image()
    }

    /// [`Self::new`] without the rootless network probe.
    fn with_image() -> Self {
        let env = Self::empty();
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .args(["-c", "."])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn tar");
        let mut c = env.cmd(&["import", "-", IMG]);
        c.stdin(tar.stdout.take().expect("tar stdout"));
        let o = barge_integration::run_cmd(c, TIMEOUT);
        let tar_ok = tar.wait().is_ok_and(|s| s.success());
        assert!(o.success() && tar_ok, "import failed: {o:#?}");
        env
    }

    /// A fresh root/runroot without images.
    pub fn empty() -> Self {
        // Short: the runroot holds unix sockets (108-byte path limit).
        let dir = tempfile::Builder::new()
            .prefix("be")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = dir.path().join("s");
        let runroot = dir.path().join("r");
        if let Some(user) = rootless() {
            user.chown(dir.path());
        }
        Self {
            root,
            runroot,
            dir,
            seen: Mutex::new(BTreeSet::new()),
            networks: Mutex::new(Vec::new()),
            volumes: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A directory `NAME` under [`Self::path`] for bind mounts that the
    /// containers' root may write (the user's in a rootless run).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.path().join(name);
        fs::create_dir(&d).expect("mkdir");
        if let Some(user) = rootless() {
            user.chown(&d);
        }
        d
    }

    /// `barge` (as the rootless user in a rootless run), no arguments.
    pub fn barge() -> Command {
        match rootless() {
            Some(user) => user.command(&barge_bin()),
            None => Command::new(barge_bin()),
        }
    }

    /// `barge --root R --runroot RR ARGS`, stdin null, not run yet.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Self::barge();
        c.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Records the container ids currently under `ROOT/containers`.
    fn scan(&self) {
        if let Ok(rd) = fs::read_dir(self.root.join("containers")) {
            let mut seen = self.seen.lock().unwrap();
            for e in rd.flatten() {
                seen.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }

    /// Runs `cmd` to completion (stdout/stderr to files: a detached
    /// container must not hold our pipes), killing it after `timeout`, and
    /// noting container ids while it runs.
    pub fn run_command(&self, mut cmd: Command, timeout: Duration) -> Out {
        let files = tempfile::tempdir().expect("tempdir");
        let so = files.path().join("stdout");
        let se = files.path().join("stderr");
        cmd.stdout(fs::File::create(&so).expect("stdout file"));
        cmd.stderr(fs::File::create(&se).expect("stderr file"));
        let mut child = cmd.spawn().expect("spawn barge");
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let mut n = 0u32;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if Instant::now() > deadline {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            n += 1;
            if n % 10 == 1 {
                self.scan();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        self.scan();
        let code = if timed_out {
            -1
        } else {
            status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
        };
        let read =
            |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
        let out = Out {
            code,
            stdout: read(&so),
            stderr: read(&se),
            timed_out,
        };
        // The arguments after `--runroot RR`.
        let all: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let skip = all
            .iter()
            .position(|a| a == "--runroot")
            .map_or(0, |i| i + 2);
        let args = &all[skip.min(all.len())..];
        eprintln!(
            "$ barge {}\n[{}]{}\n{}{}",
            args.join(" "),
            out.code,
            if timed_out { " TIMED OUT" } else { "" },
            &out.stdout[..out.stdout.len().min(4000)],
            out.stderr
        );
        out
    }

    /// Runs barge with `args`.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_command(self.cmd(args), TIMEOUT)
    }

    /// Runs barge with `args` and `stdin` as input.
    pub fn run_input(&self, args: &[&str], stdin: &str) -> Out {
        let f = tempfile::NamedTempFile::new().expect("tempfile");
        fs::write(f.path(), stdin).expect("write stdin");
        let mut c = self.cmd(args);
        c.stdin(fs::File::open(f.path()).expect("open stdin"));
        self.run_command(c, TIMEOUT)
    }

    /// Runs barge with `args`, asserting success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.success(),
            "barge {args:?} failed ({}): {}{}",
            o.code,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    /// Runs barge with `args`, asserting exit `code` and an `Error: `
    /// line containing `msg` on stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str], code: i32, msg: &str) -> Out {
        let o = self.run(args);
        assert_eq!(o.code, code, "barge {args:?}: {o:#?}");
        assert!(
            o.stderr.lines().any(|l| l.starts_with("Error: ")),
            "barge {args:?}: no `Error: ` line: {o:#?}"
        );
        assert!(
            o.stderr.contains(msg),
            "barge {args:?}: stderr lacks {msg:?}: {o:#?}"
        );
        o
    }

    /// `run -d ARGS` → the container id.
    #[track_caller]
    pub fn run_d(&self, args: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(args);
        let id = self.ok(&a).trim().to_string();
        assert_eq!(id.len(), 64, "not an id: {id:?}");
        id
    }

    /// `inspect --format TEMPLATE NAME`, trimmed.
    #[track_caller]
    pub fn fmt(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "--format", template, name])
            .trim()
            .to_string()
    }

    /// `inspect NAME` parsed (the first object).
    #[track_caller]
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let s = self.ok(&["inspect", name]);
        let v: serde_json::Value = serde_json::from_str(&s).expect("inspect JSON");
        v[0].clone()
    }

    /// The container's status (`inspect`).
    pub fn status(&self, name: &str) -> String {
        let o = self.run(&["inspect", "--format", "{{.State.Status}}", name]);
        o.stdout.trim().to_string()
    }

    /// Waits until `name` has status `want`.
    #[track_caller]
    pub fn wait_status(&self, name: &str, want: &str, timeout: Duration) {
        let ok = barge_integration::wait_until(timeout, || self.status(name) == want);
        assert!(ok, "{name} never became {want}: {}", self.status(name));
    }

    /// Ids of all containers (`ps -a -q --no-trunc`).
    pub fn all_ids(&self) -> Vec<String> {
        self.run(&["ps", "-a", "-q", "--no-trunc"])
            .stdout
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Creates a user network (`barge network create`, or through the
    /// engine library while the CLI lacks the command); removed on drop.
    pub fn network_create(&self, name: &str) {
        let o = self.run(&["network", "create", name]);
        if !o.success() {
            assert!(
                o.stderr.contains("unknown") || o.stderr.contains("unrecognized"),
                "network create failed: {o:#?}"
            );
            eprintln!("NOTE: no `barge network create` in this build: using the engine library");
            let mut e = self.engine();
            e.network_create(barge_engine::networks::NetworkCreateOptions {
                name: Some(name.to_string()),
                ..Default::default()
            })
            .expect("engine network_create");
        }
        self.networks.lock().unwrap().push(name.to_string());
    }

    /// A named volume this test uses (removed on drop).
    pub fn track_volume(&self, name: &str) {
        self.volumes.lock().unwrap().push(name.to_string());
    }

    pub fn engine(&self) -> barge_engine::containers::Engine {
        assert!(
            rootless().is_none(),
            "the engine library opens the store as root: not in a rootless run"
        );
        barge_engine::containers::Engine::open(barge_engine::containers::Paths::new(
            Some(self.root.clone()),
            Some(self.runroot.clone()),
        ))
        .expect("open engine")
    }

    /// Everything a test may have left behind; empty when clean. Waits up
    /// to 10 s for what goes away asynchronously: a removed container's
    /// veth goes with its network namespace, which the kernel destroys in
    /// the background, and cgroup removal can race a just-reaped process.
    pub fn leaks(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let leaks = self.leaks_now();
            if leaks.is_empty() || Instant::now() > deadline {
                return leaks;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`Self::leaks`] without waiting.
    pub fn leaks_now(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let dir = self.dir.path().to_string_lossy().into_owned();
        for l in fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if l.contains(&dir) {
                leaks.push(format!("mount: {l}"));
            }
        }
        // A rootless user's mounts are in its pause process's namespace.
        if let Some(user) = rootless() {
            for l in user.mountinfo().lines() {
                if l.contains(&dir) {
                    leaks.push(format!("mount (rootless namespace): {l}"));
                }
            }
        }
        for sub in ["containers", "volumes"] {
            if let Ok(rd) = fs::read_dir(self.root.join(sub)) {
                for e in rd.flatten() {
                    leaks.push(format!("dir: {}", e.path().display()));
                }
            }
        }
        for sub in ["netns", "containers"] {
            if let Ok(rd) = fs::read_dir(self.runroot.join(sub)) {
                for e in rd.flatten() {
                    leaks.push(format!("run dir: {}", e.path().display()));
                }
            }
        }
        let seen: Vec<String> = self.seen.lock().unwrap().iter().cloned().collect();
        for id in &seen {
            match barge_net::leaks(id) {
                Ok(l) => {
                    for x in l.links {
                        leaks.push(format!("link {x}"));
                    }
                    for x in l.netns_mounts {
                        leaks.push(format!("netns {}", x.display()));
                    }
                    for x in l.nft_ports {
                        leaks.push(format!("nft port {x}"));
                    }
                }
                Err(e) => leaks.push(format!("barge_net::leaks({id}): {e}")),
            }
            for c in cgroups_of(id) {
                leaks.push(format!("cgroup {}", c.display()));
            }
        }
        for p in processes_under(self.dir.path()) {
            leaks.push(format!("process {p}"));
        }
        for p in net_helpers(&seen) {
            leaks.push(format!("network helper {p}"));
        }
        // Without cgroups the cgroup check finds no leftover process of a
        // rootless container: look for them by their monitor (or barge)
        // naming the directory or a container id, and its descendants.
        if let Some(user) = rootless() {
            let mut marks = seen;
            marks.push(dir);
            for p in process_trees_naming(&marks, user.pause_pid()) {
                leaks.push(format!("process {p}"));
            }
        }
        leaks
    }

    fn teardown(&self) {
        self.scan();
        // Pods first (members, then their infra), then any container left.
        if self.root.join("barge.db").exists() {
            let _ = self.run(&["pod", "rm", "-a", "-f", "-t", "0"]);
        }
        let ids = self.all_ids();
        if !ids.is_empty() {
            let mut a = vec!["rm", "-f", "-v", "-t", "0"];
            a.extend(ids.iter().map(String::as_str));
            let _ = self.run(&a);
        }
        let vols: Vec<String> = self.volumes.lock().unwrap().drain(..).collect();
        for v in vols {
            if !self.run(&["volume", "rm", "-f", &v]).success() && rootless().is_none() {
                // No `volume` command in this build: the engine library.
                if let Err(err) = self.engine().volume_remove(&v, true) {
                    eprintln!("removing volume {v}: {err}");
                }
            }
        }
        let nets: Vec<String> = self.networks.lock().unwrap().drain(..).collect();
        if !nets.is_empty() {
            for n in nets {
                let o = self.run(&["network", "rm", "-f", &n]);
                if !o.success() && rootless().is_none() {
                    let mut e = self.engine();
                    if let Err(err) = e.network_remove(&n, true) {
                        eprintln!("removing network {n}: {err}");
                    }
                }
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.teardown();
        let leaks = self.leaks();
        if !leaks.is_empty() {
            // Do not let one failure cascade: unmount what is left.
            let dir = self.dir.path().to_string_lossy().into_owned();
            let under = |info: &str| -> Vec<String> {
                info.lines()
                    .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
                    .filter(|m| m.starts_with(&dir))
                    .collect()
            };
            let mounts = under(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default());
            for m in mounts.iter().rev() {
                let _ = Command::new("umount").arg("-l").arg(m).status();
            }
            if let Some(user) = rootless() {
                if let Some(pid) = user.pause_pid() {
                    for m in under(&user.mountinfo()).iter().rev() {
                        let _ = Command::new("nsenter")
                            .arg(format!("--mount=/proc/{pid}/ns/mnt"))
                            .args(["umount", "-l"])
                            .arg(m)
                            .status();
                    }
                }
            }
            if std::thread::panicking() {
                eprintln!("LEAK CHECK failed: {leaks:#?}");
            } else {
                panic!("LEAK CHECK failed: {leaks:#?}");
            }
        }
    }
}

/// `/sys/fs/cgroup/*/barge/<id>` and `/sys/fs/cgroup/barge/<id>` that exist.
pub fn cgroups_of(id: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let base = Path::new("/sys/fs/cgroup");
    let direct = base.join("barge").join(id);
    if direct.exists() {
        out.push(direct);
    }
    if let Ok(rd) = fs::read_dir(base) {
        for e in rd.flatten() {
            let p = e.path().join("barge").join(id);
            if p.exists() {
                out.push(p);
            }
        }
    }
    out
}

/// Processes whose cwd or root is under `dir`.
pub fn processes_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for what in ["cwd", "root"] {
            if let Ok(t) = fs::read_link(e.path().join(what)) {
                if t.starts_with(dir) {
                    let comm = fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    out.push(format!("{name} ({}) {what} {}", comm.trim(), t.display()));
                }
            }
        }
    }
    out
}

/// Live pasta/slirp4netns processes (pasta runs as `passt.avx2` too)
/// whose arguments name one of `ids` (their network namespace path does).
pub fn net_helpers(ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        // A zombie has no cmdline: it is gone but for its parent's wait.
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let argv0 = args.first().map(String::as_str).unwrap_or_default();
        let base = argv0.rsplit('/').next().unwrap_or(argv0);
        if !(base.starts_with("pasta") || base.starts_with("passt") || base == "slirp4netns") {
            continue;
        }
        if args
            .iter()
            .any(|a| ids.iter().any(|id| a.contains(id.as_str())))
        {
            out.push(format!("{name}: {}", args.join(" ")));
        }
    }
    out
}

/// Processes whose command line contains one of `marks`, with all their
/// descendants, except `except` (the rootless user's pause process) and
/// this test process: `PID (COMM) CMDLINE` each.
pub fn process_trees_naming(marks: &[String], except: Option<i32>) -> Vec<String> {
    let me = std::process::id() as i32;
    let Ok(rd) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    // (pid, ppid, cmdline)
    let procs: Vec<(i32, i32, String)> = rd
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 2..];
            let mut f = after.split_whitespace();
            let state = f.next()?;
            if state == "Z" || state == "X" {
                return None;
            }
            let ppid: i32 = f.next()?.parse().ok()?;
            let cmd = fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            Some((pid, ppid, cmd.trim().to_string()))
        })
        .collect();
    let mut found: Vec<i32> = procs
        .iter()
        .filter(|(pid, _, cmd)| {
            *pid != me && Some(*pid) != except && marks.iter().any(|m| cmd.contains(m.as_str()))
        })
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid, _) in &procs {
            if *ppid == parent && !found.contains(pid) && *pid != me {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found
        .iter()
        .filter_map(|pid| {
            let (_, _, cmd) = procs.iter().find(|(p, _, _)| p == pid)?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            Some(format!("{pid} ({}) {cmd}", comm.trim()))
        })
        .collect()
}

/// A unique name for containers/networks/volumes.
pub fn unique(tag: &str) -> String {
    barge_integration::unique(tag)
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
