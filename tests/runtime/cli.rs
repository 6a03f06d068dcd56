//! list, ps, spec, features.

use barge_integration::{need_root, run_cmd, runtime, Container, Value};
use std::process::Command;

#[test]
fn list_table_and_json() {
    need_root!();
    let mut c = Container::new("list");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let t = c.rt(&["list"]);
    t.ok();
    let header = t.stdout.lines().next().unwrap_or_default();
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(col), "table header lacks {col}: {t:#?}");
    }
    assert!(
        t.stdout.contains(&c.id) && t.stdout.contains("running"),
        "{t:#?}"
    );
    let q = c.rt(&["list", "-q"]);
    q.ok();
    assert_eq!(q.stdout.trim(), c.id);
    let j = c.rt(&["list", "--format", "json"]);
    j.ok();
    let v: Value = serde_json::from_str(&j.stdout).unwrap_or_else(|e| panic!("{e}: {j:#?}"));
    let arr = v.as_array().expect("list --format json is an array");
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["id"], Value::from(c.id.clone()));
    assert_eq!(arr[0]["status"], "running");
    assert!(arr[0]["pid"].as_i64().unwrap_or(0) > 0);
    c.delete_force().ok();
}

#[test]
fn ps_json() {
    need_root!();
    let mut c = Container::new("ps");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let o = c.rt(&["ps", "--format", "json", &c.id]);
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:#?}"));
    let pids: Vec<i64> = v
        .as_array()
        .expect("array of pids")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    assert_eq!(pids, vec![i64::from(c.pid())], "{o:#?}");
    let t = c.rt(&["ps", &c.id]);
    t.ok();
    assert!(t.stdout.contains("PID"), "{t:#?}");
    c.delete_force().ok();
}

fn spec_in(args: &[&str]) -> Value {
    let d = tempfile::tempdir().unwrap();
    let mut c = Command::new(runtime());
    c.arg("spec").args(args).current_dir(d.path());
    run_cmd(c, barge_integration::TIMEOUT).ok();
    let text =
        std::fs::read_to_string(d.path().join("config.json")).expect("spec writes config.json");
    serde_json::from_str(&text).expect("spec writes valid JSON")
}

#[test]
fn spec_default_and_rootless() {
    need_root!();
    let v = spec_in(&[]);
    assert!(v["ociVersion"].is_string());
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for k in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&k), "{ns:?}");
    }
    assert!(v["mounts"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m["destination"] == "/proc")));

    let r = spec_in(&["--rootless"]);
    let ns: Vec<&str> = r["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(
        ns.contains(&"user"),
        "rootless spec has a user namespace: {ns:?}"
    );
    assert!(
        !ns.contains(&"network"),
        "rootless spec has no network namespace: {ns:?}"
    );
    assert!(r["linux"]["uidMappings"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));
    assert!(r["linux"]["gidMappings"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));

    // --bundle writes there; an existing config.json is not overwritten.
    let d = tempfile::tempdir().unwrap();
    let mut c = Command::new(runtime());
    c.args(["spec", "--bundle"]).arg(d.path());
    run_cmd(c, barge_integration::TIMEOUT).ok();
    assert!(d.path().join("config.json").exists());
    let mut c = Command::new(runtime());
    c.args(["spec", "--bundle"]).arg(d.path());
    run_cmd(c, barge_integration::TIMEOUT).fails();
}

#[test]
fn features_json() {
    need_root!();
    let o = run_cmd(
        {
            let mut c = Command::new(runtime());
            c.arg("features");
            c
        },
        barge_integration::TIMEOUT,
    );
    o.ok();
    let v: Value = serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:#?}"));
    assert!(
        v["ociVersionMin"].is_string() && v["ociVersionMax"].is_string(),
        "{v}"
    );
    let hooks = v["hooks"].as_array().expect("hooks list");
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.iter().any(|x| x == h), "features lacks hook {h}");
    }
    let ns = v["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces");
    for n in ["pid", "network", "mount", "user", "ipc", "uts", "cgroup"] {
        assert!(ns.iter().any(|x| x == n), "features lacks namespace {n}");
    }
    assert!(v["linux"]["capabilities"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x == "CAP_SYS_ADMIN")));
    assert!(v["mountOptions"]
        .as_array()
        .is_some_and(|m| m.iter().any(|x| x == "rbind")));
    assert!(v["linux"]["seccomp"]["enabled"].is_boolean(), "{v}");
}
