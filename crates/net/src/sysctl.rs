use std::path::{Path, PathBuf};

use crate::{NetError, Result};

/// Writes `value` to a `/proc/sys` file unless it already holds it.
pub(crate) fn ensure(path: &str, value: &str) -> Result<()> {
    let p = Path::new(path);
    if let Ok(cur) = std::fs::read_to_string(p) {
        if cur.trim() == value {
            return Ok(());
        }
    }
    std::fs::write(p, value).map_err(|source| NetError::Sysctl {
        path: PathBuf::from(path),
        source,
    })
}

/// `net.ipv4.ip_forward=1`.
pub(crate) fn enable_ip_forward() -> Result<()> {
    ensure("/proc/sys/net/ipv4/ip_forward", "1")
}

/// `net.ipv4.conf.<dev>.route_localnet=1`: lets DNAT'ed connections from
/// 127.0.0.0/8 (host clients of published ports) be routed out of `dev`.
pub(crate) fn enable_route_localnet(dev: &str) -> Result<()> {
    ensure(
        &format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet"),
        "1",
    )
}
