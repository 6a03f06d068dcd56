//! Networks: records in the state database, and attaching containers to
//! them through `barge-net` (bridge, veth, nftables, hosts files).

use crate::containers::networks::NetSetup;
use crate::containers::{now_nanos, Attachment, ContainerRecord, Engine, NetworkMode, Status};
use crate::db::{Inserted, Table};
use crate::error::EngineError;
use crate::Result;
use barge_net::dns::HostEntry;
use barge_net::Subnet;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// Driver (`bridge`).
    pub driver: String,
    /// The bridge interface.
    pub bridge: String,
    /// Subnet (`10.91.0.0/24`).
    pub subnet: String,
    /// Gateway (the bridge's address).
    pub gateway: String,
    /// No masquerading to the outside.
    #[serde(default)]
    pub internal: bool,
    /// Containers resolve each other by name (user networks).
    #[serde(default)]
    pub dns_enabled: bool,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Created (unix nanoseconds).
    #[serde(default)]
    pub created: i64,
    /// The last address handed out (round-robin allocation).
    #[serde(default)]
    pub last_ip: Option<String>,
}

impl NetworkRecord {
    fn subnet(&self) -> Result<Subnet> {
        self.subnet
            .parse::<Subnet>()
            .map_err(|e| EngineError::Invalid(format!("network {}: {e}", self.name)))
    }

    fn gateway(&self) -> Result<Ipv4Addr> {
        self.gateway.parse().map_err(|_| {
            EngineError::Invalid(format!(
                "network {}: bad gateway {}",
                self.name, self.gateway
            ))
        })
    }
}

impl From<barge_net::NetError> for EngineError {
    fn from(e: barge_net::NetError) -> Self {
        Self::Network(Box::new(e))
    }
}

/// Options of [`Engine::network_create`].
#[derive(Debug, Clone, Default)]
pub struct NetworkCreateOptions {
    /// Name (default: `bargeN`).
    pub name: Option<String>,
    /// Subnet (default: the next free /24 of 10.91.0.0/16).
    pub subnet: Option<String>,
    /// Gateway (default: the subnet's first host).
    pub gateway: Option<String>,
    /// Internal network.
    pub internal: bool,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver (only `bridge`).
    pub driver: Option<String>,
    /// Succeed if it exists.
    pub ignore: bool,
}

impl Engine {
    /// A network's record; the default network is created on first use.
    pub fn network_record(&mut self, name: &str) -> Result<NetworkRecord> {
        if let Some(n) = self.db.get::<NetworkRecord>(Table::Networks, name)? {
            return Ok(n);
        }
        if name != crate::DEFAULT_NETWORK {
            // By id prefix.
            for n in self.networks()? {
                if name.len() >= 3 && n.id.starts_with(name) {
                    return Ok(n);
                }
            }
            return Err(EngineError::Invalid(format!(
                "unable to find network with name or ID {name}: network not found"
            )));
        }
        let subnet = barge_net::DEFAULT_SUBNET;
        let rec = NetworkRecord {
            name: name.to_string(),
            id: barge_image::Digest::of(name.as_bytes()).hex().to_string(),
            driver: "bridge".into(),
            bridge: barge_net::DEFAULT_BRIDGE.into(),
            subnet: subnet.to_string(),
            gateway: subnet
                .first_host()
                .map(|g| g.to_string())
                .unwrap_or_default(),
            internal: false,
            dns_enabled: false,
            labels: BTreeMap::new(),
            created: now_nanos(),
            last_ip: None,
        };
        self.db
            .write(|tx| tx.insert(Table::Networks, name, None, &rec))?;
        Ok(self.db.get(Table::Networks, name)?.unwrap_or(rec))
    }

    /// Every network (the default one included).
    pub fn networks(&mut self) -> Result<Vec<NetworkRecord>> {
        if self
            .db
            .get::<NetworkRecord>(Table::Networks, crate::DEFAULT_NETWORK)?
            .is_none()
        {
            self.network_record(crate::DEFAULT_NETWORK)?;
        }
        Ok(self.db.all(Table::Networks)?)
    }

    /// Creates a bridge network.
    pub fn network_create(&mut self, opts: NetworkCreateOptions) -> Result<NetworkRecord> {
        if let Some(d) = &opts.driver {
            if d != "bridge" {
                return Err(EngineError::NotSupported(format!("network driver {d:?}")));
            }
        }
        let existing = self.networks()?;
        let name = match &opts.name {
            Some(n) => {
                crate::containers::validate_name(n)?;
                n.clone()
            }
            None => (1..=existing.len() + 1)
                .map(|i| format!("barge{i}"))
                .find(|n| !existing.iter().any(|e| &e.name == n))
                .unwrap_or_default(),
        };
        if let Some(e) = existing.iter().find(|e| e.name == name) {
            if opts.ignore {
                return Ok(e.clone());
            }
            return Err(EngineError::Invalid(format!(
                "network name {name} already used: network already exists"
            )));
        }
        // Subnets routed on the host count as used too (other barge roots'
        // bridges, the host's own networks), as podman does.
        let used: Vec<Subnet> = existing
            .iter()
            .filter_map(|e| e.subnet().ok())
            .chain(host_route_subnets())
            .collect();
        let subnet = match &opts.subnet {
            Some(s) => {
                let sub: Subnet = s
                    .parse()
                    .map_err(|e| EngineError::Invalid(format!("invalid subnet {s:?}: {e}")))?;
                if let Some(o) = existing
                    .iter()
                    .find(|e| e.subnet().is_ok_and(|x| x.overlaps(sub)))
                {
                    return Err(EngineError::Invalid(format!(
                        "subnet {sub} is already used by network {}",
                        o.name
                    )));
                }
                sub
            }
            None => barge_net::next_free_subnet(barge_net::USER_SUBNET_POOL, 24, &used)?,
        };
        let gateway = match &opts.gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| EngineError::Invalid(format!("invalid gateway {g:?}")))?;
                if !subnet.contains(ip) {
                    return Err(EngineError::Invalid(format!(
                        "gateway {ip} is not in subnet {subnet}"
                    )));
                }
                ip
            }
            None => subnet.first_host().ok_or_else(|| {
                EngineError::Invalid(format!("subnet {subnet} has no host addresses"))
            })?,
        };
        // Bridges are host-wide and other barge roots name theirs the same
        // way: take the first `bargeN` that no network of this root uses and
        // that this call could create (exclusive creation; an existing link
        // belongs to someone else).
        let existing_bridges: Vec<String> = existing.iter().map(|e| e.bridge.clone()).collect();
        let bridge = crate::rootless::in_bridge_netns(|| {
            let mut bridge = None;
            for i in 1..10_000 {
                let b = format!("barge{i}");
                if existing_bridges.contains(&b) || barge_net::bridge_exists(&b)? {
                    continue;
                }
                let spec = barge_net::BridgeSpec {
                    name: b.clone(),
                    gateway,
                    prefix_len: subnet.prefix_len(),
                    mtu: 0,
                };
                if barge_net::ensure_bridge(&spec)? {
                    bridge = Some(b);
                    break;
                }
            }
            let bridge = bridge.ok_or_else(|| {
                EngineError::Invalid("no free bridge name barge1..barge9999".into())
            })?;
            if let Err(e) = barge_net::ensure_network_firewall(&barge_net::NetworkFirewall {
                bridge: bridge.clone(),
                subnet,
            }) {
                let _ = barge_net::remove_bridge(&bridge);
                return Err(e.into());
            }
            Ok(bridge)
        })?;
        let rec = NetworkRecord {
            id: crate::containers::random_id(),
            name: name.clone(),
            driver: "bridge".into(),
            bridge,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            internal: opts.internal,
            dns_enabled: true,
            labels: opts.labels,
            created: now_nanos(),
            last_ip: None,
        };
        let inserted = self
            .db
            .write(|tx| tx.insert(Table::Networks, &name, None, &rec));
        if !matches!(inserted, Ok(Inserted::Yes)) {
            let _ = remove_bridge_and_firewall(&rec.bridge);
            inserted?;
            return Err(EngineError::Invalid(format!(
                "network name {name} already used: network already exists"
            )));
        }
        Ok(rec)
    }

    /// Names of the containers attached to a network.
    pub fn network_users(&self, name: &str) -> Result<Vec<String>> {
        Ok(self
            .containers()?
            .into_iter()
            .filter(
                |c| matches!(c.network(), NetworkMode::Bridge(n) if n.iter().any(|x| x == name)),
            )
            .map(|c| c.name)
            .collect())
    }

    /// Removes a network; `force` removes its containers first.
    pub fn network_remove(&mut self, name: &str, force: bool) -> Result<()> {
        let rec = self.network_record(name)?;
        if rec.name == crate::DEFAULT_NETWORK {
            return Err(EngineError::Invalid(format!(
                "default network {} cannot be removed",
                rec.name
            )));
        }
        let users = self.network_users(&rec.name)?;
        if !users.is_empty() {
            if !force {
                return Err(EngineError::Invalid(format!(
                    "{:?} has associated containers with it. Use -f to forcibly delete containers and pods: network is being used",
                    rec.name
                )));
            }
            for u in users {
                self.remove(&u, true, false)?;
            }
        }
        let _ = remove_bridge_and_firewall(&rec.bridge);
        let n = rec.name.clone();
        self.db.write(|tx| {
            tx.delete(Table::Networks, &n)?;
            Ok::<_, EngineError>(())
        })?;
        Ok(())
    }

    /// Removes every unused user network; returns their names.
    pub fn network_prune(&mut self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.networks()? {
            if n.name != crate::DEFAULT_NETWORK && self.network_users(&n.name)?.is_empty() {
                self.network_remove(&n.name, false)?;
                out.push(n.name);
            }
        }
        Ok(out)
    }

    /// podman-like `network inspect` JSON.
    pub fn network_inspect(&mut self, name: &str) -> Result<serde_json::Value> {
        let n = self.network_record(name)?;
        let mut containers = serde_json::Map::new();
        for c in self.containers()? {
            if let Some(a) = c.state.networks.get(&n.name) {
                containers.insert(
                    c.id.clone(),
                    serde_json::json!({"name": c.name, "interfaces": {ifname_of(a): {"subnets": [
                        {"ipnet": format!("{}/{}", a.ip, a.prefix_len), "gateway": a.gateway}],
                        "mac_address": a.mac}}}),
                );
            }
        }
        let mut v = n.to_json();
        v["containers"] = serde_json::Value::Object(containers);
        Ok(v)
    }
}

fn hosts_entries(e: &Engine, net: &str, skip: &str) -> Result<Vec<(String, String, HostEntry)>> {
    let mut out = Vec::new();
    for c in e.containers()? {
        if c.id == skip || !matches!(c.state.status, Status::Running | Status::Paused) {
            continue;
        }
        if let Some(a) = c.state.networks.get(net) {
            if let Ok(ip) = a.ip.parse::<IpAddr>() {
                out.push((
                    c.id.clone(),
                    a.ip.clone(),
                    HostEntry {
                        ip,
                        names: vec![c.name.clone(), c.hostname()],
                    },
                ));
            }
        }
    }
    Ok(out)
}

/// Rewrites one running container's hosts file: its base, then the other
/// running members of every name-resolving network it is attached to
/// (`leaving` excluded).
fn rewrite_hosts(e: &Engine, id: &str, leaving: &str) -> Result<()> {
    let Some(c) = e.db.get::<ContainerRecord>(Table::Containers, id)? else {
        return Ok(());
    };
    let dir = e.paths.container_dir(id);
    let path = dir.join("hosts");
    let Ok(base) = std::fs::read_to_string(dir.join("hosts.base")) else {
        return Ok(());
    };
    if !path.exists() {
        return Ok(());
    }
    let mut entries: Vec<HostEntry> = Vec::new();
    let mut seen = BTreeSet::new();
    for net in c.state.networks.keys() {
        let Some(n) = e.db.get::<NetworkRecord>(Table::Networks, net)? else {
            continue;
        };
        if !n.dns_enabled {
            continue;
        }
        for (other, ip, entry) in hosts_entries(e, net, leaving)? {
            if other != id && seen.insert((other, ip)) {
                entries.push(entry);
            }
        }
    }
    barge_net::dns::update_hosts_file_in_place(&path, Some(&base), &entries)?;
    Ok(())
}

/// Rewrites the hosts file of every running container on `net` so it lists
/// the current members (names resolve on user networks through
/// `/etc/hosts`, which the engine keeps up to date; no DNS daemon).
fn refresh_peer_hosts(e: &Engine, net: &str, leaving: &str) -> Result<()> {
    for (id, _, _) in hosts_entries(e, net, leaving)? {
        rewrite_hosts(e, &id, leaving)?;
    }
    Ok(())
}

/// Where addresses on a bridge are claimed host-wide: every barge root
/// (parallel test suites, a user's and root's stores…) shares the bridges,
/// so the database of one root cannot be the only authority. A rootless
/// user's bridges live in the user's own network namespace: its claims are
/// in the user's run directory.
fn claim_path(bridge: &str, ip: Ipv4Addr) -> std::path::PathBuf {
    let base = crate::rootless::rootless_uid().map_or_else(
        || std::path::PathBuf::from("/run/barge/ipam"),
        |uid| crate::rootless::run_dir(uid).join("ipam"),
    );
    base.join(bridge).join(ip.to_string())
}

/// Claims `ip` on `bridge` for container `id` (whose network namespace is
/// `netns`): a file created exclusively. A claim whose namespace is gone is
/// stale (its owner was killed) and is taken over. False if another live
/// container holds it.
fn claim_address(bridge: &str, ip: Ipv4Addr, id: &str, netns: &Path) -> Result<bool> {
    use std::io::Write as _;
    let path = claim_path(bridge, ip);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(EngineError::io(format!("creating {}", dir.display())))?;
    }
    let content = format!("{id} {}\n", netns.display());
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(content.as_bytes())
                    .map_err(EngineError::io(format!("writing {}", path.display())))?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let held = std::fs::read_to_string(&path).unwrap_or_default();
                let mut parts = held.split_whitespace();
                let (owner, owner_ns) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if owner == id {
                    return Ok(true);
                }
                if !owner.is_empty() && Path::new(owner_ns).exists() {
                    return Ok(false);
                }
                // Stale (or half-written): take it over.
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(EngineError::io(format!("creating {}", path.display()))(e)),
        }
    }
    Ok(false)
}

/// Drops container `id`'s claim on `ip` (if it still holds it).
fn release_claim(bridge: &str, ip: &str, id: &str) {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return;
    };
    let path = claim_path(bridge, ip);
    let held = std::fs::read_to_string(&path).unwrap_or_default();
    if held.split_whitespace().next() == Some(id) {
        let _ = std::fs::remove_file(&path);
    }
}

/// Picks the next free address of network `net` for container `id`
/// (round-robin), claims it host-wide and records it.
fn allocate_address(
    e: &mut Engine,
    net: &NetworkRecord,
    subnet: Subnet,
    gateway: Ipv4Addr,
    id: &str,
    netns: &Path,
) -> Result<Ipv4Addr> {
    let net_name = net.name.clone();
    let bridge = net.bridge.clone();
    e.db.write(|tx| {
        let mut nrec: NetworkRecord = tx
            .get(Table::Networks, &net_name)?
            .ok_or_else(|| EngineError::Invalid(format!("network {net_name} not found")))?;
        tx.release_addresses(id, Some(&net_name))?;
        let mut used: BTreeSet<Ipv4Addr> = tx
            .addresses(&net_name)?
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let mut last = nrec.last_ip.as_deref().and_then(|l| l.parse().ok());
        let ip = loop {
            let ip = barge_net::next_free_after(subnet, gateway, &used, last)?;
            if claim_address(&bridge, ip, id, netns)? {
                break ip;
            }
            // Another root's container has it.
            used.insert(ip);
            last = Some(ip);
        };
        tx.reserve_address(&net_name, &ip.to_string(), id)?;
        nrec.last_ip = Some(ip.to_string());
        tx.update(Table::Networks, &net_name, None, &nrec)?;
        Ok::<_, EngineError>(ip)
    })
}

/// Connects the container's namespace `netns` to network `n` as `ifname`:
/// an address, the bridge (and its firewall) if missing, the veth.
fn plug(
    e: &mut Engine,
    id: &str,
    netns: &Path,
    n: &NetworkRecord,
    ifname: &str,
) -> Result<Attachment> {
    let ip = allocate_address(e, n, n.subnet()?, n.gateway()?, id, netns)?;
    plug_at(e, id, netns, n, ifname, ip)
}

/// [`plug`] with the address already allocated.
fn plug_at(
    e: &mut Engine,
    id: &str,
    netns: &Path,
    n: &NetworkRecord,
    ifname: &str,
    ip: Ipv4Addr,
) -> Result<Attachment> {
    let subnet = n.subnet()?;
    let gateway = n.gateway()?;
    let plugged = crate::rootless::in_bridge_netns(|| {
        let created = barge_net::ensure_bridge(&barge_net::BridgeSpec {
            name: n.bridge.clone(),
            gateway,
            prefix_len: subnet.prefix_len(),
            mtu: 0,
        })?;
        if created || !firewall_ready(&n.bridge) {
            barge_net::ensure_network_firewall(&barge_net::NetworkFirewall {
                bridge: n.bridge.clone(),
                subnet,
            })?;
        }
        barge_net::attach(&barge_net::Attachment {
            container_id: id.to_string(),
            netns_path: netns.to_path_buf(),
            bridge: n.bridge.clone(),
            ifname: ifname.to_string(),
            ip,
            prefix_len: subnet.prefix_len(),
            gateway,
            mac: None,
            default_route: ifname == "eth0",
        })
        .map_err(EngineError::from)
    });
    match plugged {
        Ok(report) => Ok(Attachment {
            ip: ip.to_string(),
            prefix_len: subnet.prefix_len(),
            gateway: gateway.to_string(),
            mac: barge_net::format_mac(&report.mac),
            ifname: ifname.to_string(),
        }),
        Err(err) => {
            let net = n.name.clone();
            let _ = e.db.write(|tx| tx.release_addresses(id, Some(&net)));
            release_claim(&n.bridge, &ip.to_string(), id);
            Err(err)
        }
    }
}

/// The interface name of an attachment (`eth0` for old records).
fn ifname_of(a: &Attachment) -> &str {
    if a.ifname.is_empty() {
        "eth0"
    } else {
        &a.ifname
    }
}

/// Attaches a container to bridge networks, in two phases so the slow
/// part overlaps the runtime's `create`: [`plan_container`] (network
/// namespace and addresses, before `create`, which joins the namespace)
/// then [`plumb_container`] (bridges, veths, ports; before `start`).
pub fn plan_container(e: &mut Engine, rec: &ContainerRecord, nets: &[String]) -> Result<NetSetup> {
    let netns = e.paths.netns_dir().join(&rec.id);
    barge_net::Netns::remove(&netns)?;
    barge_net::Netns::create(&netns)?;
    let mut setup = NetSetup {
        netns: Some(netns.clone()),
        ..NetSetup::default()
    };
    for name in nets {
        let n = e.network_record(name)?;
        let ip = allocate_address(e, &n, n.subnet()?, n.gateway()?, &rec.id, &netns)?;
        if setup.ip.is_none() {
            setup.ip = Some(ip.to_string());
        }
        if n.dns_enabled {
            for (_, peer, entry) in hosts_entries(e, &n.name, &rec.id)? {
                if !setup.peers.iter().any(|(p, _)| p == &peer) {
                    setup.peers.push((peer, entry.names.join(" ")));
                }
            }
        }
        setup.plan.push((n, ip));
    }
    Ok(setup)
}

/// The second phase of attaching (see [`plan_container`]): bridges and
/// firewalls exist, a veth per network, published ports; records the
/// attachments.
pub fn plumb_container(e: &mut Engine, rec: &ContainerRecord, setup: &NetSetup) -> Result<()> {
    let Some(netns) = setup.netns.clone() else {
        return Ok(());
    };
    let rootless = crate::rootless::is_rootless();
    let mut attachments = BTreeMap::new();
    for (i, (n, ip)) in setup.plan.iter().enumerate() {
        let att = plug_at(e, &rec.id, &netns, n, &format!("eth{i}"), *ip)?;
        attachments.insert(n.name.clone(), att);
        if i == 0 && rootless && !rec.config.ports.is_empty() {
            // After leaving the bridge namespace: the forwarder must bind
            // on the host.
            continue;
        }
        if i == 0 && !rec.config.ports.is_empty() {
            let requested: Vec<barge_net::PortMapping> = rec
                .config
                .ports
                .iter()
                .map(to_net_port)
                .collect::<Result<_>>()?;
            let random = requested.iter().any(|p| p.host_port == 0);
            let mut ports = requested.clone();
            let mut tries = 0;
            loop {
                ports.clone_from(&requested);
                barge_net::assign_host_ports(&mut ports)?;
                let published = barge_net::publish_ports(&barge_net::PortPublish {
                    container_id: rec.id.clone(),
                    container_ip: *ip,
                    ports: ports.clone(),
                });
                match published {
                    // A random port is free on the host but another
                    // container starting at the same time drew it too:
                    // draw again.
                    Err(barge_net::NetError::Nft { detail, .. })
                        if random && tries < 5 && detail.contains("already published") =>
                    {
                        tries += 1;
                    }
                    r => break r?,
                }
            }
            let assigned: Vec<crate::containers::PortMapping> =
                ports.iter().map(from_net_port).collect();
            e.modify(&rec.id, |r| {
                r.config.ports.clone_from(&assigned);
                Ok(())
            })?;
        }
    }
    if let (true, Some((_, ip))) = (rootless && !rec.config.ports.is_empty(), setup.plan.first()) {
        forward_ports(e, rec, *ip)?;
    }
    e.modify(&rec.id, |r| {
        r.state.networks = attachments;
        Ok(())
    })?;
    Ok(())
}

/// Removes a network's firewall and bridge (best effort).
fn remove_bridge_and_firewall(bridge: &str) -> Result<()> {
    crate::rootless::in_bridge_netns(|| {
        let _ = barge_net::remove_network_firewall(bridge);
        let _ = barge_net::remove_bridge(bridge);
        Ok(())
    })
}

/// A rootless container's published ports on a user network: relayed by
/// a forwarder process (see [`crate::portfwd`]); TCP only.
fn forward_ports(e: &mut Engine, rec: &ContainerRecord, ip: Ipv4Addr) -> Result<()> {
    let uid = crate::rootless::rootless_uid().unwrap_or(0);
    let mut forwards = Vec::new();
    for p in &rec.config.ports {
        if p.protocol == "udp" {
            return Err(EngineError::NotSupported(format!(
                "rootless: publishing UDP port {} on a user network (use --network pasta)",
                p.container_port
            )));
        }
        let host_ip = if p.host_ip.is_empty() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            p.host_ip
                .trim_matches(['[', ']'])
                .parse()
                .map_err(|_| EngineError::Invalid(format!("invalid host IP {:?}", p.host_ip)))?
        };
        for k in 0..p.range.max(1) {
            forwards.push(crate::portfwd::Forward {
                host_ip,
                host_port: if p.host_port == 0 { 0 } else { p.host_port + k },
                container_ip: ip,
                container_port: p.container_port + k,
            });
        }
    }
    let run_dir = e.paths.container_run_dir(&rec.id);
    crate::portfwd::stop(&run_dir);
    let bound = crate::portfwd::start(&run_dir, &crate::rootless::user_netns(uid)?, &forwards)?;
    let mut assigned = rec.config.ports.clone();
    let mut next = bound.iter();
    for p in &mut assigned {
        let first = next.next().copied().unwrap_or(p.host_port);
        for _ in 1..p.range.max(1) {
            next.next();
        }
        p.host_port = first;
    }
    e.modify(&rec.id, |r| {
        r.config.ports.clone_from(&assigned);
        Ok(())
    })?;
    Ok(())
}

/// Options of [`Engine::network_connect`].
#[derive(Debug, Clone, Default)]
pub struct NetworkConnectOptions {
    /// Network name or id.
    pub network: String,
    /// Container name or id.
    pub container: String,
}

/// What [`Engine::network_connect`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConnectReport {
    /// The network's name.
    pub network: String,
    /// The container's id.
    pub container_id: String,
    /// The new interface and its address, when the container is running.
    pub attachment: Option<Attachment>,
}

fn bridge_networks(rec: &ContainerRecord, action: &str, net: &str) -> Result<Vec<String>> {
    match rec.network() {
        NetworkMode::Bridge(n) => Ok(n),
        m => Err(EngineError::Invalid(format!(
            "cannot {action} container {} {} network {net}: its network mode is {}",
            rec.name,
            if action == "connect" { "to" } else { "from" },
            m.display()
        ))),
    }
}

impl Engine {
    /// Connects a container to a network: a running container gets a new
    /// interface (`ethN`, the first free index) with an address and its
    /// peers' hosts files are updated; a stopped one only has the network
    /// added to its configuration.
    pub fn network_connect(
        &mut self,
        opts: &NetworkConnectOptions,
    ) -> Result<NetworkConnectReport> {
        let n = self.network_record(&opts.network)?;
        // Refresh before locking: cleaning up a dead container takes the lock.
        let rec = self.refresh(self.lookup(&opts.container)?)?;
        let _lock = self.lock(&rec.id)?;
        let rec = self.lookup(&rec.id)?;
        let nets = bridge_networks(&rec, "connect", &n.name)?;
        let mut report = NetworkConnectReport {
            network: n.name.clone(),
            container_id: rec.id.clone(),
            attachment: None,
        };
        let running = matches!(rec.state.status, Status::Running | Status::Paused)
            && !rec.state.networks.is_empty();
        if nets.contains(&n.name) {
            if running || rec.state.networks.contains_key(&n.name) {
                return Err(EngineError::Invalid(format!(
                    "container {} is already connected to network {}: network is already connected",
                    rec.name, n.name
                )));
            }
            // As podman: connecting a stopped container again is a no-op.
            return Ok(report);
        }
        if running {
            let used: BTreeSet<&str> = rec.state.networks.values().map(ifname_of).collect();
            let ifname = (0..=used.len())
                .map(|i| format!("eth{i}"))
                .find(|i| !used.contains(i.as_str()))
                .unwrap_or_default();
            let netns = self.paths.netns_dir().join(&rec.id);
            let att = plug(self, &rec.id, &netns, &n, &ifname)?;
            let (name, a) = (n.name.clone(), att.clone());
            self.modify(&rec.id, |r| {
                if let NetworkMode::Bridge(list) = r.network() {
                    let mut list = list;
                    list.push(name.clone());
                    r.config.network = Some(NetworkMode::Bridge(list));
                }
                r.state.networks.insert(name, a);
                Ok(())
            })?;
            if n.dns_enabled {
                rewrite_hosts(self, &rec.id, "")?;
                refresh_peer_hosts(self, &n.name, "")?;
            }
            report.attachment = Some(att);
        } else {
            let name = n.name.clone();
            self.modify(&rec.id, |r| {
                let mut list = bridge_networks(r, "connect", &name)?;
                list.push(name.clone());
                r.config.network = Some(NetworkMode::Bridge(list));
                Ok(())
            })?;
        }
        Ok(report)
    }

    /// Disconnects a container from a network: a running container loses
    /// that interface (its veth is deleted, its address freed, its peers'
    /// hosts files updated); a stopped one only has the network removed
    /// from its configuration.
    pub fn network_disconnect(&mut self, network: &str, container: &str) -> Result<()> {
        let n = self.network_record(network)?;
        let rec = self.refresh(self.lookup(container)?)?;
        let _lock = self.lock(&rec.id)?;
        let rec = self.lookup(&rec.id)?;
        let nets = bridge_networks(&rec, "disconnect", &n.name)?;
        if !nets.contains(&n.name) {
            return Err(EngineError::Invalid(format!(
                "container {} is not connected to network {}",
                rec.name, n.name
            )));
        }
        if let Some(a) = rec.state.networks.get(&n.name) {
            let ifname = ifname_of(a).to_string();
            if ifname == "eth0" && !rec.config.ports.is_empty() {
                return Err(EngineError::Invalid(format!(
                    "cannot disconnect container {} from network {}: its published ports are on that interface",
                    rec.name, n.name
                )));
            }
            let id = rec.id.clone();
            crate::rootless::in_bridge_netns(|| {
                barge_net::detach_interface(&id, &ifname).map_err(EngineError::from)
            })?;
        }
        if let Some(a) = rec.state.networks.get(&n.name) {
            release_claim(&n.bridge, &a.ip, &rec.id);
        }
        let (id, name) = (rec.id.clone(), n.name.clone());
        self.db.write(|tx| {
            tx.release_addresses(&id, Some(&name))?;
            let mut r: ContainerRecord = tx
                .get(Table::Containers, &id)?
                .ok_or_else(|| EngineError::NoSuchContainer(id.clone()))?;
            if let NetworkMode::Bridge(mut list) = r.network() {
                list.retain(|x| x != &name);
                r.config.network = Some(NetworkMode::Bridge(list));
            }
            r.state.networks.remove(&name);
            tx.update(Table::Containers, &id, Some(&r.name), &r)?;
            Ok::<_, EngineError>(())
        })?;
        if n.dns_enabled && rec.state.networks.contains_key(&n.name) {
            refresh_peer_hosts(self, &n.name, &rec.id)?;
            rewrite_hosts(self, &rec.id, "")?;
        }
        Ok(())
    }
}

/// Tells the other members of the container's user networks about it
/// (after it is running) or that it left.
pub fn announce(e: &Engine, rec: &ContainerRecord, leaving: bool) {
    if let NetworkMode::Bridge(nets) = rec.network() {
        for n in nets {
            if n != crate::DEFAULT_NETWORK {
                let _ = refresh_peer_hosts(e, &n, if leaving { &rec.id } else { "" });
            }
        }
    }
}

fn firewall_ready(bridge: &str) -> bool {
    barge_net::firewall::list_chains().is_ok_and(|c| {
        c.iter()
            .any(|n| n == &format!("{}{bridge}", barge_net::firewall::NAT_PREFIX))
    })
}

/// Detaches a container from its networks (best effort, idempotent).
pub fn detach_container(e: &mut Engine, rec: &ContainerRecord) {
    crate::portfwd::stop(&e.paths.container_run_dir(&rec.id));
    let rootless = crate::rootless::is_rootless();
    let current: Option<ContainerRecord> = e.db.get(Table::Containers, &rec.id).ok().flatten();
    let rec = current.as_ref().unwrap_or(rec);
    let recorded = rec.state.networks.values().any(|a| ifname_of(a) == "eth0")
        && rec.config.ports.iter().all(|p| p.host_port != 0);
    if rootless {
        // Published through the forwarder stopped above, not nftables.
    } else if !rec.config.ports.is_empty() && !recorded {
        // A start killed between publishing and recording the ports (or
        // the address): find the elements by the container id instead.
        let _ = barge_net::unpublish_container(&rec.id);
    } else if let (Some(first), false) = (
        rec.state.networks.values().find(|a| ifname_of(a) == "eth0"),
        rec.config.ports.is_empty(),
    ) {
        if let (Ok(ip), Ok(ports)) = (
            first.ip.parse::<Ipv4Addr>(),
            rec.config
                .ports
                .iter()
                .map(to_net_port)
                .collect::<Result<Vec<_>>>(),
        ) {
            let _ = barge_net::unpublish_ports(&barge_net::PortPublish {
                container_id: rec.id.clone(),
                container_ip: ip,
                ports,
            });
        }
    }
    // The veth goes with the namespace, which the kernel destroys in the
    // background once its last user is gone: deleting it here would cost
    // ~16 ms of RCU waits on every removal. (A restart right away finds
    // the old host end still there; `barge_net::attach` deletes it then.)
    // Containers that joined this namespace (`--network container:`) keep
    // it alive, so there the veth is deleted now: the address is released
    // below and must not stay reachable through them.
    let shared = e.containers().is_ok_and(|all| {
        all.iter()
            .any(|o| o.id != rec.id && o.network() == NetworkMode::Container(rec.id.clone()))
    });
    if shared {
        let id = rec.id.clone();
        let _ =
            crate::rootless::in_bridge_netns(|| barge_net::detach(&id).map_err(EngineError::from));
    }
    let _ = barge_net::Netns::remove(e.paths.netns_dir().join(&rec.id));
    if let NetworkMode::Bridge(nets) = rec.network() {
        let held: Vec<(String, String)> = e.db.addresses_of(&rec.id).unwrap_or_default();
        for (net, ip) in held {
            if let Ok(Some(n)) = e.db.get::<NetworkRecord>(Table::Networks, &net) {
                release_claim(&n.bridge, &ip, &rec.id);
            }
        }
        let _ = nets;
    }
    let id = rec.id.clone();
    let _ = e.db.write(|tx| {
        tx.release_addresses(&id, None)?;
        if let Some(mut r) = tx.get::<ContainerRecord>(Table::Containers, &id)? {
            r.state.networks.clear();
            tx.update(Table::Containers, &id, Some(&r.name), &r)?;
        }
        Ok::<_, EngineError>(())
    });
    announce(e, rec, true);
}

pub(crate) fn to_net_port(p: &crate::containers::PortMapping) -> Result<barge_net::PortMapping> {
    Ok(barge_net::PortMapping {
        host_ip: if p.host_ip.is_empty() {
            None
        } else {
            Some(
                p.host_ip.trim_matches(['[', ']']).parse().map_err(|_| {
                    EngineError::Invalid(format!("invalid host IP {:?}", p.host_ip))
                })?,
            )
        },
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: if p.protocol == "udp" {
            barge_net::Protocol::Udp
        } else {
            barge_net::Protocol::Tcp
        },
        range: p.range.max(1),
    })
}

pub(crate) fn from_net_port(p: &barge_net::PortMapping) -> crate::containers::PortMapping {
    crate::containers::PortMapping {
        host_ip: p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p.protocol.as_str().to_string(),
        range: p.range,
    }
}

/// Parses `-p` specs (podman's syntax, ranges included).
pub fn parse_publish(specs: &[String]) -> Result<Vec<crate::containers::PortMapping>> {
    let mut out = Vec::new();
    for s in specs {
        for p in barge_net::parse_port_spec(s)? {
            out.push(from_net_port(&p));
        }
    }
    Ok(out)
}

/// Whether a path is a mounted network namespace (for leak checks).
pub fn netns_exists(path: &Path) -> bool {
    path.exists()
}

/// The destinations of the host's non-default IPv4 routes
/// (`/proc/net/route`: hex addresses and masks in host byte order).
pub fn host_route_subnets() -> Vec<Subnet> {
    parse_proc_route(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

fn parse_proc_route(text: &str) -> Vec<Subnet> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            if mask == 0 {
                return None;
            }
            let ip = Ipv4Addr::from(dest.to_le_bytes());
            format!("{ip}/{}", mask.count_ones()).parse().ok()
        })
        .collect()
}

/// A `--filter KEY=VALUE` list grouped by key: values of one key are
/// alternatives, different keys must all match (podman's rule).
pub fn parse_filters(filters: &[String], known: &[&str]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(EngineError::Invalid(format!(
                "invalid filter {f:?}: expected KEY=VALUE"
            )));
        };
        if !known.contains(&k) {
            return Err(EngineError::Invalid(format!(
                "invalid filter {k:?}: expected one of {}",
                known.join(", ")
            )));
        }
        out.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(out)
}

/// Whether `labels` match a `label=KEY[=VALUE]` filter value.
pub fn label_matches(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(filter),
    }
}

impl Engine {
    /// Networks matching podman's `network ls --filter` keys `name`
    /// (substring), `id` (prefix), `driver`, `label` and `dangling` (no
    /// containers), sorted by name.
    pub fn network_list(&mut self, filters: &[String]) -> Result<Vec<NetworkRecord>> {
        let filters = parse_filters(filters, &["name", "id", "driver", "label", "dangling"])?;
        let mut out = Vec::new();
        for n in self.networks()? {
            let mut ok = true;
            for (k, vals) in &filters {
                ok &= match k.as_str() {
                    "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
                    "id" => vals.iter().any(|v| n.id.starts_with(v.as_str())),
                    "driver" => vals.iter().any(|v| &n.driver == v),
                    "label" => vals.iter().all(|v| label_matches(&n.labels, v)),
                    _ => {
                        let dangling = self.network_users(&n.name)?.is_empty();
                        vals.iter().any(|v| (v == "true" || v == "1") == dangling)
                    }
                };
            }
            if ok {
                out.push(n);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl NetworkRecord {
    /// podman's `network ls --format json` object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name, "id": self.id, "driver": self.driver,
            "network_interface": self.bridge,
            "created": crate::containers::query::rfc3339(self.created),
            "subnets": [{"subnet": self.subnet, "gateway": self.gateway}],
            "ipv6_enabled": false, "internal": self.internal, "dns_enabled": self.dns_enabled,
            "labels": self.labels, "ipam_options": {"driver": "host-local"},
        })
    }

    /// The fields `--format` templates see (podman's Go field names).
    pub fn template_view(&self) -> serde_json::Value {
        serde_json::json!({
            "Name": self.name, "ID": self.id, "Id": self.id, "Driver": self.driver,
            "NetworkInterface": self.bridge,
            "Created": crate::containers::query::rfc3339(self.created),
            "Subnets": [{"Subnet": self.subnet, "Gateway": self.gateway}],
            "Subnet": self.subnet, "Gateway": self.gateway,
            "IPv6Enabled": false, "Internal": self.internal, "DNSEnabled": self.dns_enabled,
            "Labels": self.labels, "IPAMOptions": {"driver": "host-local"},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_route_subnets() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
barge0\t00005A0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let s: Vec<String> = parse_proc_route(text)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(s, vec!["10.90.0.0/16", "192.0.2.0/24"]);
    }

    #[test]
    fn filters_group_by_key() {
        let f = parse_filters(
            &["name=a".into(), "name=b".into(), "label=x=y".into()],
            &["name", "label"],
        )
        .expect("filters");
        assert_eq!(f["name"], vec!["a", "b"]);
        assert!(parse_filters(&["colour=red".into()], &["name"]).is_err());
        assert!(parse_filters(&["name".into()], &["name"]).is_err());
        let mut labels = BTreeMap::new();
        labels.insert("x".to_string(), "y".to_string());
        assert!(label_matches(&labels, "x"));
        assert!(label_matches(&labels, "x=y"));
        assert!(!label_matches(&labels, "x=z"));
    }
}
