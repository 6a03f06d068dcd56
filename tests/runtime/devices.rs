//! The default device set, /dev symlinks, devpts/ptmx, extra devices.

use barge_integration::{check, json, need_root};

#[test]
fn default_devices() {
    need_root!();
    for (dev, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = format!("/dev/{dev}");
        let o = check("dev", &["stat", &path], |_| {});
        o.ok();
        let v = o.json();
        assert_eq!(v["type"], "char", "{v}");
        assert_eq!(
            (v["rdev_major"].as_u64(), v["rdev_minor"].as_u64()),
            (Some(major), Some(minor)),
            "{v}"
        );
        assert_eq!(v["mode_octal"], "0666", "{v}");
    }
    // The devices are usable (the device cgroup allows the defaults).
    let o = check("devr", &["read", "/dev/null"], |_| {});
    o.ok();
    let o = check("devw", &["write", "/dev/null", "x"], |_| {});
    o.ok();
}

#[test]
fn dev_symlinks() {
    need_root!();
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let o = check("devln", &["stat", link], |_| {});
        o.ok();
        let v = o.json();
        assert_eq!(v["type"], "symlink", "{v}");
        assert_eq!(v["target"], target, "{v}");
    }
    let o = check("devcore", &["stat", "/dev/core"], |_| {});
    if o.success() {
        assert_eq!(o.json()["target"], "/proc/kcore");
    }
}

#[test]
fn devpts_and_ptmx() {
    need_root!();
    let o = check("pts", &["mounts"], |_| {});
    o.ok();
    let v = o.json();
    let pts = v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountpoint"] == "/dev/pts")
        .expect("/dev/pts");
    assert_eq!(pts["fstype"], "devpts");
    let so: Vec<&str> = pts["super_options"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    assert!(so.contains(&"ptmxmode=666"), "{so:?}");
    assert!(so.contains(&"gid=5") && so.contains(&"mode=620"), "{so:?}");
    let o = check("ptmx", &["stat", "/dev/ptmx"], |_| {});
    o.ok();
    let v = o.json();
    // Either a symlink to pts/ptmx or a bind of it.
    if v["type"] == "symlink" {
        assert_eq!(v["target"], "pts/ptmx", "{v}");
    } else {
        assert_eq!(
            (v["rdev_major"].as_u64(), v["rdev_minor"].as_u64()),
            (Some(5), Some(2)),
            "{v}"
        );
    }
    let o = check("shm", &["stat", "/dev/shm"], |_| {});
    assert_eq!(o.json()["mode_octal"], "1777");
}

#[test]
fn extra_device_node() {
    need_root!();
    let o = check("devx", &["stat", "/dev/mydev"], |c| {
        c.config["linux"]["devices"] = json!([{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640, "uid": 0, "gid": 5}]);
    });
    o.ok();
    let v = o.json();
    assert_eq!(v["type"], "char");
    assert_eq!(
        (v["rdev_major"].as_u64(), v["rdev_minor"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(v["mode_octal"], "0640");
    assert_eq!(v["gid"], 5);
}

#[test]
fn device_cgroup_denies_unlisted() {
    need_root!();
    // A node for /dev/mem-like device 1:1 exists but the cgroup denies access.
    let o = check("devdeny", &["read", "/dev/mymem"], |c| {
        c.config["linux"]["devices"] =
            json!([{"path": "/dev/mymem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}]);
        c.config["process"]["capabilities"]["bounding"] = json!(["CAP_SYS_RAWIO"]);
        c.config["process"]["capabilities"]["effective"] = json!(["CAP_SYS_RAWIO"]);
        c.config["process"]["capabilities"]["permitted"] = json!(["CAP_SYS_RAWIO"]);
    });
    o.fails();
    assert_eq!(o.json()["errno_name"], "EPERM", "{o:#?}");
}
