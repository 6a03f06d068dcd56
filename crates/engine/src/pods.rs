//! Pods (podman's `pod` commands): a group of containers that share the
//! namespaces (network, IPC and UTS by default, PID on request) of an
//! *infra* container.
//!
//! A pod is a record in the `pods` table ([`PodRecord`]); its containers
//! are ordinary container records whose `pod` field holds the pod's id
//! (membership is never stored twice, so removing a container keeps the pod
//! consistent). The infra container (`config.infra`) is created with the
//! pod and runs our own static pause binary (`barge-pause`, bound read-only
//! at `/pause` in a minimal root directory: no image needed), or the
//! command of `--infra-image`. Members join the infra's namespaces by path
//! (`/proc/PID/ns/...`, the way `--network container:` does), so the pod's
//! published ports (`pod create -p`) live on the infra's network namespace
//! and every member sees the pod's hostname.
//!
//! Creating a container in a pod: [`Engine::create`] with
//! `CreateOptions { pod: Some(name_or_id), .. }` (or `"new:NAME"` to create
//! the pod on the way, taking the container's `-p`/`--network`), then
//! [`Engine::start`], which starts the pod's infra first when it is not
//! running.
//!
//! Order: start is infra first, then members; stop, kill and remove are
//! members first (stopped together), infra last.

use crate::containers::lifecycle::StartOptions;
use crate::containers::stats::StatsSample;
use crate::containers::{
    self, alive, ContainerConfig, ContainerRecord, CreateOptions, Engine, NetworkMode, PortMapping,
    PullPolicy, Status,
};
use crate::db::{Inserted, Table};
use crate::error::EngineError;
use crate::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The namespaces a pod can share (podman's `--share` values).
pub const SHAREABLE: &[&str] = &["cgroup", "ipc", "net", "pid", "uts"];

/// What a pod shares by default.
pub const DEFAULT_SHARE: &[&str] = &["ipc", "net", "uts"];

/// The name of the pause binary run by default infra containers.
pub const PAUSE_BINARY: &str = "barge-pause";

/// Where the pause binary is bound in the infra's root.
pub const PAUSE_PATH: &str = "/pause";

/// Parses `--share`: a comma-separated list of [`SHAREABLE`] namespaces,
/// `none` (or empty) for none, or `+LIST` to add to [`DEFAULT_SHARE`].
/// Returns the sorted list.
pub fn parse_share(spec: &str) -> Result<Vec<String>> {
    let (mut out, list): (Vec<String>, &str) = match spec.strip_prefix('+') {
        Some(rest) => (
            DEFAULT_SHARE.iter().map(|s| (*s).to_string()).collect(),
            rest,
        ),
        None => (Vec::new(), spec),
    };
    for ns in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if ns == "none" {
            out.clear();
            continue;
        }
        if !SHAREABLE.contains(&ns) {
            return Err(EngineError::Invalid(format!(
                "invalid kernel namespace to share: {ns}. Options are: cgroup, ipc, net, pid, uts or none"
            )));
        }
        if !out.iter().any(|x| x == ns) {
            out.push(ns.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (pods and containers share one name space).
    pub name: String,
    /// Created (unix nanoseconds).
    pub created: i64,
    /// `--hostname` as given (empty: the pod's name is the hostname).
    #[serde(default)]
    pub hostname: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The namespaces members share with the infra container (sorted).
    #[serde(default)]
    pub shared: Vec<String>,
    /// The infra container's id (none with `--infra=false`).
    #[serde(default)]
    pub infra_id: Option<String>,
    /// `continue` (default) or `stop`.
    #[serde(default)]
    pub exit_policy: String,
    /// The command line that created the pod (podman's `CreateCommand`).
    #[serde(default)]
    pub create_command: Vec<String>,
}

impl PodRecord {
    /// Whether members share namespace `ns` (`net`, `ipc`, `uts`, `pid`,
    /// `cgroup`) with the infra container.
    pub fn shares(&self, ns: &str) -> bool {
        self.infra_id.is_some() && self.shared.iter().any(|s| s == ns)
    }

    /// The hostname of the infra container (and of members sharing UTS):
    /// `--hostname`, else the pod's name.
    pub fn effective_hostname(&self) -> String {
        if self.hostname.is_empty() {
            self.name.clone()
        } else {
            self.hostname.clone()
        }
    }
}

/// A pod's status from its containers' (podman's rules; the infra counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// No container ran yet (or no containers).
    Created,
    /// Every container runs.
    Running,
    /// Some run, some do not.
    Degraded,
    /// Every container is paused.
    Paused,
    /// Every container has exited.
    Exited,
    /// Some exited, the others never ran.
    Stopped,
    /// Anything else.
    Error,
}

impl PodState {
    /// podman's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Running => "Running",
            Self::Degraded => "Degraded",
            Self::Paused => "Paused",
            Self::Exited => "Exited",
            Self::Stopped => "Stopped",
            Self::Error => "Error",
        }
    }

    /// The status of a pod whose containers are `ctrs`.
    pub fn of(ctrs: &[ContainerRecord]) -> Self {
        let n = ctrs.len();
        if n == 0 {
            return Self::Created;
        }
        let count = |f: &dyn Fn(Status) -> bool| ctrs.iter().filter(|c| f(c.state.status)).count();
        let running = count(&|s| matches!(s, Status::Running | Status::Stopping));
        let paused = count(&|s| s == Status::Paused);
        let exited = count(&|s| matches!(s, Status::Exited | Status::Removing));
        let created = count(&|s| s == Status::Created);
        if running == n {
            Self::Running
        } else if running > 0 {
            Self::Degraded
        } else if paused == n {
            Self::Paused
        } else if exited == n {
            Self::Exited
        } else if exited > 0 {
            Self::Stopped
        } else if created + paused == n {
            Self::Created
        } else {
            Self::Error
        }
    }
}

/// Options of [`Engine::pod_create`].
#[derive(Debug, Clone, Default)]
pub struct PodCreateOptions {
    /// Name (default: a random `adjective_noun`).
    pub name: Option<String>,
    /// Hostname of the pod (default: its name).
    pub hostname: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Namespaces to share (see [`parse_share`]); `None` = [`DEFAULT_SHARE`].
    pub share: Option<Vec<String>>,
    /// No infra container (`--infra=false`): nothing is shared.
    pub no_infra: bool,
    /// Image of the infra container (default: the built-in pause binary,
    /// no image).
    pub infra_image: Option<String>,
    /// Command of the infra container (default: `/pause`, or the image's).
    pub infra_command: Option<Vec<String>>,
    /// Name of the infra container (default: `<first 12 of the pod id>-infra`).
    pub infra_name: Option<String>,
    /// Network of the pod (its infra container); default: the default network.
    pub network: Option<NetworkMode>,
    /// Ports published on the pod's network namespace.
    pub ports: Vec<PortMapping>,
    /// `--add-host` entries of the pod's `/etc/hosts`.
    pub add_hosts: Vec<String>,
    /// `--dns` servers of the pod's `/etc/resolv.conf`.
    pub dns: Vec<String>,
    /// `continue` (default) or `stop`: whether the pod's infra stops once
    /// its last member has exited.
    pub exit_policy: Option<String>,
    /// Pull policy of `infra_image`.
    pub pull: PullPolicy,
    /// The command line (shown by inspect as `CreateCommand`).
    pub create_command: Vec<String>,
}

/// A container's outcome in a pod operation that went wrong.
#[derive(Debug)]
pub struct PodContainerError {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// What failed.
    pub error: EngineError,
}

/// What a pod operation did.
#[derive(Debug)]
pub struct PodReport {
    /// The pod's id.
    pub id: String,
    /// The pod's name.
    pub name: String,
    /// Containers the operation acted on, in the order it did.
    pub containers: Vec<String>,
    /// Containers it failed on (the pod operation failed when non-empty).
    pub errors: Vec<PodContainerError>,
}

impl PodReport {
    fn new(pod: &PodRecord) -> Self {
        Self {
            id: pod.id.clone(),
            name: pod.name.clone(),
            containers: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn push(&mut self, rec: &ContainerRecord, r: Result<()>) {
        match r {
            Ok(()) => self.containers.push(rec.id.clone()),
            Err(error) => self.errors.push(PodContainerError {
                id: rec.id.clone(),
                name: rec.name.clone(),
                error,
            }),
        }
    }
}

/// Options of [`Engine::pod_remove`].
#[derive(Debug, Clone, Copy, Default)]
pub struct PodRemoveOptions {
    /// Stop running containers first (else a running pod is refused).
    pub force: bool,
    /// With `force`: seconds to wait after the stop signal (default: kill
    /// at once).
    pub timeout: Option<u32>,
    /// Remove the containers' anonymous volumes too.
    pub volumes: bool,
}

/// One pod as `pod ps` lists it.
#[derive(Debug, Clone)]
pub struct PodListEntry {
    /// The pod.
    pub pod: PodRecord,
    /// Its status.
    pub state: PodState,
    /// Its containers (infra included), refreshed, in creation order.
    pub containers: Vec<ContainerRecord>,
    /// The networks of its infra container.
    pub networks: Vec<String>,
}

impl PodListEntry {
    /// podman's `pod ps --format json` object.
    pub fn to_json(&self) -> Value {
        json!({
            "Cgroup": "/barge",
            "Containers": self.containers.iter().map(|c| json!({
                "Id": c.id, "Names": c.name, "Status": c.state.status.as_str(),
                "RestartCount": c.state.restart_count,
            })).collect::<Vec<_>>(),
            "Created": containers::query::rfc3339(self.pod.created),
            "Id": self.pod.id,
            "InfraId": self.pod.infra_id.clone().unwrap_or_default(),
            "Name": self.pod.name,
            "Namespace": "",
            "Networks": self.networks,
            "Status": self.state.as_str(),
            "Labels": self.pod.labels,
        })
    }

    /// The fields `pod ps --format TEMPLATE` sees (podman's names); ids
    /// truncated to 12 digits unless `no_trunc`.
    pub fn template_view(&self, no_trunc: bool) -> Value {
        let short = |s: &str| {
            if no_trunc {
                s.to_string()
            } else {
                s.chars().take(12).collect()
            }
        };
        let join = |f: &dyn Fn(&ContainerRecord) -> String| {
            self.containers.iter().map(f).collect::<Vec<_>>().join(",")
        };
        json!({
            "ID": short(&self.pod.id),
            "Id": short(&self.pod.id),
            "Name": self.pod.name,
            "Status": self.state.as_str(),
            "Created": crate::images::human_age(
                (self.pod.created.max(0) / 1_000_000_000) as u64),
            "CreatedAt": containers::query::rfc3339(self.pod.created),
            "InfraID": short(self.pod.infra_id.as_deref().unwrap_or("")),
            "InfraId": short(self.pod.infra_id.as_deref().unwrap_or("")),
            "NumberOfContainers": self.containers.len(),
            "Labels": self.pod.labels,
            "Networks": self.networks.join(","),
            "Cgroup": "/barge",
            "Namespace": "",
            "ContainerNames": join(&|c| c.name.clone()),
            "ContainerIds": join(&|c| short(&c.id)),
            "ContainerStatuses": join(&|c| c.state.status.as_str().to_string()),
        })
    }
}

/// Options of [`Engine::pod_logs`].
#[derive(Debug, Clone, Default)]
pub struct PodLogsOptions {
    /// Only this member (name or id).
    pub container: Option<String>,
    /// Prefix lines with container names instead of short ids (`-n`).
    pub names: bool,
    /// The options of each container's log.
    pub logs: containers::query::LogsOptions,
}

/// The pause binary: `$BARGE_PAUSE`, else `barge-pause` beside the running
/// executable or on `PATH`.
pub fn pause_binary() -> Result<PathBuf> {
    let p = std::env::var_os("BARGE_PAUSE")
        .filter(|v| !v.is_empty())
        .map_or_else(|| containers::find_binary(PAUSE_BINARY), PathBuf::from);
    if p.is_file() {
        Ok(p)
    } else {
        Err(EngineError::Invalid(format!(
            "the infra binary {PAUSE_BINARY} was not found (beside barge, on PATH or in $BARGE_PAUSE): \
             build it (cargo build --release -p barge-pause, or scripts/build-static.sh barge-pause for the static one) \
             or give the pod an --infra-image"
        )))
    }
}

impl Engine {
    /// Resolves a pod by full id, unique id prefix or name.
    pub fn pod_lookup(&self, name_or_id: &str) -> Result<PodRecord> {
        if let Some(id) = self.db.id_by_name(Table::Pods, name_or_id)? {
            if let Some(p) = self.db.get(Table::Pods, &id)? {
                return Ok(p);
            }
        }
        if !name_or_id.is_empty() && name_or_id.chars().all(|c| c.is_ascii_hexdigit()) {
            let ids = self.db.ids_with_prefix(Table::Pods, name_or_id)?;
            match ids.as_slice() {
                [one] => {
                    if let Some(p) = self.db.get(Table::Pods, one)? {
                        return Ok(p);
                    }
                }
                [] => {}
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "more than one result for pod {name_or_id:?}: use a longer id"
                    )))
                }
            }
        }
        Err(EngineError::NoSuchPod(name_or_id.to_string()))
    }

    /// Whether a pod exists.
    pub fn pod_exists(&self, name_or_id: &str) -> Result<bool> {
        match self.pod_lookup(name_or_id) {
            Ok(_) => Ok(true),
            Err(EngineError::NoSuchPod(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every pod, oldest first.
    pub fn pods(&self) -> Result<Vec<PodRecord>> {
        let mut v: Vec<PodRecord> = self.db.all(Table::Pods)?;
        v.sort_by_key(|p| p.created);
        Ok(v)
    }

    /// The containers of a pod (infra included), oldest first, as stored.
    pub fn pod_containers(&self, pod_id: &str) -> Result<Vec<ContainerRecord>> {
        let mut v: Vec<ContainerRecord> = self
            .containers()?
            .into_iter()
            .filter(|c| c.pod.as_deref() == Some(pod_id))
            .collect();
        v.sort_by_key(|c| (!c.config.infra, c.created));
        Ok(v)
    }

    /// The pod's containers refreshed (reality reconciled), infra first.
    fn pod_containers_fresh(&mut self, pod_id: &str) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        for c in self.pod_containers(pod_id)? {
            let c = self.refresh(c)?;
            if self
                .db
                .get::<ContainerRecord>(Table::Containers, &c.id)?
                .is_some()
            {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// The pod's status.
    pub fn pod_state(&mut self, pod: &PodRecord) -> Result<PodState> {
        Ok(PodState::of(&self.pod_containers_fresh(&pod.id)?))
    }

    /// Creates a pod and (unless `no_infra`) its infra container; nothing
    /// runs yet. Bad options fail before anything is stored; a failure
    /// creating the infra removes the pod again.
    pub fn pod_create(
        &mut self,
        opts: PodCreateOptions,
        pull: impl FnOnce(&barge_image::Store, &str) -> Result<()>,
    ) -> Result<PodRecord> {
        let shared = match &opts.share {
            Some(list) => {
                let mut v = Vec::new();
                for ns in list {
                    v.extend(parse_share(ns)?);
                }
                v.sort();
                v.dedup();
                v
            }
            None if opts.no_infra => Vec::new(),
            None => DEFAULT_SHARE.iter().map(|s| (*s).to_string()).collect(),
        };
        if opts.no_infra {
            if !shared.is_empty() {
                return Err(EngineError::Invalid(format!(
                    "cannot set share({}) namespaces without an infra container",
                    shared.join(",")
                )));
            }
            if !opts.ports.is_empty() {
                return Err(EngineError::Invalid(
                    "you must have an infra container to publish port bindings to the host".into(),
                ));
            }
            if opts.network.is_some() {
                return Err(EngineError::Invalid(
                    "cannot set a network without an infra container".into(),
                ));
            }
            if opts.infra_image.is_some()
                || opts.infra_command.is_some()
                || opts.infra_name.is_some()
            {
                return Err(EngineError::Invalid(
                    "cannot set infra options (--infra-image, --infra-command, --infra-name) with --infra=false"
                        .into(),
                ));
            }
        }
        if !opts.ports.is_empty() && !shared.iter().any(|s| s == "net") {
            return Err(EngineError::Invalid(
                "cannot publish ports of a pod that does not share its network namespace (--share net)"
                    .into(),
            ));
        }
        let exit_policy = opts
            .exit_policy
            .clone()
            .unwrap_or_else(|| "continue".into());
        if !["continue", "stop"].contains(&exit_policy.as_str()) {
            return Err(EngineError::Invalid(format!(
                "invalid pod exit policy {exit_policy:?}: expected continue or stop"
            )));
        }
        if let Some(h) = &opts.hostname {
            if h.is_empty()
                || h.len() > 64
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            {
                return Err(EngineError::Invalid(format!("invalid hostname {h:?}")));
            }
        }
        if !opts.no_infra && opts.infra_image.is_none() {
            pause_binary()?;
        }
        let id = containers::random_id();
        let generated = opts.name.is_none();
        let name = match &opts.name {
            Some(n) => {
                containers::validate_name(n)?;
                n.clone()
            }
            None => containers::random_name(&id),
        };
        // The infra's id is recorded with the pod: one transaction less,
        // and a create killed in between leaves a pod naming its infra.
        let infra_id = (!opts.no_infra).then(containers::random_id);
        let mut rec = PodRecord {
            id: id.clone(),
            name,
            created: containers::now_nanos(),
            hostname: opts.hostname.clone().unwrap_or_default(),
            labels: opts.labels.clone(),
            shared,
            infra_id: infra_id.clone(),
            exit_policy,
            create_command: opts.create_command.clone(),
        };
        let mut tries = 0;
        loop {
            let r = self.db.write(|tx| {
                if tx.id_by_name(Table::Containers, &rec.name)?.is_some() {
                    return Ok::<_, EngineError>(Inserted::Conflict);
                }
                Ok(tx.insert(Table::Pods, &id, Some(&rec.name), &rec)?)
            })?;
            if r == Inserted::Yes {
                break;
            }
            if !generated || tries == 8 {
                return Err(EngineError::PodExists(rec.name));
            }
            tries += 1;
            rec.name = format!("{}_{}", rec.name, &containers::random_id()[..6]);
        }
        let Some(infra_id) = infra_id else {
            return Ok(rec);
        };
        let config = ContainerConfig {
            infra: true,
            hostname: rec.effective_hostname(),
            network: opts.network.clone(),
            ports: opts.ports.clone(),
            add_hosts: opts.add_hosts.clone(),
            dns: opts.dns.clone(),
            stop_timeout: 10,
            log_driver: if opts.infra_image.is_some() {
                String::new()
            } else {
                "none".into()
            },
            ..ContainerConfig::default()
        };
        let infra = self.create_with_id(
            CreateOptions {
                image: opts.infra_image.clone().unwrap_or_default(),
                name: Some(
                    opts.infra_name
                        .clone()
                        .unwrap_or_else(|| format!("{}-infra", &id[..12])),
                ),
                command: opts.infra_command.clone().unwrap_or_default(),
                entrypoint: None,
                config,
                pull: opts.pull,
                pod: Some(id.clone()),
            },
            pull,
            infra_id,
        );
        if let Err(e) = infra {
            let _ = self.db.write(|tx| {
                tx.delete(Table::Pods, &id)?;
                Ok::<_, EngineError>(())
            });
            return Err(e);
        }
        Ok(rec)
    }

    /// Adjusts the configuration of a container joining `pod` (podman's
    /// rules): with the network shared it joins the infra's network
    /// namespace and may not publish ports or choose networks; with UTS
    /// shared it gets the pod's hostname and may not set its own.
    pub(crate) fn pod_member_config(pod: &PodRecord, cfg: &mut ContainerConfig) -> Result<()> {
        let Some(infra) = &pod.infra_id else {
            return Ok(());
        };
        if pod.shares("net") {
            if !cfg.ports.is_empty() {
                return Err(EngineError::Invalid(
                    "invalid config provided: published or exposed ports must be defined when the pod is created: network cannot be configured when it is shared with a pod".into(),
                ));
            }
            if cfg.network.is_some() {
                return Err(EngineError::Invalid(
                    "invalid config provided: networks must be defined when the pod is created: network cannot be configured when it is shared with a pod".into(),
                ));
            }
            cfg.network = Some(NetworkMode::Container(infra.clone()));
        }
        if pod.shares("uts") {
            if !cfg.hostname.is_empty() {
                return Err(EngineError::Invalid(
                    "invalid config provided: cannot set hostname when joining the pod UTS namespace: invalid configuration".into(),
                ));
            }
            cfg.hostname = pod.effective_hostname();
        }
        Ok(())
    }

    /// The pod of a member container and its infra record, when the
    /// container is in a pod with an infra and is not the infra itself.
    fn pod_infra_of(&self, rec: &ContainerRecord) -> Result<Option<(PodRecord, String)>> {
        let Some(pod_id) = &rec.pod else {
            return Ok(None);
        };
        if rec.config.infra {
            return Ok(None);
        }
        let pod: PodRecord = self
            .db
            .get(Table::Pods, pod_id)?
            .ok_or_else(|| EngineError::NoSuchPod(pod_id.clone()))?;
        Ok(pod.infra_id.clone().map(|i| (pod, i)))
    }

    /// Before a member starts: starts its pod's infra container unless it
    /// runs (podman does the same).
    pub(crate) fn pod_start_infra_for(&mut self, rec: &ContainerRecord) -> Result<()> {
        let Some((_, infra)) = self.pod_infra_of(rec)? else {
            return Ok(());
        };
        let i = self.refresh(self.lookup(&infra)?)?;
        match i.state.status {
            Status::Running | Status::Stopping => Ok(()),
            Status::Paused => Err(EngineError::Invalid(format!(
                "cannot start container {} in pod {}: the pod's infra container {} is paused",
                rec.name,
                rec.pod.as_deref().unwrap_or(""),
                i.name
            ))),
            _ => self.start(&infra, StartOptions::default()).map(|_| ()),
        }
    }

    /// The namespaces a starting member joins besides the network (which
    /// goes through `NetworkMode::Container`): `(type, path)` of the
    /// running infra's init.
    pub(crate) fn pod_joins(
        &mut self,
        rec: &ContainerRecord,
    ) -> Result<Vec<(&'static str, String)>> {
        let Some((pod, infra)) = self.pod_infra_of(rec)? else {
            return Ok(Vec::new());
        };
        let i = self.refresh(self.lookup(&infra)?)?;
        if !matches!(i.state.status, Status::Running | Status::Stopping)
            || !alive(i.state.pid, i.state.pid_start)
        {
            return Err(EngineError::Invalid(format!(
                "cannot join the namespaces of pod {}: its infra container {} is not running",
                pod.name, i.name
            )));
        }
        let mut out = Vec::new();
        for (ns, oci) in [
            ("ipc", "ipc"),
            ("uts", "uts"),
            ("pid", "pid"),
            ("cgroup", "cgroup"),
        ] {
            if pod.shares(ns) {
                out.push((oci, format!("/proc/{}/ns/{ns}", i.state.pid)));
            }
        }
        Ok(out)
    }

    /// Whether a member's `/etc/hostname` comes from the infra (UTS shared).
    pub(crate) fn pod_shares_uts(&self, rec: &ContainerRecord) -> bool {
        self.pod_infra_of(rec)
            .ok()
            .flatten()
            .is_some_and(|(p, _)| p.shares("uts"))
    }

    /// After a member's exit was cleaned up: a pod with exit policy
    /// `stop` has its infra stopped once no other member runs (best
    /// effort: the exit itself was handled).
    pub(crate) fn pod_exit_policy(&mut self, rec: &ContainerRecord) {
        let Some(pod_id) = &rec.pod else {
            return;
        };
        if rec.config.infra {
            return;
        }
        let Ok(Some(pod)) = self.db.get::<PodRecord>(Table::Pods, pod_id) else {
            return;
        };
        let (true, Some(infra)) = (pod.exit_policy == "stop", pod.infra_id.clone()) else {
            return;
        };
        let Ok(ctrs) = self.pod_containers(pod_id) else {
            return;
        };
        let others_run = ctrs.iter().any(|c| {
            !c.config.infra
                && c.id != rec.id
                && matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Stopping
                )
                && alive(c.state.pid, c.state.pid_start)
        });
        if !others_run {
            if let Err(e) = self.stop(&infra, None) {
                tracing::warn!(pod = %pod.name, "exit policy stop: stopping the infra: {e}");
            }
        }
    }

    /// Starts a pod: the infra first, then the members in creation order.
    /// Running containers are left alone.
    pub fn pod_start(&mut self, name: &str) -> Result<PodReport> {
        let pod = self.pod_lookup(name)?;
        let mut report = PodReport::new(&pod);
        for c in self.pod_containers_fresh(&pod.id)? {
            if matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Stopping
            ) {
                report.containers.push(c.id.clone());
                continue;
            }
            let r = self.start(&c.id, StartOptions::default()).map(|_| ());
            report.push(&c, r);
        }
        Ok(report)
    }

    /// Stops a pod: every member at once (stop signal, then SIGKILL after
    /// `timeout` seconds, default each container's stop timeout), then the
    /// infra container.
    pub fn pod_stop(&mut self, name: &str, timeout: Option<u32>) -> Result<PodReport> {
        let pod = self.pod_lookup(name)?;
        let mut report = PodReport::new(&pod);
        let ctrs = self.pod_containers_fresh(&pod.id)?;
        let (infra, members): (Vec<_>, Vec<_>) = ctrs.into_iter().partition(|c| c.config.infra);
        self.stop_together(&members, timeout, &mut report);
        self.stop_together(&infra, timeout, &mut report);
        Ok(report)
    }

    /// Stops containers together: signals all, waits for all (each up to
    /// its timeout), kills what is left, then cleans each up.
    fn stop_together(
        &mut self,
        ctrs: &[ContainerRecord],
        timeout: Option<u32>,
        report: &mut PodReport,
    ) {
        let mut live = Vec::new();
        for c in ctrs {
            if !matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Stopping
            ) {
                continue;
            }
            let rec = match self.modify(&c.id, |r| {
                r.state.stopped_by_user = true;
                Ok(())
            }) {
                Ok(r) => r,
                Err(e) => {
                    report.push(c, Err(e));
                    continue;
                }
            };
            if rec.state.status == Status::Paused {
                let _ = self.run_runtime(&rec, &["resume", &rec.id]);
            }
            let t = timeout.unwrap_or(rec.config.stop_timeout);
            let sig = containers::lifecycle::signal_number(&rec.config.stop_signal).unwrap_or(15);
            if t > 0 {
                let _ = self.run_runtime(&rec, &["kill", &rec.id, &sig.to_string()]);
            }
            live.push((rec, Instant::now() + Duration::from_secs(u64::from(t))));
        }
        for (rec, deadline) in &live {
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.wait_gone(rec, left) {
                tracing::info!(id = %rec.id, "pod stop: timed out: sending SIGKILL");
                let _ = self.run_runtime(rec, &["kill", "--all", &rec.id, "9"]);
                self.wait_gone(rec, Duration::from_secs(10));
            }
        }
        for (rec, _) in &live {
            self.wait_exit_file(rec, Duration::from_secs(2));
            let r = self.cleanup(&rec.id);
            report.push(rec, r);
        }
    }

    /// Stops then starts a pod.
    pub fn pod_restart(&mut self, name: &str, timeout: Option<u32>) -> Result<PodReport> {
        let stopped = self.pod_stop(name, timeout)?;
        if !stopped.errors.is_empty() {
            return Ok(stopped);
        }
        self.pod_start(name)
    }

    /// Sends a signal to every running container of the pod, members first.
    pub fn pod_kill(&mut self, name: &str, signal: &str) -> Result<PodReport> {
        let sig = containers::lifecycle::signal_number(signal)?;
        let pod = self.pod_lookup(name)?;
        let mut report = PodReport::new(&pod);
        let mut ctrs = self.pod_containers_fresh(&pod.id)?;
        ctrs.sort_by_key(|c| c.config.infra);
        let mut any = false;
        for c in &ctrs {
            if !matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Stopping
            ) {
                continue;
            }
            any = true;
            if sig == 9 || sig == 15 || sig == 2 {
                let _ = self.modify(&c.id, |r| {
                    r.state.stopped_by_user = true;
                    Ok(())
                });
            }
            let r = self.run_runtime(c, &["kill", &c.id, &sig.to_string()]);
            report.push(c, r);
        }
        if !any {
            return Err(EngineError::Invalid(format!(
                "pod {} has no running containers to kill: pod state improper",
                pod.name
            )));
        }
        Ok(report)
    }

    /// Pauses every running container of the pod (members first).
    pub fn pod_pause(&mut self, name: &str) -> Result<PodReport> {
        self.pod_each(name, Status::Running, |e, c| e.pause(&c.id).map(|_| ()))
    }

    /// Unpauses every paused container of the pod (infra first).
    pub fn pod_unpause(&mut self, name: &str) -> Result<PodReport> {
        self.pod_each(name, Status::Paused, |e, c| e.unpause(&c.id).map(|_| ()))
    }

    fn pod_each(
        &mut self,
        name: &str,
        want: Status,
        mut f: impl FnMut(&mut Self, &ContainerRecord) -> Result<()>,
    ) -> Result<PodReport> {
        let pod = self.pod_lookup(name)?;
        let mut report = PodReport::new(&pod);
        let mut ctrs = self.pod_containers_fresh(&pod.id)?;
        if want == Status::Running {
            ctrs.sort_by_key(|c| c.config.infra);
        }
        for c in ctrs.iter().filter(|c| c.state.status == want) {
            let r = f(self, c);
            report.push(c, r);
        }
        Ok(report)
    }

    /// Removes a pod: its members, then its infra container, then the pod.
    /// Without `force` a pod with running containers is refused (nothing
    /// is removed then).
    pub fn pod_remove(&mut self, name: &str, opts: &PodRemoveOptions) -> Result<PodReport> {
        let pod = self.pod_lookup(name)?;
        let mut report = PodReport::new(&pod);
        let ctrs = self.pod_containers_fresh(&pod.id)?;
        let live = |c: &ContainerRecord| {
            matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Stopping
            ) && alive(c.state.pid, c.state.pid_start)
        };
        if !opts.force && ctrs.iter().any(live) {
            let errs: Vec<String> = ctrs
                .iter()
                .filter(|c| live(c))
                .map(|c| {
                    format!(
                        "removing container {} from pod {}: cannot remove container {} as it is {} - running or paused containers cannot be removed without force: container state improper",
                        c.id, pod.id, c.id, c.state.status.as_str()
                    )
                })
                .collect();
            let msg = if errs.len() == 1 {
                errs[0].clone()
            } else {
                format!(
                    "{} errors occurred:\n{}",
                    errs.len(),
                    errs.iter()
                        .map(|e| format!("\t* {e}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            };
            return Err(EngineError::Invalid(msg));
        }
        let (infra, members): (Vec<_>, Vec<_>) = ctrs.into_iter().partition(|c| c.config.infra);
        if opts.force {
            match opts.timeout {
                Some(t) if t > 0 => {
                    let mut stop_report = PodReport::new(&pod);
                    self.stop_together(&members, Some(t), &mut stop_report);
                    self.stop_together(&infra, Some(t), &mut stop_report);
                }
                _ => {
                    // Kill every member at once, so their exits overlap.
                    for c in members.iter().filter(|c| live(c)) {
                        let _ = self.modify(&c.id, |r| {
                            r.state.stopped_by_user = true;
                            Ok(())
                        });
                        let _ = self.run_runtime(c, &["kill", "--all", &c.id, "9"]);
                    }
                }
            }
        }
        for c in &members {
            let r = match self.remove_container_of_pod(&c.id, opts.force, opts.volumes) {
                Err(EngineError::NoSuchContainer(_)) => Ok(()),
                r => r,
            };
            report.push(c, r);
        }
        if !report.errors.is_empty() {
            return Ok(report);
        }
        for c in &infra {
            let r = match self.remove_container_of_pod(&c.id, opts.force, opts.volumes) {
                Err(EngineError::NoSuchContainer(_)) => Ok(()),
                r => r,
            };
            report.push(c, r);
        }
        if !report.errors.is_empty() {
            return Ok(report);
        }
        // The pod goes only when no container refers to it any more (a
        // `create --pod` racing this removal either got in first and is
        // listed, or finds no pod).
        let id = pod.id.clone();
        let left = self.db.write(|tx| {
            let ctrs: Vec<ContainerRecord> = tx.all(Table::Containers)?;
            let left: Vec<String> = ctrs
                .into_iter()
                .filter(|c| c.pod.as_deref() == Some(id.as_str()))
                .map(|c| c.name)
                .collect();
            if left.is_empty() {
                tx.delete(Table::Pods, &id)?;
            }
            Ok::<_, EngineError>(left)
        })?;
        if !left.is_empty() {
            return Err(EngineError::Invalid(format!(
                "pod {} has containers that were added while it was being removed: {}",
                pod.name,
                left.join(", ")
            )));
        }
        Ok(report)
    }

    /// Removes a container of a pod, the infra included (which `remove`
    /// refuses while the pod exists).
    fn remove_container_of_pod(&mut self, id: &str, force: bool, volumes: bool) -> Result<()> {
        self.remove_impl(id, force, volumes, true).map(|_| ())
    }

    /// Removes every pod whose containers have all exited (podman's
    /// `Exited` and `Stopped` pods); returns their ids.
    pub fn pod_prune(&mut self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for p in self.pods()? {
            let state = self.pod_state(&p)?;
            if matches!(state, PodState::Exited | PodState::Stopped) {
                let r = self.pod_remove(&p.id, &PodRemoveOptions::default())?;
                if let Some(e) = r.errors.into_iter().next() {
                    return Err(e.error);
                }
                out.push(p.id);
            }
        }
        Ok(out)
    }

    /// Pods with their status and containers, filtered by podman's
    /// `pod ps --filter` keys `id` (prefix), `name` (substring), `label`,
    /// `status`, `ctr-names`, `ctr-ids`, `ctr-status`, `ctr-number`,
    /// `network`; newest first.
    pub fn pod_list(&mut self, filters: &[String]) -> Result<Vec<PodListEntry>> {
        let filters = crate::networks::parse_filters(
            filters,
            &[
                "id",
                "name",
                "label",
                "status",
                "ctr-names",
                "ctr-ids",
                "ctr-status",
                "ctr-number",
                "network",
            ],
        )?;
        let mut out = Vec::new();
        for pod in self.pods()? {
            let containers = self.pod_containers_fresh(&pod.id)?;
            let state = PodState::of(&containers);
            let networks = containers
                .iter()
                .find(|c| c.config.infra)
                .map(|c| match c.network() {
                    NetworkMode::Bridge(n) => n,
                    m => vec![m.display()],
                })
                .unwrap_or_default();
            let mut ok = true;
            for (k, vals) in &filters {
                ok &= match k.as_str() {
                    "id" => vals.iter().any(|v| pod.id.starts_with(v.as_str())),
                    "name" => vals.iter().any(|v| pod.name.contains(v.as_str())),
                    "label" => vals
                        .iter()
                        .all(|v| crate::networks::label_matches(&pod.labels, v)),
                    "status" => vals.iter().any(|v| v.eq_ignore_ascii_case(state.as_str())),
                    "ctr-names" => vals
                        .iter()
                        .any(|v| containers.iter().any(|c| c.name.contains(v.as_str()))),
                    "ctr-ids" => vals
                        .iter()
                        .any(|v| containers.iter().any(|c| c.id.starts_with(v.as_str()))),
                    "ctr-status" => vals
                        .iter()
                        .any(|v| containers.iter().any(|c| c.state.status.as_str() == v)),
                    "ctr-number" => vals
                        .iter()
                        .any(|v| v.parse::<usize>().is_ok_and(|n| n == containers.len())),
                    _ => vals.iter().any(|v| networks.contains(v)),
                };
            }
            if ok {
                out.push(PodListEntry {
                    pod,
                    state,
                    containers,
                    networks,
                });
            }
        }
        out.sort_by_key(|p| std::cmp::Reverse(p.pod.created));
        Ok(out)
    }

    /// podman's `pod inspect` object.
    pub fn pod_inspect(&mut self, name: &str) -> Result<Value> {
        let pod = self.pod_lookup(name)?;
        let ctrs = self.pod_containers_fresh(&pod.id)?;
        let state = PodState::of(&ctrs);
        let mut v = json!({
            "Id": pod.id,
            "Name": pod.name,
            "Created": containers::query::rfc3339(pod.created),
            "CreateCommand": pod.create_command,
            "ExitPolicy": pod.exit_policy,
            "State": state.as_str(),
            "Hostname": pod.hostname,
            "Labels": pod.labels,
            "CreateCgroup": false,
            "CgroupParent": "/barge",
            "CreateInfra": pod.infra_id.is_some(),
            "NumContainers": ctrs.len(),
        });
        if let Some(infra_id) = &pod.infra_id {
            v["InfraContainerID"] = json!(infra_id);
            if let Some(i) = ctrs.iter().find(|c| &c.id == infra_id) {
                let mut ports = serde_json::Map::new();
                for p in &i.config.ports {
                    let key = format!("{}/{}", p.container_port, p.protocol);
                    let entry = json!({"HostIp": p.host_ip, "HostPort": p.host_port.to_string()});
                    match ports.get_mut(&key).and_then(Value::as_array_mut) {
                        Some(a) => a.push(entry),
                        None => {
                            ports.insert(key, json!([entry]));
                        }
                    }
                }
                let net = i.network();
                v["InfraConfig"] = json!({
                    "PortBindings": ports,
                    "HostNetwork": net == NetworkMode::Host,
                    "StaticIP": "",
                    "StaticMAC": "",
                    "NoManageResolvConf": false,
                    "DNSServer": if i.config.dns.is_empty() { Value::Null } else { json!(i.config.dns) },
                    "DNSSearch": null,
                    "DNSOption": null,
                    "NoManageHosts": false,
                    "HostAdd": if i.config.add_hosts.is_empty() { Value::Null } else { json!(i.config.add_hosts) },
                    "Networks": match &net { NetworkMode::Bridge(n) => json!(n), _ => json!([]) },
                    "NetworkOptions": null,
                    "pid_ns": if pod.shares("pid") { "pod" } else { "private" },
                    "userns": "host",
                    "uts_ns": "private",
                    "InfraImage": i.image_name,
                    "InfraCommand": i.config.command,
                });
            }
            v["SharedNamespaces"] = json!(pod.shared);
        }
        v["Containers"] = json!(ctrs
            .iter()
            .map(|c| json!({"Id": c.id, "Name": c.name, "State": c.state.status.as_str()}))
            .collect::<Vec<_>>());
        Ok(v)
    }

    /// The processes of the pod's running containers (infra first):
    /// `(container name, rows)` with the rows of [`Engine::top`].
    #[allow(clippy::type_complexity)]
    pub fn pod_top(&mut self, name: &str) -> Result<Vec<(String, Vec<(i32, i32, u32, String)>)>> {
        let pod = self.pod_lookup(name)?;
        let mut out = Vec::new();
        for c in self.pod_containers_fresh(&pod.id)? {
            if matches!(c.state.status, Status::Running | Status::Paused) {
                out.push((c.name.clone(), self.top(&c.id)?));
            }
        }
        if out.is_empty() {
            return Err(EngineError::Invalid(format!(
                "pod {} is not running: no containers to get top of: pod state improper",
                pod.name
            )));
        }
        Ok(out)
    }

    /// One usage sample of every container of the pod (a container that is
    /// not running shows zeros).
    pub fn pod_stats(&mut self, name: &str) -> Result<Vec<StatsSample>> {
        let pod = self.pod_lookup(name)?;
        let mut out = Vec::new();
        for c in self.pod_containers_fresh(&pod.id)? {
            out.push(self.stats_sample(&c)?);
        }
        Ok(out)
    }

    /// The logs of the pod's members (not the infra), merged in time
    /// order, each line prefixed with its container's short id (or name
    /// with `names`) as podman does.
    pub fn pod_logs(
        &mut self,
        name: &str,
        opts: &PodLogsOptions,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> Result<()> {
        let pod = self.pod_lookup(name)?;
        let mut targets = Vec::new();
        let only = match &opts.container {
            Some(c) => {
                let r = self.lookup(c)?;
                if r.pod.as_deref() != Some(pod.id.as_str()) {
                    return Err(EngineError::Invalid(format!(
                        "container {} is not in pod {}",
                        r.name, pod.name
                    )));
                }
                Some(r.id)
            }
            None => None,
        };
        for c in self.pod_containers(&pod.id)? {
            if c.config.infra || only.as_ref().is_some_and(|o| o != &c.id) {
                continue;
            }
            if c.config.log_driver == "none" {
                continue;
            }
            let prefix = if opts.names {
                c.name.clone()
            } else {
                c.id[..12].to_string()
            };
            targets.push((prefix, c.id.clone()));
        }
        self.logs_many(&targets, &opts.logs, out, err)
    }
}

/// The size of a pod's shared `/dev/shm` (podman's default).
const SHM_OPTIONS: &std::ffi::CStr = c"mode=1777,size=65536k";

/// Unmounts a pod infra's `/dev/shm` tmpfs (`DIR/shm`), if mounted.
pub(crate) fn unmount_shm(container_dir: &Path) {
    let shm = container_dir.join("shm");
    if shm.exists() {
        let _ = rustix::mount::unmount(&shm, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Replaces the spec's `/dev/shm` by a bind mount of `shm`.
pub(crate) fn bind_shm(spec: &mut Value, shm: &Path) {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["destination"] != "/dev/shm");
        mounts.push(
            json!({"destination": "/dev/shm", "type": "bind", "source": shm,
                           "options": ["rbind", "nosuid", "noexec", "nodev"]}),
        );
    }
}

impl Engine {
    /// The `/dev/shm` of a container in a pod that shares IPC: for the
    /// infra a fresh tmpfs mounted at `ROOT/containers/ID/shm` (unmounted
    /// when it is released), for a member the infra's.
    pub(crate) fn pod_shm(&mut self, rec: &ContainerRecord) -> Result<Option<PathBuf>> {
        let Some(pod_id) = &rec.pod else {
            return Ok(None);
        };
        let Some(pod) = self.db.get::<PodRecord>(Table::Pods, pod_id)? else {
            return Ok(None);
        };
        if !pod.shares("ipc") {
            return Ok(None);
        }
        if !rec.config.infra {
            let Some(infra) = &pod.infra_id else {
                return Ok(None);
            };
            let shm = self.paths.container_dir(infra).join("shm");
            return Ok(shm.is_dir().then_some(shm));
        }
        let shm = self.paths.container_dir(&rec.id).join("shm");
        unmount_shm(&self.paths.container_dir(&rec.id));
        std::fs::create_dir_all(&shm)
            .map_err(EngineError::io(format!("creating {}", shm.display())))?;
        let flags = rustix::mount::MountFlags::NOSUID
            | rustix::mount::MountFlags::NODEV
            | rustix::mount::MountFlags::NOEXEC;
        rustix::mount::mount("shm", &shm, "tmpfs", flags, SHM_OPTIONS).map_err(|e| {
            EngineError::Io {
                context: format!("mounting the pod's /dev/shm at {}", shm.display()),
                source: e.into(),
            }
        })?;
        Ok(Some(shm))
    }
}

/// Prepares the root directory of an infra container without an image:
/// the mount points the runtime and the engine bind over, and `/pause`;
/// returns the extra bind mounts of the spec (the pause binary and, for a
/// dynamically linked one, its loader and libraries, all read-only).
pub(crate) fn infra_rootfs(rootfs: &Path) -> Result<Vec<Value>> {
    let pause = pause_binary()?;
    let mut files: Vec<(PathBuf, String)> = vec![(pause.clone(), PAUSE_PATH.to_string())];
    for lib in elf::runtime_files(&pause)? {
        let dest = lib.display().to_string();
        let src = std::fs::canonicalize(&lib).unwrap_or(lib);
        files.push((src, dest));
    }
    for d in ["proc", "dev", "sys", "etc", "tmp"] {
        let p = rootfs.join(d);
        std::fs::create_dir_all(&p)
            .map_err(EngineError::io(format!("creating {}", p.display())))?;
    }
    let mut mounts = Vec::new();
    let empty_files = ["etc/hosts", "etc/resolv.conf", "etc/hostname"]
        .iter()
        .map(|s| (*s).to_string())
        .chain(
            files
                .iter()
                .map(|(_, d)| d.trim_start_matches('/').to_string()),
        )
        .collect::<Vec<_>>();
    for rel in &empty_files {
        let p = rootfs.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(EngineError::io(format!("creating {}", parent.display())))?;
        }
        if !p.exists() {
            std::fs::write(&p, b"")
                .map_err(EngineError::io(format!("creating {}", p.display())))?;
        }
    }
    for (src, dest) in files {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src,
                           "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    Ok(mounts)
}

/// Just enough ELF reading to run a dynamically linked pause binary in an
/// empty root: its program interpreter and the libraries it needs.
mod elf {
    use crate::error::EngineError;
    use crate::Result;
    use std::path::{Path, PathBuf};

    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    const DT_STRTAB: u64 = 5;

    struct Info {
        interp: Option<PathBuf>,
        needed: Vec<String>,
    }

    fn u16_at(b: &[u8], o: usize) -> Option<u16> {
        Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
    }

    fn u32_at(b: &[u8], o: usize) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
    }

    fn u64_at(b: &[u8], o: usize) -> Option<u64> {
        Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
    }

    fn cstr_at(b: &[u8], o: usize) -> Option<String> {
        let rest = b.get(o..)?;
        let end = rest.iter().position(|c| *c == 0)?;
        String::from_utf8(rest[..end].to_vec()).ok()
    }

    /// Parses a 64-bit little-endian ELF file's interpreter and DT_NEEDED.
    fn parse(b: &[u8]) -> Option<Info> {
        if b.get(..4)? != b"\x7fELF" || *b.get(4)? != 2 || *b.get(5)? != 1 {
            return None;
        }
        let phoff = usize::try_from(u64_at(b, 0x20)?).ok()?;
        let phentsize = usize::from(u16_at(b, 0x36)?);
        let phnum = usize::from(u16_at(b, 0x38)?);
        let mut interp = None;
        let mut dynamic = None;
        let mut loads = Vec::new();
        for i in 0..phnum {
            let h = phoff + i * phentsize;
            let ty = u32_at(b, h)?;
            let off = usize::try_from(u64_at(b, h + 0x08)?).ok()?;
            let vaddr = u64_at(b, h + 0x10)?;
            let filesz = usize::try_from(u64_at(b, h + 0x20)?).ok()?;
            match ty {
                PT_INTERP => interp = cstr_at(b, off).map(PathBuf::from),
                PT_DYNAMIC => dynamic = Some((off, filesz)),
                PT_LOAD => loads.push((vaddr, off as u64, filesz as u64)),
                _ => {}
            }
        }
        let mut needed = Vec::new();
        if let Some((off, size)) = dynamic {
            let mut strtab = None;
            let mut names = Vec::new();
            let mut o = off;
            while o + 16 <= off + size {
                let tag = u64_at(b, o)?;
                let val = u64_at(b, o + 8)?;
                match tag {
                    0 => break,
                    DT_NEEDED => names.push(val),
                    DT_STRTAB => strtab = Some(val),
                    _ => {}
                }
                o += 16;
            }
            if let Some(addr) = strtab {
                let file_off = loads
                    .iter()
                    .find(|(v, _, sz)| addr >= *v && addr < v + sz)
                    .map(|(v, fo, _)| addr - v + fo)?;
                for n in names {
                    needed.push(cstr_at(b, usize::try_from(file_off + n).ok()?)?);
                }
            }
        }
        Some(Info { interp, needed })
    }

    fn read_head(path: &Path, n: u64) -> Result<Vec<u8>> {
        use std::io::Read as _;
        let mut v = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(n).read_to_end(&mut v))
            .map_err(EngineError::io(format!("reading {}", path.display())))?;
        Ok(v)
    }

    fn read(path: &Path) -> Result<Vec<u8>> {
        std::fs::read(path).map_err(EngineError::io(format!("reading {}", path.display())))
    }

    /// The files a binary needs at run time besides itself: nothing for a
    /// static one; its interpreter and the libraries it needs (found in the
    /// usual library directories, transitively) for a dynamic one.
    pub fn runtime_files(bin: &Path) -> Result<Vec<PathBuf>> {
        // The program headers are at the start: a static binary (no
        // interpreter) needs no more than that.
        let head = read_head(bin, 8192)?;
        if parse(&head).is_some_and(|i| i.interp.is_none()) {
            return Ok(Vec::new());
        }
        let data = read(bin)?;
        let info = parse(&data).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{}: not a 64-bit little-endian ELF executable",
                bin.display()
            ))
        })?;
        let Some(interp) = info.interp else {
            return Ok(Vec::new());
        };
        let arch = std::env::consts::ARCH;
        let dirs: Vec<PathBuf> = [
            format!("/lib/{arch}-linux-gnu"),
            format!("/usr/lib/{arch}-linux-gnu"),
            "/lib64".into(),
            "/usr/lib64".into(),
            "/lib".into(),
            "/usr/lib".into(),
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        let mut out = vec![interp.clone()];
        let mut todo = info.needed;
        let mut seen = std::collections::BTreeSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let found = dirs.iter().map(|d| d.join(&name)).find(|p| p.is_file());
            let Some(path) = found else {
                return Err(EngineError::Invalid(format!(
                    "{} needs {name}, which was not found in {}",
                    bin.display(),
                    dirs.iter()
                        .map(|d| d.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if std::fs::canonicalize(&path).ok() == std::fs::canonicalize(&interp).ok() {
                continue;
            }
            if let Some(i) = parse(&read(&path)?) {
                todo.extend(i.needed);
            }
            out.push(path);
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn finds_the_loader_of_a_dynamic_binary() {
            // The test binary itself is dynamically linked (default target).
            let exe = std::env::current_exe().expect("current exe");
            let data = std::fs::read(&exe).expect("read");
            let info = super::parse(&data).expect("an ELF file");
            if info.interp.is_some() {
                assert!(info.needed.iter().any(|n| n.starts_with("libc.so")));
                let files = super::runtime_files(&exe).expect("files");
                assert!(files
                    .iter()
                    .any(|f| f.to_string_lossy().contains("libc.so")));
            }
            assert!(super::parse(b"#!/bin/sh\n").is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_lists() {
        assert_eq!(parse_share("net,ipc").unwrap(), ["ipc", "net"]);
        assert_eq!(parse_share("+pid").unwrap(), ["ipc", "net", "pid", "uts"]);
        assert!(parse_share("none").unwrap().is_empty());
        assert!(parse_share("").unwrap().is_empty());
        let e = parse_share("net,foo").unwrap_err().to_string();
        assert!(e.contains("invalid kernel namespace to share: foo"), "{e}");
    }

    fn ctr(status: Status) -> ContainerRecord {
        ContainerRecord {
            id: "a".repeat(64),
            name: "n".into(),
            image_id: String::new(),
            image_name: String::new(),
            created: 0,
            config: ContainerConfig::default(),
            state: containers::State {
                status,
                ..containers::State::default()
            },
            pod: None,
        }
    }

    #[test]
    fn pod_states() {
        use Status::{Created, Exited, Paused, Running};
        let of = |s: &[Status]| PodState::of(&s.iter().map(|x| ctr(*x)).collect::<Vec<_>>());
        assert_eq!(of(&[]), PodState::Created);
        assert_eq!(of(&[Created, Created]), PodState::Created);
        assert_eq!(of(&[Running, Running]), PodState::Running);
        assert_eq!(of(&[Running, Created]), PodState::Degraded);
        assert_eq!(of(&[Paused, Paused]), PodState::Paused);
        assert_eq!(of(&[Exited, Exited]), PodState::Exited);
        assert_eq!(of(&[Exited, Created]), PodState::Stopped);
    }
}
