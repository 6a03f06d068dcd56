//! Security: no host fd leaks into the container (CVE-2024-21626 class), no
//! writable handle to the host runtime binary (CVE-2019-5736 class).

use barge_integration::{json, need_root, Container};
use std::os::fd::AsRawFd;

fn fds_of(o: &barge_integration::Out) -> Vec<u64> {
    o.json()["fds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect()
}

#[test]
fn only_stdio_fds_reach_the_container() {
    need_root!();
    // Hand the runtime an extra inherited fd (a host directory and a file).
    let host_dir = std::fs::File::open("/").unwrap();
    let mut c = Container::new("fds");
    c.args(&["barge-check", "fds"]);
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let hd = host_dir.as_raw_fd();
    let o = c.rt_files_with(&["run", "--bundle", &b, &id], |cmd| {
        barge_integration::inherit_fd(cmd, hd, 7);
    });
    o.ok();
    assert_eq!(fds_of(&o), vec![0, 1, 2], "{o:#?}");
    let v = o.json();
    for (_, t) in v["targets"].as_object().unwrap() {
        let t = t.as_str().unwrap_or("");
        assert!(
            !t.starts_with('/') || t.starts_with("/dev/"),
            "host path leaked: {v}"
        );
    }
    drop(host_dir);
}

#[test]
fn preserve_fds_passes_exactly_those() {
    need_root!();
    let f = tempfile::tempfile().unwrap();
    let mut c = Container::new("pfds");
    c.args(&["barge-check", "fds"]);
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let fd = f.as_raw_fd();
    let o = c.rt_files_with(
        &["run", "--preserve-fds", "1", "--bundle", &b, &id],
        |cmd| {
            barge_integration::inherit_fd(cmd, fd, 3);
        },
    );
    o.ok();
    assert_eq!(fds_of(&o), vec![0, 1, 2, 3], "{o:#?}");
}

#[test]
fn exec_has_no_host_fds_and_cwd_inside() {
    need_root!();
    let mut c = Container::new("execfds");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let o = c.exec(&[], &["barge-check", "fds"]);
    o.ok();
    assert_eq!(fds_of(&o), vec![0, 1, 2], "{o:#?}");
    let o = c.exec(&[], &["barge-check", "cwd"]);
    assert_eq!(o.json()["cwd"], "/", "{o:#?}");
    let o = c.exec(&[], &["barge-check", "exe"]);
    assert_eq!(o.json()["exe"], "/usr/bin/barge-check", "{o:#?}");
    c.delete_force().ok();
}

#[test]
fn runtime_binary_not_writable_from_container() {
    need_root!();
    // A privileged container watches /proc while processes enter it via
    // exec; any foreign executable it can see must not be writable.
    let mut c = Container::new("exewatch");
    c.args(&["barge-check", "exe-watch", "4000"]);
    let all = json!([
        "CAP_SYS_PTRACE",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_KILL",
        "CAP_SYS_ADMIN"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set] = all.clone();
    }
    c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    c.create().ok();
    let n = c.last_call();
    c.start().ok();
    for _ in 0..10 {
        let _ = c.exec(&[], &["barge-check", "pid"]);
    }
    c.wait_status("stopped", std::time::Duration::from_secs(15));
    let out = c.stdout_of(n);
    let v = barge_integration::parse_last_json(&out).unwrap_or_else(|| panic!("{out}"));
    for p in v["foreign"].as_array().unwrap() {
        assert_eq!(
            p["writable"], false,
            "container could open a foreign exe for writing: {p}"
        );
    }
    eprintln!(
        "exe-watch: {} scans, foreign executables seen: {}",
        v["scans"], v["foreign"]
    );
    c.delete().ok();
    // The host runtime binary is unchanged and still runs.
    let o = barge_integration::run_cmd(
        {
            let mut cmd = std::process::Command::new(barge_integration::runtime());
            cmd.arg("--version");
            cmd
        },
        barge_integration::TIMEOUT,
    );
    o.ok();
}
