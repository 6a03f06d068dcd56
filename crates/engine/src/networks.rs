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
            None => (1..)
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
        let used: Vec<Subnet> = existing.iter().filter_map(|e| e.subnet().ok()).collect();
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
        let bridge = (1..)
            .map(|i| format!("barge{i}"))
            .find(|b| !existing.iter().any(|e| &e.bridge == b))
            .unwrap_or_default();
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
        if self
            .db
            .write(|tx| tx.insert(Table::Networks, &name, None, &rec))?
            == Inserted::Conflict
        {
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
                    "network {} is being used by container(s) {}: network is being used",
                    rec.name,
                    users.join(", ")
                )));
            }
            for u in users {
                self.remove(&u, true, false)?;
            }
        }
        let _ = barge_net::remove_network_firewall(&rec.bridge);
        let _ = barge_net::remove_bridge(&rec.bridge);
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
                    serde_json::json!({"name": c.name, "interfaces": {"eth0": {"subnets": [
                        {"ipnet": format!("{}/{}", a.ip, a.prefix_len), "gateway": a.gateway}],
                        "mac_address": a.mac}}}),
                );
            }
        }
        Ok(serde_json::json!({
            "name": n.name, "id": n.id, "driver": n.driver, "network_interface": n.bridge,
            "created": crate::containers::query::rfc3339(n.created),
            "subnets": [{"subnet": n.subnet, "gateway": n.gateway}],
            "ipv6_enabled": false, "internal": n.internal, "dns_enabled": n.dns_enabled,
            "labels": n.labels, "ipam_options": {"driver": "host-local"},
            "containers": containers,
        }))
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

/// Rewrites the hosts file of every running container on `net` so it lists
/// the current members (names resolve on user networks through
/// `/etc/hosts`, which the engine keeps up to date; no DNS daemon).
fn refresh_peer_hosts(e: &Engine, net: &str, leaving: &str) -> Result<()> {
    let members = hosts_entries(e, net, leaving)?;
    for (id, _, _) in &members {
        let Some(c) = e.db.get::<ContainerRecord>(Table::Containers, id)? else {
            continue;
        };
        let path = e.paths.container_dir(id).join("hosts");
        let base = e.paths.container_dir(id).join("hosts.base");
        let Ok(base) = std::fs::read_to_string(&base) else {
            continue;
        };
        let mut entries = Vec::new();
        for (other, _, entry) in &members {
            if other != id {
                entries.push(entry.clone());
            }
        }
        // Keep the container's own line first (it is in the base).
        let _ = c;
        if path.exists() {
            barge_net::dns::update_hosts_file_in_place(&path, Some(&base), &entries)?;
        }
    }
    Ok(())
}

/// Attaches a container to bridge networks: a network namespace, an
/// address on each network, a veth into each bridge, published ports.
pub fn attach_container(
    e: &mut Engine,
    rec: &ContainerRecord,
    nets: &[String],
) -> Result<NetSetup> {
    let netns = e.paths.netns_dir().join(&rec.id);
    barge_net::Netns::remove(&netns)?;
    barge_net::Netns::create(&netns)?;
    let mut setup = NetSetup {
        netns: Some(netns.clone()),
        ..NetSetup::default()
    };
    let mut attachments = BTreeMap::new();
    for (i, name) in nets.iter().enumerate() {
        let n = e.network_record(name)?;
        let subnet = n.subnet()?;
        let gateway = n.gateway()?;
        let id = rec.id.clone();
        let net_name = n.name.clone();
        let ip = e.db.write(|tx| {
            let mut nrec: NetworkRecord = tx
                .get(Table::Networks, &net_name)?
                .ok_or_else(|| EngineError::Invalid(format!("network {net_name} not found")))?;
            tx.release_addresses(&id, Some(&net_name))?;
            let used: BTreeSet<Ipv4Addr> = tx
                .addresses(&net_name)?
                .iter()
                .filter_map(|a| a.parse().ok())
                .collect();
            let last = nrec.last_ip.as_deref().and_then(|l| l.parse().ok());
            let ip = barge_net::next_free_after(subnet, gateway, &used, last)?;
            tx.reserve_address(&net_name, &ip.to_string(), &id)?;
            nrec.last_ip = Some(ip.to_string());
            tx.update(Table::Networks, &net_name, None, &nrec)?;
            Ok::<_, EngineError>(ip)
        })?;
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
        let report = barge_net::attach(&barge_net::Attachment {
            container_id: rec.id.clone(),
            netns_path: netns.clone(),
            bridge: n.bridge.clone(),
            ifname: format!("eth{i}"),
            ip,
            prefix_len: subnet.prefix_len(),
            gateway,
            mac: None,
        })?;
        attachments.insert(
            n.name.clone(),
            Attachment {
                ip: ip.to_string(),
                prefix_len: subnet.prefix_len(),
                gateway: gateway.to_string(),
                mac: barge_net::format_mac(&report.mac),
            },
        );
        if i == 0 {
            setup.ip = Some(ip.to_string());
            if !rec.config.ports.is_empty() {
                let mut ports: Vec<barge_net::PortMapping> = rec
                    .config
                    .ports
                    .iter()
                    .map(to_net_port)
                    .collect::<Result<_>>()?;
                barge_net::assign_host_ports(&mut ports)?;
                barge_net::publish_ports(&barge_net::PortPublish {
                    container_id: rec.id.clone(),
                    container_ip: ip,
                    ports: ports.clone(),
                })?;
                let assigned: Vec<crate::containers::PortMapping> =
                    ports.iter().map(from_net_port).collect();
                e.modify(&rec.id, |r| {
                    r.config.ports.clone_from(&assigned);
                    Ok(())
                })?;
            }
        }
        if n.dns_enabled {
            for (_, ip, entry) in hosts_entries(e, &n.name, &rec.id)? {
                setup.peers.push((ip, entry.names.join(" ")));
            }
        }
    }
    e.modify(&rec.id, |r| {
        r.state.networks = attachments;
        Ok(())
    })?;
    Ok(setup)
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
    let current: Option<ContainerRecord> = e.db.get(Table::Containers, &rec.id).ok().flatten();
    let rec = current.as_ref().unwrap_or(rec);
    if let (Some(first), false) = (
        rec.state.networks.values().next(),
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
    // Delete the veth now: it would go with the namespace, but the kernel
    // destroys a namespace asynchronously, and a restart right away failed
    // with "veth name already in use".
    let _ = barge_net::detach(&rec.id);
    let _ = barge_net::Netns::remove(e.paths.netns_dir().join(&rec.id));
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

fn to_net_port(p: &crate::containers::PortMapping) -> Result<barge_net::PortMapping> {
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

fn from_net_port(p: &barge_net::PortMapping) -> crate::containers::PortMapping {
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
