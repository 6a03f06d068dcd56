//! Containers: records in the state database, their OCI bundle, and the
//! lifecycle (create, start, stop, kill, remove, wait, exec, logs…).
//!
//! A container's files live in `ROOT/containers/ID/` (bundle
//! `config.json`, overlay `upper/`, `work/`, mountpoint `rootfs/`, `hosts`,
//! `resolv.conf`, `hostname`, the log) and its runtime files in
//! `RUNROOT/containers/ID/` (the monitor's attach socket, exit file and
//! pid files). The OCI runtime is only ever reached through its CLI.

pub mod files;
pub mod health;
pub mod intercept;
pub mod lifecycle;
pub mod monitor;
pub mod networks;
pub mod query;
pub mod restart;
pub mod spec;
pub mod stats;
pub mod tty;
pub mod userns;

use crate::db::{Db, Inserted, Table};
use crate::error::EngineError;
use crate::images;
use crate::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the engine keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Persistent root (image store, database, container files).
    pub root: PathBuf,
    /// Volatile root (monitor sockets, runtime state, netns mounts).
    pub runroot: PathBuf,
}

impl Paths {
    /// Defaults: `/var/lib/barge/storage` and `/run/barge` for root; for
    /// a rootless user `~/.local/share/barge/storage` and the user's
    /// run directory (see [`crate::rootless`]).
    pub fn new(root: Option<PathBuf>, runroot: Option<PathBuf>) -> Self {
        let root = root.unwrap_or_else(crate::rootless::default_root);
        let runroot = runroot.unwrap_or_else(|| match crate::rootless::rootless_uid() {
            Some(uid) => crate::rootless::run_dir(uid),
            None if root == crate::rootless::default_root() => PathBuf::from("/run/barge"),
            None => root.join("run"),
        });
        Self { root, runroot }
    }

    /// The state database.
    pub fn db(&self) -> PathBuf {
        self.root.join("barge.db")
    }

    /// A container's persistent directory.
    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// A container's volatile directory (the monitor's).
    pub fn container_run_dir(&self, id: &str) -> PathBuf {
        self.runroot.join("containers").join(id)
    }

    /// The OCI runtime's `--root`.
    pub fn runtime_root(&self) -> PathBuf {
        self.runroot.join("runtime")
    }

    /// Where network namespaces are bind-mounted.
    pub fn netns_dir(&self) -> PathBuf {
        self.runroot.join("netns")
    }

    /// Where named volumes live.
    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }
}

/// The engine: paths, the database and the image store.
pub struct Engine {
    /// Where things are.
    pub paths: Paths,
    /// The state database.
    pub db: Db,
    /// The image store.
    pub store: barge_image::Store,
    /// The default OCI runtime binary.
    pub runtime: PathBuf,
    /// The monitor binary.
    pub monitor: PathBuf,
    /// `containers.conf` defaults for new containers.
    pub config: crate::config::ContainersConf,
}

/// Finds a helper binary: beside the running executable, else on `PATH`.
pub fn find_binary(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from(name)
}

impl Engine {
    /// Opens the engine's state under `paths`.
    pub fn open(paths: Paths) -> Result<Self> {
        // The store creates the root, mode 0700: the database holds the
        // containers' configurations.
        let store = barge_image::Store::open(&paths.root)?;
        let db = Db::open(&paths.db())?;
        let runtime = std::env::var_os("BARGE_RUNTIME")
            .filter(|v| !v.is_empty())
            .map_or_else(|| find_binary("barge-runtime"), PathBuf::from);
        let monitor = std::env::var_os("BARGE_MONITOR")
            .filter(|v| !v.is_empty())
            .map_or_else(|| find_binary("barge-monitor"), PathBuf::from);
        Ok(Self {
            paths,
            db,
            store,
            runtime,
            monitor,
            config: crate::config::ContainersConf::load()?,
        })
    }
}

/// How a container is networked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A network namespace attached to these bridge networks.
    Bridge(Vec<String>),
    /// A network namespace with only loopback.
    None,
    /// The host's network namespace.
    Host,
    /// Another container's network namespace.
    Container(String),
    /// A network namespace connected to the host by `pasta` (user-mode
    /// networking, the passt package); the options go to pasta as given.
    Pasta(Vec<String>),
    /// A network namespace connected to the host by `slirp4netns`; its
    /// options (`mtu=…`, `cidr=…`, …), see [`crate::usernet`].
    Slirp4netns(Vec<String>),
}

impl NetworkMode {
    /// Parses `--network`.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "" | "bridge" | "default" => Self::Bridge(vec![crate::DEFAULT_NETWORK.into()]),
            "none" => Self::None,
            "host" => Self::Host,
            s if s.starts_with("container:") => {
                let c = &s["container:".len()..];
                if c.is_empty() {
                    return Err(EngineError::Invalid(
                        "--network container: needs a container name or id".into(),
                    ));
                }
                Self::Container(c.to_string())
            }
            "pasta" => Self::Pasta(Vec::new()),
            "slirp4netns" => Self::Slirp4netns(Vec::new()),
            s if s.starts_with("pasta:") => {
                Self::Pasta(crate::usernet::split_options(&s["pasta:".len()..]))
            }
            s if s.starts_with("slirp4netns:") => {
                let opts = crate::usernet::split_options(&s["slirp4netns:".len()..]);
                crate::usernet::SlirpOptions::parse(&opts)?;
                Self::Slirp4netns(opts)
            }
            s if s.starts_with("ns:") => {
                return Err(EngineError::NotSupported(format!("--network {s}")))
            }
            s => Self::Bridge(s.split(',').map(str::to_string).collect()),
        })
    }

    /// The name podman shows.
    pub fn display(&self) -> String {
        match self {
            Self::Bridge(n) => n.join(","),
            Self::None => "none".into(),
            Self::Host => "host".into(),
            Self::Container(c) => format!("container:{c}"),
            Self::Pasta(_) => "pasta".into(),
            Self::Slirp4netns(_) => "slirp4netns".into(),
        }
    }

    /// Whether the container gets a network namespace of its own that
    /// barge creates under [`Paths::netns_dir`] (bridge, pasta, slirp4netns).
    pub fn owns_netns(&self) -> bool {
        matches!(
            self,
            Self::Bridge(_) | Self::Pasta(_) | Self::Slirp4netns(_)
        )
    }
}

/// A mount from `-v`, `--mount` or `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum MountSpec {
    /// A host path.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path in the container.
        destination: String,
        /// Read-only.
        readonly: bool,
        /// Extra mount options (propagation, …).
        options: Vec<String>,
    },
    /// A named volume.
    Volume {
        /// The volume's name.
        name: String,
        /// Path in the container.
        destination: String,
        /// Read-only.
        readonly: bool,
    },
    /// A tmpfs.
    Tmpfs {
        /// Path in the container.
        destination: String,
        /// Mount options.
        options: Vec<String>,
    },
}

impl MountSpec {
    /// Path in the container.
    pub fn destination(&self) -> &str {
        match self {
            Self::Bind { destination, .. }
            | Self::Volume { destination, .. }
            | Self::Tmpfs { destination, .. } => destination,
        }
    }

    /// Parses `-v SRC:DST[:OPTS]` (a `SRC` not starting with `/` or `.` is
    /// a named volume; a lone `DST` is an anonymous volume).
    pub fn parse_volume(s: &str) -> Result<Self> {
        let bad =
            |why: &str| EngineError::Invalid(format!("invalid volume specification {s:?}: {why}"));
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [dst] => ("", *dst, ""),
            [src, dst] => (*src, *dst, ""),
            [src, dst, opts] => (*src, *dst, *opts),
            _ => return Err(bad("too many colons")),
        };
        // `-v :/x` is not an anonymous volume (podman: "host directory
        // cannot be empty").
        if parts.len() > 1 && src.is_empty() {
            return Err(bad("host directory cannot be empty"));
        }
        if dst.is_empty() || !dst.starts_with('/') {
            return Err(bad("the container path must be absolute"));
        }
        let mut readonly = false;
        let mut options = Vec::new();
        for o in opts.split(',').filter(|o| !o.is_empty()) {
            match o {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "z" | "Z" | "U" | "O" | "copy" | "nocopy" => {}
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "nosuid"
                | "nodev" | "noexec" | "suid" | "dev" | "exec" => options.push(o.to_string()),
                o => return Err(bad(&format!("unknown option {o:?}"))),
            }
        }
        if src.is_empty() {
            return Ok(Self::Volume {
                name: String::new(),
                destination: dst.to_string(),
                readonly,
            });
        }
        if src.starts_with('/') || src.starts_with('.') {
            let source = std::path::absolute(src).map_err(|e| bad(&e.to_string()))?;
            return Ok(Self::Bind {
                source,
                destination: dst.to_string(),
                readonly,
                options,
            });
        }
        validate_name(src)
            .map_err(|_| bad("volume names may contain [a-zA-Z0-9][a-zA-Z0-9_.-]"))?;
        Ok(Self::Volume {
            name: src.to_string(),
            destination: dst.to_string(),
            readonly,
        })
    }

    /// Parses `--mount type=bind,src=…,dst=…[,ro]`.
    pub fn parse_mount(s: &str) -> Result<Self> {
        let bad = |why: &str| EngineError::Invalid(format!("invalid mount {s:?}: {why}"));
        let mut ty = "volume";
        let mut src = String::new();
        let mut dst = String::new();
        let mut readonly = false;
        let mut options = Vec::new();
        for kv in s.split(',') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            match k {
                "type" => ty = v,
                "source" | "src" => src = v.to_string(),
                "destination" | "dst" | "target" => dst = v.to_string(),
                "ro" | "readonly" => readonly = v.is_empty() || v == "true" || v == "1",
                "rw" => readonly = false,
                "bind-propagation" => options.push(v.to_string()),
                "tmpfs-size" => options.push(format!("size={v}")),
                "tmpfs-mode" => options.push(format!("mode={v}")),
                "z" | "Z" | "relabel" | "U" | "consistency" => {}
                k => return Err(bad(&format!("unknown option {k:?}"))),
            }
        }
        if !dst.starts_with('/') {
            return Err(bad("target must be an absolute path"));
        }
        match ty {
            "bind" => {
                if src.is_empty() {
                    return Err(bad("bind mounts need a source"));
                }
                Ok(Self::Bind {
                    source: std::path::absolute(&src).map_err(|e| bad(&e.to_string()))?,
                    destination: dst,
                    readonly,
                    options,
                })
            }
            "volume" => Ok(Self::Volume {
                name: src,
                destination: dst,
                readonly,
            }),
            "tmpfs" => {
                if readonly {
                    options.push("ro".into());
                }
                Ok(Self::Tmpfs {
                    destination: dst,
                    options,
                })
            }
            t => Err(bad(&format!("unknown type {t:?}"))),
        }
    }

    /// Parses `--tmpfs DST[:OPTS]`.
    pub fn parse_tmpfs(s: &str) -> Result<Self> {
        let (dst, opts) = s.split_once(':').unwrap_or((s, ""));
        if !dst.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid tmpfs {s:?}: the container path must be absolute"
            )));
        }
        Ok(Self::Tmpfs {
            destination: dst.to_string(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// A resource limit from `--ulimit NAME=SOFT[:HARD]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// e.g. `nofile`.
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

impl Ulimit {
    /// Parses `NAME=SOFT[:HARD]` (`-1` = unlimited).
    pub fn parse(s: &str) -> Result<Self> {
        let bad =
            || EngineError::Invalid(format!("invalid ulimit {s:?}: expected NAME=SOFT[:HARD]"));
        let (name, v) = s.split_once('=').ok_or_else(bad)?;
        let num = |x: &str| -> Result<u64> {
            if x == "-1" || x == "unlimited" {
                Ok(u64::MAX)
            } else {
                x.parse().map_err(|_| bad())
            }
        };
        let (soft, hard) = match v.split_once(':') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(v)?, num(v)?),
        };
        const KNOWN: &[&str] = &[
            "core",
            "cpu",
            "data",
            "fsize",
            "locks",
            "memlock",
            "msgqueue",
            "nice",
            "nofile",
            "nproc",
            "rss",
            "rtprio",
            "rttime",
            "sigpending",
            "stack",
            "as",
        ];
        if !KNOWN.contains(&name) {
            return Err(EngineError::Invalid(format!(
                "invalid ulimit type {name:?}"
            )));
        }
        if soft > hard {
            return Err(EngineError::Invalid(format!(
                "ulimit {name}: soft limit {soft} is above the hard limit {hard}"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

/// A published port (`-p`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to bind (empty: all).
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Container port.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// How many consecutive ports (1 for a single port).
    #[serde(default)]
    pub range: u16,
}

/// Restart policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `no`, `always`, `on-failure`, `unless-stopped`.
    pub name: String,
    /// For `on-failure`: how many times.
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Parses `--restart`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, n) = s.split_once(':').unwrap_or((s, ""));
        if !["no", "always", "on-failure", "unless-stopped"].contains(&name) {
            return Err(EngineError::Invalid(format!(
                "invalid restart policy {s:?}: expected no, always, on-failure[:N] or unless-stopped"
            )));
        }
        let max_retries = if n.is_empty() {
            0
        } else if name == "on-failure" {
            n.parse()
                .map_err(|_| EngineError::Invalid(format!("invalid restart count in {s:?}")))?
        } else {
            return Err(EngineError::Invalid(format!(
                "restart policy {name} takes no count"
            )));
        };
        Ok(Self {
            name: name.to_string(),
            max_retries,
        })
    }
}

/// Everything `create` was asked for, with the image's defaults applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// The full command (entrypoint + cmd).
    pub command: Vec<String>,
    /// The entrypoint used.
    pub entrypoint: Vec<String>,
    /// The cmd used.
    pub cmd: Vec<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Working directory.
    pub workdir: String,
    /// `USER[:GROUP]` as given.
    pub user: String,
    /// Hostname (default: the short id).
    pub hostname: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Stop signal name.
    pub stop_signal: String,
    /// Seconds to wait after the stop signal.
    pub stop_timeout: u32,
    /// Mounts.
    pub mounts: Vec<MountSpec>,
    /// Network mode.
    pub network: Option<NetworkMode>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// `--add-host` entries (`name:ip`).
    pub add_hosts: Vec<String>,
    /// `--dns` servers.
    pub dns: Vec<String>,
    /// Capabilities added.
    pub cap_add: Vec<String>,
    /// Capabilities dropped.
    pub cap_drop: Vec<String>,
    /// `--privileged`.
    pub privileged: bool,
    /// Read-only root filesystem.
    pub read_only: bool,
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
    /// Seccomp: empty = default, `unconfined`, or a profile path.
    pub seccomp: String,
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// CPUs.
    pub cpus: Option<f64>,
    /// Pids limit.
    pub pids_limit: Option<i64>,
    /// Ulimits.
    pub ulimits: Vec<Ulimit>,
    /// Run an init as PID 1.
    pub init: bool,
    /// Restart policy.
    pub restart: RestartPolicy,
    /// Health check command (`CMD-SHELL` string).
    pub health_cmd: Option<String>,
    /// Health check timing (`--health-interval`, …).
    pub health: Option<health::HealthSettings>,
    /// Log driver: `k8s-file`, `json-file` or `none`.
    pub log_driver: String,
    /// The OCI runtime (name or path).
    pub runtime: String,
    /// Remove after exit.
    pub auto_remove: bool,
    /// Image volumes (anonymous volumes created from the image config).
    pub image_volumes: Vec<String>,
    /// The infra container of a pod (holds the pod's namespaces; created
    /// and removed with the pod, see [`crate::pods`]).
    pub infra: bool,
    /// `--uidmap` ranges (a user namespace when not empty).
    pub uidmap: Vec<intercept::IdMapping>,
    /// `--gidmap` ranges (default: the uid ranges).
    pub gidmap: Vec<intercept::IdMapping>,
    /// `--security-opt seccomp-intercept…`: `barge.syscalls.intercept.*`
    /// annotations (docs/supervisor.md).
    pub intercept: BTreeMap<String, String>,
}

impl ContainerConfig {
    fn network(&self) -> NetworkMode {
        self.network
            .clone()
            .unwrap_or_else(|| NetworkMode::Bridge(vec![crate::DEFAULT_NETWORK.into()]))
    }
}

/// A container's status, podman's names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started (or prepared but not running).
    #[default]
    Created,
    /// Running.
    Running,
    /// Frozen.
    Paused,
    /// Stopping: the stop signal was sent.
    Stopping,
    /// Exited; the exit code is known.
    Exited,
    /// Being removed.
    Removing,
}

impl Status {
    /// podman's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopping => "stopping",
            Self::Exited => "exited",
            Self::Removing => "removing",
        }
    }
}

/// The live part of a container's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Status.
    pub status: Status,
    /// PID of the container's init while running.
    pub pid: i32,
    /// Its start time in clock ticks (`/proc/PID/stat` field 22), to tell a
    /// reused pid from ours.
    pub pid_start: u64,
    /// PID of the monitor.
    pub monitor_pid: i32,
    /// Exit code of the last run.
    pub exit_code: i32,
    /// Started (unix nanoseconds).
    pub started_at: i64,
    /// Finished (unix nanoseconds).
    pub finished_at: i64,
    /// The OOM killer killed it.
    pub oom_killed: bool,
    /// The last start error.
    pub error: String,
    /// Whether runtime resources (mount, network, runtime state) are set up.
    pub prepared: bool,
    /// The stop was requested by the user (for restart policies).
    pub stopped_by_user: bool,
    /// Restart count.
    pub restart_count: u32,
    /// Network attachments: network → (ip, mac).
    pub networks: BTreeMap<String, Attachment>,
    /// Health status, when a health check is configured.
    pub health: String,
}

/// A container's address on a network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// IPv4 address.
    pub ip: String,
    /// Prefix length.
    pub prefix_len: u8,
    /// Gateway.
    pub gateway: String,
    /// MAC address.
    pub mac: String,
    /// The interface inside the container (`eth0`; empty in records
    /// written before it was kept: `eth0`).
    #[serde(default)]
    pub ifname: String,
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Image id (`sha256:…`).
    pub image_id: String,
    /// The image name as given.
    pub image_name: String,
    /// Created (unix nanoseconds).
    pub created: i64,
    /// Options.
    pub config: ContainerConfig,
    /// Live state.
    #[serde(default)]
    pub state: State,
    /// Pod id, when in a pod.
    #[serde(default)]
    pub pod: Option<String>,
}

impl ContainerRecord {
    /// Hostname: as configured, else the short id.
    pub fn hostname(&self) -> String {
        if self.config.hostname.is_empty() {
            self.id[..12].to_string()
        } else {
            self.config.hostname.clone()
        }
    }

    /// The network mode.
    pub fn network(&self) -> NetworkMode {
        self.config.network()
    }
}

/// Unix time in nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Container and volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 253;
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "invalid name {name:?}: names must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )))
    }
}

/// A random 64-hex-digit id.
pub fn random_id() -> String {
    use std::io::Read as _;
    let mut buf = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if ok.is_err() {
        // Fall back on time and pid; ids only need to be unique.
        let seed = format!("{}-{}", now_nanos(), std::process::id());
        return barge_image::Digest::of(seed.as_bytes()).hex().to_string();
    }
    buf.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// podman-like random names: `adjective_noun`, from `seed` (hex digits).
pub fn random_name(seed: &str) -> String {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "merry",
        "nimble", "proud", "quiet", "rapid", "sharp", "tidy", "vivid", "witty", "young", "zen",
        "agile", "bold", "bright", "clever", "cosmic", "crisp", "daring", "dreamy", "elated",
        "epic", "fervent", "festive", "fluffy", "frosty", "funny", "gifted", "gracious", "hardy",
        "hopeful", "humble", "jovial", "kind", "lively", "loyal", "lucky", "mellow", "modest",
        "noble", "peppy", "plucky", "polite", "quirky", "serene", "shiny", "silly", "snappy",
        "sunny", "swift", "trusty", "upbeat", "vibrant", "warm", "wise", "zesty",
    ];
    const NOUN: &[&str] = &[
        "otter", "heron", "lynx", "panda", "raven", "salmon", "tapir", "walrus", "yak", "zebra",
        "badger", "cobra", "dingo", "eagle", "ferret", "gecko", "ibis", "koala", "llama", "moose",
        "bison", "camel", "crane", "dolphin", "falcon", "gazelle", "hamster", "hedgehog", "jaguar",
        "kestrel", "lemur", "magpie", "marmot", "narwhal", "ocelot", "osprey", "parrot", "pelican",
        "penguin", "puffin", "quokka", "rabbit", "seal", "sparrow", "squid", "stork", "swan",
        "tiger", "toucan", "turtle", "viper", "vole", "weasel", "wombat", "wren", "beaver",
        "coyote", "donkey", "finch", "gopher",
    ];
    let n = u64::from_str_radix(&seed[..seed.len().min(15)], 16).unwrap_or(0);
    format!(
        "{}_{}",
        ADJ[(n % ADJ.len() as u64) as usize],
        NOUN[((n / ADJ.len() as u64) % NOUN.len() as u64) as usize]
    )
}

/// Options of [`create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Image reference.
    pub image: String,
    /// Name (default: random).
    pub name: Option<String>,
    /// Command after the image (overrides the image's Cmd).
    pub command: Vec<String>,
    /// `--entrypoint` (`Some("")` clears it).
    pub entrypoint: Option<String>,
    /// The rest of the configuration (command/env/workdir are merged with
    /// the image's).
    pub config: ContainerConfig,
    /// `--env-file` contents already parsed into `config.env`.
    pub pull: PullPolicy,
    /// Pod to join.
    pub pod: Option<String>,
}

/// When `create` pulls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull if missing.
    #[default]
    Missing,
    /// Always pull.
    Always,
    /// Never pull.
    Never,
}

/// The subset of an image config that containers use.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ImageRuntimeConfig {
    pub(crate) env: Option<Vec<String>>,
    pub(crate) cmd: Option<Vec<String>>,
    pub(crate) entrypoint: Option<Vec<String>>,
    pub(crate) working_dir: Option<String>,
    pub(crate) user: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
    volumes: Option<BTreeMap<String, Value>>,
}

pub(crate) fn image_runtime_config(
    store: &barge_image::Store,
    id: &barge_image::Digest,
) -> Result<ImageRuntimeConfig> {
    let bytes = store.read_blob(id, barge_image::store::MAX_METADATA_SIZE)?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::Invalid(format!("image config {id}: {e}")))?;
    Ok(serde_json::from_value(v.get("config").cloned().unwrap_or(Value::Null)).unwrap_or_default())
}

/// Merges an env list: later `KEY=` entries replace earlier ones.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(over) {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        out.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        out.push(e.clone());
    }
    out
}

impl Engine {
    /// Resolves a container by full id, unique id prefix or name.
    pub fn lookup(&self, name_or_id: &str) -> Result<ContainerRecord> {
        if let Some(id) = self.db.id_by_name(Table::Containers, name_or_id)? {
            if let Some(r) = self.db.get(Table::Containers, &id)? {
                return Ok(r);
            }
        }
        let is_hex = !name_or_id.is_empty() && name_or_id.chars().all(|c| c.is_ascii_hexdigit());
        if is_hex {
            let ids = self.db.ids_with_prefix(Table::Containers, name_or_id)?;
            match ids.as_slice() {
                [one] => {
                    if let Some(r) = self.db.get(Table::Containers, one)? {
                        return Ok(r);
                    }
                }
                [] => {}
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "more than one result for container {name_or_id:?}: use a longer id"
                    )))
                }
            }
        }
        Err(EngineError::NoSuchContainer(name_or_id.to_string()))
    }

    /// Every container.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        Ok(self.db.all(Table::Containers)?)
    }

    /// Stores a changed record.
    pub fn save(&mut self, rec: &ContainerRecord) -> Result<()> {
        let r = self
            .db
            .write(|tx| tx.update(Table::Containers, &rec.id, Some(&rec.name), rec))?;
        if r == Inserted::Conflict {
            return Err(EngineError::NameInUse(rec.name.clone()));
        }
        Ok(())
    }

    /// Updates a record in one transaction: reads the current version,
    /// applies `f` and writes it back. Returns the new record.
    pub fn modify(
        &mut self,
        id: &str,
        f: impl FnOnce(&mut ContainerRecord) -> Result<()>,
    ) -> Result<ContainerRecord> {
        self.db.write(|tx| {
            let mut rec: ContainerRecord = tx
                .get(Table::Containers, id)?
                .ok_or_else(|| EngineError::NoSuchContainer(id.to_string()))?;
            f(&mut rec)?;
            tx.update(Table::Containers, id, Some(&rec.name), &rec)?;
            Ok(rec)
        })
    }

    /// Creates a container (a record and its directory; nothing runs).
    ///
    /// With `opts.pod` the container joins that pod (name or id; `new:NAME`
    /// creates the pod first, moving the container's published ports and
    /// network to it, and removes it again if the container cannot be
    /// created): see [`crate::pods`].
    pub fn create(
        &mut self,
        mut opts: CreateOptions,
        pull: impl FnOnce(&barge_image::Store, &str) -> Result<()>,
    ) -> Result<ContainerRecord> {
        let Some(pod_ref) = opts.pod.clone().filter(|_| !opts.config.infra) else {
            return self.create_one(opts, pull);
        };
        let (pod, new_pod) = match pod_ref.strip_prefix("new:") {
            Some(name) => {
                let pod = self.pod_create(
                    crate::pods::PodCreateOptions {
                        name: Some(name.to_string()),
                        ports: std::mem::take(&mut opts.config.ports),
                        network: opts.config.network.take(),
                        ..crate::pods::PodCreateOptions::default()
                    },
                    |_, _| Ok(()),
                )?;
                (pod, true)
            }
            None => (self.pod_lookup(&pod_ref)?, false),
        };
        let created = Self::pod_member_config(&pod, &mut opts.config).and_then(|()| {
            opts.pod = Some(pod.id.clone());
            self.create_one(opts, pull)
        });
        if created.is_err() && new_pod {
            let _ = self.pod_remove(&pod.id, &crate::pods::PodRemoveOptions::default());
        }
        created
    }

    pub(crate) fn create_one(
        &mut self,
        opts: CreateOptions,
        pull: impl FnOnce(&barge_image::Store, &str) -> Result<()>,
    ) -> Result<ContainerRecord> {
        self.create_with_id(opts, pull, random_id())
    }

    /// [`Self::create_one`] with the id chosen by the caller (a pod
    /// records its infra's id before creating it).
    pub(crate) fn create_with_id(
        &mut self,
        opts: CreateOptions,
        pull: impl FnOnce(&barge_image::Store, &str) -> Result<()>,
        id: String,
    ) -> Result<ContainerRecord> {
        // A runtime that does not exist fails here, not at start with a
        // container left behind (podman).
        let runtime = &opts.config.runtime;
        if !matches!(runtime.as_str(), "" | "barge-runtime" | "barge") {
            let path = if runtime.contains('/') {
                PathBuf::from(runtime)
            } else {
                find_binary(runtime)
            };
            let executable = std::fs::metadata(&path).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt as _;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            });
            if !executable {
                return Err(EngineError::Invalid(format!(
                    "no valid executable found for OCI runtime {runtime}: {}",
                    path.display()
                )));
            }
        }
        // A pod's infra container without an image runs our pause binary.
        let (image_id, image_name, icfg) = if opts.config.infra && opts.image.is_empty() {
            let icfg = ImageRuntimeConfig {
                cmd: Some(vec![crate::pods::PAUSE_PATH.to_string()]),
                ..ImageRuntimeConfig::default()
            };
            (String::new(), String::new(), icfg)
        } else {
            let image = match (images::resolve(&self.store, &opts.image), opts.pull) {
                (Ok(i), PullPolicy::Missing | PullPolicy::Never) => i,
                (Err(e), PullPolicy::Never) => return Err(e),
                (Err(e), PullPolicy::Missing) if !e.is_not_found() => return Err(e),
                _ => {
                    pull(&self.store, &opts.image)?;
                    images::resolve(&self.store, &opts.image)?
                }
            };
            let icfg = image_runtime_config(&self.store, &image.id)?;
            (
                image.id.to_string(),
                images::display_name(&image, &opts.image),
                icfg,
            )
        };
        let mut config = opts.config;
        self.config.apply(&mut config);
        config.entrypoint = match &opts.entrypoint {
            Some(e) if e.is_empty() => Vec::new(),
            Some(e) => {
                if e.trim_start().starts_with('[') {
                    serde_json::from_str(e).map_err(|err| {
                        EngineError::Invalid(format!("invalid --entrypoint {e:?}: {err}"))
                    })?
                } else {
                    vec![e.clone()]
                }
            }
            None => icfg.entrypoint.clone().unwrap_or_default(),
        };
        config.cmd = if !opts.command.is_empty() {
            opts.command.clone()
        } else if opts.entrypoint.is_some() {
            Vec::new()
        } else {
            icfg.cmd.clone().unwrap_or_default()
        };
        config.command = config
            .entrypoint
            .iter()
            .chain(&config.cmd)
            .cloned()
            .collect();
        if config.command.is_empty() {
            return Err(EngineError::Invalid(
                "no command or entrypoint provided, and no CMD or ENTRYPOINT from image".into(),
            ));
        }
        config.env = merge_env(
            &merge_env(&self.config.env, &icfg.env.clone().unwrap_or_default()),
            &config.env,
        );
        if config.workdir.is_empty() {
            config.workdir = icfg.working_dir.clone().unwrap_or_default();
        }
        if config.user.is_empty() {
            config.user = icfg.user.clone().unwrap_or_default();
        }
        if config.stop_signal.is_empty() {
            config.stop_signal = icfg.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
        }
        lifecycle::signal_number(&config.stop_signal)?;
        if config.log_driver.is_empty() {
            config.log_driver = "k8s-file".into();
        }
        if !["k8s-file", "json-file", "none", "journald", "passthrough"]
            .contains(&config.log_driver.as_str())
        {
            return Err(EngineError::Invalid(format!(
                "invalid log driver {:?}: expected k8s-file, json-file or none",
                config.log_driver
            )));
        }
        if config.log_driver == "journald" {
            config.log_driver = "k8s-file".into();
        }
        let mut labels = icfg.labels.clone().unwrap_or_default();
        labels.extend(config.labels);
        config.labels = labels;
        config.image_volumes = icfg
            .volumes
            .map(|v| v.into_keys().collect())
            .unwrap_or_default();
        if let Some(NetworkMode::Container(other)) = &config.network {
            let o = self.lookup(other)?;
            config.network = Some(NetworkMode::Container(o.id));
            if !config.ports.is_empty() {
                return Err(EngineError::Invalid(
                    "cannot publish ports with --network container:".into(),
                ));
            }
        }
        if matches!(config.network, Some(NetworkMode::Host | NetworkMode::None))
            && !config.ports.is_empty()
        {
            // podman ignores them with a warning; be explicit instead.
            return Err(EngineError::Invalid(format!(
                "cannot publish ports with --network {}",
                config.network().display()
            )));
        }
        if let NetworkMode::Bridge(nets) = config.network() {
            for n in &nets {
                self.network_record(n)?;
            }
        }
        // A missing pasta or slirp4netns fails here, with no record left.
        crate::usernet::check_available(&config.network())?;
        for m in &config.mounts {
            if let MountSpec::Bind { source, .. } = m {
                if !source.exists() {
                    return Err(EngineError::Invalid(format!(
                        "statfs {}: no such file or directory",
                        source.display()
                    )));
                }
            }
        }

        let generated = opts.name.is_none();
        let name = match &opts.name {
            Some(n) => {
                validate_name(n)?;
                n.clone()
            }
            None => random_name(&id),
        };
        let mut rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            image_id,
            image_name,
            created: now_nanos(),
            config,
            state: State::default(),
            pod: opts.pod,
        };
        // The record first, then the directory: a create killed in between
        // leaves a record without a directory, which `start` (it makes the
        // directories it needs) and `rm` handle; the other order would
        // leave a directory nothing knows about.
        let mut tries = 0;
        while self.db.write(|tx| {
            // Pods and containers share names (podman); a pod member goes
            // in only while its pod exists (a racing `pod rm` either sees
            // it or made the lookup above fail).
            if let Some(pod) = &rec.pod {
                if tx
                    .get::<crate::pods::PodRecord>(Table::Pods, pod)?
                    .is_none()
                {
                    return Err(EngineError::NoSuchPod(pod.clone()));
                }
            }
            if tx.id_by_name(Table::Pods, &rec.name)?.is_some() {
                if generated {
                    return Ok(Inserted::Conflict);
                }
                return Err(EngineError::Invalid(format!(
                    "name \"{}\" is in use: pod already exists",
                    rec.name
                )));
            }
            Ok::<_, EngineError>(tx.insert(Table::Containers, &id, Some(&rec.name), &rec)?)
        })? == Inserted::Conflict
        {
            // A generated name has only 400 values: on a clash, add a
            // random suffix (podman retries with another name too).
            if !generated || tries == 8 {
                return Err(EngineError::NameInUse(rec.name));
            }
            tries += 1;
            rec.name = format!("{name}_{}", &random_id()[..6]);
        }
        let dir = self.paths.container_dir(&id);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            let _ = self.db.write(|tx| {
                tx.delete(Table::Containers, &id)?;
                Ok::<_, EngineError>(())
            });
            return Err(EngineError::io(format!("creating {}", dir.display()))(e));
        }
        Ok(rec)
    }
}

/// Reads `/proc/PID/stat`'s start time, if the process exists.
pub fn process_start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    // Field 3 (state) is index 0 here; starttime is field 22 → index 19.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether our process `pid` (started at `start`) is still alive.
pub fn alive(pid: i32, start: u64) -> bool {
    process_start_time(pid).is_some_and(|s| start == 0 || s == start)
}

/// Reads a small file if it exists.
pub fn read_opt(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_specs() {
        assert!(matches!(
            MountSpec::parse_volume("/tmp:/data:ro").unwrap(),
            MountSpec::Bind { readonly: true, .. }
        ));
        assert!(matches!(
            MountSpec::parse_volume("vol1:/data").unwrap(),
            MountSpec::Volume { ref name, .. } if name == "vol1"
        ));
        assert!(MountSpec::parse_volume("/tmp:data").is_err());
        assert!(MountSpec::parse_volume("/a:/b:/c:/d").is_err());
        assert!(MountSpec::parse_volume("/a:/b:bogus").is_err());
        assert!(MountSpec::parse_volume(":/data").is_err());
        assert!(MountSpec::parse_volume(":/data:ro").is_err());
        assert!(MountSpec::parse_mount("type=bind,src=/tmp,dst=/x,ro").is_ok());
        assert!(MountSpec::parse_mount("type=weird,dst=/x").is_err());
    }

    #[test]
    fn names_and_ulimits() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        assert_eq!(Ulimit::parse("nofile=100:200").unwrap().hard, 200);
        assert!(Ulimit::parse("nofile=300:200").is_err());
        assert!(Ulimit::parse("bogus=1").is_err());
        assert!(RestartPolicy::parse("on-failure:3").is_ok());
        assert!(RestartPolicy::parse("sometimes").is_err());
    }

    #[test]
    fn env_merges_by_key() {
        let m = merge_env(&["A=1".into(), "B=2".into()], &["A=3".into()]);
        assert_eq!(m, ["B=2", "A=3"]);
    }

    #[test]
    fn network_modes() {
        assert_eq!(NetworkMode::parse("none").unwrap(), NetworkMode::None);
        assert!(NetworkMode::parse("container:").is_err());
        assert_eq!(
            NetworkMode::parse("a,b").unwrap(),
            NetworkMode::Bridge(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            NetworkMode::parse("pasta").unwrap(),
            NetworkMode::Pasta(Vec::new())
        );
        assert_eq!(
            NetworkMode::parse("pasta:-T,8080,--ipv4-only").unwrap(),
            NetworkMode::Pasta(vec!["-T".into(), "8080".into(), "--ipv4-only".into()])
        );
        assert_eq!(
            NetworkMode::parse("slirp4netns:port_handler=slirp4netns,mtu=65520").unwrap(),
            NetworkMode::Slirp4netns(vec!["port_handler=slirp4netns".into(), "mtu=65520".into()])
        );
        assert_eq!(NetworkMode::parse("pasta:x").unwrap().display(), "pasta");
        assert_eq!(
            NetworkMode::parse("slirp4netns").unwrap().display(),
            "slirp4netns"
        );
        assert!(NetworkMode::parse("slirp4netns:bogus=1").is_err());
        assert!(NetworkMode::parse("slirp4netns:mtu=x").is_err());
        assert!(NetworkMode::parse("ns:/x").is_err());
    }
}
