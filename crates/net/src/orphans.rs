//! Finding and removing what barge left behind.

use std::path::{Path, PathBuf};

use crate::firewall::{self, FWD_PREFIX, NAT_PREFIX};
use crate::link::{self, ALIAS_PREFIX};
use crate::{NetError, Netns, Result};

/// Leftovers whose owner (container id, bridge or namespace file name)
/// starts with a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leaks {
    /// Host links: barge veths (`name (barge:<id>)`) and links whose name
    /// starts with the prefix (bridges).
    pub links: Vec<String>,
    /// `nsfs` mount points whose file name starts with the prefix.
    pub netns_mounts: Vec<PathBuf>,
    /// Network chains of table `ip barge` for those bridges.
    pub nft_chains: Vec<String>,
    /// Published-port map elements of those container ids
    /// (`map key (id)`).
    pub nft_ports: Vec<String>,
}

impl Leaks {
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
            && self.netns_mounts.is_empty()
            && self.nft_chains.is_empty()
            && self.nft_ports.is_empty()
    }
}

/// What [`cleanup_orphans`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanReport {
    /// Container ids whose host veth was deleted.
    pub veths: Vec<String>,
    /// Namespace mounts removed.
    pub netns: Vec<PathBuf>,
    /// Published ports deleted (`map key (id)`).
    pub nft_ports: Vec<String>,
}

/// Undoes the octal escapes (`\040`) of /proc/self/mountinfo paths.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b.len() >= i + 4 {
            let oct = &s[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(oct, 8) {
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

/// Mount points of `nsfs` mounts (bind-mounted namespaces) of this process.
fn nsfs_mounts() -> Result<Vec<PathBuf>> {
    let path = "/proc/self/mountinfo";
    let info = std::fs::read_to_string(path).map_err(|e| NetError::file(path, "read", e))?;
    Ok(info
        .lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            if post.split_whitespace().next()? != "nsfs" {
                return None;
            }
            let mountpoint = pre.split_whitespace().nth(4)?;
            Some(PathBuf::from(unescape_mount_path(mountpoint)))
        })
        .collect())
}

/// The bridge a network chain belongs to.
fn chain_owner(chain: &str) -> Option<&str> {
    [NAT_PREFIX, FWD_PREFIX]
        .iter()
        .find_map(|p| chain.strip_prefix(p))
}

/// Lists barge leftovers for container ids, bridges and namespace files
/// starting with `prefix` (for tests: give every object of a test one
/// unique prefix and assert the result is empty after teardown).
pub fn leaks(prefix: &str) -> Result<Leaks> {
    let mut out = Leaks::default();
    for l in link::host_links()? {
        let owner = l
            .alias
            .as_deref()
            .and_then(|a| a.strip_prefix(ALIAS_PREFIX));
        if owner.is_some_and(|id| id.starts_with(prefix)) {
            out.links.push(format!(
                "{} ({})",
                l.name,
                l.alias.as_deref().unwrap_or_default()
            ));
        } else if l.name.starts_with(prefix) {
            out.links.push(l.name);
        }
    }
    out.netns_mounts = nsfs_mounts()?
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    out.nft_chains = firewall::list_chains()?
        .into_iter()
        .filter(|c| chain_owner(c).is_some_and(|o| o.starts_with(prefix)))
        .collect();
    out.nft_ports = firewall::list_port_elements()?
        .into_iter()
        .filter(|e| e.container_id.starts_with(prefix))
        .map(|e| format!("{} {} ({})", e.map, e.key, e.container_id))
        .collect();
    Ok(out)
}

/// Removes what containers for which `is_known(id)` is false left behind:
/// host veths tagged `barge:<id>`, port-publishing chains
/// `pre_<id>`/`out_<id>`, and, when `netns_dir` is given, namespace mounts
/// in it whose file name is such an id. Network chains and bridges belong
/// to networks and are left alone. The engine passes
/// `|id| ids_in_db.contains(id)`.
pub fn cleanup_orphans(
    is_known: impl Fn(&str) -> bool,
    netns_dir: Option<&Path>,
) -> Result<OrphanReport> {
    let mut report = OrphanReport::default();
    for l in link::host_links()? {
        let Some(id) = l
            .alias
            .as_deref()
            .and_then(|a| a.strip_prefix(ALIAS_PREFIX))
        else {
            continue;
        };
        if !is_known(id) && link::delete_host_link(&l.name)? {
            report.veths.push(id.to_string());
        }
    }

    let orphans: Vec<firewall::PortElement> = firewall::list_port_elements()?
        .into_iter()
        .filter(|e| !is_known(&e.container_id))
        .collect();
    firewall::delete_port_elements(&orphans)?;
    report.nft_ports = orphans
        .into_iter()
        .map(|e| format!("{} {} ({})", e.map, e.key, e.container_id))
        .collect();

    if let Some(dir) = netns_dir {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(NetError::file(dir, "read directory", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| NetError::file(dir, "read directory", e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !is_known(name) {
                let p = entry.path();
                Netns::remove(&p)?;
                report.netns.push(p);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape_mount_path("/run/a\\040b"), "/run/a b");
        assert_eq!(unescape_mount_path("/plain"), "/plain");
        assert_eq!(unescape_mount_path("/x\\"), "/x\\");
    }

    #[test]
    fn chain_owners() {
        assert_eq!(chain_owner("nat_barge0"), Some("barge0"));
        assert_eq!(chain_owner("other"), None);
    }
}
