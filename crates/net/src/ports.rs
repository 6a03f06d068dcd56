//! Port publishing specifications, as podman's `-p`:
//! `[[ip:][hostPort]:]containerPort[/protocol]`, where ports may be ranges
//! (`8080-8081:80-81`), an IPv6 host address is written in brackets
//! (`[::1]:8080:80`), an empty or missing host port means "pick a free one"
//! (`127.0.0.1::80`, `80`), and the protocol is `tcp` (default), `udp` or
//! both (`tcp,udp`).

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use crate::{NetError, Result};

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port range (podman's `PortMapping`): host ports
/// `host_port..host_port+range` map to container ports
/// `container_port..container_port+range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMapping {
    /// Only connections to this host address are forwarded; `None` (or an
    /// unspecified address) means every local address.
    pub host_ip: Option<IpAddr>,
    /// First host port; 0 until [`assign_host_ports`] picks one.
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Number of consecutive ports (≥ 1).
    pub range: u16,
}

impl PortMapping {
    /// `(host_port, container_port)` for every port of the range.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.range.max(1)).map(move |i| (self.host_port + i, self.container_port + i))
    }

    /// The host address to match, `None` for any (unspecified counts as any).
    pub fn bound_ip(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

impl fmt::Display for PortMapping {
    /// podman `port` style: `0.0.0.0:8080->80/tcp` (ranges with `-`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = match self.host_ip {
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
            Some(v4) => v4.to_string(),
            None => "0.0.0.0".into(),
        };
        if self.range > 1 {
            write!(
                f,
                "{ip}:{}-{}->{}-{}/{}",
                self.host_port,
                self.host_port + (self.range - 1),
                self.container_port,
                self.container_port + (self.range - 1),
                self.protocol
            )
        } else {
            write!(
                f,
                "{ip}:{}->{}/{}",
                self.host_port, self.container_port, self.protocol
            )
        }
    }
}

fn parse_range(spec: &str, part: &str, what: &str) -> Result<(u16, u16)> {
    let bad = |reason: String| NetError::PortSpec {
        spec: spec.to_string(),
        reason,
    };
    let port = |s: &str| -> Result<u16> {
        let p: u16 = s
            .parse()
            .map_err(|_| bad(format!("{what} {s:?} is not a port number (1-65535)")))?;
        if p == 0 {
            return Err(bad(format!("{what} 0 is not a valid port")));
        }
        Ok(p)
    };
    match part.split_once('-') {
        None => Ok((port(part)?, 1)),
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(bad(format!("{what} range {part} ends before it starts")));
            }
            Ok((a, b - a + 1))
        }
    }
}

/// Parses one `-p` value into one mapping per protocol.
pub fn parse_port_spec(spec: &str) -> Result<Vec<PortMapping>> {
    let bad = |reason: &str| NetError::PortSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let s = spec.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let (addr_part, protos) = match s.rsplit_once('/') {
        Some((a, p)) => (a, p),
        None => (s, "tcp"),
    };
    let mut protocols = Vec::new();
    for p in protos.split(',') {
        let proto = match p.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => return Err(bad("sctp is not supported (tcp or udp)")),
            "" => return Err(bad("empty protocol")),
            _ => return Err(bad("unknown protocol (tcp, udp or tcp,udp)")),
        };
        if !protocols.contains(&proto) {
            protocols.push(proto);
        }
    }

    // Split off a bracketed IPv6 address first.
    let (host_ip, rest): (Option<&str>, &str) = if let Some(after) = addr_part.strip_prefix('[') {
        let (ip, rest) = after
            .split_once(']')
            .ok_or_else(|| bad("missing ']' after the IPv6 address"))?;
        let rest = rest
            .strip_prefix(':')
            .ok_or_else(|| bad("expected ':' after the bracketed address"))?;
        (Some(ip), rest)
    } else {
        (None, addr_part)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip_str, host_str, ctr_str) = match (host_ip, parts.as_slice()) {
        (None, [c]) => (None, "", *c),
        (None, [h, c]) => (None, *h, *c),
        (None, [ip, h, c]) => (Some(*ip), *h, *c),
        (Some(ip), [h, c]) => (Some(ip), *h, *c),
        (Some(_), [_]) => return Err(bad(
            "an address needs a host port part: [ip]:hostPort:containerPort or [ip]::containerPort",
        )),
        (None, _) => {
            return Err(bad(
                "too many ':' (write IPv6 host addresses in brackets: [::1]:8080:80)",
            ))
        }
        (Some(_), _) => return Err(bad("too many ':' after the bracketed address")),
    };
    let host_ip = match ip_str {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?,
        ),
    };
    if ctr_str.is_empty() {
        return Err(bad("missing container port"));
    }
    let (container_port, range) = parse_range(spec, ctr_str, "container port")?;
    let host_port = if host_str.is_empty() {
        0
    } else {
        let (hp, hrange) = parse_range(spec, host_str, "host port")?;
        if hrange != range {
            return Err(bad(&format!(
                "host port range has {hrange} ports but container port range has {range}"
            )));
        }
        hp
    };
    if u32::from(container_port) + u32::from(range) - 1 > 65535
        || u32::from(host_port) + u32::from(range) - 1 > 65535
    {
        return Err(bad("port range goes past 65535"));
    }
    Ok(protocols
        .into_iter()
        .map(|protocol| PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol,
            range,
        })
        .collect())
}

/// Whether `port` can be bound on `ip` for `proto` right now.
fn bindable(ip: IpAddr, port: u16, proto: Protocol) -> std::io::Result<u16> {
    let addr = SocketAddr::new(ip, port);
    match proto {
        Protocol::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Protocol::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

/// Picks free host ports (by binding port 0 on the host address and
/// releasing it) for every mapping whose `host_port` is 0. For ranges, a
/// starting port is accepted only if every port of the range binds.
pub fn assign_host_ports(mappings: &mut [PortMapping]) -> Result<()> {
    for m in mappings.iter_mut().filter(|m| m.host_port == 0) {
        let ip = m
            .host_ip
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let what = format!("{ip}/{} (container port {})", m.protocol, m.container_port);
        let mut last_err = std::io::Error::other("no candidate port");
        let mut found = None;
        for _ in 0..64 {
            let start = match bindable(ip, 0, m.protocol) {
                Ok(p) => p,
                Err(e) => {
                    return Err(NetError::NoFreePort { what, source: e });
                }
            };
            if u32::from(start) + u32::from(m.range) - 1 > 65535 {
                continue;
            }
            match (1..m.range).try_for_each(|i| bindable(ip, start + i, m.protocol).map(|_| ())) {
                Ok(()) => {
                    found = Some(start);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        m.host_port = found.ok_or(NetError::NoFreePort {
            what,
            source: last_err,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn one(spec: &str) -> PortMapping {
        let v = parse_port_spec(spec).expect(spec);
        assert_eq!(v.len(), 1, "{spec}");
        v[0]
    }

    #[test]
    fn parses_podman_forms() {
        let m = one("8080:80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.range),
            (None, 8080, 80, 1)
        );
        assert_eq!(m.protocol, Protocol::Tcp);
        let m = one("80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(m.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(m.protocol, Protocol::Udp);
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_port, m.container_port), (0, 80));
        let m = one("8080-8081:80-81");
        assert_eq!((m.host_port, m.container_port, m.range), (8080, 80, 2));
        assert_eq!(m.pairs().collect::<Vec<_>>(), vec![(8080, 80), (8081, 81)]);
        let m = one("[::1]:8080:80");
        assert_eq!(m.host_ip, Some("::1".parse().expect("v6")));
        let m = one(":8080:80");
        assert_eq!((m.host_ip, m.host_port), (None, 8080));
        let m = one("1000-1002/TCP");
        assert_eq!((m.host_port, m.container_port, m.range), (0, 1000, 3));
        let v = parse_port_spec("53:53/tcp,udp").expect("both");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].protocol, Protocol::Udp);
        assert_eq!(one("0.0.0.0:80:80").bound_ip(), None);
    }

    #[test]
    fn display_matches_podman_port() {
        assert_eq!(one("8080:80").to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(
            one("127.0.0.1:8080-8081:80-81/udp").to_string(),
            "127.0.0.1:8080-8081->80-81/udp"
        );
        assert_eq!(one("[::1]:1:2").to_string(), "[::1]:1->2/tcp");
    }

    #[test]
    fn rejects_bad_specs_clearly() {
        let cases = [
            ("", "empty"),
            ("abc", "not a port number"),
            ("8080:", "missing container port"),
            ("0:80", "0 is not a valid port"),
            ("70000:80", "not a port number"),
            ("8080-8079:80-79", "ends before it starts"),
            ("8080-8082:80-81", "host port range has 3 ports"),
            ("8080:80-81", "host port range has 1 ports"),
            ("80/sctp", "sctp is not supported"),
            ("80/icmp", "unknown protocol"),
            ("80/", "empty protocol"),
            ("::1:8080:80", "brackets"),
            ("[::1:8080:80", "missing ']'"),
            ("[::1]8080:80", "expected ':'"),
            ("[::1]:80", "needs a host port"),
            ("1.2.3:8080:80", "not an IP address"),
            ("65535-65535:65534-65535", "host port range has 1 ports"),
            ("65535:65535-65536", "not a port number"),
        ];
        for (spec, want) in cases {
            let e = parse_port_spec(spec).expect_err(spec).to_string();
            assert!(e.contains(want), "{spec:?}: {e}");
            assert!(e.contains(&format!("{spec:?}")), "{spec:?}: {e}");
        }
    }

    #[test]
    fn assigns_free_ports_on_loopback() {
        let mut v = parse_port_spec("127.0.0.1::80").expect("spec");
        v.extend(parse_port_spec("127.0.0.1::90-92/udp").expect("spec"));
        v.push(one("127.0.0.1:1234:80"));
        assign_host_ports(&mut v).expect("assign");
        assert_ne!(v[0].host_port, 0);
        assert_ne!(v[1].host_port, 0);
        assert_eq!(v[2].host_port, 1234);
    }
}
