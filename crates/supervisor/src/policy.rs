//! What the supervisor allows: system-wide defaults (a TOML file) refined
//! per container by OCI annotations, and the decisions taken from a call's
//! register arguments.
//!
//! Annotations (`barge run --security-opt seccomp-intercept…` writes them):
//!
//! | annotation | meaning |
//! |---|---|
//! | `barge.syscalls.intercept.mknod` / `.mount` / `.setxattr` = `true`/`false` | which groups the engine intercepts; a notified call of a group set to `false` continues unchanged |
//! | `barge.syscalls.intercept.mknod.allowed` | devices besides the whiteout: names (`null`, `zero`, `full`, `random`, `urandom`, `tty`) or `c:MAJOR:MINOR` / `b:MAJOR:MINOR` |
//! | `barge.syscalls.intercept.mount.allowed` | filesystem types (`tmpfs`, `proc`, `overlay`, …) |
//! | `barge.syscalls.intercept.setxattr.allowed` | attribute names (`trusted.overlay.opaque`, …) |
//!
//! A list given per container replaces the default list.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The annotation prefix.
pub const ANNOTATION_PREFIX: &str = "barge.syscalls.intercept.";

/// `mknod` file type bits.
const S_IFMT: u32 = 0o170_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFBLK: u32 = 0o060_000;

/// Legacy `mount(2)` flags.
pub mod ms {
    /// `MS_RDONLY`.
    pub const RDONLY: u64 = 1;
    /// `MS_NOSUID`.
    pub const NOSUID: u64 = 2;
    /// `MS_NODEV`.
    pub const NODEV: u64 = 4;
    /// `MS_NOEXEC`.
    pub const NOEXEC: u64 = 8;
    /// `MS_SYNCHRONOUS`.
    pub const SYNCHRONOUS: u64 = 16;
    /// `MS_REMOUNT`.
    pub const REMOUNT: u64 = 32;
    /// `MS_MANDLOCK`.
    pub const MANDLOCK: u64 = 64;
    /// `MS_DIRSYNC`.
    pub const DIRSYNC: u64 = 128;
    /// `MS_NOSYMFOLLOW`.
    pub const NOSYMFOLLOW: u64 = 256;
    /// `MS_NOATIME`.
    pub const NOATIME: u64 = 1024;
    /// `MS_NODIRATIME`.
    pub const NODIRATIME: u64 = 2048;
    /// `MS_BIND`.
    pub const BIND: u64 = 4096;
    /// `MS_MOVE`.
    pub const MOVE: u64 = 8192;
    /// `MS_REC`.
    pub const REC: u64 = 16384;
    /// `MS_SILENT`.
    pub const SILENT: u64 = 32768;
    /// `MS_UNBINDABLE`.
    pub const UNBINDABLE: u64 = 1 << 17;
    /// `MS_PRIVATE`.
    pub const PRIVATE: u64 = 1 << 18;
    /// `MS_SLAVE`.
    pub const SLAVE: u64 = 1 << 19;
    /// `MS_SHARED`.
    pub const SHARED: u64 = 1 << 20;
    /// `MS_RELATIME`.
    pub const RELATIME: u64 = 1 << 21;
    /// `MS_STRICTATIME`.
    pub const STRICTATIME: u64 = 1 << 24;
    /// `MS_LAZYTIME`.
    pub const LAZYTIME: u64 = 1 << 25;
    /// `MS_MGC_VAL` (the old magic in the high 16 bits).
    pub const MGC_VAL: u64 = 0xc0ed_0000;
    /// `MS_MGC_MSK`.
    pub const MGC_MSK: u64 = 0xffff_0000;
}

/// Flags a new mount may carry (anything else is refused).
const NEW_MOUNT_FLAGS: u64 = ms::RDONLY
    | ms::NOSUID
    | ms::NODEV
    | ms::NOEXEC
    | ms::SYNCHRONOUS
    | ms::DIRSYNC
    | ms::NOSYMFOLLOW
    | ms::NOATIME
    | ms::NODIRATIME
    | ms::SILENT
    | ms::RELATIME
    | ms::STRICTATIME
    | ms::LAZYTIME;

/// Operations on existing mounts: the kernel decides them with the caller's
/// own privileges.
const EXISTING_MOUNT_FLAGS: u64 =
    ms::REMOUNT | ms::BIND | ms::MOVE | ms::SHARED | ms::PRIVATE | ms::SLAVE | ms::UNBINDABLE;

/// Errors in a policy file or annotation.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("supervisor policy {path}: {message}")]
    File { path: String, message: String },
    #[error("annotation {key}={value:?}: {message}")]
    Annotation {
        key: String,
        value: String,
        message: String,
    },
}

/// A device node kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DevKind {
    /// Character device.
    Char,
    /// Block device.
    Block,
}

/// One allowed device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Device {
    /// Character or block.
    pub kind: DevKind,
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

/// The devices every container may create (besides the whiteout 0:0).
pub const SAFE_DEVICES: &[(&str, u32, u32)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

impl Device {
    /// `null`…`tty`, or `c:MAJOR:MINOR` / `b:MAJOR:MINOR`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Some(&(_, major, minor)) = SAFE_DEVICES.iter().find(|(n, _, _)| *n == s) {
            return Ok(Device {
                kind: DevKind::Char,
                major,
                minor,
            });
        }
        let parts: Vec<&str> = s.split(':').collect();
        let [kind, major, minor] = parts.as_slice() else {
            return Err(format!(
                "device {s:?}: expected a name ({}) or c:MAJOR:MINOR / b:MAJOR:MINOR",
                SAFE_DEVICES
                    .iter()
                    .map(|d| d.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let kind = match *kind {
            "c" => DevKind::Char,
            "b" => DevKind::Block,
            k => return Err(format!("device {s:?}: kind {k:?} is not c or b")),
        };
        let num = |v: &str, what: &str, max: u32| -> Result<u32, String> {
            v.parse::<u32>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| format!("device {s:?}: bad {what} number {v:?}"))
        };
        Ok(Device {
            kind,
            major: num(major, "major", 0xfff)?,
            minor: num(minor, "minor", 0xf_ffff)?,
        })
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match self.kind {
            DevKind::Char => 'c',
            DevKind::Block => 'b',
        };
        write!(f, "{k}:{}:{}", self.major, self.minor)
    }
}

/// The policy for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Intercept mknod/mknodat (else continue them).
    pub mknod: bool,
    /// Intercept mount.
    pub mount: bool,
    /// Intercept setxattr/lsetxattr/fsetxattr.
    pub setxattr: bool,
    /// Devices that are created on the caller's behalf.
    pub devices: Vec<Device>,
    /// Filesystem types that are mounted on the caller's behalf.
    pub mount_types: Vec<String>,
    /// Add `nosuid` to every emulated mount.
    pub force_nosuid: bool,
    /// Extended attribute names set on the caller's behalf.
    pub xattrs: Vec<String>,
    /// How long one emulated call may take before it fails with `EIO`.
    pub worker_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mknod: true,
            mount: true,
            setxattr: true,
            devices: SAFE_DEVICES
                .iter()
                .map(|&(_, major, minor)| Device {
                    kind: DevKind::Char,
                    major,
                    minor,
                })
                .collect(),
            mount_types: vec!["tmpfs".into(), "proc".into(), "overlay".into()],
            force_nosuid: true,
            xattrs: vec!["trusted.overlay.opaque".into()],
            worker_timeout: Duration::from_secs(10),
        }
    }
}

/// The system-wide file (`/etc/barge/supervisor.toml`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    mknod: Option<GroupConfig>,
    #[serde(default)]
    mount: Option<MountConfig>,
    #[serde(default)]
    setxattr: Option<GroupConfig>,
    #[serde(default)]
    worker: Option<WorkerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupConfig {
    enabled: Option<bool>,
    allowed: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountConfig {
    enabled: Option<bool>,
    allowed: Option<Vec<String>>,
    force_nosuid: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkerConfig {
    timeout_ms: Option<u64>,
}

/// What to do with a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Perform it on the caller's behalf.
    Emulate,
    /// Let the kernel run it with the caller's own privileges.
    Continue,
    /// Fail it with this errno.
    Refuse(i32),
}

/// A decision with the reason logged for it.
pub type Verdict = (Decision, &'static str);

fn valid_fs_type(t: &str) -> bool {
    !t.is_empty()
        && t.len() < 64
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn valid_xattr(n: &str) -> bool {
    n.len() < 256
        && ["trusted.", "security.", "user.", "system."]
            .iter()
            .any(|p| n.len() > p.len() && n.starts_with(p))
}

impl Policy {
    /// The system defaults from a TOML file's text (`path` names it in errors).
    pub fn from_toml(path: &str, text: &str) -> Result<Self, PolicyError> {
        let fail = |message: String| PolicyError::File {
            path: path.to_string(),
            message,
        };
        let cfg: FileConfig = toml::from_str(text).map_err(|e| fail(e.to_string()))?;
        let mut p = Policy::default();
        if let Some(m) = cfg.mknod {
            if let Some(e) = m.enabled {
                p.mknod = e;
            }
            if let Some(list) = m.allowed {
                p.devices = parse_devices(&list).map_err(fail)?;
            }
        }
        if let Some(m) = cfg.mount {
            if let Some(e) = m.enabled {
                p.mount = e;
            }
            if let Some(list) = m.allowed {
                p.mount_types = parse_fs_types(&list).map_err(fail)?;
            }
            if let Some(n) = m.force_nosuid {
                p.force_nosuid = n;
            }
        }
        if let Some(m) = cfg.setxattr {
            if let Some(e) = m.enabled {
                p.setxattr = e;
            }
            if let Some(list) = m.allowed {
                p.xattrs = parse_xattrs(&list).map_err(fail)?;
            }
        }
        if let Some(w) = cfg.worker {
            if let Some(ms) = w.timeout_ms {
                if ms == 0 {
                    return Err(fail("worker.timeout_ms must be positive".into()));
                }
                p.worker_timeout = Duration::from_millis(ms);
            }
        }
        Ok(p)
    }

    /// This policy refined by a container's annotations (keys under
    /// [`ANNOTATION_PREFIX`]; other keys are ignored).
    pub fn with_annotations(
        &self,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Self, PolicyError> {
        let mut p = self.clone();
        for (key, value) in annotations {
            let Some(rest) = key.strip_prefix(ANNOTATION_PREFIX) else {
                continue;
            };
            let fail = |message: String| PolicyError::Annotation {
                key: key.clone(),
                value: value.clone(),
                message,
            };
            let list = || -> Vec<String> {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            };
            let flag = || match value.trim() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(fail("expected true or false".into())),
            };
            match rest {
                "mknod" => p.mknod = flag()?,
                "mount" => p.mount = flag()?,
                "setxattr" => p.setxattr = flag()?,
                "mknod.allowed" => p.devices = parse_devices(&list()).map_err(fail)?,
                "mount.allowed" => p.mount_types = parse_fs_types(&list()).map_err(fail)?,
                "setxattr.allowed" => p.xattrs = parse_xattrs(&list()).map_err(fail)?,
                _ => {
                    return Err(fail(
                        "unknown key (expected mknod, mount, setxattr, or \
                         mknod.allowed, mount.allowed, setxattr.allowed)"
                            .into(),
                    ))
                }
            }
        }
        Ok(p)
    }

    /// Whether calls of `group` are handled (a notified call of a disabled
    /// group continues).
    pub fn intercepts(&self, group: &str) -> bool {
        match group {
            "mknod" => self.mknod,
            "mount" => self.mount,
            "setxattr" => self.setxattr,
            _ => false,
        }
    }

    /// `mknod(path, mode, dev)` from its registers.
    pub fn mknod(&self, mode: u32, major: u32, minor: u32) -> Verdict {
        let kind = match mode & S_IFMT {
            S_IFCHR => DevKind::Char,
            S_IFBLK => DevKind::Block,
            // Regular files, fifos, sockets (and invalid types) need no
            // privilege: the kernel decides.
            _ => return (Decision::Continue, "not a device"),
        };
        if kind == DevKind::Char && major == 0 && minor == 0 {
            // The overlay whiteout: allowed to everyone since Linux 5.8.
            return (Decision::Continue, "whiteout");
        }
        let dev = Device { kind, major, minor };
        if self.devices.contains(&dev) {
            (Decision::Emulate, "allowed device")
        } else {
            (Decision::Refuse(libc::EPERM), "device not allowed")
        }
    }

    /// The flags of a `mount` call: `Continue` for operations on existing
    /// mounts (bind, move, remount, propagation), `Refuse` for flags a new
    /// mount may not have, else `Emulate` (the type decides).
    pub fn mount_flags(&self, flags: u64) -> Verdict {
        let flags = strip_magic(flags);
        if flags & EXISTING_MOUNT_FLAGS != 0 {
            return (Decision::Continue, "operation on an existing mount");
        }
        if flags & !NEW_MOUNT_FLAGS != 0 {
            return (Decision::Refuse(libc::EPERM), "mount flags not allowed");
        }
        (Decision::Emulate, "new mount")
    }

    /// The filesystem type of a new mount.
    pub fn mount_type(&self, fstype: &str) -> Verdict {
        if self.mount_types.iter().any(|t| t == fstype) {
            (Decision::Emulate, "allowed filesystem type")
        } else {
            (Decision::Refuse(libc::EPERM), "filesystem type not allowed")
        }
    }

    /// The attribute name of a `*setxattr` call: allowed names are set on
    /// the caller's behalf, every other one continues (the kernel checks it
    /// with the caller's privileges, so `trusted.*` fails there).
    pub fn xattr(&self, name: &[u8]) -> Verdict {
        if self.xattrs.iter().any(|x| x.as_bytes() == name) {
            (Decision::Emulate, "allowed attribute")
        } else {
            (Decision::Continue, "attribute not emulated")
        }
    }
}

/// `flags` without the historic `MS_MGC_VAL` magic.
pub fn strip_magic(flags: u64) -> u64 {
    if flags & ms::MGC_MSK == ms::MGC_VAL {
        flags & !ms::MGC_MSK
    } else {
        flags
    }
}

fn parse_devices(list: &[String]) -> Result<Vec<Device>, String> {
    list.iter().map(|s| Device::parse(s)).collect()
}

fn parse_fs_types(list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .map(|t| {
            let t = t.trim();
            if valid_fs_type(t) {
                Ok(t.to_string())
            } else {
                Err(format!("invalid filesystem type {t:?}"))
            }
        })
        .collect()
}

fn parse_xattrs(list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .map(|n| {
            let n = n.trim();
            if valid_xattr(n) {
                Ok(n.to_string())
            } else {
                Err(format!(
                    "invalid attribute name {n:?} (expected trusted.*, security.*, user.* or system.*)"
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn mknod_decisions() {
        let p = Policy::default();
        assert_eq!(p.mknod(S_IFCHR | 0o666, 1, 3).0, Decision::Emulate);
        assert_eq!(p.mknod(S_IFCHR | 0o666, 5, 0).0, Decision::Emulate);
        assert_eq!(p.mknod(S_IFCHR, 0, 0).0, Decision::Continue);
        assert_eq!(
            p.mknod(S_IFBLK | 0o600, 8, 0).0,
            Decision::Refuse(libc::EPERM)
        );
        assert_eq!(
            p.mknod(S_IFBLK | 0o600, 1, 3).0,
            Decision::Refuse(libc::EPERM)
        );
        assert_eq!(
            p.mknod(S_IFCHR | 0o600, 10, 229).0,
            Decision::Refuse(libc::EPERM)
        );
        assert_eq!(p.mknod(0o010_644, 0, 0).0, Decision::Continue); // fifo
        assert_eq!(p.mknod(0o644, 0, 0).0, Decision::Continue); // regular
        let q = p
            .with_annotations(&ann(&[(
                "barge.syscalls.intercept.mknod.allowed",
                "null, c:10:229",
            )]))
            .expect("annotations");
        assert_eq!(q.mknod(S_IFCHR, 10, 229).0, Decision::Emulate);
        assert_eq!(q.mknod(S_IFCHR, 1, 5).0, Decision::Refuse(libc::EPERM));
        assert_eq!(q.mknod(S_IFCHR, 1, 3).0, Decision::Emulate);
    }

    #[test]
    fn mount_decisions() {
        let p = Policy::default();
        assert_eq!(p.mount_flags(0).0, Decision::Emulate);
        assert_eq!(p.mount_flags(ms::MGC_VAL | ms::RDONLY).0, Decision::Emulate);
        assert_eq!(p.mount_flags(ms::BIND | ms::REC).0, Decision::Continue);
        assert_eq!(
            p.mount_flags(ms::REMOUNT | ms::RDONLY).0,
            Decision::Continue
        );
        assert_eq!(p.mount_flags(ms::PRIVATE).0, Decision::Continue);
        assert_eq!(p.mount_flags(ms::MANDLOCK).0, Decision::Refuse(libc::EPERM));
        assert_eq!(p.mount_flags(1 << 30).0, Decision::Refuse(libc::EPERM));
        assert_eq!(p.mount_type("tmpfs").0, Decision::Emulate);
        assert_eq!(p.mount_type("ext4").0, Decision::Refuse(libc::EPERM));
        assert_eq!(p.mount_type("").0, Decision::Refuse(libc::EPERM));
    }

    #[test]
    fn xattr_decisions() {
        let p = Policy::default();
        assert_eq!(p.xattr(b"trusted.overlay.opaque").0, Decision::Emulate);
        assert_eq!(p.xattr(b"trusted.overlay.redirect").0, Decision::Continue);
        assert_eq!(p.xattr(b"user.foo").0, Decision::Continue);
    }

    #[test]
    fn annotations_and_files() {
        let p = Policy::default()
            .with_annotations(&ann(&[
                ("barge.syscalls.intercept.mount", "false"),
                ("barge.syscalls.intercept.mount.allowed", "tmpfs,mqueue"),
                (
                    "barge.syscalls.intercept.setxattr.allowed",
                    "trusted.overlay.opaque,trusted.overlay.redirect",
                ),
                ("io.barge.container.name", "x"),
            ]))
            .expect("annotations");
        assert!(!p.intercepts("mount") && p.intercepts("mknod"));
        assert_eq!(p.mount_types, ["tmpfs", "mqueue"]);
        assert_eq!(p.xattr(b"trusted.overlay.redirect").0, Decision::Emulate);
        for (k, v) in [
            ("barge.syscalls.intercept.mknod", "maybe"),
            ("barge.syscalls.intercept.mknod.allowed", "c:1"),
            ("barge.syscalls.intercept.mknod.allowed", "x:1:3"),
            ("barge.syscalls.intercept.mknod.allowed", "c:4096:0"),
            ("barge.syscalls.intercept.mount.allowed", "tmp fs"),
            (
                "barge.syscalls.intercept.setxattr.allowed",
                "overlay.opaque",
            ),
            ("barge.syscalls.intercept.open", "true"),
        ] {
            let e = Policy::default()
                .with_annotations(&ann(&[(k, v)]))
                .expect_err(v)
                .to_string();
            assert!(e.contains(k), "{e}");
        }

        let f = Policy::from_toml(
            "/etc/barge/supervisor.toml",
            "[mknod]\nallowed = [\"null\", \"b:7:0\"]\n[mount]\nallowed = [\"tmpfs\"]\nforce_nosuid = false\n\
             [setxattr]\nenabled = false\n[worker]\ntimeout_ms = 500\n",
        )
        .expect("file");
        assert_eq!(f.devices.len(), 2);
        assert_eq!(f.mknod(S_IFBLK, 7, 0).0, Decision::Emulate);
        assert!(!f.force_nosuid && !f.setxattr);
        assert_eq!(f.worker_timeout, Duration::from_millis(500));
        let e = Policy::from_toml("/x.toml", "[mount]\ntypes = []\n")
            .expect_err("unknown key")
            .to_string();
        assert!(e.contains("/x.toml") && e.contains("types"), "{e}");
        assert!(Policy::from_toml("/x.toml", "[worker]\ntimeout_ms = 0\n").is_err());
        assert_eq!(
            Policy::from_toml("/x.toml", "").expect("empty"),
            Policy::default()
        );
    }
}
