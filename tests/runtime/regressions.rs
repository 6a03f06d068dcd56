//! Regression tests for bugs found in review: each failed (or hung) before
//! its fix.

use std::time::Duration;

use barge_integration::{need_root, Container};
use serde_json::json;

/// A working directory given as a magic link (`/proc/self/fd/N`) must not
/// resolve to a host directory fd the init happened to hold
/// (CVE-2024-21626 class); the create fails and leaves nothing behind.
#[test]
fn cwd_through_proc_fd_cannot_escape() {
    need_root!();
    for fd in 3..=9 {
        let mut c = Container::new("cwdfd");
        c.args(&["sh", "-c", "ls ../../../../../../ ; echo RAN"]);
        c.config["process"]["cwd"] = json!(format!("/proc/self/fd/{fd}"));
        let o = c.create();
        if o.success() {
            c.start().ok();
            c.wait_status("stopped", Duration::from_secs(10));
            let out = c.stdout_of(c.last_call());
            assert!(
                !out.contains("RAN"),
                "cwd /proc/self/fd/{fd} was entered: {out}"
            );
        } else {
            assert!(o.stderr.contains("cwd"), "{o:#?}");
        }
    }
}

/// A container that writes a lot before reading its stdin must not
/// deadlock with the runtime feeding that stdin.
#[test]
fn piped_stdin_and_large_output_do_not_deadlock() {
    need_root!();
    let input = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(input.path(), vec![b'x'; 1_000_000]).unwrap();
    let mut c = Container::new("stdin");
    c.args(&["sh", "-c", "head -c 1000000 /dev/zero; wc -c; echo done"]);
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let f = std::fs::File::open(input.path()).unwrap();
    let o = c.rt_files_with(&["run", "--bundle", &b, &id], |cmd| {
        cmd.stdin(f);
    });
    assert!(!o.timed_out, "run hung");
    o.ok();
    assert!(
        o.stdout.len() > 1_000_000,
        "output lost: {} bytes",
        o.stdout.len()
    );
    assert!(o.stdout.contains("1000000"), "input lost");
    assert!(o.stdout.ends_with("done\n"));
}

/// A hook that prints more than a pipe holds must not hang the runtime.
#[test]
fn hook_with_large_output_does_not_hang() {
    need_root!();
    let mut c = Container::new("hookout");
    c.args(&["true"]);
    c.config["hooks"] = json!({"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"]}]});
    let o = c.create();
    assert!(!o.timed_out, "create hung on the hook's output");
    o.ok();
    c.delete_force().ok();
}

/// `create` killed half-way (here during a slow prestart hook): `delete`
/// still removes the cgroups, the init and the state (the leak checker
/// runs when `c` is dropped).
#[test]
fn delete_cleans_up_after_a_killed_create() {
    need_root!();
    let mut c = Container::new("killedcreate");
    c.args(&["true"]);
    c.config["hooks"] = json!({"prestart": [{"path": "/bin/sleep", "args": ["sleep", "3"]}]});
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let mut cmd = c.cmd();
    cmd.args(["create", "--bundle", &b, &c.id]);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    child.kill().unwrap();
    child.wait().unwrap();
    let o = c.delete();
    o.ok();
}

/// SIGTERM ends a created (not yet started) container, as with runc.
#[test]
fn term_ends_a_created_container() {
    need_root!();
    let mut c = Container::new("termcreated");
    c.args(&["true"]);
    c.create().ok();
    c.kill("TERM").ok();
    c.wait_status("stopped", Duration::from_secs(5));
    c.delete().ok();
}

/// A cgroupsPath that already holds processes is refused, and those
/// processes survive the failed create.
#[test]
fn cgroup_with_processes_is_not_adopted() {
    need_root!();
    let victim = format!("/barge-victim-{}", std::process::id());
    let dir = format!("/sys/fs/cgroup/pids{victim}");
    std::fs::create_dir_all(&dir).unwrap();
    let mut sleeper = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    std::fs::write(format!("{dir}/cgroup.procs"), sleeper.id().to_string()).unwrap();
    let mut c = Container::new("victim");
    c.args(&["/nonexistent"]);
    c.config["linux"]["cgroupsPath"] = json!(victim);
    let o = c.create();
    o.fails();
    assert!(o.stderr.contains("already has processes"), "{o:#?}");
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the host process was killed"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _ = std::fs::remove_dir(&dir);
    for ctrl in [
        "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "systemd", "unified",
    ] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{ctrl}{victim}"));
    }
}

/// SIGKILL to a paused container kills it (it is thawed so it can die).
#[test]
fn kill_on_paused_container_takes_effect() {
    need_root!();
    let mut c = Container::new("killpaused");
    c.args(&["sleep", "100"]);
    c.run_detached().ok();
    c.rt(&["pause", &c.id]).ok();
    c.kill("KILL").ok();
    c.wait_status("stopped", Duration::from_secs(5));
    c.delete().ok();
}

/// `swap: 0` means "not set" (runc), not an impossible memsw limit.
#[test]
fn swap_zero_is_not_a_limit() {
    need_root!();
    let mut c = Container::new("swap0");
    c.args(&["true"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 67_108_864, "swap": 0});
    c.run().ok();
}

/// Relative hook paths are rejected before anything is created.
#[test]
fn relative_hook_path_is_rejected() {
    need_root!();
    let mut c = Container::new("relhook");
    c.args(&["true"]);
    c.config["hooks"] = json!({"prestart": [{"path": "true"}]});
    let o = c.create();
    o.fails();
    assert!(o.stderr.contains("must be absolute"), "{o:#?}");
}

/// An attached `run` whose stdout reader goes away must not spin: the
/// container gets EPIPE and the run ends.
#[test]
fn run_ends_when_its_stdout_reader_goes_away() {
    need_root!();
    let mut c = Container::new("epipe");
    c.args(&["yes"]);
    c.write_config();
    let script = format!(
        "{} --root {} run --bundle {} {} | head -c 10 >/dev/null",
        barge_integration::runtime().display(),
        c.state_root.path().display(),
        c.bundle_path().display(),
        c.id
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script]);
    let o = barge_integration::run_cmd(cmd, Duration::from_secs(15));
    assert!(!o.timed_out, "run kept going after its reader left");
}
