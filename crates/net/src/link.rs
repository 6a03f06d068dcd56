//! Bridges and veth pairs over rtnetlink.

use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::netlink::{
    self, Msg, Socket, AF_UNSPEC, IFF_UP, IFLA_ADDRESS, IFLA_BRPORT_MODE, IFLA_IFALIAS,
    IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_INFO_SLAVE_DATA, IFLA_LINKINFO, IFLA_MASTER,
    IFLA_MTU, IFLA_NET_NS_FD, NLM_F_CREATE, NLM_F_EXCL, RTM_NEWLINK, VETH_INFO_PEER,
};
use crate::{netns, sysctl, NetError, Result};

/// Host-side veths carry the interface alias `barge:<container id>`, which
/// is how [`crate::leaks`] and [`crate::cleanup_orphans`] find them.
pub const ALIAS_PREFIX: &str = "barge:";

/// A network's bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Interface name (≤ 15 bytes), e.g. `barge0`.
    pub name: String,
    /// The host's address on the bridge, the containers' default gateway.
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// MTU for a newly created bridge; 0 keeps the kernel default (1500).
    pub mtu: u32,
}

/// One container's attachment to a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    /// The container's network namespace (a [`crate::Netns`] path).
    pub netns_path: PathBuf,
    pub bridge: String,
    /// Interface name inside the container, usually `eth0`.
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    /// MAC of the container interface; a random locally administered one
    /// when `None`.
    pub mac: Option<[u8; 6]>,
    /// Add a default route via `gateway` (the container's first interface).
    /// Further interfaces (`network connect`) only get their subnet's route,
    /// so they do not replace the first network's default route.
    pub default_route: bool,
}

/// What [`attach`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachReport {
    /// The container interface's MAC.
    pub mac: [u8; 6],
    /// The host-side veth's name.
    pub host_ifname: String,
}

/// Checks an interface name the way the kernel will (`dev_valid_name`).
pub(crate) fn check_ifname(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(NetError::InvalidName {
            what: "interface name",
            value: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 15 {
        return bad("must be 1 to 15 bytes");
    }
    if name == "." || name == ".." {
        return bad("reserved name");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return bad("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    Ok(())
}

/// Checks a container id used in device aliases and nft chain names.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > 127
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(NetError::InvalidName {
            what: "container id",
            value: id.to_string(),
            reason: "must be 1 to 127 ASCII letters, digits, '_', '-' or '.'",
        });
    }
    Ok(())
}

/// The host-side veth name of a container: `vb` and the first 8 characters
/// of its id when they are lowercase hex (engine ids are), else `vb` and an
/// FNV-1a hash of the id.
pub fn host_ifname(container_id: &str) -> String {
    let head = container_id.get(..8);
    match head {
        Some(h)
            if h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            format!("vb{h}")
        }
        _ => {
            let mut hash: u32 = 0x811c_9dc5;
            for b in container_id.bytes() {
                hash ^= u32::from(b);
                hash = hash.wrapping_mul(0x0100_0193);
            }
            format!("vb{hash:08x}")
        }
    }
}

/// The host-side veth name of a container's interface `ifname`:
/// [`host_ifname`] for `eth0`, else that name, `-` and the interface's
/// trailing number (`eth1` → `vb01234567-1`), or 4 hex digits of a hash of
/// the interface name when it has no short trailing number. Stays within
/// the kernel's 15 bytes.
pub fn host_ifname_for(container_id: &str, ifname: &str) -> String {
    let base = host_ifname(container_id);
    if ifname == "eth0" {
        return base;
    }
    let digits = ifname.len() - ifname.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let suffix = &ifname[ifname.len() - digits..];
    if (1..=4).contains(&digits) {
        format!("{base}-{suffix}")
    } else {
        let mut hash: u32 = 0x811c_9dc5;
        for b in ifname.bytes() {
            hash ^= u32::from(b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        format!("{base}-{:04x}", hash & 0xffff)
    }
}

fn random_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    // Six bytes from the kernel's CSPRNG; fall back to time and pid.
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut mac)
    });
    if read.is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()) as u64
            ^ u64::from(std::process::id()) << 32;
        mac.copy_from_slice(&t.to_ne_bytes()[..6]);
    }
    mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
    mac
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn open_host() -> Result<Socket> {
    Socket::open().map_err(|e| NetError::netlink("open socket", "host namespace", e))
}

/// Whether a link of that name exists in the host namespace.
pub fn bridge_exists(name: &str) -> Result<bool> {
    let mut sock = open_host()?;
    Ok(netlink::get_link(&mut sock, name)
        .map_err(|e| NetError::netlink("get link", name, e))?
        .is_some())
}

/// Creates the bridge if it does not exist, gives it the gateway address and
/// sets it up; also sets `route_localnet` on it and `ip_forward`.
/// Idempotent, and safe when several processes do it at once (creation is
/// exclusive and `EEXIST` means someone else won). Returns whether this
/// call created the bridge (e.g. first use after boot: the caller then
/// also runs [`crate::ensure_network_firewall`]). About 0.3 ms when the
/// bridge exists.
pub fn ensure_bridge(spec: &BridgeSpec) -> Result<bool> {
    check_ifname(&spec.name)?;
    if spec.prefix_len > 30 {
        return Err(NetError::Device {
            name: spec.name.clone(),
            reason: format!(
                "prefix length /{} leaves no host addresses",
                spec.prefix_len
            ),
        });
    }
    let name = spec.name.as_str();
    let mut sock = open_host()?;
    let mut msg = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    msg.ifinfo(AF_UNSPEC, 0, 0, 0)
        .attr_str(IFLA_IFNAME, name)
        // A fixed MAC: otherwise the bridge takes the lowest port MAC and
        // changes it as containers come and go (stale ARP entries).
        .attr(IFLA_ADDRESS, &random_mac());
    if spec.mtu != 0 {
        msg.attr_u32(IFLA_MTU, spec.mtu);
    }
    msg.begin(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "bridge")
        .end();
    let created = match sock.call(&mut msg) {
        Ok(_) => true,
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => false,
        Err(e) => return Err(NetError::netlink("create bridge", name, e)),
    };
    let link = netlink::get_link(&mut sock, name)
        .map_err(|e| NetError::netlink("get link", name, e))?
        .ok_or_else(|| NetError::Device {
            name: name.to_string(),
            reason: "vanished right after creation (removed concurrently?)".into(),
        })?;
    if link.kind.as_deref() != Some("bridge") {
        return Err(NetError::Device {
            name: name.to_string(),
            reason: format!(
                "exists but is a {} device, not a bridge",
                link.kind.as_deref().unwrap_or("plain")
            ),
        });
    }
    netlink::add_address(&mut sock, link.index, spec.gateway, spec.prefix_len).map_err(|e| {
        NetError::netlink(
            "add address",
            format!("{}/{} on {name}", spec.gateway, spec.prefix_len),
            e,
        )
    })?;
    netlink::set_up(&mut sock, link.index).map_err(|e| NetError::netlink("set up", name, e))?;
    sysctl::enable_route_localnet(name)?;
    sysctl::enable_ip_forward()?;
    Ok(created)
}

/// Deletes a bridge (its ports are released, not deleted). A missing bridge
/// is not an error.
pub fn remove_bridge(name: &str) -> Result<()> {
    check_ifname(name)?;
    let mut sock = open_host()?;
    netlink::delete_link(&mut sock, name)
        .map(|_| ())
        .map_err(|e| NetError::netlink("delete bridge", name, e))
}

/// Connects a container's namespace to a bridge: a veth pair whose host end
/// ([`host_ifname`]) is a bridge port (up, hairpin on, alias
/// `barge:<id>`) and whose other end is created directly inside the
/// namespace as `ifname`, up, with the address and a default route via the
/// gateway; the host's neighbour entry for the address is set to the new
/// MAC. On failure nothing is left behind.
pub fn attach(a: &Attachment) -> Result<AttachReport> {
    check_id(&a.container_id)?;
    check_ifname(&a.ifname)?;
    check_ifname(&a.bridge)?;
    let host = host_ifname_for(&a.container_id, &a.ifname);
    let mac = a.mac.unwrap_or_else(random_mac);
    let mut sock = open_host()?;
    let bridge = netlink::get_link(&mut sock, &a.bridge)
        .map_err(|e| NetError::netlink("get link", a.bridge.as_str(), e))?
        .ok_or_else(|| NetError::Device {
            name: a.bridge.clone(),
            reason: "bridge does not exist".into(),
        })?;
    let ns = std::fs::File::open(&a.netns_path)
        .map_err(|e| NetError::netns(&a.netns_path, "open", e))?;

    let mut msg = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    msg.ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP)
        .attr_str(IFLA_IFNAME, &host)
        .attr_u32(IFLA_MASTER, bridge.index);
    if bridge.mtu != 0 {
        msg.attr_u32(IFLA_MTU, bridge.mtu);
    }
    msg.begin(IFLA_LINKINFO)
        .attr_str(IFLA_INFO_KIND, "veth")
        .begin(IFLA_INFO_DATA)
        .begin(VETH_INFO_PEER)
        // Not up yet: opening the peer before its partner is registered
        // fails with ENOTCONN. It is set up inside the namespace below.
        .ifinfo(AF_UNSPEC, 0, 0, 0)
        .attr_str(IFLA_IFNAME, &a.ifname)
        .attr(IFLA_ADDRESS, &mac)
        .attr_u32(IFLA_NET_NS_FD, ns.as_raw_fd() as u32);
    if bridge.mtu != 0 {
        msg.attr_u32(IFLA_MTU, bridge.mtu);
    }
    msg.end().end().end();
    let mut created = sock.call(&mut msg);
    if created
        .as_ref()
        .is_err_and(|e| e.raw_os_error() == Some(libc::EEXIST))
        && netlink::get_link(&mut sock, &host).is_ok_and(|l| l.is_some())
    {
        // The host end of this container's previous run: its namespace is
        // still being destroyed by the kernel (detaching leaves the veth to
        // it). Delete it and create ours.
        let _ = netlink::delete_link(&mut sock, &host);
        created = sock.call(&mut msg);
    }
    created.map_err(|e| {
        let what = if e.raw_os_error() == Some(libc::EEXIST) {
            "create veth (host side or container side name already in use)"
        } else {
            "create veth"
        };
        NetError::netlink(
            what,
            format!("{host} / {} for container {}", a.ifname, a.container_id),
            e,
        )
    })?;
    drop(ns);

    let configured = configure(a, &host, &mut sock).and_then(|()| {
        // The host may still cache the MAC of an earlier holder of this
        // address (a container just removed): point it at the new one.
        netlink::set_neighbour(&mut sock, bridge.index, a.ip, mac)
            .map_err(|e| NetError::netlink("set neighbour", format!("{} on {}", a.ip, a.bridge), e))
    });
    if let Err(e) = configured {
        let _ = netlink::delete_link(&mut sock, &host);
        return Err(e);
    }
    Ok(AttachReport {
        mac,
        host_ifname: host,
    })
}

fn configure(a: &Attachment, host: &str, sock: &mut Socket) -> Result<()> {
    // Alias (the owner tag) and hairpin mode in one request: the bridge
    // port options travel as slave data of the port.
    let mut msg = Msg::new(RTM_NEWLINK, 0);
    msg.ifinfo(AF_UNSPEC, 0, 0, 0)
        .attr_str(IFLA_IFNAME, host)
        .attr_str(IFLA_IFALIAS, &format!("{ALIAS_PREFIX}{}", a.container_id))
        .begin(IFLA_LINKINFO)
        .begin(IFLA_INFO_SLAVE_DATA)
        .attr(IFLA_BRPORT_MODE, &[1])
        .end()
        .end();
    sock.call(&mut msg)
        .map_err(|e| NetError::netlink("set alias and hairpin", host, e))?;

    let mut inner = netns::socket_in(&a.netns_path)?;
    let link = netlink::get_link(&mut inner, &a.ifname)
        .map_err(|e| NetError::netlink("get link", a.ifname.as_str(), e))?
        .ok_or_else(|| NetError::Device {
            name: a.ifname.clone(),
            reason: format!("missing in {} after creation", a.netns_path.display()),
        })?;
    netlink::add_address(&mut inner, link.index, a.ip, a.prefix_len).map_err(|e| {
        NetError::netlink(
            "add address",
            format!(
                "{}/{} on {} in {}",
                a.ip,
                a.prefix_len,
                a.ifname,
                a.netns_path.display()
            ),
            e,
        )
    })?;
    netlink::set_up(&mut inner, link.index).map_err(|e| {
        NetError::netlink(
            "set up",
            format!("{} in {}", a.ifname, a.netns_path.display()),
            e,
        )
    })?;
    if a.default_route {
        netlink::add_default_route(&mut inner, link.index, a.gateway).map_err(|e| {
            NetError::netlink(
                "add default route",
                format!("via {} in {}", a.gateway, a.netns_path.display()),
                e,
            )
        })?;
    }
    // Carrier changes take effect asynchronously (the kernel's link
    // watcher activates the queueing discipline and enables the bridge
    // port); until then packets are dropped and a client that connects at
    // once waits for a TCP retransmission (1 s). Wait for both ends.
    let wait = std::time::Duration::from_secs(2);
    let inner_up = netlink::wait_oper_up(&mut inner, &a.ifname, wait)
        .map_err(|e| NetError::netlink("get link", a.ifname.as_str(), e))?;
    let host_up = netlink::wait_oper_up(sock, host, wait)
        .map_err(|e| NetError::netlink("get link", host, e))?;
    // The first port of a bridge also brings the bridge's carrier up, with
    // the same asynchronous activation.
    let bridge_up = netlink::wait_oper_up(sock, &a.bridge, wait)
        .map_err(|e| NetError::netlink("get link", a.bridge.as_str(), e))?;
    if inner_up && host_up && bridge_up {
        Ok(())
    } else {
        Err(NetError::Device {
            name: host.to_string(),
            reason: format!(
                "not operationally up after {wait:?} (host side up: {host_up}, container side up: {inner_up}, bridge {} up: {bridge_up})",
                a.bridge
            ),
        })
    }
}

/// Deletes a container's host-side veth of `eth0` (which deletes its peer
/// too). Idempotent. [`detach_interface`] for the others.
pub fn detach(container_id: &str) -> Result<()> {
    detach_interface(container_id, "eth0")
}

/// Deletes the host-side veth of the container's interface `ifname` (see
/// [`host_ifname_for`]), and so the interface. Idempotent.
pub fn detach_interface(container_id: &str, ifname: &str) -> Result<()> {
    check_id(container_id)?;
    check_ifname(ifname)?;
    let host = host_ifname_for(container_id, ifname);
    let mut sock = open_host()?;
    netlink::delete_link(&mut sock, &host)
        .map(|_| ())
        .map_err(|e| NetError::netlink("delete veth", host, e))
}

/// Deletes a host link by name if it exists (used by orphan cleanup).
pub(crate) fn delete_host_link(name: &str) -> Result<bool> {
    let mut sock = open_host()?;
    netlink::delete_link(&mut sock, name).map_err(|e| NetError::netlink("delete link", name, e))
}

/// Every link of the host namespace.
pub(crate) fn host_links() -> Result<Vec<netlink::LinkInfo>> {
    let mut sock = open_host()?;
    netlink::dump_links(&mut sock).map_err(|e| NetError::netlink("dump links", "host", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ifname_is_short_and_stable() {
        assert_eq!(host_ifname("0123456789abcdef"), "vb01234567");
        let h = host_ifname("My-Container");
        assert_eq!(h.len(), 10);
        assert_eq!(h, host_ifname("My-Container"));
        assert_ne!(h, host_ifname("My-Container2"));
        assert!(h.len() <= 15);
    }

    #[test]
    fn host_ifname_per_interface() {
        let id = "0123456789abcdef";
        assert_eq!(host_ifname_for(id, "eth0"), "vb01234567");
        assert_eq!(host_ifname_for(id, "eth1"), "vb01234567-1");
        assert_eq!(host_ifname_for(id, "eth12"), "vb01234567-12");
        let odd = host_ifname_for(id, "net");
        assert_eq!(odd.len(), 15);
        assert_ne!(odd, host_ifname_for(id, "lan"));
        assert!(host_ifname_for(id, "eth123456").len() <= 15);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_ifname("barge0").is_ok());
        assert!(check_ifname("").is_err());
        assert!(check_ifname("0123456789abcdef").is_err());
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("a b").is_err());
        assert!(check_id("abc-1_2.3").is_ok());
        assert!(check_id("a;b").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn random_macs_are_local_unicast() {
        let m = random_mac();
        assert_eq!(m[0] & 0x03, 0x02);
        assert_eq!(format_mac(&[0x02, 0, 0xab, 1, 2, 3]), "02:00:ab:01:02:03");
    }
}
