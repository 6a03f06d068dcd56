//! nftables rules, all in table `ip barge` (created on demand), applied by
//! one `nft -f -` per change (each script is one atomic transaction).
//!
//! * Per network (bridge `BR`), two base chains:
//!   `nat_BR` (nat postrouting): masquerade traffic from the subnet leaving
//!   through another interface, traffic from 127.0.0.0/8 going to the bridge
//!   (host clients of `127.0.0.1:PORT`, with `route_localnet=1` on the
//!   bridge), and DNAT'ed traffic from the subnet back into the bridge
//!   (hairpin: a container reaching itself or a neighbour through a
//!   published port); `fwd_BR` (filter forward): accept traffic from the
//!   bridge, and established/DNAT'ed traffic to it.
//! * Per container with published ports, two base chains `pre_ID` (nat
//!   prerouting) and `out_ID` (nat output) holding its DNAT rules. Chains
//!   named after the container id make removal one idempotent transaction
//!   (`add` + `flush` + `delete`, no rule handles) and let orphan cleanup
//!   find leftovers by name. NAT chains only see the first packet of each
//!   connection, so one chain per container costs little.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::ipam::Subnet;
use crate::link::{check_id, check_ifname};
use crate::ports::PortMapping;
use crate::{sysctl, NetError, Result};

/// The nftables table barge owns.
pub const TABLE: &str = "barge";
/// Prefix of a container's prerouting DNAT chain.
pub const PRE_PREFIX: &str = "pre_";
/// Prefix of a container's output DNAT chain.
pub const OUT_PREFIX: &str = "out_";
/// Prefix of a network's postrouting chain.
pub const NAT_PREFIX: &str = "nat_";
/// Prefix of a network's forward chain.
pub const FWD_PREFIX: &str = "fwd_";

/// A network's firewall needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFirewall {
    pub bridge: String,
    pub subnet: Subnet,
}

/// A container's published ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortPublish {
    pub container_id: String,
    pub container_ip: Ipv4Addr,
    /// Mappings with their host ports assigned (see
    /// [`crate::ports::assign_host_ports`]).
    pub ports: Vec<PortMapping>,
}

/// Runs `nft -f -` with `script`.
pub(crate) fn run_nft(what: &str, script: &str) -> Result<()> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Nft {
            what: what.to_string(),
            detail: format!("cannot run nft (install the nftables package): {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NetError::Nft {
                what: what.to_string(),
                detail: format!("writing the ruleset to nft: {e}"),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| NetError::Nft {
        what: what.to_string(),
        detail: format!("waiting for nft: {e}"),
    })?;
    if !out.status.success() {
        return Err(NetError::Nft {
            what: what.to_string(),
            detail: format!(
                "nft -f - failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// Runs `nft -j <args>` and returns its parsed JSON output.
pub(crate) fn nft_json(args: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new("nft")
        .arg("-j")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NetError::Nft {
            what: args.join(" "),
            detail: format!("cannot run nft (install the nftables package): {e}"),
        })?;
    if !out.status.success() {
        return Err(NetError::Nft {
            what: args.join(" "),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| NetError::Nft {
        what: args.join(" "),
        detail: format!("unparsable JSON output: {e}"),
    })
}

/// Names of the chains in table `ip barge` (empty when the table does not
/// exist).
pub fn list_chains() -> Result<Vec<String>> {
    let v = nft_json(&["list", "chains", "ip"])?;
    let mut names = Vec::new();
    if let Some(items) = v.get("nftables").and_then(|n| n.as_array()) {
        for item in items {
            if let Some(chain) = item.get("chain") {
                if chain.get("table").and_then(|t| t.as_str()) == Some(TABLE) {
                    if let Some(name) = chain.get("name").and_then(|n| n.as_str()) {
                        names.push(name.to_string());
                    }
                }
            }
        }
    }
    Ok(names)
}

fn hook(chain: &str) -> &'static str {
    if chain.starts_with(PRE_PREFIX) {
        "type nat hook prerouting priority dstnat; policy accept;"
    } else if chain.starts_with(OUT_PREFIX) {
        "type nat hook output priority -100; policy accept;"
    } else if chain.starts_with(NAT_PREFIX) {
        "type nat hook postrouting priority srcnat; policy accept;"
    } else {
        "type filter hook forward priority filter; policy accept;"
    }
}

/// Script lines that (re)create `chain` empty.
fn reset_chain(s: &mut String, chain: &str) {
    let _ = writeln!(s, "add chain ip {TABLE} {chain} {{ {} }}", hook(chain));
    let _ = writeln!(s, "flush chain ip {TABLE} {chain}");
}

/// Script lines that delete `chain` whether or not it exists.
pub(crate) fn drop_chain(s: &mut String, chain: &str) {
    reset_chain(s, chain);
    let _ = writeln!(s, "delete chain ip {TABLE} {chain}");
}

fn network_script(n: &NetworkFirewall) -> String {
    let br = &n.bridge;
    let sn = n.subnet;
    let nat = format!("{NAT_PREFIX}{br}");
    let fwd = format!("{FWD_PREFIX}{br}");
    let mut s = format!("add table ip {TABLE}\n");
    reset_chain(&mut s, &nat);
    reset_chain(&mut s, &fwd);
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {nat} oifname \"{br}\" ip saddr 127.0.0.0/8 masquerade"
    );
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {nat} oifname \"{br}\" ip saddr {sn} ct status dnat masquerade"
    );
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {nat} ip saddr {sn} oifname != \"{br}\" masquerade"
    );
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {fwd} oifname \"{br}\" ct state established,related accept"
    );
    let _ = writeln!(
        s,
        "add rule ip {TABLE} {fwd} oifname \"{br}\" ct status dnat accept"
    );
    let _ = writeln!(s, "add rule ip {TABLE} {fwd} iifname \"{br}\" accept");
    s
}

/// Installs (or rewrites) a network's masquerade and forward chains and
/// enables `ip_forward`. Idempotent.
pub fn ensure_network_firewall(n: &NetworkFirewall) -> Result<()> {
    check_ifname(&n.bridge)?;
    sysctl::enable_ip_forward()?;
    run_nft(
        &format!("set up firewall for bridge {}", n.bridge),
        &network_script(n),
    )
}

/// Removes a network's chains. Idempotent.
pub fn remove_network_firewall(bridge: &str) -> Result<()> {
    check_ifname(bridge)?;
    let mut s = format!("add table ip {TABLE}\n");
    drop_chain(&mut s, &format!("{NAT_PREFIX}{bridge}"));
    drop_chain(&mut s, &format!("{FWD_PREFIX}{bridge}"));
    run_nft(&format!("remove firewall of bridge {bridge}"), &s)
}

fn publish_script(p: &PortPublish) -> Result<String> {
    let id = &p.container_id;
    let pre = format!("{PRE_PREFIX}{id}");
    let out = format!("{OUT_PREFIX}{id}");
    let mut s = format!("add table ip {TABLE}\n");
    reset_chain(&mut s, &pre);
    reset_chain(&mut s, &out);
    let cip = p.container_ip;
    for m in &p.ports {
        if m.host_port == 0 {
            return Err(NetError::PortSpec {
                spec: m.to_string(),
                reason: "host port not assigned yet (call assign_host_ports first)".into(),
            });
        }
        if u32::from(m.host_port) + u32::from(m.range.max(1)) - 1 > 65535
            || u32::from(m.container_port) + u32::from(m.range.max(1)) - 1 > 65535
        {
            return Err(NetError::PortSpec {
                spec: m.to_string(),
                reason: "port range goes past 65535".into(),
            });
        }
        let matcher = match m.bound_ip() {
            None => "fib daddr type local".to_string(),
            Some(IpAddr::V4(ip)) => format!("ip daddr {ip}"),
            Some(IpAddr::V6(ip)) => {
                return Err(NetError::PortSpec {
                    spec: m.to_string(),
                    reason: format!(
                        "host address {ip} is IPv6 but container networks are IPv4 only"
                    ),
                })
            }
        };
        let proto = m.protocol.as_str();
        let action = if m.range <= 1 {
            format!(
                "{proto} dport {} dnat to {cip}:{}",
                m.host_port, m.container_port
            )
        } else {
            let map = m
                .pairs()
                .map(|(h, c)| format!("{h} : {c}"))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "{proto} dport {}-{} dnat to {cip} : {proto} dport map {{ {map} }}",
                m.host_port,
                m.host_port + (m.range - 1)
            )
        };
        for chain in [&pre, &out] {
            let _ = writeln!(s, "add rule ip {TABLE} {chain} {matcher} {action}");
        }
    }
    Ok(s)
}

/// Installs (or replaces) a container's DNAT rules: connections to the
/// host ports (on `host_ip` only, or on any local address) from outside
/// (prerouting) and from the host itself (output, including 127.0.0.1) go
/// to `container_ip`. Nothing is installed for an empty port list.
pub fn publish_ports(p: &PortPublish) -> Result<()> {
    check_id(&p.container_id)?;
    if p.ports.is_empty() {
        return Ok(());
    }
    let script = publish_script(p)?;
    run_nft(
        &format!("publish ports of container {}", p.container_id),
        &script,
    )
}

/// Removes a container's DNAT chains. Idempotent; one `nft` run.
pub fn unpublish_ports(container_id: &str) -> Result<()> {
    check_id(container_id)?;
    let mut s = format!("add table ip {TABLE}\n");
    drop_chain(&mut s, &format!("{PRE_PREFIX}{container_id}"));
    drop_chain(&mut s, &format!("{OUT_PREFIX}{container_id}"));
    run_nft(&format!("unpublish ports of container {container_id}"), &s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::parse_port_spec;

    #[test]
    fn publish_script_shapes() {
        let mut ports = parse_port_spec("127.0.0.1:8080:80").expect("spec");
        ports.extend(parse_port_spec("9000-9001:90-91/udp").expect("spec"));
        let s = publish_script(&PortPublish {
            container_id: "abc".into(),
            container_ip: Ipv4Addr::new(10, 90, 0, 2),
            ports,
        })
        .expect("script");
        assert!(s.contains(
            "add rule ip barge pre_abc ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.90.0.2:80\n"
        ));
        assert!(s.contains("add rule ip barge out_abc fib daddr type local udp dport 9000-9001 dnat to 10.90.0.2 : udp dport map { 9000 : 90, 9001 : 91 }\n"), "{s}");
        assert!(s.contains("flush chain ip barge out_abc\n"));
    }

    #[test]
    fn publish_rejects_unassigned_and_v6() {
        let p = |spec: &str| PortPublish {
            container_id: "abc".into(),
            container_ip: Ipv4Addr::new(10, 90, 0, 2),
            ports: parse_port_spec(spec).expect("spec"),
        };
        assert!(publish_script(&p("80")).is_err());
        let e = publish_script(&p("[::1]:8080:80")).expect_err("v6");
        assert!(e.to_string().contains("IPv6"), "{e}");
    }

    #[test]
    fn network_script_masquerades() {
        let s = network_script(&NetworkFirewall {
            bridge: "barge0".into(),
            subnet: "10.90.0.0/16".parse().expect("subnet"),
        });
        assert!(s.contains("ip saddr 10.90.0.0/16 oifname != \"barge0\" masquerade"));
        assert!(s.contains("oifname \"barge0\" ip saddr 127.0.0.0/8 masquerade"));
    }
}
