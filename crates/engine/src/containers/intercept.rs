//! User namespaces (`--uidmap`/`--gidmap`) and syscall interception
//! (`--security-opt seccomp-intercept=…`, docs/supervisor.md) for the
//! engine's containers.
//!
//! `--security-opt seccomp-intercept=mknod,mount,setxattr` becomes the
//! annotations `barge.syscalls.intercept.mknod=true` (etc.);
//! `--security-opt seccomp-intercept.mount.allowed=tmpfs,overlay` (and
//! `.mknod.allowed`, `.setxattr.allowed`) pass the lists through. At start
//! the engine adds `SCMP_ACT_NOTIFY` rules for those syscalls and a
//! `listenerPath` to the container's seccomp filter, and starts
//! `barge-supervisor` on that socket before the runtime creates the
//! container; the supervisor reads the annotations from the container
//! state the runtime sends with the notify fd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use barge_supervisor::syscalls;
use barge_supervisor::ANNOTATION_PREFIX;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::Result;

/// One `--uidmap`/`--gidmap` range (podman's `CONTAINER:HOST:SIZE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMapping {
    /// First id inside the container.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// Number of ids.
    pub size: u32,
}

impl IdMapping {
    /// Parses `CONTAINER:HOST:SIZE`.
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        let bad = |why: &str| {
            EngineError::Invalid(format!(
                "invalid {flag} {s:?}: {why} (expected CONTAINER:HOST:SIZE)"
            ))
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [inside, outside, count] = parts.as_slice() else {
            return Err(bad("three numbers are needed"));
        };
        let num = |v: &str| v.trim().parse::<u32>().map_err(|_| bad("not a number"));
        let map = IdMapping {
            container: num(inside)?,
            host: num(outside)?,
            size: num(count)?,
        };
        if map.size == 0 {
            return Err(bad("the size must be positive"));
        }
        if u64::from(map.container) + u64::from(map.size) > u64::from(u32::MAX)
            || u64::from(map.host) + u64::from(map.size) > u64::from(u32::MAX)
        {
            return Err(bad("the range overflows"));
        }
        Ok(map)
    }

    fn to_json(self) -> Value {
        json!({"containerID": self.container, "hostID": self.host, "size": self.size})
    }
}

/// Applies one `--security-opt` of the `seccomp-intercept` family to the
/// annotations; returns false for other options.
pub fn security_opt(key: &str, value: &str, out: &mut BTreeMap<String, String>) -> Result<bool> {
    let bad =
        |why: String| EngineError::Invalid(format!("invalid --security-opt {key}={value}: {why}"));
    if key == "seccomp-intercept" {
        for g in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            if syscalls::group(g).is_none() {
                return Err(bad(format!(
                    "unknown syscall group {g:?} (expected mknod, mount, setxattr)"
                )));
            }
            out.insert(format!("{ANNOTATION_PREFIX}{g}"), "true".into());
        }
        return Ok(true);
    }
    let Some(sub) = key.strip_prefix("seccomp-intercept.") else {
        return Ok(false);
    };
    out.insert(format!("{ANNOTATION_PREFIX}{sub}"), value.to_string());
    validate(out).map_err(|e| bad(e.to_string()))?;
    Ok(true)
}

/// Checks the annotations as the supervisor will read them.
pub fn validate(annotations: &BTreeMap<String, String>) -> Result<()> {
    barge_supervisor::Policy::default()
        .with_annotations(annotations)
        .map(|_| ())
        .map_err(|e| EngineError::Invalid(format!("seccomp-intercept: {e}")))
}

/// The syscalls intercepted for these annotations.
pub fn intercepted(annotations: &BTreeMap<String, String>) -> Vec<&'static str> {
    let mut names = Vec::new();
    for (g, calls) in syscalls::GROUPS {
        if annotations
            .get(&format!("{ANNOTATION_PREFIX}{g}"))
            .is_some_and(|v| v == "true")
        {
            names.extend_from_slice(calls);
        }
    }
    names
}

/// Adds a user namespace with the mappings, and adapts what a user
/// namespace cannot do: `/sys` is bound from the host (a fresh sysfs needs
/// a network namespace owned by the container's user namespace), the
/// cgroup v1 mount and the netns sysctl are left out.
pub fn apply_userns(spec: &mut Value, uidmap: &[IdMapping], gidmap: &[IdMapping]) {
    if uidmap.is_empty() {
        return;
    }
    let gids = if gidmap.is_empty() { uidmap } else { gidmap };
    spec["linux"]["uidMappings"] = Value::Array(uidmap.iter().map(|m| m.to_json()).collect());
    spec["linux"]["gidMappings"] = Value::Array(gids.iter().map(|m| m.to_json()).collect());
    if let Some(ns) = spec["linux"]["namespaces"].as_array_mut() {
        ns.retain(|n| n["type"] != "user");
        ns.push(json!({"type": "user"}));
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["type"] != "cgroup");
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" && m["type"] == "sysfs" {
                *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
    if let Some(s) = spec["linux"]["sysctl"].as_object_mut() {
        s.remove("net.ipv4.ping_group_range");
        if s.is_empty() {
            spec["linux"].as_object_mut().map(|l| l.remove("sysctl"));
        }
    }
}

/// Lets the container's mapped root reach its rootfs: adds search
/// permission for others (`o+x`, no listing) to `dirs` (the store root,
/// `containers/` and the container's directory), as containers/storage
/// makes its root 0711 for user-namespaced containers.
pub fn make_traversable(dirs: &[&Path]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    for d in dirs {
        let md =
            std::fs::metadata(d).map_err(EngineError::io(format!("reading {}", d.display())))?;
        let mode = md.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o001)).map_err(
                EngineError::io(format!("making {} traversable", d.display())),
            )?;
        }
    }
    Ok(())
}

/// Adds the notify rules for the intercepted syscalls and the listener to
/// the container's seccomp filter (a filter allowing everything else when
/// the container has none), and the annotations to the spec.
pub fn apply_seccomp(spec: &mut Value, annotations: &BTreeMap<String, String>, listener: &Path) {
    for (k, v) in annotations {
        spec["annotations"][k] = json!(v);
    }
    let names = intercepted(annotations);
    if names.is_empty() {
        return;
    }
    let mut sc = spec["linux"]["seccomp"].take();
    if sc.is_null() {
        sc = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": []
        });
    }
    // The notify rule replaces what the profile said about these calls
    // (podman's default refuses mount without CAP_SYS_ADMIN).
    if let Some(rules) = sc["syscalls"].as_array_mut() {
        for r in rules.iter_mut() {
            if let Some(n) = r["names"].as_array_mut() {
                n.retain(|x| !names.iter().any(|s| x == s));
            }
        }
        rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
        rules.push(json!({"names": names, "action": "SCMP_ACT_NOTIFY"}));
    } else {
        sc["syscalls"] = json!([{"names": names, "action": "SCMP_ACT_NOTIFY"}]);
    }
    sc["listenerPath"] = json!(listener);
    spec["linux"]["seccomp"] = sc;
}

/// The supervisor's socket for a container's run directory.
pub fn socket_path(rundir: &Path) -> PathBuf {
    rundir.join("sup.sock")
}

/// Starts `barge-supervisor` for a container (detached; it returns once
/// the socket listens). It exits when the container's processes are gone,
/// or after a minute if the container is never created.
pub fn start_supervisor(rundir: &Path) -> Result<PathBuf> {
    let bin = super::find_binary("barge-supervisor");
    let sock = socket_path(rundir);
    let level = std::env::var("BARGE_SUPERVISOR_LOG_LEVEL").unwrap_or_else(|_| "info".into());
    let status = Command::new(&bin)
        .arg("--daemon")
        .arg("--socket")
        .arg(&sock)
        .arg("--pid-file")
        .arg(rundir.join("supervisor.pid"))
        .arg("--log-file")
        .arg(rundir.join("supervisor.log"))
        .arg("--report")
        .arg(rundir.join("supervisor.json"))
        .args(["--accept-timeout", "60", "--log-level", &level])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .map_err(EngineError::io(format!(
            "starting the supervisor {}",
            bin.display()
        )))?;
    if !status.success() {
        return Err(EngineError::Invalid(format!(
            "the supervisor {} failed: {status}",
            bin.display()
        )));
    }
    Ok(sock)
}

/// Stops a container's supervisor if it still runs (it normally exits by
/// itself with the container).
pub fn stop_supervisor(rundir: &Path) {
    let Some(pid) = std::fs::read_to_string(rundir.join("supervisor.pid"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let sock = socket_path(rundir);
    let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        c.split(|b| *b == 0)
            .any(|a| a == sock.as_os_str().as_encoded_bytes())
    });
    if ours {
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_mappings() {
        assert_eq!(
            IdMapping::parse("--uidmap", "0:100000:65536").expect("ok"),
            IdMapping {
                container: 0,
                host: 100_000,
                size: 65536
            }
        );
        for bad in ["0:1", "a:1:2", "0:1:0", "0:4294967295:2", ""] {
            let e = IdMapping::parse("--uidmap", bad)
                .expect_err(bad)
                .to_string();
            assert!(e.contains("--uidmap"), "{e}");
        }
    }

    #[test]
    fn security_opts_become_annotations() {
        let mut a = BTreeMap::new();
        assert!(security_opt("seccomp-intercept", "mknod,mount", &mut a).expect("ok"));
        assert!(
            security_opt("seccomp-intercept.mount.allowed", "tmpfs,mqueue", &mut a).expect("ok")
        );
        assert!(!security_opt("seccomp", "unconfined", &mut a).expect("other"));
        assert_eq!(a["barge.syscalls.intercept.mknod"], "true");
        assert_eq!(a["barge.syscalls.intercept.mount.allowed"], "tmpfs,mqueue");
        assert_eq!(intercepted(&a), ["mknod", "mknodat", "mount"]);
        assert!(security_opt("seccomp-intercept", "open", &mut a).is_err());
        assert!(security_opt("seccomp-intercept.mknod.allowed", "c:x:1", &mut a).is_err());
    }

    #[test]
    fn seccomp_rules_and_userns() {
        let mut spec = barge_oci::default::spec(false);
        spec["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mount", "reboot"], "action": "SCMP_ACT_ERRNO"},
                         {"names": ["mknod"], "action": "SCMP_ACT_ERRNO"}]});
        let mut a = BTreeMap::new();
        security_opt("seccomp-intercept", "mknod,mount", &mut a).expect("ok");
        apply_seccomp(&mut spec, &a, Path::new("/run/x/sup.sock"));
        let sc = &spec["linux"]["seccomp"];
        assert_eq!(sc["listenerPath"], "/run/x/sup.sock");
        assert_eq!(sc["syscalls"][0]["names"], json!(["reboot"]));
        assert_eq!(
            sc["syscalls"][1]["names"],
            json!(["mknod", "mknodat", "mount"])
        );
        assert_eq!(sc["syscalls"][1]["action"], "SCMP_ACT_NOTIFY");
        assert_eq!(
            spec["annotations"]["barge.syscalls.intercept.mount"],
            "true"
        );

        let mut bare = barge_oci::default::spec(false);
        apply_seccomp(&mut bare, &a, Path::new("/s"));
        assert_eq!(bare["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");

        let m = [IdMapping {
            container: 0,
            host: 100_000,
            size: 65536,
        }];
        spec["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
        apply_userns(&mut spec, &m, &[]);
        assert_eq!(spec["linux"]["gidMappings"], spec["linux"]["uidMappings"]);
        assert!(spec["linux"]["namespaces"]
            .as_array()
            .expect("ns")
            .iter()
            .any(|n| n["type"] == "user"));
        let mounts = spec["mounts"].as_array().expect("mounts");
        assert!(!mounts
            .iter()
            .any(|m| m["type"] == "cgroup" || m["type"] == "sysfs"));
        assert!(spec["linux"].get("sysctl").is_none());
    }
}
