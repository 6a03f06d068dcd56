//! Semantic checks on a parsed spec, made before anything is created.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::SpecError;

/// Check a container id: non-empty, at most 1024 bytes, only
/// `[A-Za-z0-9_.+-]`, and not `.` or `..` (it names a directory).
pub fn validate_id(id: &str) -> Result<(), SpecError> {
    let bad = |reason| SpecError::InvalidId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() {
        return Err(bad("it is empty"));
    }
    if id.len() > 1024 {
        return Err(bad("it is longer than 1024 bytes"));
    }
    if id == "." || id == ".." {
        return Err(bad("it names a directory"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
    {
        return Err(bad(
            "only letters, digits, '_', '.', '+' and '-' are allowed",
        ));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> SpecError {
    SpecError::Invalid(msg.into())
}

/// Check what serde cannot: the rootfs exists, namespaces are consistent,
/// paths are absolute, and so on. `bundle` resolves a relative root path.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<(), SpecError> {
    if spec.version().is_empty() {
        return Err(invalid("ociVersion is empty"));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root is missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    match std::fs::metadata(&rootfs) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(invalid(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )))
        }
        Err(err) => return Err(invalid(format!("root.path {}: {err}", rootfs.display()))),
    }

    if let Some(process) = spec.process() {
        match process.args() {
            Some(args) if !args.is_empty() => {}
            _ => {
                if process.command_line().is_none() {
                    return Err(invalid("process.args must not be empty"));
                }
            }
        }
        if !process.cwd().is_absolute() {
            return Err(invalid(format!(
                "process.cwd {:?} must be an absolute path",
                process.cwd()
            )));
        }
        if let Some(env) = process.env() {
            if let Some(bad) = env.iter().find(|e| !e.contains('=')) {
                return Err(invalid(format!(
                    "process.env entry {bad:?} is not of the form KEY=VALUE"
                )));
            }
        }
    } else {
        return Err(invalid("process is missing"));
    }

    if let Some(hooks) = spec.hooks() {
        let all = [
            hooks.prestart(),
            hooks.create_runtime(),
            hooks.create_container(),
            hooks.start_container(),
            hooks.poststart(),
            hooks.poststop(),
        ];
        for hook in all.into_iter().flatten().flatten() {
            if !hook.path().is_absolute() {
                return Err(invalid(format!(
                    "hook path {:?} must be absolute",
                    hook.path()
                )));
            }
        }
    }
    for mount in spec.mounts().iter().flatten() {
        if !mount.destination().is_absolute() {
            return Err(invalid(format!(
                "mount destination {:?} must be an absolute path",
                mount.destination()
            )));
        }
    }

    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    let mut seen = HashSet::new();
    let mut new_or_joined = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return Err(invalid(format!(
                "namespace {} is listed more than once",
                ns.typ()
            )));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(invalid(format!(
                    "namespace {} path {:?} must be absolute",
                    ns.typ(),
                    path
                )));
            }
            if let Err(err) = std::fs::metadata(path) {
                return Err(invalid(format!(
                    "namespace {} path {}: {err}",
                    ns.typ(),
                    path.display()
                )));
            }
        }
        new_or_joined.insert(ns.typ());
    }
    let has = |t: LinuxNamespaceType| new_or_joined.contains(&t);
    let has_maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if has_maps && !has(LinuxNamespaceType::User) {
        return Err(invalid(
            "uidMappings/gidMappings are set but there is no user namespace",
        ));
    }
    let user_new = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::User && ns.path().is_none());
    if user_new && !has_maps {
        return Err(invalid(
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        return Err(invalid("hostname is set but there is no uts namespace"));
    }
    if spec.domainname().as_deref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts)
    {
        return Err(invalid("domainname is set but there is no uts namespace"));
    }
    if linux.time_offsets().is_some() && !has(LinuxNamespaceType::Time) {
        return Err(invalid(
            "timeOffsets are set but there is no time namespace",
        ));
    }
    for dev in linux.devices().iter().flatten() {
        let p = dev.path();
        if !p.starts_with("/dev/")
            || p.components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid(format!(
                "device path {} must be under /dev and must not contain '..'",
                p.display()
            )));
        }
    }
    for key in linux.sysctl().iter().flat_map(|m| m.keys()) {
        check_sysctl(key, &has)?;
    }
    for path in linux
        .masked_paths()
        .iter()
        .chain(linux.readonly_paths().iter())
        .flatten()
    {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "masked/readonly path {path:?} must be absolute"
            )));
        }
    }
    if let Some(prop) = linux.rootfs_propagation() {
        if !matches!(
            prop.as_str(),
            "" | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "private"
                | "rprivate"
                | "unbindable"
                | "runbindable"
        ) {
            return Err(invalid(format!(
                "rootfsPropagation {prop:?} is not a propagation mode"
            )));
        }
    }
    Ok(())
}

/// Namespaced sysctls need their namespace (runc's rule set).
fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<(), SpecError> {
    let ipc_keys = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if key.contains("..") || key.starts_with('/') || key.contains('\0') {
        return Err(invalid(format!("sysctl {key:?} is not a valid name")));
    }
    if ipc_keys.contains(&key) || key.starts_with("fs.mqueue.") {
        if has(LinuxNamespaceType::Ipc) {
            return Ok(());
        }
        return Err(invalid(format!(
            "sysctl {key:?} is not allowed without an ipc namespace"
        )));
    }
    if key.starts_with("net.") {
        if has(LinuxNamespaceType::Network) {
            return Ok(());
        }
        return Err(invalid(format!(
            "sysctl {key:?} is not allowed in the host network namespace"
        )));
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if has(LinuxNamespaceType::Uts) {
            return Ok(());
        }
        return Err(invalid(format!(
            "sysctl {key:?} is not allowed without a uts namespace"
        )));
    }
    Err(invalid(format!(
        "sysctl {key:?} is not in a separate kernel namespace"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        validate_id("abc-1.2_x+y").unwrap();
        for bad in ["", ".", "..", "../x", "a b", "a/b", "x\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sysctl_rules() {
        let none = |_t: LinuxNamespaceType| false;
        let all = |_t: LinuxNamespaceType| true;
        assert!(check_sysctl("net.ipv4.ip_forward", &none).is_err());
        assert!(check_sysctl("net.ipv4.ip_forward", &all).is_ok());
        assert!(check_sysctl("kernel.shm_rmid_forced", &all).is_ok());
        assert!(check_sysctl("vm.swappiness", &all).is_err());
    }
}
