//! barge-runtime run by an unprivileged user: a user namespace whose maps
//! are written through newuidmap/newgidmap (ranges from /etc/subuid), no
//! network namespace, and no cgroups (no delegation on this host).

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use barge_integration::{base_config, is_root, run_cmd, runtime, unique};
use serde_json::json;

const USER: &str = "barge-rootless";
const SUBID_START: u32 = 300_000;

/// The first subordinate id of the test user in `file` (the install step
/// or `useradd` may have chosen another range than ours).
fn subid_start(file: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next()? == USER).then(|| f.next()?.parse().ok())?
        })
        .unwrap_or(SUBID_START)
}

/// The test user (created on first use) and its uid/gid.
fn test_user() -> (u32, u32) {
    let lookup = || {
        let out = Command::new("id").args(["-u", USER]).output().ok()?;
        let uid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        let out = Command::new("id").args(["-g", USER]).output().ok()?;
        let gid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
        Some((uid, gid))
    };
    if lookup().is_none() {
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .status();
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            let mut new = text;
            if !new.is_empty() && !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(&format!("{USER}:{SUBID_START}:65536\n"));
            std::fs::write(file, new).unwrap();
        }
    }
    lookup().expect("creating the rootless test user")
}

#[test]
fn unprivileged_user_runs_a_container_with_subid_ranges() {
    if !is_root() {
        eprintln!("SKIP: needs root to create the test user");
        return;
    }
    let (uid, gid) = test_user();
    let (sub_uid, sub_gid) = (subid_start("/etc/subuid"), subid_start("/etc/subgid"));
    let id = unique("rootless");
    let state = tempfile::tempdir().unwrap();
    let bundle = tempfile::tempdir().unwrap();
    for d in [state.path(), bundle.path()] {
        std::os::unix::fs::chown(d, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = base_config();
    let maps = json!([
        {"containerID": 0, "hostID": uid, "size": 1},
        {"containerID": 1, "hostID": sub_uid, "size": 65536}
    ]);
    let gmaps = json!([
        {"containerID": 0, "hostID": gid, "size": 1},
        {"containerID": 1, "hostID": sub_gid, "size": 65536}
    ]);
    c["linux"]["uidMappings"] = maps;
    c["linux"]["gidMappings"] = gmaps;
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]);
    c["linux"]["resources"] = json!({});
    let mounts: Vec<_> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] != "cgroup" && m["destination"] != "/sys")
        .map(|m| {
            let mut m = m.clone();
            if m["destination"] == "/dev/pts" {
                m["options"] = json!([
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620"
                ]);
            }
            m
        })
        .chain(std::iter::once(
            json!({"destination": "/sys", "type": "none", "source": "/sys",
            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}),
        ))
        .collect();
    c["mounts"] = json!(mounts);
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5]});
    c["process"]["args"] = json!(["barge-check", "ids"]);
    std::fs::write(
        bundle.path().join("config.json"),
        serde_json::to_vec(&c).unwrap(),
    )
    .unwrap();

    let mut cmd = Command::new(runtime());
    cmd.arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(&id)
        .uid(uid)
        .gid(gid)
        .env("XDG_RUNTIME_DIR", state.path());
    let o = run_cmd(cmd, Duration::from_secs(30));
    o.ok();
    let v = o.json();
    assert_eq!(v["uid"], 1000, "{o:#?}");
    assert_eq!(v["gid"], 1000, "{o:#?}");
    let uid_map = v["uid_map"].to_string();
    assert!(
        uid_map.contains(&sub_uid.to_string()),
        "uid_map from newuidmap: {v}"
    );
    // Nothing left behind in the state root.
    let left: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "state left behind: {left:?}");
}
