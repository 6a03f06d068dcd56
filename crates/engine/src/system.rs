//! Whole-engine operations: `system prune`, `system reset`, `info` and
//! `version`.

use crate::containers::{Engine, Status};
use crate::error::EngineError;
use crate::Result;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Options of [`Engine::system_prune`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemPruneOptions {
    /// Remove every image no container uses, not only dangling ones.
    pub all: bool,
    /// Also remove volumes no container uses.
    pub volumes: bool,
}

/// What [`Engine::system_prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemPruneReport {
    /// Container ids.
    pub containers: Vec<String>,
    /// Pod ids (pods whose containers had all exited).
    pub pods: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Image ids (hex).
    pub images: Vec<String>,
    /// Bytes freed under the root (apparent file sizes).
    pub reclaimed: u64,
}

/// What [`Engine::system_reset`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemResetReport {
    /// Container ids.
    pub containers: Vec<String>,
    /// Network names.
    pub networks: Vec<String>,
    /// Volume names.
    pub volumes: Vec<String>,
    /// Mounts left under the root or runroot that had to be detached.
    pub unmounted: Vec<PathBuf>,
}

/// Total apparent size of the files under `dir` (symlinks not followed).
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}

/// Mount points at or under one of `dirs`, deepest first.
fn mounts_under(dirs: &[&Path]) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| dirs.iter().any(|d| p.starts_with(d)))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Engine {
    /// Removes stopped containers, unused networks, dangling images (every
    /// image no container uses with `all`) and, with `volumes`, unused
    /// volumes.
    pub fn system_prune(&mut self, opts: SystemPruneOptions) -> Result<SystemPruneReport> {
        let before = disk_usage(&self.paths.root);
        let mut report = SystemPruneReport::default();
        for c in self.containers()? {
            let c = self.refresh(c)?;
            // A pod's infra container goes with its pod (below).
            if matches!(c.state.status, Status::Exited | Status::Created) && !c.config.infra {
                match self.remove(&c.id, false, false) {
                    Ok(_) | Err(EngineError::NoSuchContainer(_)) => report.containers.push(c.id),
                    Err(e) => return Err(e),
                }
            }
        }
        report.pods = self.pod_prune()?;
        report.networks = self.network_prune()?;
        if opts.volumes {
            report.volumes = self.volume_prune()?;
        }
        report.images = self.prune_images(opts.all)?;
        report.reclaimed = before.saturating_sub(disk_usage(&self.paths.root));
        Ok(report)
    }

    /// Removes images no container uses: dangling ones (no name), or all
    /// of them with `all`; then unreferenced blobs and layers.
    pub fn prune_images(&mut self, all: bool) -> Result<Vec<String>> {
        let used: BTreeSet<String> = self
            .containers()?
            .into_iter()
            .map(|c| c.image_id.trim_start_matches("sha256:").to_string())
            .collect();
        let mut removed = Vec::new();
        for img in self.store.images()? {
            let hex = img.id.hex().to_string();
            if used.contains(&hex) || !(all || img.names.is_empty()) {
                continue;
            }
            self.store.remove_image(&img.id.to_string())?;
            removed.push(hex);
        }
        self.store.gc()?;
        Ok(removed)
    }

    /// Removes everything: every container (forcibly), every network but
    /// the default one, every volume, and then the whole root (images,
    /// database) and runroot, detaching whatever is still mounted there.
    /// The default network's bridge is shared by every barge root on the
    /// host and is left alone.
    pub fn system_reset(&mut self) -> Result<SystemResetReport> {
        let mut report = SystemResetReport::default();
        let mut first_error = None;
        let ids: Vec<String> = self.containers()?.into_iter().map(|c| c.id).collect();
        for id in &ids {
            match self.remove(id, true, true) {
                Ok(_) | Err(EngineError::NoSuchContainer(_)) => report.containers.push(id.clone()),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for n in self.networks()? {
            if n.name == crate::DEFAULT_NETWORK {
                continue;
            }
            match self.network_remove(&n.name, true) {
                Ok(()) => report.networks.push(n.name),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        for v in self.volumes()? {
            match self.volume_remove(&v.name, true) {
                Ok(()) => report.volumes.push(v.name),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Whatever the removals could not release: veths and published
        // ports of these containers, namespace mounts, overlay mounts.
        let known: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let netns_dir = self.paths.netns_dir();
        let _ = crate::rootless::in_bridge_netns(|| {
            barge_net::cleanup_orphans(
                |id| !known.contains(id),
                netns_dir.exists().then_some(netns_dir.as_path()),
            )
            .map_err(EngineError::from)
        });
        if let Some(uid) = crate::rootless::rootless_uid() {
            crate::rootless::stop_uplink(uid);
        }
        for m in mounts_under(&[&self.paths.root, &self.paths.runroot]) {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
            report.unmounted.push(m);
        }
        for dir in [&self.paths.runroot, &self.paths.root] {
            if dir.exists() {
                if let Err(e) = std::fs::remove_dir_all(dir) {
                    first_error
                        .get_or_insert(EngineError::io(format!("removing {}", dir.display()))(e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// podman-like `info`: host, store, version.
    pub fn info(&mut self) -> Result<Value> {
        let uts = rustix::system::uname();
        let kernel = uts.release().to_string_lossy().into_owned();
        let hostname = uts.nodename().to_string_lossy().into_owned();
        let mode = barge_cgroups::detect_mode().ok();
        let mounts = barge_cgroups::host_mounts().unwrap_or_default();
        let mut controllers: Vec<String> = Vec::new();
        for m in &mounts {
            match &m.kind {
                barge_cgroups::MountKind::V1(c) => {
                    controllers.extend(c.iter().filter(|c| !c.starts_with("name=")).cloned());
                }
                barge_cgroups::MountKind::V2 => {
                    if let Ok(t) = std::fs::read_to_string(m.mount_point.join("cgroup.controllers"))
                    {
                        controllers.extend(t.split_whitespace().map(str::to_string));
                    }
                }
            }
        }
        controllers.dedup();
        let (cg_version, cg_mode) = match mode {
            Some(barge_cgroups::Mode::V1) => ("v1", "v1"),
            Some(barge_cgroups::Mode::V2) => ("v2", "v2"),
            Some(barge_cgroups::Mode::Hybrid) => ("v1", "hybrid"),
            None => ("unknown", "unknown"),
        };
        let runtime_name = match self.config.runtime.as_deref() {
            None | Some("barge" | "barge-runtime") => "barge-runtime".to_string(),
            Some(r) => r.to_string(),
        };
        let runtime_path = match self.config.runtime.as_deref() {
            None | Some("barge" | "barge-runtime") => self.runtime.clone(),
            Some(r) if r.contains('/') => PathBuf::from(r),
            Some(r) => crate::containers::find_binary(r),
        };
        let (mut running, mut paused, mut stopped, mut total) = (0, 0, 0, 0);
        for c in self.containers()? {
            total += 1;
            match self.refresh(c)?.state.status {
                Status::Running => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem = |key: &str| -> u64 {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|r| r.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |k| k * 1024)
        };
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        let os_field = |key: &str| -> String {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        Ok(json!({
            "host": {
                "arch": go_arch(),
                "kernel": kernel,
                "hostname": hostname,
                "os": "linux",
                "cpus": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                "memTotal": mem("MemTotal:"),
                "memFree": mem("MemAvailable:"),
                "cgroupManager": "cgroupfs",
                "cgroupVersion": cg_version,
                "cgroupMode": cg_mode,
                "cgroupControllers": controllers,
                "ociRuntime": {
                    "name": runtime_name,
                    "path": runtime_path,
                    "version": tool_version(&runtime_path),
                },
                "conmon": {
                    "package": "barge-monitor",
                    "path": self.monitor,
                    "version": format!("barge-monitor version {}", env!("CARGO_PKG_VERSION")),
                },
                "distribution": {
                    "distribution": os_field("ID"),
                    "version": os_field("VERSION_ID"),
                    "codename": os_field("VERSION_CODENAME"),
                },
                "logDriver": self.config.log_driver.clone().unwrap_or_else(|| "k8s-file".into()),
                "networkBackend": "barge-net",
                "security": {
                    "capabilities": crate::containers::spec::DEFAULT_CAPS.join(","),
                    "rootless": !rustix::process::geteuid().is_root(),
                    "seccompEnabled": true,
                    "selinuxEnabled": false,
                    "apparmorEnabled": false,
                },
                "uptime": uptime(),
            },
            "store": {
                "configFile": self.config.files,
                "containerStore": {
                    "number": total, "paused": paused, "running": running, "stopped": stopped,
                },
                "graphDriverName": "overlay",
                "graphRoot": self.paths.root,
                "runRoot": self.paths.runroot,
                "imageStore": {"number": self.store.images()?.len()},
                "volumePath": self.paths.volumes_dir(),
                "volumeStore": {"number": self.volumes()?.len()},
            },
            "registries": {},
            "plugins": {
                "volume": ["local"],
                "network": ["bridge"],
                "log": ["k8s-file", "json-file", "none", "passthrough"],
            },
            "version": version()["Client"].clone(),
        }))
    }
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        a => a,
    }
}

fn uptime() -> String {
    let secs = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64;
    format!("{}h {}m {}s", secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// The first lines of `TOOL --version` (empty if it cannot run).
fn tool_version(path: &Path) -> String {
    std::process::Command::new(path)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// podman's `version` data (`{"Client": {...}}`): the Go fields are kept
/// (`GoVersion` names the Rust toolchain the workspace requires).
pub fn version() -> Value {
    let built = std::env::current_exe()
        .and_then(std::fs::metadata)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let built_nanos = i64::try_from(built).unwrap_or(0) * 1_000_000_000;
    json!({"Client": {
        "APIVersion": env!("CARGO_PKG_VERSION"),
        "Version": env!("CARGO_PKG_VERSION"),
        "GoVersion": format!("rust{}", env!("CARGO_PKG_RUST_VERSION")),
        "GitCommit": "",
        "BuiltTime": crate::containers::query::rfc3339(built_nanos),
        "Built": built,
        "OsArch": format!("linux/{}", go_arch()),
        "Os": "linux",
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn version_has_podman_fields() {
        let v = version();
        for k in [
            "APIVersion",
            "Version",
            "GoVersion",
            "GitCommit",
            "BuiltTime",
            "Built",
            "OsArch",
            "Os",
        ] {
            assert!(v["Client"].get(k).is_some(), "{k}");
        }
        assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn disk_usage_counts_files() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("a/b")).expect("mkdir");
        std::fs::write(d.path().join("a/b/f"), vec![0u8; 1000]).expect("write");
        std::fs::write(d.path().join("g"), vec![0u8; 24]).expect("write");
        assert_eq!(disk_usage(d.path()), 1024);
    }
}
