//! Capability sets, user and group switching for the container process.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};
use oci_spec::runtime::{Capabilities, LinuxCapabilities, User};

use crate::error::RuntimeError;

fn to_set(list: Option<&Capabilities>) -> CapsHashSet {
    let mut set = CapsHashSet::new();
    for cap in list.into_iter().flatten() {
        let name = cap.to_string();
        let name = if name.starts_with("CAP_") {
            name
        } else {
            format!("CAP_{}", name.to_ascii_uppercase())
        };
        match Capability::from_str(&name) {
            Ok(c) if caps::all().contains(&c) => {
                set.insert(c);
            }
            _ => tracing::warn!(capability = %name, "capability not known to this kernel, ignored"),
        }
    }
    set
}

fn err(what: &str, e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Other(format!("{what}: {e}"))
}

/// Switch to `user` and apply `capabilities`, in the order that keeps the
/// permitted set across the uid change:
/// bounding → keepcaps → groups/gid/uid → effective/permitted/inheritable →
/// ambient.
pub fn apply_user_and_caps(
    user: &User,
    capabilities: Option<&LinuxCapabilities>,
    in_user_ns_without_setgroups: bool,
) -> Result<(), RuntimeError> {
    let empty = LinuxCapabilities::default();
    let c = capabilities.unwrap_or(&empty);
    let bounding = to_set(c.bounding().as_ref());
    let effective = to_set(c.effective().as_ref());
    let permitted = to_set(c.permitted().as_ref());
    let inheritable = to_set(c.inheritable().as_ref());
    let ambient = to_set(c.ambient().as_ref());

    // Bounding set: drop everything not listed.
    if capabilities.is_some() {
        let current =
            caps::read(None, CapSet::Bounding).map_err(|e| err("reading the bounding set", e))?;
        for cap in current.difference(&bounding) {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(|e| err(&format!("dropping {cap} from the bounding set"), e))?;
        }
    }

    rustix::thread::set_keep_capabilities(true).map_err(|e| err("setting PR_SET_KEEPCAPS", e))?;

    let gid = rustix::process::Gid::from_raw(user.gid());
    let uid = rustix::process::Uid::from_raw(user.uid());
    if !in_user_ns_without_setgroups {
        let mut groups: Vec<rustix::process::Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| rustix::process::Gid::from_raw(*g))
            .collect();
        groups.dedup();
        rustix::thread::set_thread_groups(&groups)
            .map_err(|e| err(&format!("setgroups({:?})", user.additional_gids()), e))?;
    }
    rustix::thread::set_thread_res_gid(gid, gid, gid)
        .map_err(|e| err(&format!("setresgid({})", user.gid()), e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid)
        .map_err(|e| err(&format!("setresuid({})", user.uid()), e))?;
    rustix::thread::set_keep_capabilities(false).map_err(|e| err("clearing PR_SET_KEEPCAPS", e))?;

    if capabilities.is_some() {
        // Permitted first (effective must stay a subset of it).
        caps::set(None, CapSet::Effective, &CapsHashSet::new())
            .map_err(|e| err("clearing effective capabilities", e))?;
        caps::set(None, CapSet::Inheritable, &inheritable)
            .map_err(|e| err("setting inheritable capabilities", e))?;
        caps::set(None, CapSet::Permitted, &permitted)
            .map_err(|e| err("setting permitted capabilities", e))?;
        caps::set(None, CapSet::Effective, &effective)
            .map_err(|e| err("setting effective capabilities", e))?;
        caps::clear(None, CapSet::Ambient).map_err(|e| err("clearing ambient capabilities", e))?;
        for cap in &ambient {
            // Ambient needs the cap in permitted and inheritable; runc
            // ignores the ones that cannot be raised, and so do we.
            if let Err(e) = caps::raise(None, CapSet::Ambient, *cap) {
                tracing::debug!(capability = %cap, error = %e, "ambient capability not raised");
            }
        }
    }
    Ok(())
}
