//! Networks: records in the state database and container attachment.

use crate::containers::networks::NetSetup;
use crate::containers::{ContainerRecord, Engine};
use crate::error::EngineError;
use crate::Result;
use serde::{Deserialize, Serialize};

/// A network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// Driver (`bridge`).
    pub driver: String,
}

impl Engine {
    /// A network's record; the default network is created on first use.
    pub fn network_record(&mut self, name: &str) -> Result<NetworkRecord> {
        Err(EngineError::NotSupported(format!("network {name}")))
    }
}

/// Attaches a container to bridge networks.
pub fn attach_container(
    _e: &mut Engine,
    _rec: &ContainerRecord,
    nets: &[String],
) -> Result<NetSetup> {
    Err(EngineError::NotSupported(format!(
        "bridge network {}",
        nets.join(",")
    )))
}

/// Detaches a container from its networks.
pub fn detach_container(_e: &mut Engine, _rec: &ContainerRecord) {}

/// Parses `-p` specs (`[[IP:][HOSTPORT]:]PORT[/PROTO]`).
pub fn parse_publish(specs: &[String]) -> Result<Vec<crate::containers::PortMapping>> {
    let mut out = Vec::new();
    for s in specs {
        let bad = |why: &str| EngineError::Invalid(format!("invalid port format {s:?}: {why}"));
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) => (r, p.to_string()),
            None => (s.as_str(), "tcp".to_string()),
        };
        if proto != "tcp" && proto != "udp" {
            return Err(bad("protocol must be tcp or udp"));
        }
        let parts: Vec<&str> = rest.rsplitn(3, ':').collect();
        let port = |p: &str| p.parse::<u16>().ok().filter(|n| *n > 0);
        let (ip, host, ctr) = match parts.as_slice() {
            [c] => ("", "", *c),
            [c, h] => ("", *h, *c),
            [c, h, ip] => (*ip, *h, *c),
            _ => return Err(bad("too many colons")),
        };
        let container_port = port(ctr).ok_or_else(|| bad("the container port must be 1-65535"))?;
        let host_port = if host.is_empty() {
            0
        } else {
            port(host).ok_or_else(|| bad("the host port must be 1-65535"))?
        };
        if !ip.is_empty()
            && ip
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_err()
        {
            return Err(bad("not an IP address"));
        }
        out.push(crate::containers::PortMapping {
            host_ip: ip.to_string(),
            host_port,
            container_port,
            protocol: proto,
        });
    }
    Ok(out)
}
