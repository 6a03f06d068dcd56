//! IPv4 address management helpers. The engine stores allocations; these
//! functions only compute.
//!
//! Defaults avoid podman's so both engines can run side by side: podman uses
//! `podman`/`cni-podman0` with 10.88.0.0/16 and allocates user networks from
//! 10.89.0.0/24 upwards; barge's default network `barge` is bridge `barge0`
//! with 10.90.0.0/16, and user networks come from [`USER_SUBNET_POOL`]
//! (10.91.0.0/16 in /24s).

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use crate::{NetError, Result};

/// Name of the default network.
pub const DEFAULT_NETWORK: &str = "barge";
/// Bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "barge0";
/// Subnet of the default network.
pub const DEFAULT_SUBNET: Subnet = Subnet {
    addr: Ipv4Addr::new(10, 90, 0, 0),
    prefix_len: 16,
};
/// Pool user-defined networks take their subnets from ([`next_free_subnet`]).
pub const USER_SUBNET_POOL: Subnet = Subnet {
    addr: Ipv4Addr::new(10, 91, 0, 0),
    prefix_len: 16,
};

/// An IPv4 subnet in CIDR form; the address has no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: Ipv4Addr,
    prefix_len: u8,
}

impl Subnet {
    /// A subnet from a network address and prefix length; host bits must be
    /// zero.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Subnet> {
        let bad = |reason: &str| NetError::Subnet {
            spec: format!("{addr}/{prefix_len}"),
            reason: reason.to_string(),
        };
        if prefix_len > 32 {
            return Err(bad("prefix length must be 0 to 32"));
        }
        let s = Subnet { addr, prefix_len };
        if u32::from(addr) & !s.mask() != 0 {
            return Err(bad(&format!(
                "host bits are set (did you mean {}/{prefix_len}?)",
                Ipv4Addr::from(u32::from(addr) & s.mask())
            )));
        }
        Ok(s)
    }

    pub fn addr(self) -> Ipv4Addr {
        self.addr
    }

    pub fn prefix_len(self) -> u8 {
        self.prefix_len
    }

    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0)
    }

    /// The last address (broadcast).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(self, other: Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The first usable host address: the conventional gateway.
    pub fn first_host(self) -> Option<Ipv4Addr> {
        (self.prefix_len <= 30).then(|| Ipv4Addr::from(u32::from(self.addr) + 1))
    }

    /// The last usable host address.
    pub fn last_host(self) -> Option<Ipv4Addr> {
        (self.prefix_len <= 30).then(|| Ipv4Addr::from(u32::from(self.broadcast()) - 1))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = NetError;

    /// Parses `a.b.c.d/len` (a bare address means /32).
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = |reason: &str| NetError::Subnet {
            spec: s.to_string(),
            reason: reason.to_string(),
        };
        let (ip, len) = s.split_once('/').unwrap_or((s, "32"));
        let addr: Ipv4Addr = ip
            .parse()
            .map_err(|_| bad("not an IPv4 address (a.b.c.d/len)"))?;
        let prefix_len: u8 = len
            .parse()
            .map_err(|_| bad("prefix length is not a number"))?;
        Subnet::new(addr, prefix_len).map_err(|e| match e {
            NetError::Subnet { reason, .. } => bad(&reason),
            other => other,
        })
    }
}

/// The lowest host address of `subnet` that is neither the gateway nor in
/// `used` (network and broadcast addresses are never returned).
pub fn next_free(subnet: Subnet, gateway: Ipv4Addr, used: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr> {
    next_free_after(subnet, gateway, used, None)
}

/// Like [`next_free`] but round-robin: the search starts after `last` (the
/// previous allocation, which the engine remembers per network) and wraps.
/// This keeps a just-released address from being handed out again at once,
/// while other containers may still have its old MAC in their ARP caches.
pub fn next_free_after(
    subnet: Subnet,
    gateway: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
    last: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    let exhausted = || NetError::Exhausted {
        pool: subnet.to_string(),
    };
    let (Some(first), Some(lastb)) = (subnet.first_host(), subnet.last_host()) else {
        return Err(exhausted());
    };
    let (first, lastb) = (u32::from(first), u32::from(lastb));
    let start = match last {
        Some(l) if subnet.contains(l) && u32::from(l) >= first && u32::from(l) < lastb => {
            u32::from(l) + 1
        }
        _ => first,
    };
    (start..=lastb)
        .chain(first..start)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != gateway && !used.contains(ip))
        .ok_or_else(exhausted)
}

/// The first `/prefix_len` subnet of `pool` that overlaps none of `used`.
pub fn next_free_subnet(pool: Subnet, prefix_len: u8, used: &[Subnet]) -> Result<Subnet> {
    if prefix_len < pool.prefix_len || prefix_len > 30 {
        return Err(NetError::Subnet {
            spec: format!("{pool} in /{prefix_len} pieces"),
            reason: "piece size must be between the pool's prefix length and /30".into(),
        });
    }
    let step = 1u64 << (32 - u32::from(prefix_len));
    let start = u64::from(u32::from(pool.addr));
    let end = u64::from(u32::from(pool.broadcast()));
    let mut at = start;
    while at <= end {
        let candidate = Subnet {
            addr: Ipv4Addr::from(at as u32),
            prefix_len,
        };
        if !used.iter().any(|u| u.overlaps(candidate)) {
            return Ok(candidate);
        }
        at += step;
    }
    Err(NetError::Exhausted {
        pool: pool.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sn(s: &str) -> Subnet {
        s.parse().expect("subnet")
    }

    #[test]
    fn parses_and_formats() {
        let s = sn("10.90.0.0/16");
        assert_eq!(s.to_string(), "10.90.0.0/16");
        assert_eq!(s.first_host(), Some(Ipv4Addr::new(10, 90, 0, 1)));
        assert_eq!(s.last_host(), Some(Ipv4Addr::new(10, 90, 255, 254)));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 90, 255, 255));
        assert!(s.contains(Ipv4Addr::new(10, 90, 3, 4)));
        assert!(!s.contains(Ipv4Addr::new(10, 91, 0, 1)));
        assert_eq!(sn("1.2.3.4").prefix_len(), 32);
        assert_eq!(sn("0.0.0.0/0").broadcast(), Ipv4Addr::BROADCAST);
        assert_eq!(DEFAULT_SUBNET, sn("10.90.0.0/16"));
    }

    #[test]
    fn rejects_bad_subnets() {
        for bad in [
            "10.0.0.1/24",
            "10.0.0.0/33",
            "10.0.0/24",
            "x/8",
            "10.0.0.0/",
            "::1/64",
        ] {
            let e = bad.parse::<Subnet>().expect_err(bad);
            assert!(e.to_string().contains(bad), "{e}");
        }
        let e = "10.0.0.1/24".parse::<Subnet>().expect_err("host bits");
        assert!(e.to_string().contains("10.0.0.0/24"), "{e}");
    }

    #[test]
    fn next_free_skips_gateway_and_used() {
        let s = sn("10.250.1.0/29"); // hosts .1 - .6
        let gw = Ipv4Addr::new(10, 250, 1, 1);
        let mut used = BTreeSet::new();
        assert_eq!(
            next_free(s, gw, &used).ok(),
            Some(Ipv4Addr::new(10, 250, 1, 2))
        );
        used.insert(Ipv4Addr::new(10, 250, 1, 2));
        used.insert(Ipv4Addr::new(10, 250, 1, 3));
        assert_eq!(
            next_free(s, gw, &used).ok(),
            Some(Ipv4Addr::new(10, 250, 1, 4))
        );
        used.insert(Ipv4Addr::new(10, 250, 1, 4));
        used.insert(Ipv4Addr::new(10, 250, 1, 5));
        used.insert(Ipv4Addr::new(10, 250, 1, 6));
        assert!(matches!(
            next_free(s, gw, &used),
            Err(NetError::Exhausted { .. })
        ));
        assert!(next_free(sn("10.0.0.0/31"), gw, &BTreeSet::new()).is_err());
    }

    #[test]
    fn next_free_after_is_round_robin() {
        let s = sn("10.250.1.0/29"); // hosts .1 - .6
        let gw = Ipv4Addr::new(10, 250, 1, 1);
        let ip = |n| Ipv4Addr::new(10, 250, 1, n);
        let mut used = BTreeSet::new();
        assert_eq!(next_free_after(s, gw, &used, None).ok(), Some(ip(2)));
        assert_eq!(next_free_after(s, gw, &used, Some(ip(2))).ok(), Some(ip(3)));
        // .2 was released right after use: .3 comes next, not .2.
        used.insert(ip(3));
        assert_eq!(next_free_after(s, gw, &used, Some(ip(3))).ok(), Some(ip(4)));
        // Wraps past the end, skipping the gateway.
        assert_eq!(next_free_after(s, gw, &used, Some(ip(6))).ok(), Some(ip(2)));
        // A `last` outside the subnet starts from the beginning.
        assert_eq!(
            next_free_after(s, gw, &used, Some(Ipv4Addr::new(1, 1, 1, 1))).ok(),
            Some(ip(2))
        );
        for n in 2..=6 {
            used.insert(ip(n));
        }
        assert!(next_free_after(s, gw, &used, Some(ip(4))).is_err());
    }

    #[test]
    fn next_free_subnet_avoids_overlaps() {
        let pool = USER_SUBNET_POOL;
        let a = next_free_subnet(pool, 24, &[]).expect("first");
        assert_eq!(a, sn("10.91.0.0/24"));
        let b = next_free_subnet(pool, 24, &[a, sn("10.91.1.128/25")]).expect("second");
        assert_eq!(b, sn("10.91.2.0/24"));
        assert!(next_free_subnet(sn("10.0.0.0/24"), 24, &[sn("10.0.0.0/8")]).is_err());
        assert!(next_free_subnet(pool, 8, &[]).is_err());
    }
}
