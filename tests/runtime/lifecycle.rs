//! create/start/state/kill/delete, run attached and detached, pause/resume.

use barge_integration::{need_root, Container, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

#[test]
fn lifecycle_create_start_kill_delete() {
    need_root!();
    let mut c = Container::new("life");
    c.args(&["barge-check", "signal-wait"]);
    c.create().ok();
    let st = c.state();
    assert_eq!(st["status"], "created", "{st}");
    assert_eq!(st["id"], Value::from(c.id.clone()));
    assert!(st["pid"].as_i64().unwrap_or(0) > 0, "{st}");
    assert_eq!(
        st["bundle"]
            .as_str()
            .map(std::path::PathBuf::from)
            .as_deref(),
        Some(c.bundle_path()),
        "{st}"
    );
    assert!(st["ociVersion"].is_string(), "{st}");
    c.start().ok();
    c.wait_status("running", T);
    let n = c.last_call();
    assert!(
        barge_integration::wait_until(T, || c.stdout_of(n).contains("ready")),
        "no ready line"
    );
    c.kill("KILL").ok();
    c.wait_status("stopped", T);
    c.delete().ok();
    assert!(
        !c.rt(&["state", &c.id]).success(),
        "state after delete must fail"
    );
}

#[test]
fn run_attached_propagates_exit_code() {
    need_root!();
    let mut c = Container::new("exit");
    c.args(&["barge-check", "exit", "42"]);
    let o = c.run();
    assert_eq!(o.code, 42, "{o:#?}");
    // The container is gone after an attached run (runc deletes it).
    assert!(!c.rt(&["state", &c.id]).success());
}

#[test]
fn run_attached_output_and_pid1() {
    need_root!();
    let mut c = Container::new("pid1");
    c.args(&["barge-check", "pid"]);
    let o = c.run();
    o.ok();
    assert_eq!(o.json()["pid"], 1, "{o:#?}");
}

#[test]
fn run_detach() {
    need_root!();
    let mut c = Container::new("detach");
    c.args(&["barge-check", "sleep", "60"]);
    let o = c.run_detached();
    o.ok();
    assert!(!o.timed_out);
    assert_eq!(c.status(), "running");
    let pid = c.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    c.kill("KILL").ok();
    c.wait_status("stopped", T);
    c.delete().ok();
}

#[test]
fn kill_by_name_number_and_all() {
    need_root!();
    let mut c = Container::new("kill");
    c.args(&["barge-check", "signal-wait"]);
    c.create().ok();
    let n = c.last_call();
    c.start().ok();
    assert!(
        barge_integration::wait_until(T, || c.stdout_of(n).contains("ready")),
        "no ready line"
    );
    c.kill("USR1").ok();
    assert!(barge_integration::wait_until(T, || c
        .stdout_of(n)
        .contains("SIGUSR1")));
    c.kill("SIGHUP").ok();
    assert!(barge_integration::wait_until(T, || c
        .stdout_of(n)
        .contains("SIGHUP")));
    c.kill("12").ok();
    assert!(
        barge_integration::wait_until(T, || c.stdout_of(n).contains("SIGUSR2")),
        "{}",
        c.stdout_of(n)
    );
    // --all reaches every process of the container.
    c.rt(&["kill", "--all", &c.id, "TERM"]).ok();
    c.wait_status("stopped", T);
    let out = c.stdout_of(n);
    assert!(out.contains("SIGTERM"), "{out}");
    c.delete().ok();
}

#[test]
fn delete_force_running() {
    need_root!();
    let mut c = Container::new("force");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let pid = c.pid();
    // A plain delete of a running container must fail...
    c.delete().fails();
    // ...and --force kills and removes it.
    c.delete_force().ok();
    assert!(!c.rt(&["state", &c.id]).success());
    assert!(barge_integration::wait_until(T, || !std::path::Path::new(
        &format!("/proc/{pid}/ns")
    )
    .exists()));
}

#[test]
fn pause_resume() {
    need_root!();
    let mut c = Container::new("pause");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    c.rt(&["pause", &c.id]).ok();
    assert_eq!(c.status(), "paused");
    let pid = c.pid();
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    // A frozen task sleeps in the freezer (state D or S); it must not run.
    assert!(!st.contains("State:\tR"), "{st}");
    c.rt(&["resume", &c.id]).ok();
    assert_eq!(c.status(), "running");
    c.kill("KILL").ok();
    c.wait_status("stopped", T);
    c.delete().ok();
}

#[test]
fn pid_file_on_create_and_run() {
    need_root!();
    let mut c = Container::new("pidfile");
    c.args(&["barge-check", "sleep", "600"]);
    c.write_config();
    let pf = c.bundle_path().join("ctr.pid");
    let p = pf.to_string_lossy().into_owned();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    c.rt_files(&["create", "--pid-file", &p, "--bundle", &b, &id])
        .ok();
    let pid: i64 = std::fs::read_to_string(&pf)
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("pid file");
    assert_eq!(c.state()["pid"].as_i64(), Some(pid));
    c.delete_force().ok();

    let mut d = Container::new("pidfile2");
    d.args(&["barge-check", "sleep", "600"]);
    d.write_config();
    let pf = d.bundle_path().join("ctr.pid");
    let p = pf.to_string_lossy().into_owned();
    let b = d.bundle_path().to_string_lossy().into_owned();
    let id = d.id.clone();
    d.rt_files(&["run", "--detach", "--pid-file", &p, "--bundle", &b, &id])
        .ok();
    let pid: i64 = std::fs::read_to_string(&pf)
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("pid file");
    assert_eq!(d.state()["pid"].as_i64(), Some(pid));
    d.delete_force().ok();
}

#[test]
fn start_twice_fails_and_state_of_stopped() {
    need_root!();
    let mut c = Container::new("twice");
    c.args(&["barge-check", "exit", "3"]);
    c.create().ok();
    c.start().ok();
    c.wait_status("stopped", T);
    c.start().fails();
    let st = c.state();
    assert_eq!(st["status"], "stopped");
    c.delete().ok();
}
