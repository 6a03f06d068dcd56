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
//! * Published ports live in four maps, keyed by host port (`ports_tcp`,
//!   `ports_udp`: any local address) or by host address and port
//!   (`ipports_tcp`, `ipports_udp`: `-p IP:PORT:PORT`), whose values are
//!   the container address and port. Chains `dnat_pre` (nat prerouting) and
//!   `dnat_out` (nat output, so host clients of 127.0.0.1 and of the
//!   gateway address are forwarded too) send traffic to local addresses
//!   through `hostports`, four `dnat ... map` lookups. Publishing and
//!   unpublishing only add or delete map elements: no hook is registered
//!   or removed per container, which keeps each `nft` run cheap. Every
//!   element carries the container id as its comment, so leftovers of
//!   vanished containers can be found ([`crate::cleanup_orphans`]).

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use crate::ipam::Subnet;
use crate::link::{check_id, check_ifname};
use crate::nftnl::{self, PortElem};
use crate::ports::PortMapping;
use crate::{sysctl, NetError, Result};

/// The nftables table barge owns.
pub const TABLE: &str = "barge";
/// The port maps: (name, protocol, keyed by host address too).
const PORT_MAPS: [(&str, &str, bool); 4] = [
    ("ipports_tcp", "tcp", true),
    ("ipports_udp", "udp", true),
    ("ports_tcp", "tcp", false),
    ("ports_udp", "udp", false),
];
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
    if chain == "dnat_pre" {
        "type nat hook prerouting priority dstnat; policy accept;"
    } else if chain == "dnat_out" {
        "type nat hook output priority -100; policy accept;"
    } else if chain == "hostports" {
        ""
    } else if chain.starts_with(NAT_PREFIX) {
        "type nat hook postrouting priority srcnat; policy accept;"
    } else {
        "type filter hook forward priority filter; policy accept;"
    }
}

/// Script lines that (re)create `chain` empty.
fn reset_chain(s: &mut String, chain: &str) {
    let h = hook(chain);
    if h.is_empty() {
        let _ = writeln!(s, "add chain ip {TABLE} {chain}");
    } else {
        let _ = writeln!(s, "add chain ip {TABLE} {chain} {{ {h} }}");
    }
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
    let mut s = String::new();
    // The port-publishing maps and chains too, so that setting a network up
    // (again) repairs them.
    port_scaffold(&mut s);
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

/// The table and the port maps (no-ops when they exist).
fn port_maps(s: &mut String) {
    let _ = writeln!(s, "add table ip {TABLE}");
    for (name, _, by_ip) in PORT_MAPS {
        let key = if by_ip {
            "ipv4_addr . inet_service"
        } else {
            "inet_service"
        };
        let _ = writeln!(
            s,
            "add map ip {TABLE} {name} {{ type {key} : ipv4_addr . inet_service; }}"
        );
    }
}

/// The maps plus the chains that consult them (rewritten, so every publish
/// also repairs them).
fn port_scaffold(s: &mut String) {
    port_maps(s);
    reset_chain(s, "hostports");
    for (name, proto, by_ip) in PORT_MAPS {
        let key = if by_ip {
            format!("ip daddr . {proto} dport")
        } else {
            format!("{proto} dport")
        };
        let _ = writeln!(
            s,
            "add rule ip {TABLE} hostports dnat ip to {key} map @{name}"
        );
    }
    for chain in ["dnat_pre", "dnat_out"] {
        reset_chain(s, chain);
        let _ = writeln!(
            s,
            "add rule ip {TABLE} {chain} fib daddr type local jump hostports"
        );
    }
}

/// One map element for every port of every mapping.
fn port_elements(p: &PortPublish) -> Result<Vec<PortElem>> {
    let mut out: Vec<PortElem> = Vec::new();
    let cip = p.container_ip;
    for m in &p.ports {
        let bad = |reason: String| NetError::PortSpec {
            spec: m.to_string(),
            reason,
        };
        if m.host_port == 0 {
            return Err(bad(
                "host port not assigned yet (call assign_host_ports first)".into(),
            ));
        }
        if u32::from(m.host_port) + u32::from(m.range.max(1)) - 1 > 65535
            || u32::from(m.container_port) + u32::from(m.range.max(1)) - 1 > 65535
        {
            return Err(bad("port range goes past 65535".into()));
        }
        let host_ip = match m.bound_ip() {
            None => None,
            Some(IpAddr::V4(ip)) => Some(ip),
            Some(IpAddr::V6(ip)) => {
                return Err(bad(format!(
                    "host address {ip} is IPv6 but container networks are IPv4 only"
                )))
            }
        };
        let map = PORT_MAPS
            .iter()
            .find(|(_, proto, by_ip)| *proto == m.protocol.as_str() && *by_ip == host_ip.is_some())
            .map_or("ports_tcp", |(name, _, _)| *name);
        for (hp, cp) in m.pairs() {
            let e = PortElem {
                map,
                host_ip,
                host_port: hp,
                container_ip: cip,
                container_port: cp,
            };
            if out
                .iter()
                .any(|o| o.map == map && o.key_text() == e.key_text())
            {
                return Err(bad(format!(
                    "host port {} {} is published twice",
                    m.protocol,
                    e.key_text()
                )));
            }
            out.push(e);
        }
    }
    Ok(out)
}

fn add_element_line(s: &mut String, e: &PortElem, id: &str) {
    let _ = writeln!(
        s,
        "add element ip {TABLE} {} {{ {} comment \"{id}\" : {} }}",
        e.map,
        e.key_text(),
        e.value_text()
    );
}

fn publish_script(p: &PortPublish) -> Result<String> {
    let elements = port_elements(p)?;
    let mut s = String::new();
    port_scaffold(&mut s);
    for e in &elements {
        add_element_line(&mut s, e, &p.container_id);
    }
    Ok(s)
}

/// The nft script equivalent of [`unpublish_ports`]'s netlink transaction
/// (documents it; the tests check its shape).
#[cfg(test)]
fn unpublish_script(p: &PortPublish) -> Result<String> {
    let elements = port_elements(p)?;
    let mut s = String::new();
    port_maps(&mut s);
    // `add` first so that `delete` cannot fail on a missing element: the
    // pair is idempotent (nft 1.0.6 has no `destroy`).
    for e in &elements {
        add_element_line(&mut s, e, &p.container_id);
        let _ = writeln!(
            s,
            "delete element ip {TABLE} {} {{ {} }}",
            e.map,
            e.key_text()
        );
    }
    Ok(s)
}

/// Forwards a container's published ports: connections to the host ports
/// (on `host_ip` only, or on any local address) from outside (prerouting)
/// and from the host itself (output, including 127.0.0.1 and the gateway
/// address) are DNAT'ed to `container_ip`. One `nft` run; nothing happens
/// for an empty port list. Publishing the same mappings again is a no-op;
/// a host port already published for another container is an error.
pub fn publish_ports(p: &PortPublish) -> Result<()> {
    check_id(&p.container_id)?;
    if p.ports.is_empty() {
        return Ok(());
    }
    let elements = port_elements(p)?;
    let what = || format!("publish ports of container {}", p.container_id);
    // Fast path: the maps exist, add the elements over netlink.
    match nftnl::apply(TABLE, &elements, &p.container_id, false) {
        Ok(()) => Ok(()),
        // No table or maps yet (first use, or the ruleset was flushed):
        // create everything with nft.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => run_nft(&what(), &publish_script(p)?),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(NetError::Nft {
            what: what(),
            detail: format!(
                "a host port of {} is already published for another container",
                p.ports
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        Err(e) => Err(NetError::Nft {
            what: what(),
            detail: format!("netlink: {e}"),
        }),
    }
}

/// Removes the elements [`publish_ports`] added for `p` (the same mappings
/// the engine stored): one netlink transaction that adds then deletes them,
/// so it is idempotent. Nothing happens for an empty port list.
/// [`unpublish_container`] needs no mappings but runs `nft` twice.
pub fn unpublish_ports(p: &PortPublish) -> Result<()> {
    check_id(&p.container_id)?;
    if p.ports.is_empty() {
        return Ok(());
    }
    let elements = port_elements(p)?;
    match nftnl::apply(TABLE, &elements, &p.container_id, true) {
        // No table or maps: nothing is published.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Ok(()) => Ok(()),
        Err(e) => Err(NetError::Nft {
            what: format!("unpublish ports of container {}", p.container_id),
            detail: format!("netlink: {e} (another container holds one of these host ports?)"),
        }),
    }
}

/// One published port as found in the maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortElement {
    pub map: String,
    /// The key as nft writes it (`8080`, `127.0.0.1 . 8080`).
    pub key: String,
    /// The owner's container id (the element comment).
    pub container_id: String,
}

fn json_key(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => {
            let parts = o.get("concat")?.as_array()?;
            let keys: Option<Vec<String>> = parts.iter().map(json_key).collect();
            Some(keys?.join(" . "))
        }
        _ => None,
    }
}

/// Every published port element of table `ip barge` (empty when the table
/// does not exist).
pub fn list_port_elements() -> Result<Vec<PortElement>> {
    let v = nft_json(&["list", "table", "ip", TABLE]).or_else(|e| match &e {
        NetError::Nft { detail, .. } if detail.contains("No such file or directory") => {
            Ok(serde_json::Value::Null)
        }
        _ => Err(e),
    })?;
    let mut out = Vec::new();
    let Some(items) = v.get("nftables").and_then(|n| n.as_array()) else {
        return Ok(out);
    };
    for item in items {
        let Some(map) = item.get("map") else { continue };
        let Some(name) = map.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        if !PORT_MAPS.iter().any(|(m, _, _)| *m == name) {
            continue;
        }
        for pair in map
            .get("elem")
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
        {
            let Some(elem) = pair.get(0).and_then(|k| k.get("elem")) else {
                continue;
            };
            let (Some(key), Some(id)) = (
                elem.get("val").and_then(json_key),
                elem.get("comment").and_then(|c| c.as_str()),
            ) else {
                continue;
            };
            out.push(PortElement {
                map: name.to_string(),
                key,
                container_id: id.to_string(),
            });
        }
    }
    Ok(out)
}

/// Deletes the given elements in one `nft` run.
pub(crate) fn delete_port_elements(elements: &[PortElement]) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    let mut s = String::new();
    for e in elements {
        let _ = writeln!(s, "delete element ip {TABLE} {} {{ {} }}", e.map, e.key);
    }
    run_nft("delete published ports", &s)
}

/// Removes every published port of a container without knowing its
/// mappings (lists the maps first: two `nft` runs). Idempotent.
pub fn unpublish_container(container_id: &str) -> Result<()> {
    check_id(container_id)?;
    let mine: Vec<PortElement> = list_port_elements()?
        .into_iter()
        .filter(|e| e.container_id == container_id)
        .collect();
    delete_port_elements(&mine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::parse_port_spec;

    #[test]
    fn publish_script_shapes() {
        let mut ports = parse_port_spec("127.0.0.1:8080:80").expect("spec");
        ports.extend(parse_port_spec("9000-9001:90-91/udp").expect("spec"));
        let p = PortPublish {
            container_id: "abc".into(),
            container_ip: Ipv4Addr::new(10, 90, 0, 2),
            ports,
        };
        let s = publish_script(&p).expect("script");
        assert!(s.contains(
            "add element ip barge ipports_tcp { 127.0.0.1 . 8080 comment \"abc\" : 10.90.0.2 . 80 }\n"
        ), "{s}");
        assert!(
            s.contains(
                "add element ip barge ports_udp { 9001 comment \"abc\" : 10.90.0.2 . 91 }\n"
            ),
            "{s}"
        );
        assert!(s.contains("add rule ip barge dnat_out fib daddr type local jump hostports\n"));
        let u = unpublish_script(&p).expect("script");
        assert!(
            u.contains("delete element ip barge ports_udp { 9000 }\n"),
            "{u}"
        );
        assert!(!u.contains("flush"), "{u}");
    }

    #[test]
    fn duplicate_host_ports_are_refused() {
        let mut ports = parse_port_spec("8080:80").expect("spec");
        ports.extend(parse_port_spec("8079-8080:81-82").expect("spec"));
        let e = publish_script(&PortPublish {
            container_id: "abc".into(),
            container_ip: Ipv4Addr::new(10, 90, 0, 2),
            ports,
        })
        .expect_err("duplicate");
        assert!(e.to_string().contains("published twice"), "{e}");
    }

    #[test]
    fn json_keys() {
        let v: serde_json::Value =
            serde_json::from_str(r#"{"concat": ["127.0.0.1", 8080]}"#).expect("json");
        assert_eq!(json_key(&v).as_deref(), Some("127.0.0.1 . 8080"));
        assert_eq!(json_key(&serde_json::json!(80)).as_deref(), Some("80"));
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
