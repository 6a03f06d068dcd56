//! Hooks: all six kinds, order, state on stdin, failure and timeout.

use barge_integration::{json, need_root, runc_deviation, Container, Value};
use std::time::{Duration, Instant};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hook appending "<kind> <state json>" to `log`. The log directory is
/// bind-mounted at the same path inside the container so that hooks run in
/// the container's namespaces (createContainer, startContainer) can reach it;
/// /bin/sh and cat exist both on the host and in the image.
fn hook(kind: &str, log: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {kind} $(cat) >> {log}")], "env": [PATH_ENV]})
}

fn hooked(tag: &str) -> (Container, tempfile::TempDir, String) {
    let dir = tempfile::Builder::new()
        .prefix("barge-hooks-")
        .tempdir()
        .unwrap();
    let log = dir.path().join("log").to_string_lossy().into_owned();
    let d = dir.path().to_string_lossy().into_owned();
    let mut c = Container::new(tag);
    // A tmpfs on /tmp first, so the bind's mountpoint is created there and
    // not in the shared read-only rootfs.
    c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}));
    c.add_mount(json!({"destination": d, "type": "bind", "source": d, "options": ["rbind", "rw"]}));
    (c, dir, log)
}

#[test]
fn all_six_hooks_in_order_with_state() {
    need_root!();
    let (mut c, _dir, log) = hooked("hooks");
    c.args(&["barge-check", "exit", "0"]);
    c.config["hooks"] = json!({
        "prestart": [hook("prestart", &log)],
        "createRuntime": [hook("createRuntime", &log)],
        "createContainer": [hook("createContainer", &log)],
        "startContainer": [hook("startContainer", &log)],
        "poststart": [hook("poststart", &log)],
        "poststop": [hook("poststop", &log)]
    });
    c.create().ok();
    c.start().ok();
    c.wait_status("stopped", Duration::from_secs(10));
    c.delete().ok();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    let want = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    if kinds != want
        && runc_deviation("runc 1.1 runs poststart hooks at create, before startContainer")
    {
        return;
    }
    assert_eq!(
        kinds,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for l in text.lines() {
        let (kind, state) = l.split_once(' ').unwrap();
        let v: Value = serde_json::from_str(state)
            .unwrap_or_else(|e| panic!("{kind}: state is not JSON ({e}): {l}"));
        assert_eq!(v["id"], Value::from(c.id.clone()), "{kind}: {v}");
        assert!(v["ociVersion"].is_string(), "{kind}: {v}");
        assert!(v["bundle"].is_string(), "{kind}: {v}");
        if kind != "poststop" {
            assert!(v["pid"].as_i64().unwrap_or(0) > 0, "{kind}: {v}");
        }
        // createRuntime/createContainer/startContainer see "creating"/"created".
        let st = v["status"].as_str().unwrap_or("");
        match kind {
            "prestart" | "createRuntime" | "createContainer" | "startContainer" => {
                assert!(st == "creating" || st == "created", "{kind}: {v}");
            }
            "poststart" => assert!(
                st == "running" || st == "stopped" || st == "created",
                "{kind}: {v}"
            ),
            _ => {}
        }
    }
}

#[test]
fn hooks_with_run() {
    need_root!();
    let (mut c, _dir, log) = hooked("hooksrun");
    c.args(&["barge-check", "exit", "0"]);
    c.config["hooks"] = json!({
        "createRuntime": [hook("createRuntime", &log)],
        "poststart": [hook("poststart", &log)],
        "poststop": [hook("poststop", &log)]
    });
    c.run().ok();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let kinds: Vec<&str> = text.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(kinds, ["createRuntime", "poststart", "poststop"], "{text}");
}

#[test]
fn failing_create_runtime_hook_fails_create_and_leaves_nothing() {
    need_root!();
    let (mut c, _dir, log) = hooked("hookfail");
    c.args(&["barge-check", "sleep", "600"]);
    c.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-says-no >&2; exit 3"]}],
        "poststart": [hook("poststart", &log)]
    });
    let o = c.create();
    o.fails();
    assert!(
        !c.rt(&["state", &c.id]).success(),
        "no container after a failed create"
    );
    assert!(
        !std::path::Path::new(&log).exists(),
        "later hooks must not run"
    );
    // The leak checker (on drop) verifies no state, cgroup or mount remains.
}

#[test]
fn hook_timeout() {
    need_root!();
    let (mut c, _dir, _log) = hooked("hooktime");
    c.args(&["barge-check", "sleep", "600"]);
    c.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}]
    });
    let t0 = Instant::now();
    let o = c.create();
    o.fails();
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "timeout not enforced: {:?}",
        t0.elapsed()
    );
    assert!(!c.rt(&["state", &c.id]).success());
}

#[test]
fn failing_poststart_hook_only_warns() {
    need_root!();
    // Runtime spec: "If a poststart hook fails, the runtime MUST log a
    // warning, but the remaining hooks and lifecycle continue as if the hook
    // had succeeded."
    let (mut c, _dir, log) = hooked("hookpost");
    c.args(&["barge-check", "sleep", "600"]);
    c.config["hooks"] = json!({"poststart": [{"path": "/bin/false"}, hook("poststart2", &log)]});
    let o = c.create();
    if !o.success()
        && runc_deviation("runc 1.1 runs poststart at create and fails create when it fails")
    {
        return;
    }
    o.ok();
    c.start().ok();
    c.wait_status("running", Duration::from_secs(10));
    assert!(std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("poststart2"));
    c.delete_force().ok();
}
