//! `containers.conf`: the defaults podman reads, applied to new containers.
//!
//! Files, as podman: `$CONTAINERS_CONF` alone when set; otherwise
//! `/usr/share/containers/containers.conf`, `/etc/containers/containers.conf`
//! and `$XDG_CONFIG_HOME/containers/containers.conf` (default
//! `~/.config/...`), missing files skipped, later files overriding earlier
//! ones key by key. Unknown keys are ignored.
//!
//! Honoured: `[containers] default_ulimits`, `log_driver`, `pids_limit`,
//! `default_capabilities`, `env`, `netns`; `[engine] runtime` (with
//! `[engine.runtimes]` name → paths), `[network] default_network` and
//! `default_rootless_network_cmd` (`pasta`, the default, or `slirp4netns`).
//!
//! `[containers] netns` is the network mode of a container started
//! without `--network`: `private` or `bridge` (the default network),
//! `host` or `none`.
//!
//! The engine-specific keys `[engine] runtime`, `[containers] netns` and
//! `[network] default_network` are taken only from `$CONTAINERS_CONF` and
//! the user's file, not from the system files: those are administered for
//! podman (on this kind of host `/etc/containers/containers.conf` says
//! `runtime = "runc"` because podman's default crun fails), while barge
//! ships its own runtime and its own default network (`barge`).

use crate::containers::{ContainerConfig, NetworkMode, Ulimit};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable naming the only configuration file to read.
pub const CONTAINERS_CONF_ENV: &str = "CONTAINERS_CONF";

/// A configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or a value has the wrong type or form.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where and what (`line N, column M: ...`).
        reason: String,
    },
}

/// Where a file comes from: system files are podman's and only give
/// container defaults (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `/usr/share/...` or `/etc/...`.
    System,
    /// The user's file or `$CONTAINERS_CONF`.
    User,
}

#[derive(Debug, Default, Deserialize)]
struct RawFile {
    #[serde(default)]
    containers: RawContainers,
    #[serde(default)]
    engine: RawEngine,
    #[serde(default)]
    network: RawNetwork,
}

#[derive(Debug, Default, Deserialize)]
struct RawContainers {
    default_ulimits: Option<Vec<String>>,
    log_driver: Option<String>,
    pids_limit: Option<i64>,
    default_capabilities: Option<Vec<String>>,
    env: Option<Vec<String>>,
    netns: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RawEngine {
    runtime: Option<String>,
    #[serde(default)]
    runtimes: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawNetwork {
    default_network: Option<String>,
    default_rootless_network_cmd: Option<String>,
}

/// The merged defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainersConf {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// `default_ulimits`.
    pub default_ulimits: Vec<Ulimit>,
    /// `log_driver`.
    pub log_driver: Option<String>,
    /// `pids_limit` (0 or less: unlimited).
    pub pids_limit: Option<i64>,
    /// `default_capabilities` as `CAP_` names; `None`: barge's defaults.
    pub default_capabilities: Option<Vec<String>>,
    /// `env` (`KEY=VALUE`), below the image's and the user's variables.
    pub env: Vec<String>,
    /// `[engine] runtime`, resolved through `[engine.runtimes]` to a path
    /// when listed there; `None` or `barge-runtime`: barge's own.
    pub runtime: Option<String>,
    /// `[network] default_network`.
    pub default_network: Option<String>,
    /// `[network] default_rootless_network_cmd`: `pasta` (default) or
    /// `slirp4netns`, a rootless user's network when `--network` is not
    /// given.
    pub default_rootless_network_cmd: Option<String>,
    /// `[containers] netns`: the network mode without `--network`
    /// (`None`: a bridge on the default network).
    pub netns: Option<NetworkMode>,
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let reason = match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_string(),
    };
    ConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    }
}

impl ContainersConf {
    /// The files podman would read, from the environment.
    pub fn default_files() -> Vec<(PathBuf, Source)> {
        if let Some(p) = std::env::var_os(CONTAINERS_CONF_ENV).filter(|v| !v.is_empty()) {
            return vec![(PathBuf::from(p), Source::User)];
        }
        let mut out = vec![
            (
                PathBuf::from("/usr/share/containers/containers.conf"),
                Source::System,
            ),
            (
                PathBuf::from("/etc/containers/containers.conf"),
                Source::System,
            ),
        ];
        let config_home = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".config"))
            });
        if let Some(h) = config_home {
            out.push((h.join("containers/containers.conf"), Source::User));
        }
        out
    }

    /// Loads the files podman would read (see [`Self::default_files`]).
    /// `$CONTAINERS_CONF` must exist; the other files may be missing.
    pub fn load() -> Result<Self, ConfigError> {
        let explicit = std::env::var_os(CONTAINERS_CONF_ENV).is_some_and(|v| !v.is_empty());
        Self::load_files(&Self::default_files(), explicit)
    }

    /// Loads `files` in order; missing ones are skipped unless `explicit`.
    pub fn load_files(files: &[(PathBuf, Source)], explicit: bool) -> Result<Self, ConfigError> {
        let mut conf = Self::default();
        for (path, source) in files {
            match std::fs::read_to_string(path) {
                Ok(text) => conf.merge(path, &text, *source)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
                Err(e) => {
                    return Err(ConfigError::Read {
                        path: path.clone(),
                        source: e,
                    })
                }
            }
        }
        Ok(conf)
    }

    /// Merges one file's text over what is loaded so far.
    pub fn merge(&mut self, path: &Path, text: &str, source: Source) -> Result<(), ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let c = raw.containers;
        if let Some(list) = c.default_ulimits {
            self.default_ulimits = list
                .iter()
                .map(|u| Ulimit::parse(u).map_err(|e| invalid(format!("default_ulimits: {e}"))))
                .collect::<Result<_, _>>()?;
        }
        if let Some(d) = c.log_driver {
            if !["k8s-file", "json-file", "none", "journald", "passthrough"].contains(&d.as_str()) {
                return Err(invalid(format!(
                    "log_driver: invalid log driver {d:?}: expected k8s-file, json-file, journald, passthrough or none"
                )));
            }
            self.log_driver = Some(d);
        }
        if let Some(p) = c.pids_limit {
            self.pids_limit = Some(p);
        }
        if let Some(caps) = c.default_capabilities {
            self.default_capabilities = Some(
                caps.iter()
                    .map(|c| {
                        crate::containers::spec::cap_name(c)
                            .map_err(|e| invalid(format!("default_capabilities: {e}")))
                    })
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(env) = c.env {
            if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
                return Err(invalid(format!("env: {bad:?} is not KEY=VALUE")));
            }
            self.env = env;
        }
        if source == Source::User {
            if let Some(r) = raw.engine.runtime {
                let resolved = raw
                    .engine
                    .runtimes
                    .get(&r)
                    .and_then(|paths| paths.iter().find(|p| Path::new(p).is_file()).cloned());
                self.runtime = Some(resolved.unwrap_or(r));
            }
            if let Some(n) = raw.network.default_rootless_network_cmd {
                self.default_rootless_network_cmd = Some(n);
            }
            if let Some(n) = raw.network.default_network {
                self.default_network = Some(n);
            }
            if let Some(n) = c.netns {
                self.netns = match n.as_str() {
                    "private" | "bridge" => None,
                    "host" => Some(NetworkMode::Host),
                    "none" => Some(NetworkMode::None),
                    other => {
                        let msg = "is not supported: expected private, bridge, host or none";
                        return Err(invalid(format!("netns: {other:?} {msg}")));
                    }
                };
            }
        }
        self.files.push(path.to_path_buf());
        Ok(())
    }

    /// Applies the defaults to a new container's options (flags win).
    pub fn apply(&self, cfg: &mut ContainerConfig) {
        let mut ulimits: Vec<Ulimit> = self
            .default_ulimits
            .iter()
            .filter(|d| !cfg.ulimits.iter().any(|u| u.name == d.name))
            .cloned()
            .collect();
        ulimits.append(&mut cfg.ulimits);
        cfg.ulimits = ulimits;
        if cfg.log_driver.is_empty() {
            if let Some(d) = &self.log_driver {
                cfg.log_driver.clone_from(d);
            }
        }
        if cfg.pids_limit.is_none() {
            cfg.pids_limit = self.pids_limit.filter(|p| *p > 0);
        }
        if let Some(caps) = &self.default_capabilities {
            let builtin = crate::containers::spec::DEFAULT_CAPS;
            let user_drops_all = cfg.cap_drop.iter().any(|c| c == "CAP_ALL");
            for c in builtin {
                let c = (*c).to_string();
                if !caps.contains(&c) && !cfg.cap_add.contains(&c) && !cfg.cap_drop.contains(&c) {
                    cfg.cap_drop.push(c);
                }
            }
            if !user_drops_all {
                for c in caps {
                    if !builtin.contains(&c.as_str())
                        && !cfg.cap_drop.contains(c)
                        && !cfg.cap_add.contains(c)
                    {
                        cfg.cap_add.push(c.clone());
                    }
                }
            }
        }
        if cfg.runtime.is_empty() {
            if let Some(r) = &self.runtime {
                cfg.runtime = match r.as_str() {
                    "barge" | "barge-runtime" => String::new(),
                    r => r.to_string(),
                };
            }
        }
        if cfg.network.is_none() {
            if let Some(mode) = &self.netns {
                cfg.network = Some(mode.clone());
            } else if let Some(n) = &self.default_network {
                cfg.network = Some(NetworkMode::Bridge(vec![n.clone()]));
            } else if crate::rootless::is_rootless() {
                // podman's rootless default: the container's own network
                // namespace behind pasta (or slirp4netns).
                cfg.network = Some(match self.default_rootless_network_cmd.as_deref() {
                    Some("slirp4netns") => NetworkMode::Slirp4netns(Vec::new()),
                    _ => NetworkMode::Pasta(Vec::new()),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::spec::capabilities;

    fn conf(text: &str, source: Source) -> Result<ContainersConf, ConfigError> {
        let mut c = ContainersConf::default();
        c.merge(Path::new("/x/containers.conf"), text, source)?;
        Ok(c)
    }

    #[test]
    fn reads_the_honoured_keys_and_ignores_others() {
        let c = conf(
            r#"
[containers]
default_ulimits = ["nofile=1024:2048", "nproc=1000"]
log_driver = "json-file"
pids_limit = 100
default_capabilities = ["CHOWN", "cap_net_raw"]
env = ["A=1", "B=two=2"]
default_sysctls = ["net.ipv4.ping_group_range=0 0"]
unknown_key = { nested = true }

[engine]
runtime = "crun"
events_logger = "file"

[engine.runtimes]
crun = ["/nonexistent/crun"]

[network]
default_network = "mynet"

[machine]
cpus = 2
"#,
            Source::User,
        )
        .expect("parse");
        assert_eq!(c.default_ulimits.len(), 2);
        assert_eq!(c.default_ulimits[0].name, "nofile");
        assert_eq!(
            (c.default_ulimits[0].soft, c.default_ulimits[0].hard),
            (1024, 2048)
        );
        assert_eq!(c.log_driver.as_deref(), Some("json-file"));
        assert_eq!(c.pids_limit, Some(100));
        assert_eq!(
            c.default_capabilities,
            Some(vec!["CAP_CHOWN".to_string(), "CAP_NET_RAW".to_string()])
        );
        assert_eq!(c.env, vec!["A=1", "B=two=2"]);
        // No existing path in [engine.runtimes]: the name stays.
        assert_eq!(c.runtime.as_deref(), Some("crun"));
        assert_eq!(c.default_network.as_deref(), Some("mynet"));
    }

    #[test]
    fn system_files_do_not_choose_the_runtime_or_network() {
        let c = conf(
            "[containers]\nlog_driver = \"k8s-file\"\n[engine]\nruntime = \"runc\"\n[network]\ndefault_network = \"podman\"\n",
            Source::System,
        )
        .expect("parse");
        assert_eq!(c.runtime, None);
        assert_eq!(c.default_network, None);
        assert_eq!(c.log_driver.as_deref(), Some("k8s-file"));
    }

    #[test]
    fn netns_chooses_the_mode_without_network_flag() {
        let c = conf(
            "[containers]\nnetns = \"none\"\n[network]\ndefault_network = \"mynet\"\n",
            Source::User,
        )
        .expect("parse");
        assert_eq!(c.netns, Some(NetworkMode::None));
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.network, Some(NetworkMode::None));
        // --network wins.
        let mut cfg = ContainerConfig {
            network: Some(NetworkMode::Host),
            ..ContainerConfig::default()
        };
        c.apply(&mut cfg);
        assert_eq!(cfg.network, Some(NetworkMode::Host));
        // private: the default network.
        let c = conf(
            "[containers]\nnetns = \"private\"\n[network]\ndefault_network = \"mynet\"\n",
            Source::User,
        )
        .expect("parse");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.network, Some(NetworkMode::Bridge(vec!["mynet".into()])));
        let c = conf("[containers]\nnetns = \"host\"\n", Source::User).expect("parse");
        assert_eq!(c.netns, Some(NetworkMode::Host));
        // Not from podman's system files; unknown modes are errors.
        let c = conf("[containers]\nnetns = \"none\"\n", Source::System).expect("parse");
        assert_eq!(c.netns, None);
        let e = conf("[containers]\nnetns = \"sometimes\"\n", Source::User)
            .expect_err("bad mode")
            .to_string();
        assert!(
            e.contains("/x/containers.conf") && e.contains("sometimes"),
            "{e}"
        );
    }

    #[test]
    fn runtime_names_map_to_configured_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("myrt");
        std::fs::write(&bin, "").expect("write");
        let text = format!(
            "[engine]\nruntime = \"myrt\"\n[engine.runtimes]\nmyrt = [\"/nonexistent\", \"{}\"]\n",
            bin.display()
        );
        let c = conf(&text, Source::User).expect("parse");
        assert_eq!(c.runtime.as_deref(), Some(bin.to_str().expect("utf-8")));
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.runtime, bin.display().to_string());
        // barge's own runtime by name means the default.
        let c = conf("[engine]\nruntime = \"barge-runtime\"\n", Source::User).expect("parse");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.runtime, "");
        let c = conf("[engine]\nruntime = \"runc\"\n", Source::User).expect("parse");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.runtime, "runc");
    }

    #[test]
    fn later_files_override_key_by_key() {
        let mut c = ContainersConf::default();
        c.merge(
            Path::new("/a"),
            "[containers]\npids_limit = 5\nlog_driver = \"none\"\n",
            Source::System,
        )
        .expect("a");
        c.merge(
            Path::new("/b"),
            "[containers]\npids_limit = 7\n",
            Source::User,
        )
        .expect("b");
        assert_eq!(c.pids_limit, Some(7));
        assert_eq!(c.log_driver.as_deref(), Some("none"));
        assert_eq!(c.files, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = conf(
            "[containers]\npids_limit = 5\nlog_driver = \n",
            Source::User,
        )
        .expect_err("malformed");
        let msg = e.to_string();
        assert!(msg.starts_with("/x/containers.conf: line 3"), "{msg}");
        let e = conf("[containers]\n\npids_limit = \"many\"\n", Source::User).expect_err("type");
        assert!(
            e.to_string().starts_with("/x/containers.conf: line 3"),
            "{e}"
        );
        let e = conf(
            "[containers]\ndefault_ulimits = [\"nofile=x\"]\n",
            Source::User,
        )
        .expect_err("ulimit");
        assert!(e.to_string().contains("default_ulimits"), "{e}");
        let e = conf(
            "[containers]\ndefault_capabilities = [\"NOPE\"]\n",
            Source::User,
        )
        .expect_err("cap");
        assert!(e.to_string().contains("default_capabilities"), "{e}");
        let e = conf("[containers]\nlog_driver = \"syslog\"\n", Source::User).expect_err("log");
        assert!(e.to_string().contains("log_driver"), "{e}");
        let e = conf("[containers]\nenv = [\"NOEQUALS\"]\n", Source::User).expect_err("env");
        assert!(e.to_string().contains("NOEQUALS"), "{e}");
    }

    #[test]
    fn apply_keeps_flags_over_defaults() {
        let c = conf(
            "[containers]\ndefault_ulimits = [\"nofile=100\", \"nproc=50\"]\npids_limit = 10\nlog_driver = \"none\"\n",
            Source::User,
        )
        .expect("parse");
        let mut cfg = ContainerConfig {
            ulimits: vec![Ulimit::parse("nofile=200").expect("ulimit")],
            pids_limit: Some(3),
            log_driver: "json-file".into(),
            ..ContainerConfig::default()
        };
        c.apply(&mut cfg);
        let nofile: Vec<_> = cfg.ulimits.iter().filter(|u| u.name == "nofile").collect();
        assert_eq!(nofile.len(), 1);
        assert_eq!(nofile[0].soft, 200);
        assert!(cfg
            .ulimits
            .iter()
            .any(|u| u.name == "nproc" && u.soft == 50));
        assert_eq!(cfg.pids_limit, Some(3));
        assert_eq!(cfg.log_driver, "json-file");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.pids_limit, Some(10));
        assert_eq!(cfg.log_driver, "none");
        // pids_limit 0 = unlimited.
        let c = conf("[containers]\npids_limit = 0\n", Source::User).expect("parse");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        assert_eq!(cfg.pids_limit, None);
    }

    #[test]
    fn default_capabilities_replace_the_builtin_set() {
        let c = conf(
            "[containers]\ndefault_capabilities = [\"CHOWN\", \"NET_RAW\"]\n",
            Source::User,
        )
        .expect("parse");
        let mut cfg = ContainerConfig::default();
        c.apply(&mut cfg);
        let mut caps = capabilities(false, &cfg.cap_add, &cfg.cap_drop);
        caps.sort();
        assert_eq!(caps, vec!["CAP_CHOWN", "CAP_NET_RAW"]);
        // Flags still win: --cap-add KILL, --cap-drop NET_RAW.
        let mut cfg = ContainerConfig {
            cap_add: vec!["CAP_KILL".into()],
            cap_drop: vec!["CAP_NET_RAW".into()],
            ..ContainerConfig::default()
        };
        c.apply(&mut cfg);
        let mut caps = capabilities(false, &cfg.cap_add, &cfg.cap_drop);
        caps.sort();
        assert_eq!(caps, vec!["CAP_CHOWN", "CAP_KILL"]);
    }

    #[test]
    fn missing_files_are_skipped_unless_explicit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let present = dir.path().join("c.conf");
        std::fs::write(
            &present,
            "[containers]
pids_limit = 9
",
        )
        .expect("write");
        let files = vec![
            (dir.path().join("missing.conf"), Source::System),
            (present.clone(), Source::User),
        ];
        let c = ContainersConf::load_files(&files, false).expect("load");
        assert_eq!(c.pids_limit, Some(9));
        assert_eq!(c.files, vec![present]);
        let e = ContainersConf::load_files(&files[..1], true).expect_err("explicit");
        assert!(e.to_string().contains("missing.conf"), "{e}");
    }
}
