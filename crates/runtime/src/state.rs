//! Persistent container state: `<root>/<id>/state.json` plus the exec fifo.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use barge_cgroups::Cgroup;
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;
use crate::util;

/// Default state root for root; rootless callers use `$XDG_RUNTIME_DIR/barge-runtime`.
pub const DEFAULT_ROOT: &str = "/run/barge-runtime";

/// Name of the fifo the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Container status as the OCI spec names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What we persist about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The init's pid in the runtime's pid namespace.
    pub pid: i32,
    /// The init's start time (clock ticks since boot) to detect pid reuse.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: u32,
    pub cgroup: Cgroup,
    /// The spec as it was at create time (hooks, process defaults, resources).
    pub config: Spec,
    /// Whether the init has been started (the fifo is gone).
    #[serde(default)]
    pub started: bool,
    /// Set while `create` is still setting the container up (or died doing
    /// so): `delete` then cleans up whatever exists.
    #[serde(default)]
    pub creating: bool,
}

/// The state directory for `id` under `root`.
pub fn dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

impl ContainerState {
    /// Load the state of `id`.
    pub fn load(root: &Path, id: &str) -> Result<Self, RuntimeError> {
        barge_oci::validate_id(id)?;
        let path = dir(root, id).join("state.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io(format!("reading {}", path.display()), e)),
        };
        serde_json::from_slice(&text).map_err(|e| RuntimeError::State {
            path,
            message: e.to_string(),
        })
    }

    /// Save atomically.
    pub fn save(&self, root: &Path) -> Result<(), RuntimeError> {
        let path = dir(root, &self.id).join("state.json");
        let text = serde_json::to_vec(self).map_err(|e| RuntimeError::Other(e.to_string()))?;
        util::write_atomic(&path, &text)
    }

    /// The current status, computed from the live system.
    pub fn status(&self, root: &Path) -> Status {
        if !util::process_alive(self.pid, self.start_time) {
            return Status::Stopped;
        }
        if self.creating {
            return Status::Creating;
        }
        if dir(root, &self.id).join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if self.cgroup.is_frozen().unwrap_or(false) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The annotations from the spec.
    pub fn annotations(&self) -> HashMap<String, String> {
        self.config.annotations().clone().unwrap_or_default()
    }

    /// The OCI state object (`barge-runtime state` output, hook stdin).
    pub fn oci_state(&self, status: Status) -> serde_json::Value {
        let pid = if status == Status::Stopped {
            0
        } else {
            self.pid
        };
        serde_json::json!({
            "ociVersion": barge_oci::OCI_VERSION,
            "id": self.id,
            "pid": pid,
            "status": status.to_string(),
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "annotations": self.annotations(),
            "owner": if self.owner == 0 { String::new() } else { self.owner.to_string() },
        })
    }
}

/// All container ids under `root` (directories with a state file).
pub fn list_ids(root: &Path) -> Result<Vec<String>, RuntimeError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RuntimeError::io(format!("reading {}", root.display()), e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join("state.json").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    ids.sort();
    Ok(ids)
}
