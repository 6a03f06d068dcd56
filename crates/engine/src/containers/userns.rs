//! `--userns`: podman's user namespace modes on top of `--uidmap`/`--gidmap`.
//!
//! - `host` (default): no user namespace of the container's own (for a
//!   rootless user: the user's namespace, container root = the user).
//! - `keep-id` (rootless only): the user's uid/gid are the same inside,
//!   container root is the user's first subordinate id; the process runs
//!   as the user unless `--user` says otherwise.
//! - `auto[:size=N]`: a range of N ids (default 1024) that no other
//!   container of this store uses, from the `containers` user's range in
//!   `/etc/subuid`, as podman does (root only for now: see docs/rootless.md).

use super::intercept::IdMapping;
use super::{ContainerConfig, Engine};
use crate::error::EngineError;
use crate::rootless;
use crate::Result;
use std::path::Path;

/// A `--userns` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernsMode {
    /// `host` or empty.
    Host,
    /// `keep-id`.
    KeepId,
    /// `auto` with the range size.
    Auto(u32),
}

/// Default `auto` size.
pub const AUTO_SIZE: u32 = 1024;

impl UsernsMode {
    /// Parses `--userns`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            EngineError::Invalid(format!(
                "invalid --userns {s:?} (expected host, keep-id or auto[:size=N])"
            ))
        };
        Ok(match s {
            "" | "host" => Self::Host,
            "keep-id" => Self::KeepId,
            "auto" => Self::Auto(AUTO_SIZE),
            s => {
                let opts = s.strip_prefix("auto:").ok_or_else(bad)?;
                let size = opts
                    .split(',')
                    .find_map(|o| o.strip_prefix("size="))
                    .ok_or_else(bad)?
                    .parse::<u32>()
                    .map_err(|_| bad())?;
                if size == 0 {
                    return Err(bad());
                }
                Self::Auto(size)
            }
        })
    }
}

/// keep-id's mapping of `id` in a namespace of `total` ids (0..total):
/// `id` ↔ 0 (the user), 0..id ↔ 1..=id, the rest identity.
pub fn keep_id_mapping(id: u32, total: u32) -> Result<Vec<IdMapping>> {
    if id == 0 || id >= total {
        return Err(EngineError::Invalid(format!(
            "--userns=keep-id: id {id} does not fit the {total} ids of the user namespace"
        )));
    }
    let mut m = vec![
        IdMapping {
            container: 0,
            host: 1,
            size: id,
        },
        IdMapping {
            container: id,
            host: 0,
            size: 1,
        },
    ];
    if total - id - 1 > 0 {
        m.push(IdMapping {
            container: id + 1,
            host: id + 1,
            size: total - id - 1,
        });
    }
    Ok(m)
}

/// The first `size` ids in `[start, end)` (aligned to `size`) that overlap
/// none of `used` (host-side ranges of other containers).
pub fn free_range(start: u32, end: u32, size: u32, used: &[(u32, u32)]) -> Option<u32> {
    let mut at = start;
    while u64::from(at) + u64::from(size) <= u64::from(end) {
        let clash = used
            .iter()
            .find(|(s, n)| u64::from(*s) < u64::from(at) + u64::from(size) && s + n > at);
        match clash {
            None => return Some(at),
            Some((s, n)) => at = (s + n).max(at + 1),
        }
    }
    None
}

impl Engine {
    /// Fills `cfg`'s id mappings (and, for keep-id, its user) from a
    /// `--userns` mode.
    pub fn apply_userns_mode(&mut self, mode: UsernsMode, cfg: &mut ContainerConfig) -> Result<()> {
        if mode != UsernsMode::Host && !cfg.uidmap.is_empty() {
            return Err(EngineError::Invalid(
                "--userns and --uidmap/--gidmap cannot be combined".into(),
            ));
        }
        if rootless::is_rootless() && matches!(mode, UsernsMode::Auto(_)) {
            return Err(EngineError::NotSupported(
                "rootless: --userns=auto (a container root that is a subordinate id cannot \
                 bind its rootfs yet; use --userns=keep-id)"
                    .into(),
            ));
        }
        match mode {
            UsernsMode::Host => Ok(()),
            UsernsMode::KeepId => {
                let Some(uid) = rootless::rootless_uid() else {
                    return Err(EngineError::Invalid(
                        "--userns=keep-id is only supported for rootless users".into(),
                    ));
                };
                let gid = rootless::rootless_gid().unwrap_or(uid);
                let name = rootless::user_name(uid);
                let subuid = rootless::subid_range(Path::new("/etc/subuid"), "uid", &name, uid)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                let subgid = rootless::subid_range(Path::new("/etc/subgid"), "gid", &name, uid)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?;
                cfg.uidmap = keep_id_mapping(uid, subuid.count.saturating_add(1))?;
                cfg.gidmap = keep_id_mapping(gid, subgid.count.saturating_add(1))?;
                if cfg.user.is_empty() {
                    cfg.user = format!("{uid}:{gid}");
                }
                Ok(())
            }
            UsernsMode::Auto(size) => {
                // Root only (refused above for rootless users): the
                // range of the `containers` user, as podman.
                let r =
                    rootless::subid_range(Path::new("/etc/subuid"), "uid", "containers", u32::MAX)
                        .map_err(|e| {
                            EngineError::Invalid(format!(
                                "--userns=auto needs the range of user \"containers\": {e}"
                            ))
                        })?;
                let (start, end) = (r.start, r.start.saturating_add(r.count));
                let used: Vec<(u32, u32)> = self
                    .containers()?
                    .iter()
                    .flat_map(|c| c.config.uidmap.iter().map(|m| (m.host, m.size)))
                    .collect();
                let at = free_range(start, end, size, &used).ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "--userns=auto: no free range of {size} ids left in {start}..{end}"
                    ))
                })?;
                cfg.uidmap = vec![IdMapping {
                    container: 0,
                    host: at,
                    size,
                }];
                cfg.gidmap = cfg.uidmap.clone();
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes() {
        assert_eq!(UsernsMode::parse("").unwrap(), UsernsMode::Host);
        assert_eq!(UsernsMode::parse("keep-id").unwrap(), UsernsMode::KeepId);
        assert_eq!(UsernsMode::parse("auto").unwrap(), UsernsMode::Auto(1024));
        assert_eq!(
            UsernsMode::parse("auto:size=2048").unwrap(),
            UsernsMode::Auto(2048)
        );
        for bad in ["nope", "auto:size=0", "auto:size=x", "auto:uidmapping=1"] {
            assert!(UsernsMode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keep_id_swaps_the_user_and_root() {
        let m = keep_id_mapping(1000, 65537).unwrap();
        let t: Vec<_> = m.iter().map(|m| (m.container, m.host, m.size)).collect();
        assert_eq!(t, vec![(0, 1, 1000), (1000, 0, 1), (1001, 1001, 64536)]);
        assert!(keep_id_mapping(70000, 65537).is_err());
    }

    #[test]
    fn auto_ranges_do_not_overlap() {
        assert_eq!(free_range(1, 65537, 1024, &[]), Some(1));
        assert_eq!(free_range(1, 65537, 1024, &[(1, 1024)]), Some(1025));
        assert_eq!(
            free_range(1, 65537, 1024, &[(1, 1024), (2049, 1024)]),
            Some(1025)
        );
        assert_eq!(
            free_range(1, 65537, 1024, &[(1, 1024), (1025, 1024)]),
            Some(2049)
        );
        assert_eq!(free_range(1, 2049, 1024, &[(1, 1024)]), Some(1025));
        assert_eq!(free_range(1, 2049, 1024, &[(1, 1024), (1025, 1)]), None);
    }
}
