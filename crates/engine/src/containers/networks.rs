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
}

impl Engine {
    /// Sets up the container's network before it is created.
    pub fn setup_network(&mut self, rec: &ContainerRecord) -> Result<NetSetup> {
        match rec.network() {
            NetworkMode::Bridge(nets) => crate::networks::attach_container(self, rec, &nets),
            _ => Ok(NetSetup::default()),
        }
    }

    /// Tears the container's network down (best effort, idempotent).
    pub fn teardown_network(&mut self, rec: &ContainerRecord) {
        if let NetworkMode::Bridge(_) = rec.network() {
            crate::networks::detach_container(self, rec);
        }
    }
}
