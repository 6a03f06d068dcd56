//! exec: --process JSON, inline flags, --pid-file, --detach.

use barge_integration::{json, need_root, wait_until, Container};
use std::time::Duration;

fn running(tag: &str) -> Container {
    let mut c = Container::new(tag);
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    c
}

#[test]
fn exec_inline_flags() {
    need_root!();
    let mut c = running("exec");
    let o = c.exec(&[], &["barge-check", "pid"]);
    o.ok();
    assert!(o.json()["pid"].as_i64().unwrap_or(0) > 1, "{o:#?}");

    let o = c.exec(
        &["--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1000"],
        &["barge-check", "env"],
    );
    o.ok();
    assert_eq!(o.json()["env"]["FOO"], "bar", "{o:#?}");
    let o = c.exec(&["--cwd", "/tmp"], &["barge-check", "cwd"]);
    assert_eq!(o.json()["cwd"], "/tmp", "{o:#?}");
    let o = c.exec(
        &["--user", "1000:1000", "--additional-gids", "100"],
        &["barge-check", "ids"],
    );
    o.ok();
    let v = o.json();
    assert_eq!(v["uid"], 1000);
    assert_eq!(v["gid"], 1000);
    assert!(v["groups"].as_array().unwrap().contains(&json!(100)), "{v}");
    // Exit codes propagate.
    let o = c.exec(&[], &["barge-check", "exit", "7"]);
    assert_eq!(o.code, 7, "{o:#?}");
    // Capabilities flag adds to the default set.
    let o = c.exec(&["--cap", "CAP_SYS_ADMIN"], &["barge-check", "caps"]);
    o.ok();
    assert!(
        o.json()["effective"]
            .as_array()
            .unwrap()
            .contains(&json!("CAP_SYS_ADMIN")),
        "{o:#?}"
    );
    c.delete_force().ok();
}

#[test]
fn exec_process_json() {
    need_root!();
    let mut c = running("execp");
    let proc_json = json!({
        "terminal": false,
        "user": {"uid": 1000, "gid": 1000, "additionalGids": [65534]},
        "args": ["barge-check", "ids"],
        "env": ["PATH=/usr/bin:/bin", "X=1"],
        "cwd": "/",
        "noNewPrivileges": true
    });
    let p = c.bundle_path().join("process.json");
    std::fs::write(&p, serde_json::to_vec(&proc_json).unwrap()).unwrap();
    let ps = p.to_string_lossy().into_owned();
    let o = c.exec(&["--process", &ps], &[]);
    o.ok();
    let v = o.json();
    assert_eq!(v["uid"], 1000, "{v}");
    assert!(
        v["groups"].as_array().unwrap().contains(&json!(65534)),
        "{v}"
    );
    c.delete_force().ok();
}

#[test]
fn exec_detach_and_pid_file() {
    need_root!();
    let mut c = running("execd");
    let pf = c.bundle_path().join("exec.pid");
    let pfs = pf.to_string_lossy().into_owned();
    let o = c.exec(
        &["--detach", "--pid-file", &pfs],
        &["barge-check", "sleep", "600"],
    );
    o.ok();
    let pid: i32 = std::fs::read_to_string(&pf)
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("pid file holds a pid");
    assert!(pid > 0);
    // The process may still be finishing its execve when exec returns.
    let cmdline = || std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || cmdline()
            .contains("barge-check")),
        "{:?}",
        cmdline()
    );
    // The exec'd process is in the container's pid namespace.
    let a = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let b = std::fs::read_link(format!("/proc/{}/ns/pid", c.pid())).unwrap();
    assert_eq!(a, b);
    // ps lists both.
    let ps = c.rt(&["ps", "--format", "json", &c.id]);
    let v: serde_json::Value = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    c.delete_force().ok();
    assert!(wait_until(Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{pid}/ns")).exists()
    }));
}

#[test]
fn exec_into_stopped_fails() {
    need_root!();
    let mut c = Container::new("execs");
    c.args(&["barge-check", "exit", "0"]);
    c.create().ok();
    c.start().ok();
    c.wait_status("stopped", Duration::from_secs(10));
    let o = c.exec(&[], &["barge-check", "pid"]);
    o.fails();
    c.delete().ok();
}
