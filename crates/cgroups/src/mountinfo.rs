//! Finding the cgroup hierarchies: `/proc/self/mountinfo` and
//! `/proc/self/cgroup` parsers (they take text so they can be unit-tested)
//! and cgroup mode detection.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::CgroupError;

/// How the host's cgroups are set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Only cgroup v1 controller hierarchies.
    V1,
    /// Only the unified cgroup2 hierarchy (stock modern distributions).
    V2,
    /// v1 controllers plus a cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid,
}

/// Controllers that may appear in a v1 mount's super options.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// The kind of a cgroup mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// A v1 hierarchy with these controllers (named hierarchies as `name=x`).
    V1(Vec<String>),
    /// The unified cgroup2 hierarchy.
    V2,
}

/// One cgroup filesystem mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The cgroup of the hierarchy that is the mount's root (usually "/").
    pub root: String,
    /// v1 controllers or v2.
    pub kind: MountKind,
}

/// Undo mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse `/proc/self/mountinfo` text into its cgroup mounts. The first
/// mount of each hierarchy wins (later ones are usually bind mounts).
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts: Vec<CgroupMount> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if fields.len() < 5 || fields.len() < sep + 4 {
            continue;
        }
        let root = unescape(fields[3]);
        let mount_point = PathBuf::from(unescape(fields[4]));
        let fstype = fields[sep + 1];
        let super_opts = fields[sep + 3];
        let kind = match fstype {
            "cgroup2" => MountKind::V2,
            "cgroup" => {
                let ctrls: Vec<String> = super_opts
                    .split(',')
                    .filter(|o| o.starts_with("name=") || V1_CONTROLLERS.contains(o))
                    .map(str::to_string)
                    .collect();
                if ctrls.is_empty() {
                    continue;
                }
                MountKind::V1(ctrls)
            }
            _ => continue,
        };
        if mounts.iter().any(|m| m.kind == kind) {
            continue;
        }
        mounts.push(CgroupMount {
            mount_point,
            root,
            kind,
        });
    }
    mounts
}

/// One line of `/proc/<pid>/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    /// Hierarchy id (0 for cgroup2).
    pub id: u32,
    /// Controllers (empty for cgroup2).
    pub controllers: Vec<String>,
    /// The cgroup path inside the hierarchy.
    pub path: String,
}

/// Parse `/proc/self/cgroup` text.
pub fn parse_proc_cgroup(text: &str) -> Vec<ProcCgroup> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let id = parts.next()?.parse().ok()?;
            let ctrls = parts.next()?;
            let path = parts.next()?.to_string();
            let controllers = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Some(ProcCgroup {
                id,
                controllers,
                path,
            })
        })
        .collect()
}

/// Decide the mode from the cgroup mounts.
pub fn mode_from_mounts(mounts: &[CgroupMount]) -> Result<Mode, CgroupError> {
    let has_v1 = mounts.iter().any(|m| match &m.kind {
        MountKind::V1(c) => c.iter().any(|c| !c.starts_with("name=")),
        MountKind::V2 => false,
    });
    let has_v2 = mounts.iter().any(|m| m.kind == MountKind::V2);
    match (has_v1, has_v2) {
        (true, true) => Ok(Mode::Hybrid),
        (true, false) => Ok(Mode::V1),
        (false, true) => Ok(Mode::V2),
        (false, false) => Err(CgroupError::NoCgroupFs(
            "no cgroup or cgroup2 mount in /proc/self/mountinfo".into(),
        )),
    }
}

pub(crate) fn read_proc(path: &str) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: PathBuf::from(path),
        source,
    })
}

/// The cgroup mounts of this process's mount namespace.
pub fn host_mounts() -> Result<Vec<CgroupMount>, CgroupError> {
    Ok(parse_mountinfo(&read_proc("/proc/self/mountinfo")?))
}

/// Detect whether the host runs cgroup v1, v2 or hybrid.
pub fn detect_mode() -> Result<Mode, CgroupError> {
    mode_from_mounts(&host_mounts()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURE_V2: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
25 22 0:23 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
31 24 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700
";

    const V1_COMOUNT: &str = "\
24 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:6 - tmpfs tmpfs ro,mode=755
26 24 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 24 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct
30 24 0:28 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,net_cls,net_prio
31 24 0:29 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,memory
32 24 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpuset,clone_children
33 24 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
90 31 0:29 /docker /mnt/memory\\040bind rw,relatime - cgroup cgroup rw,memory
";

    #[test]
    fn pure_v2_mountinfo() {
        let m = parse_mountinfo(PURE_V2);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].mount_point, PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(m[0].kind, MountKind::V2);
        assert_eq!(mode_from_mounts(&m).ok(), Some(Mode::V2));
    }

    #[test]
    fn v1_comounted_mountinfo() {
        let m = parse_mountinfo(V1_COMOUNT);
        let kinds: Vec<_> = m.iter().map(|m| m.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                MountKind::V1(vec!["name=systemd".into()]),
                MountKind::V1(vec!["cpu".into(), "cpuacct".into()]),
                MountKind::V1(vec!["net_cls".into(), "net_prio".into()]),
                MountKind::V1(vec!["memory".into()]),
                MountKind::V1(vec!["cpuset".into()]),
                MountKind::V1(vec!["pids".into()]),
            ]
        );
        assert_eq!(
            m[1].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(mode_from_mounts(&m).ok(), Some(Mode::V1));
    }

    #[test]
    fn hybrid_and_escapes() {
        let text = format!(
            "{V1_COMOUNT}41 31 0:38 / /sys/fs/cgroup/uni\\040fied rw - cgroup2 cgroup2 rw\n"
        );
        let m = parse_mountinfo(&text);
        assert_eq!(mode_from_mounts(&m).ok(), Some(Mode::Hybrid));
        let v2 = m.iter().find(|m| m.kind == MountKind::V2);
        assert_eq!(
            v2.map(|m| m.mount_point.clone()),
            Some(PathBuf::from("/sys/fs/cgroup/uni fied"))
        );
        assert!(mode_from_mounts(&[]).is_err());
    }

    #[test]
    fn proc_cgroup() {
        let p = parse_proc_cgroup("4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n");
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].controllers, vec!["memory".to_string()]);
        assert_eq!(p[0].path, "/process_api/abc");
        assert_eq!(p[1].controllers.len(), 2);
        assert!(p[2].controllers.is_empty());
        assert_eq!(p[2].id, 0);
    }
}
