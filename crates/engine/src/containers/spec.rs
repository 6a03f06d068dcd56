//! The OCI `config.json` of a container: runc's default spec, adjusted
//! by the image's config and the `create` options the way podman does.

use super::{ContainerConfig, ContainerRecord, MountSpec, NetworkMode};
use crate::error::EngineError;
use serde_json::{json, Value};
use std::path::Path;

/// Podman's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_NET_BIND_SERVICE",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// Every capability the kernel knows (for `--privileged` and `--cap-add all`):
/// the runtime's list, so the engine and `barge-runtime features` agree.
pub const ALL_CAPS: &[&str] = barge_oci::features::CAPABILITIES;

/// Normalizes a capability name (`net_admin`, `NET_ADMIN`, `CAP_NET_ADMIN`).
pub fn cap_name(s: &str) -> Result<String, EngineError> {
    let up = s.trim().to_ascii_uppercase();
    let name = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if name == "CAP_ALL" || ALL_CAPS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(EngineError::Invalid(format!(
            "unknown capability {s:?}: see capabilities(7)"
        )))
    }
}

/// The capabilities of [`ALL_CAPS`] in our own bounding set: what
/// `--privileged` and `--cap-add all` grant (as podman does: a capability
/// the caller lacks, e.g. `CAP_SYS_RESOURCE` on some hosts, would make the
/// runtime's capset fail).
pub fn host_caps() -> Vec<&'static str> {
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    // ALL_CAPS is in capability-number order.
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(bit, _)| bounding & (1u64 << bit) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The host's device nodes under /dev as OCI `linux.devices` entries (what
/// `--privileged` gives, as podman does), except those every container gets
/// anyway and the pty/shm/mqueue directories.
pub fn host_devices() -> Vec<Value> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<Value>) {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = rd.flatten().collect();
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for e in entries {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                let skip = ["pts", "shm", "mqueue", "fd"];
                if depth < 3 && !(depth == 0 && skip.iter().any(|s| e.file_name() == *s)) {
                    walk(&path, depth + 1, out);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            let p = path.display().to_string();
            let defaults = [
                "/dev/null",
                "/dev/zero",
                "/dev/full",
                "/dev/random",
                "/dev/urandom",
                "/dev/tty",
                "/dev/console",
                "/dev/ptmx",
            ];
            if defaults.contains(&p.as_str()) {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "path": p, "type": kind,
                "major": libc_major(rdev), "minor": libc_minor(rdev),
                "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid(),
            }));
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), 0, &mut out);
    out
}

/// `major(3)` of a `dev_t`.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)
}

/// `minor(3)` of a `dev_t`.
fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0xff)
}

/// The effective capability set for the options.
pub fn capabilities(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = if privileged {
        host_caps().iter().map(|c| (*c).to_string()).collect()
    } else {
        DEFAULT_CAPS.iter().map(|c| (*c).to_string()).collect()
    };
    if add.iter().any(|c| c == "CAP_ALL") {
        caps = host_caps().iter().map(|c| (*c).to_string()).collect();
    }
    for c in add {
        if c != "CAP_ALL" && !caps.contains(c) {
            caps.push(c.clone());
        }
    }
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.retain(|c| add.contains(c));
    }
    caps.retain(|c| !drop.contains(c));
    caps
}

/// Inputs of [`build`] that are not in the record.
pub struct SpecInputs<'a> {
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// The resolved process user.
    pub uid: u32,
    /// The resolved process group.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    /// The network namespace to join, for bridge networks.
    pub netns: Option<&'a Path>,
    /// Namespaces of another container to join (`--network container:`),
    /// as `(type, path)`.
    pub join: Vec<(&'static str, String)>,
    /// The container's files to bind over `/etc/hosts`, `/etc/resolv.conf`
    /// and `/etc/hostname`.
    pub etc_files: Vec<(&'static str, std::path::PathBuf)>,
    /// Named volumes resolved to host directories: (destination, source, ro).
    pub volumes: Vec<(String, std::path::PathBuf, bool)>,
    /// The init binary to bind at `/run/barge-init` for `--init`.
    pub init: Option<&'a Path>,
    /// The seccomp policy (none when unconfined).
    pub seccomp: Option<Value>,
    /// The syscall supervisor's socket, when calls are intercepted.
    pub listener: Option<&'a Path>,
    /// Whether the container gets a cgroup
    /// ([`crate::rootless::uses_cgroups`]).
    pub cgroups: bool,
}

/// `linux.cgroupsPath`: none without cgroups (runc refuses an explicit
/// path it cannot create, even when rootless; without one it goes on).
fn cgroups_path(id: &str, cgroups: bool) -> Option<String> {
    cgroups.then(|| format!("/barge/{id}"))
}

/// `linux.resources`: the device rules (which runtimes skip when
/// rootless) and, with cgroups, the limits. Without cgroups the limits
/// are left out: runc fails on a limit it has no cgroup for, and no
/// runtime could enforce it.
fn resources(cfg: &ContainerConfig, cgroups: bool) -> Value {
    let mut res = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if cfg.privileged {
        res["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    if !cgroups {
        return res;
    }
    if let Some(m) = cfg.memory {
        res["memory"] = json!({"limit": m});
    }
    if let Some(c) = cfg.cpus {
        let period: u32 = 100_000;
        res["cpu"] = json!({"quota": (c * f64::from(period)) as i64, "period": period});
    }
    if let Some(p) = cfg.pids_limit {
        res["pids"] = json!({"limit": p});
    }
    res
}

/// Builds the OCI config of `rec`.
pub fn build(rec: &ContainerRecord, inp: &SpecInputs<'_>) -> Result<Value, EngineError> {
    let cfg = &rec.config;
    let mut spec = barge_oci::default::spec(false);
    let caps = capabilities(cfg.privileged, &cfg.cap_add, &cfg.cap_drop);
    let mut args = cfg.command.clone();
    if inp.init.is_some() {
        args.splice(0..0, ["/run/barge-init".to_string(), "--".to_string()]);
    }
    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !env.iter().any(|e| e.starts_with("container=")) {
        env.push("container=barge".into());
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", rec.hostname()));
    }
    let mut rlimits: Vec<Value> = vec![
        json!({"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}),
        json!({"type": "RLIMIT_NPROC", "soft": 4096, "hard": 4096}),
    ];
    for u in &cfg.ulimits {
        let ty = format!("RLIMIT_{}", u.name.to_ascii_uppercase());
        rlimits.retain(|r| r["type"] != ty.as_str());
        rlimits.push(json!({"type": ty, "soft": u.soft, "hard": u.hard}));
    }
    spec["process"] = json!({
        "terminal": cfg.tty,
        "user": {"uid": inp.uid, "gid": inp.gid, "additionalGids": inp.additional_gids,
                 "umask": 0o022},
        "args": args,
        "env": env,
        "cwd": if cfg.workdir.is_empty() { "/" } else { cfg.workdir.as_str() },
        "capabilities": {
            "bounding": caps, "effective": if inp.uid == 0 { caps.clone() } else { Vec::new() },
            "permitted": if inp.uid == 0 { caps.clone() } else { Vec::new() },
        },
        "rlimits": rlimits,
        "noNewPrivileges": cfg.no_new_privileges,
    });
    if let Some(seccomp) = &inp.seccomp {
        spec["linux"]["seccomp"] = seccomp.clone();
    }
    spec["root"] = json!({"path": inp.rootfs, "readonly": cfg.read_only});
    spec["hostname"] = json!(rec.hostname());
    spec["annotations"] = json!({"io.barge.container.name": rec.name});
    for (k, v) in &cfg.labels {
        spec["annotations"][format!("io.barge.label.{k}")] = json!(v);
    }

    // Namespaces.
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &rec.network() {
        NetworkMode::Host | NetworkMode::Container(_) => {}
        NetworkMode::None => namespaces.push(json!({"type": "network"})),
        NetworkMode::Bridge(_) | NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_) => {
            match inp.netns {
                Some(p) => namespaces.push(json!({"type": "network", "path": p})),
                None => namespaces.push(json!({"type": "network"})),
            }
        }
    }
    for (ty, path) in &inp.join {
        namespaces.retain(|n| n["type"] != *ty);
        namespaces.push(json!({"type": ty, "path": path}));
    }
    if inp.join.iter().any(|(ty, _)| *ty == "uts") {
        // A joined UTS namespace (a pod's) keeps its owner's hostname.
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    }
    spec["linux"]["namespaces"] = json!(namespaces);
    if let Some(path) = cgroups_path(&rec.id, inp.cgroups) {
        spec["linux"]["cgroupsPath"] = json!(path);
    }
    // podman's default sysctl: unprivileged ICMP sockets, so `ping` works
    // without CAP_NET_RAW (only in a network namespace of our own).
    if rec.network().owns_netns() || rec.network() == NetworkMode::None {
        spec["linux"]["sysctl"] = json!({"net.ipv4.ping_group_range": "0 0"});
    }

    // Mounts.
    let mounts = spec["mounts"]
        .as_array_mut()
        .ok_or_else(|| EngineError::Invalid("the default spec has no mounts".into()))?;
    if matches!(rec.network(), NetworkMode::Host) {
        // Without a network namespace sysfs cannot be mounted fresh.
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" {
                *m = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                            "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
            }
        }
    }
    if cfg.privileged {
        for m in mounts.iter_mut() {
            if m["destination"] == "/sys" || m["destination"] == "/sys/fs/cgroup" {
                if let Some(o) = m["options"].as_array_mut() {
                    o.retain(|x| x != "ro");
                }
            }
        }
    }
    let overridden = |dest: &str| {
        cfg.mounts.iter().any(|m| m.destination() == dest)
            || inp.volumes.iter().any(|(d, _, _)| d == dest)
    };
    for (dest, src) in &inp.etc_files {
        if !overridden(dest) {
            mounts.push(json!({"destination": dest, "type": "bind", "source": src,
                               "options": ["bind", "rprivate"]}));
        }
    }
    for m in &cfg.mounts {
        mounts.retain(|x| x["destination"] != m.destination());
        match m {
            MountSpec::Bind {
                source,
                destination,
                readonly,
                options,
            } => {
                let mut o = vec![json!("rbind")];
                if *readonly {
                    o.push(json!("ro"));
                }
                for x in options {
                    o.push(json!(x));
                }
                mounts.push(json!({"destination": destination, "type": "bind",
                                   "source": source, "options": o}));
            }
            MountSpec::Tmpfs {
                destination,
                options,
            } => {
                let mut o = vec![json!("nosuid"), json!("nodev")];
                for x in options {
                    o.push(json!(x));
                }
                mounts.push(json!({"destination": destination, "type": "tmpfs",
                                   "source": "tmpfs", "options": o}));
            }
            MountSpec::Volume { .. } => {}
        }
    }
    for (dest, src, ro) in &inp.volumes {
        mounts.retain(|x| x["destination"] != dest.as_str());
        let mut o = vec![json!("rbind")];
        if *ro {
            o.push(json!("ro"));
        }
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": o}));
    }
    if let Some(init) = inp.init {
        mounts.push(json!({"destination": "/run/barge-init", "type": "bind",
                           "source": init, "options": ["bind", "ro"]}));
    }

    // Resources.
    if cfg.privileged {
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
        spec["linux"]["devices"] = Value::Array(host_devices());
    }
    spec["linux"]["resources"] = resources(cfg, inp.cgroups);
    super::intercept::apply_userns(&mut spec, &cfg.uidmap, &cfg.gidmap);
    if let Some(listener) = inp.listener {
        super::intercept::apply_seccomp(&mut spec, &cfg.intercept, listener);
    }
    Ok(spec)
}

/// podman-like default seccomp policy: everything is allowed except the
/// syscalls that podman's default profile refuses to unprivileged
/// containers (kernel modules, reboot, clock changes, keyrings, BPF, tracing
/// of other processes, mount without CAP_SYS_ADMIN, namespaces creation…).
/// Refused calls fail with EPERM. Not applied with `--privileged` or
/// `--security-opt seccomp=unconfined`.
pub fn default_seccomp(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut denied: Vec<&str> = vec![
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "get_kernel_syms",
        "get_mempolicy",
        "init_module",
        "ioperm",
        "iopl",
        "kcmp",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mbind",
        "move_pages",
        "nfsservctl",
        "open_by_handle_at",
        "perf_event_open",
        "pivot_root",
        "process_vm_readv",
        "process_vm_writev",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "set_mempolicy",
        "setns",
        "settimeofday",
        "stime",
        "swapoff",
        "swapon",
        "sysfs",
        "_sysctl",
        "umount",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
        "fsopen",
        "fsmount",
        "fsconfig",
        "fspick",
        "move_mount",
        "open_tree",
        "mount",
        "mount_setattr",
        "ptrace",
        "syslog",
        "name_to_handle_at",
    ];
    let allow_if = |denied: &mut Vec<&str>, cap: &str, calls: &[&str]| {
        if has(cap) {
            denied.retain(|d| !calls.contains(d));
        }
    };
    allow_if(
        &mut denied,
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "fsopen",
            "fsmount",
            "fsconfig",
            "fspick",
            "move_mount",
            "open_tree",
            "mount",
            "mount_setattr",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "pivot_root",
            "quotactl",
            "lookup_dcookie",
            "perf_event_open",
            "name_to_handle_at",
        ],
    );
    allow_if(
        &mut denied,
        "CAP_SYS_PTRACE",
        &["ptrace", "process_vm_readv", "process_vm_writev", "kcmp"],
    );
    allow_if(
        &mut denied,
        "CAP_SYS_MODULE",
        &["init_module", "finit_module", "delete_module"],
    );
    allow_if(&mut denied, "CAP_SYS_BOOT", &["reboot"]);
    allow_if(
        &mut denied,
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
    );
    allow_if(&mut denied, "CAP_SYSLOG", &["syslog"]);
    allow_if(&mut denied, "CAP_SYS_PACCT", &["acct"]);
    allow_if(
        &mut denied,
        "CAP_SYS_NICE",
        &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
    );
    allow_if(&mut denied, "CAP_DAC_READ_SEARCH", &["open_by_handle_at"]);
    allow_if(&mut denied, "CAP_BPF", &["bpf"]);
    allow_if(&mut denied, "CAP_PERFMON", &["perf_event_open"]);
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": denied, "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_devices_are_listed() {
        let d = host_devices();
        assert!(d.iter().all(|x| x["path"] != "/dev/null"));
        assert_eq!(libc_major(0x0000_0000_0000_0103), 1);
        assert_eq!(libc_minor(0x0000_0000_0000_0103), 3);
    }

    #[test]
    fn capability_arithmetic() {
        let c = capabilities(false, &["CAP_NET_ADMIN".into()], &["CAP_CHOWN".into()]);
        assert!(c.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let c = capabilities(false, &["CAP_KILL".into()], &["CAP_ALL".into()]);
        assert_eq!(c, ["CAP_KILL"]);
        assert_eq!(capabilities(true, &[], &[]).len(), host_caps().len());
        assert!(host_caps().contains(&"CAP_SYS_ADMIN"));
        assert_eq!(cap_name("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert!(cap_name("bogus").is_err());
    }

    #[test]
    fn limits_and_cgroups_path_only_with_cgroups() {
        let cfg = ContainerConfig {
            memory: Some(64 << 20),
            cpus: Some(0.5),
            pids_limit: Some(10),
            ..ContainerConfig::default()
        };
        let r = resources(&cfg, true);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["pids"]["limit"], 10);
        assert_eq!(cgroups_path("abc", true).as_deref(), Some("/barge/abc"));
        let r = resources(&cfg, false);
        assert_eq!(r, json!({"devices": [{"allow": false, "access": "rwm"}]}));
        assert_eq!(cgroups_path("abc", false), None);
    }

    #[test]
    fn seccomp_follows_capabilities() {
        let p = default_seccomp(&["CAP_SYS_ADMIN".into()]);
        let names = p["syscalls"][0]["names"].as_array().unwrap();
        assert!(!names.iter().any(|n| n == "mount"));
        assert!(names.iter().any(|n| n == "reboot"));
        let p = default_seccomp(&[]);
        let names = p["syscalls"][0]["names"].as_array().unwrap();
        assert!(names.iter().any(|n| n == "mount"));
    }
}
