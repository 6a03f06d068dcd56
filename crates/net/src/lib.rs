//! barge's network plumbing: the mechanism the engine calls to give a
//! container a network. The engine keeps the state (networks, IP
//! allocations, port mappings) in its database; this crate only changes the
//! kernel and renders files.
//!
//! * [`Netns`]: persistent network namespaces bind-mounted on a path, which
//!   the OCI config then names as the container's network namespace.
//! * [`ensure_bridge`] / [`remove_bridge`], [`attach`] / [`detach`]: a Linux
//!   bridge per network and a veth pair per container, configured through
//!   rtnetlink directly (no `ip` processes; a few netlink round trips).
//! * [`firewall`]: nftables table `ip barge` with per-network masquerade and
//!   forward chains (`nft -f -`) and published ports as map elements
//!   tagged with the container id (added and deleted over
//!   `NETLINK_NETFILTER`, no process).
//! * [`ports`]: podman-style `-p` parsing and random host ports.
//! * [`ipam`]: subnets, gateways and next-free addresses.
//! * [`dns`]: `/etc/hosts` (rewritten in place) and `resolv.conf` rendering.
//! * [`leaks`] / [`cleanup_orphans`]: find or remove what containers that no
//!   longer exist left behind.
//!
//! Everything is synchronous and single-threaded except [`Netns::create`]
//! and [`attach`], which use one short-lived thread to enter a network
//! namespace (the calling thread never changes namespace).

#![forbid(unsafe_code)]

pub mod dns;
mod error;
pub mod firewall;
pub mod ipam;
mod link;
mod netlink;
mod netns;
mod nftnl;
mod orphans;
pub mod ports;
mod sysctl;

pub use error::NetError;
pub use firewall::{
    ensure_network_firewall, publish_ports, remove_network_firewall, unpublish_container,
    unpublish_ports, NetworkFirewall, PortPublish,
};
pub use ipam::{
    next_free, next_free_after, next_free_subnet, Subnet, DEFAULT_BRIDGE, DEFAULT_NETWORK,
    DEFAULT_SUBNET, USER_SUBNET_POOL,
};
pub use link::{
    attach, bridge_exists, detach, detach_interface, ensure_bridge, format_mac, host_ifname,
    host_ifname_for, remove_bridge, AttachReport, Attachment, BridgeSpec, ALIAS_PREFIX,
};
pub use netns::{netns_address, Netns, NetnsAddress};
pub use orphans::{cleanup_orphans, leaks, Leaks, OrphanReport};
pub use ports::{assign_host_ports, parse_port_spec, PortMapping, Protocol};

/// Result type of this crate.
pub type Result<T, E = NetError> = std::result::Result<T, E>;
