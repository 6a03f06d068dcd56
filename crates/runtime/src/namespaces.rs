//! Which namespaces a container gets, how they are created or joined, and
//! user-namespace id maps.

use std::fmt::Write as _;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use crate::error::{Context, RuntimeError};

/// One namespace to join by path, with its fd opened in the runtime's
/// namespaces (so that later path changes do not matter).
#[derive(Debug)]
pub struct JoinNs {
    pub typ: LinuxNamespaceType,
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// The namespace plan for a container.
#[derive(Debug, Default)]
pub struct NsPlan {
    /// CLONE_NEW* flags of namespaces created new (cgroup excluded: it is
    /// unshared by the init once it sits in its cgroups).
    pub new_flags: u64,
    pub new_cgroup: bool,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_time: bool,
    pub joins: Vec<JoinNs>,
}

/// The clone flag of a namespace type.
pub fn clone_flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }) as u64
}

fn link_type(t: LinuxNamespaceType) -> LinkNameSpaceType {
    match t {
        LinuxNamespaceType::Mount => LinkNameSpaceType::Mount,
        LinuxNamespaceType::Cgroup => LinkNameSpaceType::ControlGroup,
        LinuxNamespaceType::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        LinuxNamespaceType::Ipc => LinkNameSpaceType::InterProcessCommunication,
        LinuxNamespaceType::User => LinkNameSpaceType::User,
        LinuxNamespaceType::Pid => LinkNameSpaceType::ProcessID,
        LinuxNamespaceType::Network => LinkNameSpaceType::Network,
        LinuxNamespaceType::Time => LinkNameSpaceType::Time,
    }
}

impl NsPlan {
    /// Build the plan, opening the fds of namespaces to join.
    pub fn from_spec(linux: Option<&Linux>) -> Result<Self, RuntimeError> {
        let mut plan = NsPlan::default();
        for ns in linux
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            match ns.path() {
                Some(path) => {
                    let fd = File::open(path)
                        .map(OwnedFd::from)
                        .ctx(|| format!("opening {} namespace {}", ns.typ(), path.display()))?;
                    plan.joins.push(JoinNs {
                        typ: ns.typ(),
                        path: path.clone(),
                        fd,
                    });
                }
                None => match ns.typ() {
                    LinuxNamespaceType::Cgroup => plan.new_cgroup = true,
                    t => {
                        if t == LinuxNamespaceType::User {
                            plan.new_user = true;
                        }
                        if t == LinuxNamespaceType::Pid {
                            plan.new_pid = true;
                        }
                        if t == LinuxNamespaceType::Time {
                            // Unshared by the init, which must write the
                            // offsets before any process enters it.
                            plan.new_time = true;
                        } else {
                            plan.new_flags |= clone_flag(t);
                        }
                    }
                },
            }
        }
        // The user namespace is joined first (it owns the others).
        plan.joins
            .sort_by_key(|j| i32::from(j.typ != LinuxNamespaceType::User));
        Ok(plan)
    }

    /// Whether a namespace of this type is joined by path.
    pub fn joins(&self, t: LinuxNamespaceType) -> bool {
        self.joins.iter().any(|j| j.typ == t)
    }

    /// Whether the container has its own (new or joined) namespace of `t`.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.joins(t)
            || (t == LinuxNamespaceType::Cgroup && self.new_cgroup)
            || (t == LinuxNamespaceType::Time && self.new_time)
            || self.new_flags & clone_flag(t) != 0
    }

    /// Two-step creation is needed when namespaces must be joined before a
    /// new user namespace is created (joined namespaces are owned by the
    /// host user namespace), or when the user namespace itself is joined.
    pub fn two_step(&self) -> bool {
        self.joins(LinuxNamespaceType::User)
            || (self.new_user && self.joins.iter().any(|j| j.typ != LinuxNamespaceType::Pid))
    }

    /// Join every namespace given by path except the pid namespace (which
    /// the runtime joins before cloning).
    pub fn join_all(&self) -> Result<(), RuntimeError> {
        for j in self
            .joins
            .iter()
            .filter(|j| j.typ != LinuxNamespaceType::Pid)
        {
            rustix::thread::move_into_link_name_space(j.fd.as_fd(), Some(link_type(j.typ)))
                .ctx(|| format!("joining {} namespace {}", j.typ, j.path.display()))?;
        }
        Ok(())
    }

    /// The joined pid namespace, if any.
    pub fn pid_join(&self) -> Option<&JoinNs> {
        self.joins.iter().find(|j| j.typ == LinuxNamespaceType::Pid)
    }

    /// Enter the joined pid namespace for our future children.
    pub fn enter_pid_for_children(&self) -> Result<(), RuntimeError> {
        if let Some(j) = self.pid_join() {
            rustix::thread::move_into_link_name_space(
                j.fd.as_fd(),
                Some(LinkNameSpaceType::ProcessID),
            )
            .ctx(|| format!("joining pid namespace {}", j.path.display()))?;
        }
        Ok(())
    }
}

/// `unshare(2)` the given CLONE_NEW* flags (namespaces only).
pub fn unshare(flags: u64) -> Result<(), RuntimeError> {
    if flags == 0 {
        return Ok(());
    }
    barge_sys::unshare_namespaces(flags as u32).map_err(|e| {
        RuntimeError::io(
            format!(
                "unsharing namespaces {:?}",
                UnshareFlags::from_bits_retain(flags as u32)
            ),
            e,
        )
    })
}

/// Create the time namespace for our children (and our next exec) with
/// the spec's clock offsets.
#[allow(clippy::implicit_hasher)]
pub fn unshare_time(
    offsets: Option<&std::collections::HashMap<String, oci_spec::runtime::LinuxTimeOffset>>,
) -> Result<(), RuntimeError> {
    unshare(0x80)?;
    let mut text = String::new();
    for (clock, off) in offsets.into_iter().flatten() {
        let _ = writeln!(
            text,
            "{clock} {} {}",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        );
    }
    if !text.is_empty() {
        std::fs::write("/proc/self/timens_offsets", &text).ctx(|| {
            format!(
                "writing time offsets {:?} to /proc/self/timens_offsets",
                text.trim()
            )
        })?;
    }
    Ok(())
}

fn map_text(maps: &[LinuxIdMapping]) -> String {
    maps.iter().fold(String::new(), |mut out, m| {
        let _ = writeln!(out, "{} {} {}", m.container_id(), m.host_id(), m.size());
        out
    })
}

/// Whether this process runs in a user namespace other than the initial
/// one (its uid map is not the identity over all ids).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Write uid/gid maps for `pid`: directly as root, through
/// newuidmap/newgidmap otherwise (or when a direct write is refused and the
/// helpers exist).
pub fn write_id_maps(
    pid: i32,
    uid: &[LinuxIdMapping],
    gid: &[LinuxIdMapping],
) -> Result<(), RuntimeError> {
    let root = rustix::process::geteuid().is_root();
    if root {
        write_map(pid, "uid_map", uid)?;
        write_map(pid, "gid_map", gid)?;
        return Ok(());
    }
    // Unprivileged: a single mapping of our own id works directly (with
    // setgroups denied); anything else needs the setuid helpers.
    let own_uid = rustix::process::getuid().as_raw();
    let own_gid = rustix::process::getgid().as_raw();
    let simple = |maps: &[LinuxIdMapping], own: u32| {
        maps.len() == 1 && maps[0].host_id() == own && maps[0].size() == 1
    };
    if simple(uid, own_uid) && simple(gid, own_gid) {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .ctx(|| format!("writing /proc/{pid}/setgroups"))?;
        write_map(pid, "uid_map", uid)?;
        write_map(pid, "gid_map", gid)?;
        return Ok(());
    }
    run_helper("newuidmap", pid, uid)?;
    run_helper("newgidmap", pid, gid)?;
    Ok(())
}

fn write_map(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<(), RuntimeError> {
    if maps.is_empty() {
        return Ok(());
    }
    std::fs::write(format!("/proc/{pid}/{file}"), map_text(maps)).ctx(|| {
        format!(
            "writing /proc/{pid}/{file} ({})",
            map_text(maps).trim().replace('\n', ", ")
        )
    })
}

fn run_helper(helper: &str, pid: i32, maps: &[LinuxIdMapping]) -> Result<(), RuntimeError> {
    if maps.is_empty() {
        return Ok(());
    }
    let mut cmd = std::process::Command::new(helper);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.arg(m.container_id().to_string())
            .arg(m.host_id().to_string())
            .arg(m.size().to_string());
    }
    let out = cmd
        .output()
        .ctx(|| format!("running {helper} (is the uidmap package installed?)"))?;
    if !out.status.success() {
        return Err(RuntimeError::Other(format!(
            "{helper} {pid} failed: {} (check /etc/subuid and /etc/subgid)",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The host uid/gid that container ids map to (identity without a user
/// namespace mapping).
pub fn host_ids(linux: Option<&Linux>, uid: u32, gid: u32) -> (u32, u32) {
    let map = |maps: Option<&Vec<LinuxIdMapping>>, id: u32| {
        maps.into_iter()
            .flatten()
            .find(|m| id >= m.container_id() && id - m.container_id() < m.size())
            .map_or(id, |m| m.host_id() + (id - m.container_id()))
    };
    (
        map(linux.and_then(|l| l.uid_mappings().as_ref()), uid),
        map(linux.and_then(|l| l.gid_mappings().as_ref()), gid),
    )
}
