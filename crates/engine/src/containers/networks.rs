//! Container networking as the lifecycle sees it: set up before the
//! container is created, torn down after it exits.

use super::{ContainerRecord, Engine, NetworkMode};
use crate::Result;
use std::path::PathBuf;

/// What [`Engine::setup_network`] prepared.
#[derive(Debug, Default)]
pub struct NetSetup {
    /// The network namespace to join (bridge networks).
    pub netns: Option<PathBuf>,
    /// The container's address on its first network.
    pub ip: Option<String>,
    /// Other containers on its networks: (ip, "hostname name").
    pub peers: Vec<(String, String)>,
    /// The networks and the addresses reserved on them.
    pub plan: Vec<(crate::networks::NetworkRecord, std::net::Ipv4Addr)>,
    /// Nameservers for resolv.conf instead of the host's (slirp4netns's
    /// DNS forwarder); `--dns` still wins.
    pub nameservers: Vec<String>,
}

impl Engine {
    /// Plans the container's network before it is created: its network
    /// namespace and addresses (see [`crate::networks::plan_container`]);
    /// for pasta and slirp4netns, the namespace with its helper running
    /// and the ports published (see [`crate::usernet::start`]).
    pub fn setup_network(&mut self, rec: &ContainerRecord) -> Result<NetSetup> {
        match rec.network() {
            NetworkMode::Bridge(nets) => crate::networks::plan_container(self, rec, &nets),
            NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_) => crate::usernet::start(self, rec),
            _ => Ok(NetSetup::default()),
        }
    }

    /// Connects the planned network (bridges, veths, ports) while the
    /// runtime creates the container.
    pub fn plumb_network(&mut self, rec: &ContainerRecord, setup: &NetSetup) -> Result<()> {
        crate::networks::plumb_container(self, rec, setup)
    }

    /// Tears the container's network down (best effort, idempotent). A
    /// pasta or slirp4netns helper is only signalled: call
    /// [`NetTeardown::finish`] to wait until it is gone (it takes ~50 ms to
    /// exit, which other cleanup can overlap).
    pub fn teardown_network(&mut self, rec: &ContainerRecord) -> NetTeardown {
        match rec.network() {
            NetworkMode::Bridge(_) => crate::networks::detach_container(self, rec),
            NetworkMode::Pasta(_) | NetworkMode::Slirp4netns(_) => {
                return NetTeardown {
                    helpers: crate::usernet::stop(self, rec),
                };
            }
            _ => {}
        }
        NetTeardown::default()
    }
}

/// What [`Engine::teardown_network`] left to wait for.
#[derive(Debug, Default)]
#[must_use = "finish() waits until the network helper is gone"]
pub struct NetTeardown {
    helpers: Vec<i32>,
}

impl NetTeardown {
    /// Waits until the signalled helper processes are gone.
    pub fn finish(self) {
        for pid in self.helpers {
            crate::usernet::wait_gone(pid);
        }
    }
}
