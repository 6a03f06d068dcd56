//! The pure cgroup v2 code path, on a host that is hybrid: in a private
//! mount namespace the unified hierarchy is mounted alone at
//! /sys/fs/cgroup, so the runtime sees a pure-v2 host (no v1 controllers;
//! on this machine cgroup2 carries only hugetlb, so no memory/pids limits).
//! Checked: run, the eBPF device filter (an unlisted device is denied),
//! freeze/thaw through cgroup.freeze, exec (CLONE_INTO_CGROUP), delete
//! leaving no cgroup behind.

use std::process::Command;
use std::time::Duration;

use barge_integration::{base_config, is_root, run_cmd, runtime, unique};
use serde_json::json;

#[test]
fn pure_v2_host_lifecycle_and_device_filter() {
    if !is_root() {
        eprintln!("SKIP: needs root");
        return;
    }
    if !std::path::Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        eprintln!("SKIP: not a hybrid host (no /sys/fs/cgroup/unified)");
        return;
    }
    let id = unique("v2");
    let state = tempfile::tempdir().unwrap();
    let bundle = tempfile::tempdir().unwrap();
    let mut c = base_config();
    c["linux"]["devices"] =
        json!([{"path": "/dev/mymem", "type": "c", "major": 1, "minor": 1, "fileMode": 0o600}]);
    c["linux"]["cgroupsPath"] = json!(format!("/barge-test-v2/{id}"));
    c["process"]["args"] = json!(["sh", "-c",
        "cat /proc/self/cgroup; echo x > /dev/null && echo null-ok; cat /dev/mymem >/dev/null 2>&1 || echo mem-denied; sleep 100"]);
    let out_file = bundle.path().join("out");
    std::fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();
    let script = format!(
        r#"set -e
umount -l /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup
R={rt}; S={st}; B={b}; ID={id}
$R --root $S create --bundle $B $ID > {out} 2>&1
$R --root $S start $ID
for i in $(seq 100); do grep -q mem-denied {out} && break; sleep 0.05; done
$R --root $S pause $ID
[ "$($R --root $S state $ID | grep -c '"paused"')" = 1 ]
grep -q 1 /sys/fs/cgroup/barge-test-v2/$ID/cgroup.freeze
$R --root $S resume $ID
$R --root $S exec $ID cat /proc/self/cgroup
$R --root $S delete --force $ID
[ ! -e /sys/fs/cgroup/barge-test-v2/$ID ]
rmdir /sys/fs/cgroup/barge-test-v2 2>/dev/null || true
cat {out}
"#,
        rt = runtime().display(),
        st = state.path().display(),
        b = bundle.path().display(),
        out = out_file.display(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    let o = run_cmd(cmd, Duration::from_secs(30));
    o.ok();
    assert!(
        o.stdout.contains(&format!("0::/barge-test-v2/{id}")),
        "{o:#?}"
    );
    assert!(o.stdout.contains("null-ok"), "{o:#?}");
    assert!(
        o.stdout.contains("mem-denied"),
        "device filter must deny 1:1: {o:#?}"
    );
    assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/unified/barge-test-v2/{id}")).exists());
}
