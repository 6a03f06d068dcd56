//! Reliability of the engine, driven through the `barge` CLI:
//!
//! * 50 `run -d` at once (bridge with published ports and `--network
//!   none`, some fighting for the same name), then 50 `rm -f` at once: the
//!   database stays consistent and nothing is left behind;
//! * a loop of CLIs (`run -d`, `run --rm`, `start`, `stop`, `rm -f`) killed
//!   with SIGKILL after a random delay, and monitors killed at random: after
//!   every round `ps -a` tells the truth, and at the end `rm -f -a` plus
//!   `container prune` remove everything.
//!
//! "Nothing left behind" is [`Env::leaks`]: mounts under the test's
//! directories, cgroups `/sys/fs/cgroup/*/barge/ID`, network namespaces,
//! barge veths and nftables port elements of the test's containers
//! (`barge_net::leaks`), monitors and other processes naming the test's
//! directories, and entries under `RUNROOT/{runtime,netns,containers,locks}`
//! and `ROOT/containers`.
//!
//! Needs root, `cargo build --release -p barge -p barge-runtime -p
//! barge-monitor` (or `BARGE=/path/to/barge` with the other two beside it)
//! and the test image (`scripts/build-image.sh`, or `BARGE_IMAGE`).
//! `BARGE_SEED=N` replays a kill loop; `BARGE_KILL_ROUNDS=N` changes its
//! length (default 60).

use barge_integration::{is_root, rootfs, workspace};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/busybox";

fn barge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
    // The release build: barge-runtime and barge-monitor are found beside it.
    let p = target.join("release/barge");
    assert!(
        p.exists() && target.join("release/barge-monitor").exists(),
        "no barge and barge-monitor under {}: run `cargo build --release -p barge -p barge-runtime -p barge-monitor`",
        target.join("release").display()
    );
    p
}

macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("SKIP: the reliability tests need root");
            return;
        }
        assert!(
            rootfs().join("bin/busybox").exists(),
            "test image {} not found: run scripts/build-image.sh (or set BARGE_IMAGE)",
            rootfs().display()
        );
    };
}

/// A private `--root` and a short `--runroot`, both under one temporary
/// directory in /tmp.
struct Env {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("brl")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let e = Self {
            dir,
            bin: barge_bin(),
        };
        e.import();
        e
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("r")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().expect("run barge");
        if !out.status.success() {
            eprintln!(
                "$ barge {} [{:?}]\n{}{}",
                args.join(" "),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "barge {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn import(&self) {
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("tar");
        let out = self
            .cmd(&["import", "-", IMAGE])
            .stdin(tar.stdout.take().expect("tar stdout"))
            .output()
            .expect("barge import");
        assert!(tar.wait().expect("wait for tar").success(), "tar failed");
        assert!(
            out.status.success(),
            "import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ps(&self) -> Vec<Value> {
        let out = self.ok(&["ps", "-a", "--format", "json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("ps json {e}: {out}"))
    }

    fn sqlite(&self, sql: &str) -> Option<String> {
        let out = Command::new("sqlite3")
            .args(["-cmd", ".timeout 30000"])
            .arg(self.root().join("barge.db"))
            .arg(sql)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The database is consistent and holds no container and no address.
    fn assert_db_empty(&self) {
        match self.sqlite("PRAGMA integrity_check") {
            Some(r) => {
                assert_eq!(r, "ok", "integrity_check");
                assert_eq!(
                    self.sqlite("SELECT count(*) FROM containers").as_deref(),
                    Some("0")
                );
                assert_eq!(
                    self.sqlite("SELECT count(*) FROM addresses").as_deref(),
                    Some("0"),
                    "addresses left: {:?}",
                    self.sqlite("SELECT * FROM addresses")
                );
            }
            None => eprintln!("NOTE: no sqlite3: database checks skipped"),
        }
        assert_eq!(self.ps(), Vec::<Value>::new(), "ps -a after removal");
    }

    /// What the test's containers left behind (`ids`: every id the test
    /// ever saw).
    fn leaks(&self, ids: &BTreeSet<String>) -> Vec<String> {
        let mut leaks = Vec::new();
        let dir = self.dir.path().to_string_lossy().into_owned();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)) {
                leaks.push(format!("mount {l}"));
            }
        }
        for h in cgroup_hierarchies() {
            for id in ids {
                let p = h.join("barge").join(id);
                if p.exists() {
                    leaks.push(format!("cgroup {}", p.display()));
                }
            }
        }
        match barge_net::leaks("") {
            Ok(n) => {
                let mine = |s: &str| ids.iter().any(|id| s.contains(id.as_str()));
                leaks.extend(
                    n.links
                        .iter()
                        .filter(|l| mine(l))
                        .map(|l| format!("link {l}")),
                );
                leaks.extend(
                    n.nft_ports
                        .iter()
                        .filter(|l| mine(l))
                        .map(|l| format!("nft element {l}")),
                );
                leaks.extend(
                    n.netns_mounts
                        .iter()
                        .filter(|p| mine(&p.to_string_lossy()))
                        .map(|p| format!("netns {}", p.display())),
                );
            }
            Err(e) => leaks.push(format!("barge_net::leaks failed: {e}")),
        }
        for (pid, cmdline) in processes() {
            if cmdline.contains(&dir) {
                leaks.push(format!("process {pid}: {cmdline}"));
            }
        }
        for d in [
            self.runroot().join("runtime"),
            self.runroot().join("netns"),
            self.runroot().join("containers"),
            self.runroot().join("locks"),
            self.root().join("containers"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    let inside: Vec<String> = std::fs::read_dir(e.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|f| f.file_name().to_string_lossy().into_owned())
                        .collect();
                    leaks.push(format!("file {} {inside:?}", e.path().display()));
                }
            }
        }
        leaks
    }

    /// Asserts that nothing is left, giving asynchronous exits (monitors
    /// running their exit command, the kernel deleting veths) a few
    /// seconds.
    fn assert_no_leaks(&self, ids: &BTreeSet<String>) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let leaks = self.leaks(ids);
            if leaks.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!("LEAKS after removing everything: {leaks:#?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Env {
    /// Best effort when a test failed half-way: kill and remove whatever
    /// it left, so one failure does not leak into the host.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let _ = self.cmd(&["rm", "-f", "-a"]).output();
        let dir = self.dir.path().to_string_lossy().into_owned();
        for (pid, cmdline) in processes() {
            if cmdline.contains(&dir) {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = self.cmd(&["rm", "-f", "-a"]).output();
        for l in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if let Some(m) = l.split(' ').nth(4).filter(|m| m.starts_with(&dir)) {
                let _ = Command::new("umount").args(["-l", m]).status();
            }
        }
    }
}

/// `/sys/fs/cgroup/<controller>` of every v1 hierarchy and the unified
/// one (or `/sys/fs/cgroup` itself on a pure v2 host).
fn cgroup_hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = vec![root.to_path_buf()];
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Pids in the container's cgroups (any hierarchy).
fn cgroup_pids(id: &str) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for h in cgroup_hierarchies() {
        let p = h.join("barge").join(id).join("cgroup.procs");
        for l in std::fs::read_to_string(p).unwrap_or_default().lines() {
            if let Ok(pid) = l.trim().parse() {
                out.insert(pid);
            }
        }
    }
    out
}

/// Every process: pid and command line (NULs as spaces).
fn processes() -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if !c.is_empty() {
                out.push((pid, c));
            }
        }
    }
    out
}

/// `/proc/PID/stat` fields after the command: (state, ppid, pgrp).
fn proc_stat(pid: i32) -> Option<(char, i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some((
        f.first()?.chars().next()?,
        f.get(1)?.parse().ok()?,
        f.get(2)?.parse().ok()?,
    ))
}

fn alive(pid: i32) -> bool {
    pid > 0 && proc_stat(pid).is_some_and(|(s, _, _)| s != 'Z' && s != 'X')
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits until no process is left in process group `pgrp` (what a killed
/// CLI had started: `runtime start`, `runtime delete`, `nft`, the
/// monitor's first stage), up to 30 s.
fn settle_group(pgrp: i32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<i32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|&p| proc_stat(p).is_some_and(|(s, _, g)| g == pgrp && s != 'Z'))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processes of a killed CLI still running after 30 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Spawns the CLI in its own process group.
fn spawn(env: &Env, args: &[&str]) -> Child {
    env.cmd(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn barge")
}

/// SIGKILLs the CLI after `delay` (unless it finished first), reaps it and
/// waits for what it started to finish. Whether it was killed.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    let mut killed = false;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() >= deadline {
            // SAFETY: kill has no memory effects; the child is not reaped
            // yet, so the pid is still ours.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed = true;
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    settle_group(child.id() as i32);
    killed
}

/// Checks that `ps -a` tells the truth about every container: one shown
/// running (or paused) has its init alive, in its own cgroup; one shown
/// exited has no process at all; one shown created has not run its
/// command (a created container's init may wait for `start`).
fn check_truthful(env: &Env, ids: &mut BTreeSet<String>) -> Result<(), String> {
    let mut bad = Vec::new();
    for row in env.ps() {
        let id = row["Id"].as_str().unwrap_or_default().to_string();
        let name = row["Names"][0].as_str().unwrap_or_default().to_string();
        let state = row["State"].as_str().unwrap_or_default().to_string();
        let pid = i32::try_from(row["Pid"].as_i64().unwrap_or(0)).unwrap_or(0);
        ids.insert(id.clone());
        let procs = cgroup_pids(&id);
        match state.as_str() {
            "running" | "paused" | "stopping" => {
                if !alive(pid) {
                    bad.push(format!("{name} shown {state} but its init {pid} is gone"));
                } else if !procs.contains(&pid) {
                    bad.push(format!(
                        "{name} shown {state}: pid {pid} is not in its cgroup ({procs:?})"
                    ));
                }
            }
            "exited" => {
                let live: Vec<i32> = procs.into_iter().filter(|p| alive(*p)).collect();
                if !live.is_empty() {
                    bad.push(format!("{name} shown exited but runs {live:?}"));
                }
            }
            "created" => {
                let ran: Vec<i32> = procs
                    .into_iter()
                    .filter(|p| alive(*p) && comm(*p) == "sleep")
                    .collect();
                if !ran.is_empty() {
                    bad.push(format!(
                        "{name} shown created but its command runs: {ran:?}"
                    ));
                }
            }
            _ => {}
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("\n"))
    }
}

/// Every id in the database and on disk (containers a killed CLI created
/// may never have been printed).
fn known_ids(env: &Env, ids: &mut BTreeSet<String>) {
    for row in env.ps() {
        if let Some(id) = row["Id"].as_str() {
            ids.insert(id.to_string());
        }
    }
    for d in [
        env.root().join("containers"),
        env.runroot().join("containers"),
    ] {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            ids.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
}

#[test]
fn fifty_parallel_runs_then_removals_leave_a_consistent_database() {
    need_root!();
    let env = Env::new();
    // 50 at once: even ones on the default bridge with a published port,
    // odd ones without network; ten fight for "dup-a", five for "dup-b".
    let name_of = |i: usize| match i {
        0..=9 => Some("dup-a".to_string()),
        20..=24 => Some("dup-b".to_string()),
        30..=39 => Some(format!("uniq-{i}")),
        _ => None,
    };
    let results: Vec<(usize, Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let mut args = vec!["run", "-d"];
                    if i % 2 == 0 {
                        args.extend(["-p", "127.0.0.1::80"]);
                    } else {
                        args.extend(["--network", "none"]);
                    }
                    let name = name_of(i);
                    if let Some(n) = &name {
                        args.extend(["--name", n.as_str()]);
                    }
                    args.extend([IMAGE, "sleep", "1000"]);
                    (i, env.cmd(&args).output().expect("run barge"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut winners = BTreeSet::new();
    let mut won = std::collections::BTreeMap::<String, usize>::new();
    for (i, out) in &results {
        let stderr = String::from_utf8_lossy(&out.stderr);
        match name_of(*i) {
            Some(n) if n.starts_with("dup-") => {
                if out.status.success() {
                    *won.entry(n).or_default() += 1;
                } else {
                    assert_eq!(out.status.code(), Some(125), "run {i}: {stderr}");
                    assert!(stderr.contains("already in use"), "run {i}: {stderr}");
                    continue;
                }
            }
            _ => assert!(out.status.success(), "run {i} failed: {stderr}"),
        }
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(id.len(), 64, "run {i} printed {id:?}");
        winners.insert(id);
    }
    assert_eq!(won.get("dup-a"), Some(&1), "exactly one dup-a wins");
    assert_eq!(won.get("dup-b"), Some(&1), "exactly one dup-b wins");
    assert_eq!(winners.len(), 50 - 9 - 4);

    let rows = env.ps();
    let shown: BTreeSet<String> = rows
        .iter()
        .map(|r| r["Id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(shown, winners, "ps -a lists exactly the winners");
    for r in &rows {
        assert_eq!(r["State"], "running", "{r}");
    }
    let mut ids = winners.clone();
    check_truthful(&env, &mut ids).unwrap_or_else(|e| panic!("{e}"));
    let ports: BTreeSet<u64> = rows
        .iter()
        .filter_map(|r| r["Ports"][0]["host_port"].as_u64())
        .collect();
    let bridged = rows.iter().filter(|r| r["Networks"][0] == "barge").count();
    assert_eq!(ports.len(), bridged, "distinct host ports");
    // The losers left nothing: no record, no directory.
    known_ids(&env, &mut ids);
    assert_eq!(ids, winners, "directories of losers are gone");

    // 50 removals at once: every winner, and the first few twice.
    let targets: Vec<String> = winners
        .iter()
        .cloned()
        .chain(winners.iter().take(50 - winners.len()).cloned())
        .collect();
    assert_eq!(targets.len(), 50);
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|id| {
                let env = &env;
                s.spawn(move || (id, env.cmd(&["rm", "-f", id]).output().expect("rm")))
            })
            .collect();
        for h in handles {
            let (id, out) = h.join().expect("thread");
            assert!(
                out.status.success(),
                "rm -f {id}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    });
    env.assert_db_empty();
    env.assert_no_leaks(&ids);
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        if v.is_empty() {
            None
        } else {
            v.get(self.below(v.len() as u64) as usize)
        }
    }
}

fn inspect_i64(env: &Env, name: &str, field: &str) -> Option<i64> {
    let out = env.run(&[
        "inspect",
        "--format",
        &format!("{{{{.State.{field}}}}}"),
        name,
    ]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

#[test]
#[allow(clippy::too_many_lines)]
fn killed_clis_and_monitors_leave_truthful_state_and_removable_leftovers() {
    need_root!();
    let seed = std::env::var("BARGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let rounds: usize = std::env::var("BARGE_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    eprintln!("kill loop: BARGE_SEED={seed} BARGE_KILL_ROUNDS={rounds}");
    let mut rng = Rng(seed);
    let env = Env::new();
    let mut ids = BTreeSet::new();
    // How long an uninterrupted `run -d` takes, so that some kills land
    // late (runtime start, the final record update) and not only in the
    // first 60 ms.
    let t = Instant::now();
    env.ok(&["run", "-d", "--name", "k-base", IMAGE, "sleep", "1000"]);
    let full = t.elapsed();
    eprintln!("an uninterrupted run -d takes {full:?}");
    let mut names: Vec<String> = vec!["k-base".into()];
    let mut stats = std::collections::BTreeMap::<String, (u32, u32)>::new();
    for round in 0..rounds {
        let name = format!("k{round}");
        let delay = if rng.below(3) == 0 {
            Duration::from_micros(rng.below(full.as_micros() as u64 + 1))
        } else {
            Duration::from_millis(rng.below(61))
        };
        let action = rng.below(10);
        let what: String;
        match action {
            0..=4 => {
                let mut args = vec!["run"];
                if action == 4 {
                    args.push("--rm");
                } else {
                    args.push("-d");
                }
                if rng.below(2) == 0 {
                    args.extend(["-p", "127.0.0.1::80"]);
                } else {
                    args.extend(["--network", "none"]);
                }
                args.extend(["--name", &name, IMAGE, "sleep", "1000"]);
                what = format!("{} after {delay:?}", args[..2].join(" "));
                let killed = kill_after(spawn(&env, &args), delay);
                let s = stats.entry(args[..2].join(" ")).or_default();
                s.0 += 1;
                s.1 += u32::from(killed);
                names.push(name.clone());
            }
            5..=7 => {
                let verb: &[&str] = match action {
                    5 => &["start"],
                    6 => &["stop", "-t", "1"],
                    _ => &["rm", "-f"],
                };
                let Some(target) = rng.pick(&names).cloned() else {
                    continue;
                };
                let mut args = verb.to_vec();
                args.push(&target);
                what = format!("{} after {delay:?}", args.join(" "));
                let killed = kill_after(spawn(&env, &args), delay);
                let s = stats.entry(verb[0].to_string()).or_default();
                s.0 += 1;
                s.1 += u32::from(killed);
            }
            _ => {
                // Kill a running container's monitor; sometimes its
                // process too, which must then show exited.
                let running: Vec<String> = env
                    .ps()
                    .iter()
                    .filter(|r| r["State"] == "running")
                    .filter_map(|r| r["Names"][0].as_str().map(str::to_string))
                    .collect();
                let Some(target) = rng.pick(&running).cloned() else {
                    continue;
                };
                let id = env.ok(&["inspect", "--format", "{{.Id}}", &target]);
                let id = id.trim();
                // Never signal a pid that is no longer the container's
                // (a monitor killed in an earlier round, pid reuse).
                let monitor = inspect_i64(&env, &target, "ConmonPid")
                    .filter(|&p| {
                        std::fs::read(format!("/proc/{p}/cmdline"))
                            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == id.as_bytes()))
                    })
                    .unwrap_or(0);
                let pid = inspect_i64(&env, &target, "Pid")
                    .filter(|&p| cgroup_pids(id).contains(&(p as i32)))
                    .unwrap_or(0);
                let also_init = rng.below(2) == 0;
                what = format!(
                    "kill the monitor {monitor} of {target} (and its init {pid}: {also_init})"
                );
                if monitor > 0 {
                    // SAFETY: kill has no memory effects.
                    unsafe { libc::kill(monitor as i32, libc::SIGKILL) };
                }
                if also_init && pid > 0 {
                    // SAFETY: as above.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                    let deadline = Instant::now() + Duration::from_secs(10);
                    loop {
                        let row = env
                            .ps()
                            .into_iter()
                            .find(|r| r["Names"][0] == target.as_str());
                        match row {
                            Some(r) if r["State"] == "exited" => {
                                let code = r["ExitCode"].as_i64().unwrap_or(0);
                                assert!(
                                    code == -1 || code == 137,
                                    "round {round} (seed {seed}): {target} exited with {code} after its monitor and init were killed"
                                );
                                break;
                            }
                            None => break,
                            Some(r) => assert!(
                                Instant::now() < deadline,
                                "round {round} (seed {seed}): {target} still {} after its monitor and init were killed",
                                r["State"]
                            ),
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                *stats.entry("kill monitor".into()).or_default() =
                    (stats.get("kill monitor").map_or(0, |s| s.0) + 1, 0);
            }
        }
        eprintln!("round {round}: {what}");
        if let Err(e) = check_truthful(&env, &mut ids) {
            panic!("round {round} ({what}), BARGE_SEED={seed}: ps -a is not truthful:\n{e}");
        }
    }
    eprintln!("actions (count, killed): {stats:?}");
    known_ids(&env, &mut ids);
    env.ok(&["rm", "-f", "-a"]);
    // There is no `system prune` yet: `container prune` is the closest.
    env.ok(&["container", "prune", "-f"]);
    known_ids(&env, &mut ids);
    env.assert_db_empty();
    env.assert_no_leaks(&ids);
}
