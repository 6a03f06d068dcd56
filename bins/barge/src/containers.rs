//! Container commands: run, create, start, stop, kill, restart, rm, ps,
//! logs, exec, attach, inspect, wait, top, port, rename, pause, unpause,
//! `container ...`.

use crate::{Exit, EXIT_ENGINE};
use anyhow::{bail, Result};
use barge_engine::containers::intercept::IdMapping;
use barge_engine::containers::lifecycle::{ExecOptions, StartOptions};
use barge_engine::containers::query::{self, LogsOptions, PsOptions};
use barge_engine::containers::tty::{self, AttachEnd, AttachIo};
use barge_engine::containers::{
    ContainerConfig, CreateOptions, Engine, MountSpec, NetworkMode, Paths, PullPolicy,
    RestartPolicy, Status, Ulimit,
};
use barge_engine::EngineError;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Run a command in a new container.
    Run(RunArgs),
    /// Create but do not start a container.
    Create(RunArgs),
    /// Start one or more containers.
    Start(StartArgs),
    /// Stop one or more containers.
    Stop(StopArgs),
    /// Kill one or more containers with a signal.
    Kill(KillArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// List containers.
    Ps(PsArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Attach to a running container.
    Attach(AttachArgs),
    /// Display the configuration of containers or images.
    Inspect(InspectArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(NamesArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// List port mappings of a container.
    Port(PortArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Pause all the processes in one or more containers.
    Pause(NamesArgs),
    /// Unpause the processes in one or more containers.
    Unpause(NamesArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    #[command(flatten)]
    Extras(crate::container_extras::ExtraCommand),
}

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Run a command in a new container.
    Run(RunArgs),
    /// Create but do not start a container.
    Create(RunArgs),
    /// Start one or more containers.
    Start(StartArgs),
    /// Stop one or more containers.
    Stop(StopArgs),
    /// Kill one or more containers with a signal.
    Kill(KillArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// List containers.
    #[command(alias = "ls", alias = "list")]
    Ps(PsArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Attach to a running container.
    Attach(AttachArgs),
    /// Display the configuration of containers.
    Inspect(InspectArgs),
    /// Wait for containers to stop.
    Wait(NamesArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// List port mappings of a container.
    Port(PortArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Pause containers.
    Pause(NamesArgs),
    /// Unpause containers.
    Unpause(NamesArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    /// Release the resources of an exited container (run by the monitor).
    #[command(hide = true)]
    Cleanup(NamesArgs),
    #[command(flatten)]
    Extras(crate::container_extras::ExtraCommand),
}

#[derive(Args, Debug, Default)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Container name.
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// User (`USER[:GROUP]`, names or ids).
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    workdir: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Labels.
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Hostname.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Add a host entry (`NAME:IP`).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// DNS servers.
    #[arg(long)]
    dns: Vec<String>,
    /// Bind mount or volume (`SRC:DST[:OPTS]`).
    #[arg(short, long = "volume", value_name = "SRC:DST[:OPTS]")]
    volume: Vec<String>,
    /// A mount (`type=bind,src=…,dst=…`).
    #[arg(long)]
    mount: Vec<String>,
    /// A tmpfs (`DST[:OPTS]`).
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Publish ports (`[[IP:][HOSTPORT]:]PORT[/PROTO]`).
    #[arg(short, long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Network mode: bridge (default), none, host, container:NAME, pasta[:OPTIONS],
    /// slirp4netns[:OPTIONS], or network names.
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Add capabilities.
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop capabilities.
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Give the container all privileges.
    #[arg(long)]
    privileged: bool,
    /// Security options (`seccomp=PROFILE|unconfined`, `no-new-privileges`, `label=disable`,
    /// `seccomp-intercept=mknod,mount,setxattr`, `seccomp-intercept.mount.allowed=TYPES`).
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// User namespace mode: host, keep-id (rootless) or auto[:size=N].
    #[arg(long)]
    userns: Option<String>,
    /// User namespace uid mapping `CONTAINER:HOST:SIZE` (repeatable).
    #[arg(long = "uidmap")]
    uidmap: Vec<String>,
    /// User namespace gid mapping `CONTAINER:HOST:SIZE` (default: the uid mapping).
    #[arg(long = "gidmap")]
    gidmap: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    read_only: bool,
    /// Memory limit (e.g. 64m).
    #[arg(short, long)]
    memory: Option<String>,
    /// CPUs (e.g. 0.5).
    #[arg(long)]
    cpus: Option<f64>,
    /// Pids limit.
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    /// Ulimits (`NAME=SOFT[:HARD]`).
    #[arg(long)]
    ulimit: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps.
    #[arg(long)]
    init: bool,
    /// Restart policy.
    #[arg(long)]
    restart: Option<String>,
    /// Health check command.
    #[arg(long = "health-cmd")]
    health_cmd: Option<String>,
    #[command(flatten)]
    health: crate::container_extras::HealthArgs,
    /// Log driver: k8s-file (default), json-file, none.
    #[arg(long = "log-driver")]
    log_driver: Option<String>,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds to wait before killing the container on stop.
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<u32>,
    /// OCI runtime (name or path).
    #[arg(long)]
    runtime: Option<String>,
    /// Pull policy: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Pod to join.
    #[arg(long)]
    pod: Option<String>,
    /// Detach key sequence.
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Proxy signals to the container.
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: bool,
    /// Suppress pull output.
    #[arg(short, long)]
    quiet: bool,
    /// Replace an existing container of the same name.
    #[arg(long)]
    replace: bool,
    /// Require HTTPS when pulling.
    #[arg(long = "tls-verify", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: bool,
    /// The image.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The command and its arguments.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach to the container's output.
    #[arg(short, long)]
    attach: bool,
    /// Attach stdin.
    #[arg(short, long)]
    interactive: bool,
    /// Detach key sequence.
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Containers.
    #[arg(value_name = "CONTAINER", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u32>,
    /// All running containers.
    #[arg(short, long)]
    all: bool,
    /// Do not fail on unknown containers.
    #[arg(short, long)]
    ignore: bool,
    /// Containers.
    #[arg(value_name = "CONTAINER")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// All running containers.
    #[arg(short, long)]
    all: bool,
    /// Containers.
    #[arg(value_name = "CONTAINER")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop and remove running containers.
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes too.
    #[arg(short, long)]
    volumes: bool,
    /// All containers.
    #[arg(short, long)]
    all: bool,
    /// Do not fail on unknown containers.
    #[arg(short, long)]
    ignore: bool,
    /// Seconds to wait for a stop before killing.
    #[arg(short = 't', long = "time")]
    time: Option<u32>,
    /// Containers.
    #[arg(value_name = "CONTAINER")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default: running only).
    #[arg(short, long)]
    all: bool,
    /// Show only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Filters (`KEY=VALUE`).
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Output format: `json` or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Do not print headers.
    #[arg(short = 'n', long)]
    noheading: bool,
    /// The newest container only.
    #[arg(short, long)]
    latest: bool,
    /// The newest N containers.
    #[arg(long)]
    last: Option<usize>,
    /// Show sizes (accepted; sizes are not computed).
    #[arg(short, long)]
    size: bool,
    /// Accepted for compatibility.
    #[arg(long)]
    external: bool,
    /// Show pod columns.
    #[arg(short, long)]
    pod: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the log.
    #[arg(short, long)]
    follow: bool,
    /// Only entries since (RFC 3339, unix seconds or a duration like 10m).
    #[arg(long)]
    since: Option<String>,
    /// Only entries until.
    #[arg(long)]
    until: Option<String>,
    /// The last N lines.
    #[arg(long)]
    tail: Option<i64>,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Prefix with container names.
    #[arg(short, long)]
    names: bool,
    /// Containers.
    #[arg(value_name = "CONTAINER", required = true)]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open.
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    tty: bool,
    /// Environment variables.
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Environment files.
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// User.
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    workdir: Option<String>,
    /// All capabilities.
    #[arg(long)]
    privileged: bool,
    /// Detach keys (accepted).
    #[arg(long = "detach-keys")]
    detach_keys: Option<String>,
    /// The newest container.
    #[arg(short, long)]
    latest: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The command.
    #[arg(
        value_name = "COMMAND",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Detach key sequence.
    #[arg(long = "detach-keys", default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    /// Do not attach stdin.
    #[arg(long = "no-stdin")]
    no_stdin: bool,
    /// Proxy signals.
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    sig_proxy: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A Go template.
    #[arg(short, long)]
    format: Option<String>,
    /// Object type: container, image or all.
    #[arg(short, long = "type", default_value = "all")]
    kind: String,
    /// Show sizes (accepted).
    #[arg(short, long)]
    size: bool,
    /// Names.
    #[arg(value_name = "NAME", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Containers.
    #[arg(value_name = "CONTAINER", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// ps descriptors (accepted, ignored).
    #[arg(
        value_name = "DESCRIPTORS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    descriptors: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// All containers.
    #[arg(short, long)]
    all: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: Option<String>,
    /// A private port (`PORT[/PROTO]`).
    #[arg(value_name = "PORT")]
    port: Option<String>,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// Its new name.
    #[arg(value_name = "NAME")]
    name: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
}

pub(crate) fn engine(root: Option<&PathBuf>, runroot: Option<&PathBuf>) -> Result<Engine> {
    Ok(Engine::open(Paths::new(root.cloned(), runroot.cloned()))?)
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    command: TopCommand,
) -> Result<()> {
    let cmd = match command {
        TopCommand::Container(c) => c,
        TopCommand::Run(a) => ContainerCommand::Run(a),
        TopCommand::Create(a) => ContainerCommand::Create(a),
        TopCommand::Start(a) => ContainerCommand::Start(a),
        TopCommand::Stop(a) => ContainerCommand::Stop(a),
        TopCommand::Kill(a) => ContainerCommand::Kill(a),
        TopCommand::Restart(a) => ContainerCommand::Restart(a),
        TopCommand::Rm(a) => ContainerCommand::Rm(a),
        TopCommand::Ps(a) => ContainerCommand::Ps(a),
        TopCommand::Logs(a) => ContainerCommand::Logs(a),
        TopCommand::Exec(a) => ContainerCommand::Exec(a),
        TopCommand::Attach(a) => ContainerCommand::Attach(a),
        TopCommand::Inspect(a) => return inspect(root, runroot, a, true),
        TopCommand::Wait(a) => ContainerCommand::Wait(a),
        TopCommand::Top(a) => ContainerCommand::Top(a),
        TopCommand::Port(a) => ContainerCommand::Port(a),
        TopCommand::Rename(a) => ContainerCommand::Rename(a),
        TopCommand::Pause(a) => ContainerCommand::Pause(a),
        TopCommand::Unpause(a) => ContainerCommand::Unpause(a),
        TopCommand::Extras(a) => ContainerCommand::Extras(a),
    };
    let mut e = engine(root, runroot)?;
    barge_engine::timing::mark("engine open");
    match cmd {
        ContainerCommand::Run(a) => run_container(&mut e, a, true),
        ContainerCommand::Create(a) => run_container(&mut e, a, false),
        ContainerCommand::Start(a) => start(&mut e, a),
        ContainerCommand::Stop(a) => each(&mut e, &a.names, a.all, a.ignore, |e, n| {
            e.stop(n, a.time)?;
            Ok(())
        }),
        ContainerCommand::Restart(a) => each(&mut e, &a.names, a.all, a.ignore, |e, n| {
            e.stop(n, a.time)?;
            e.start(n, StartOptions::default())?;
            Ok(())
        }),
        ContainerCommand::Kill(a) => {
            barge_engine::containers::lifecycle::signal_number(&a.signal)?;
            each(&mut e, &a.names, a.all, false, |e, n| {
                e.kill(n, &a.signal)?;
                Ok(())
            })
        }
        ContainerCommand::Rm(a) => rm(&mut e, a),
        ContainerCommand::Ps(a) => ps(&mut e, a),
        ContainerCommand::Logs(a) => logs(&mut e, a),
        ContainerCommand::Exec(a) => exec(&mut e, a),
        ContainerCommand::Attach(a) => attach(&mut e, a),
        ContainerCommand::Inspect(a) => {
            drop(e);
            inspect(root, runroot, a, false)
        }
        ContainerCommand::Wait(a) => {
            for n in &a.names {
                println!("{}", e.wait(n)?);
            }
            Ok(())
        }
        ContainerCommand::Top(a) => {
            let rows = e.top(&a.container)?;
            let mut out = String::from("USER\tPID\tPPID\tCOMMAND\n");
            for (pid, ppid, uid, cmd) in rows {
                let user = if uid == 0 {
                    "root".to_string()
                } else {
                    uid.to_string()
                };
                let _ = writeln!(out, "{user}\t{pid}\t{ppid}\t{cmd}");
            }
            print!("{}", barge_engine::template::align(&out));
            Ok(())
        }
        ContainerCommand::Port(a) => port(&mut e, a),
        ContainerCommand::Rename(a) => {
            e.rename(&a.container, &a.name)?;
            Ok(())
        }
        ContainerCommand::Pause(a) => each(&mut e, &a.names, false, false, |e, n| {
            e.pause(n)?;
            Ok(())
        }),
        ContainerCommand::Unpause(a) => each(&mut e, &a.names, false, false, |e, n| {
            e.unpause(n)?;
            Ok(())
        }),
        ContainerCommand::Prune(_) => {
            for c in e.containers()? {
                let c = e.refresh(c)?;
                // A pod's infra goes with its pod (`pod rm`, `pod prune`).
                if matches!(c.state.status, Status::Exited | Status::Created) && !c.config.infra {
                    e.remove(&c.id, false, false)?;
                    println!("{}", c.id);
                }
            }
            Ok(())
        }
        ContainerCommand::Cleanup(a) => {
            for n in &a.names {
                match e.cleanup(n) {
                    Ok(()) => crate::container_extras::after_cleanup(&mut e, n),
                    Err(EngineError::NoSuchContainer(_)) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(())
        }
        ContainerCommand::Extras(a) => crate::container_extras::run(&mut e, a),
    }
}

/// Applies `f` to each named (or, with `all`, each running) container,
/// printing each name like podman; reports every failure and fails at the
/// end if any did.
fn each(
    e: &mut Engine,
    names: &[String],
    all: bool,
    ignore: bool,
    mut f: impl FnMut(&mut Engine, &str) -> barge_engine::Result<()>,
) -> Result<()> {
    let targets: Vec<String> = if all {
        e.ps(&PsOptions::default())?
            .into_iter()
            .map(|c| c.id)
            .collect()
    } else {
        if names.is_empty() {
            bail!("you must provide at least one container name or id");
        }
        names.to_vec()
    };
    let mut failed = None;
    for n in &targets {
        match f(e, n) {
            Ok(()) => println!("{n}"),
            Err(EngineError::NoSuchContainer(_)) if ignore => {}
            Err(err) => {
                if failed.is_some() {
                    eprintln!("Error: {err}");
                }
                if let Some(prev) = failed.replace(err) {
                    eprintln!("Error: {prev}");
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Parses `64m`, `1g`, `1024` into bytes.
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid size {s:?}: expected a number with an optional unit (b, k, m, g)")
    })?;
    if n < 0.0 {
        bail!("invalid size {s:?}: must be positive");
    }
    #[allow(clippy::cast_precision_loss)] // mult is at most 2^30: exact
    Ok((n * mult as f64) as i64)
}

fn read_env_files(files: &[PathBuf], env: &mut Vec<String>) -> Result<()> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("reading env file {}: {e}", f.display()))?;
        for l in text.lines() {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            out.push(l.to_string());
        }
    }
    out.append(env);
    // `-e KEY` takes the value from our environment.
    *env = out
        .into_iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e)
            } else {
                std::env::var(&e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    Ok(())
}

fn create_options(a: &mut RunArgs) -> Result<CreateOptions> {
    let mut env = std::mem::take(&mut a.env);
    read_env_files(&a.env_file, &mut env)?;
    let mut labels = std::collections::BTreeMap::new();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut mounts = Vec::new();
    for v in &a.volume {
        mounts.push(MountSpec::parse_volume(v)?);
    }
    for m in &a.mount {
        mounts.push(MountSpec::parse_mount(m)?);
    }
    for t in &a.tmpfs {
        mounts.push(MountSpec::parse_tmpfs(t)?);
    }
    let mut seccomp = String::new();
    let mut nnp = false;
    let mut intercept = std::collections::BTreeMap::new();
    for o in &a.security_opt {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        if barge_engine::containers::intercept::security_opt(k, v, &mut intercept)? {
            continue;
        }
        match (k, v) {
            ("seccomp", p) => seccomp = p.to_string(),
            ("no-new-privileges", "" | "true") => nnp = true,
            ("no-new-privileges", "false") => nnp = false,
            ("label" | "apparmor" | "mask" | "unmask", _) => {}
            _ => bail!("invalid --security-opt {o:?}"),
        }
    }
    let mut cap_add = Vec::new();
    for c in &a.cap_add {
        cap_add.push(barge_engine::containers::spec::cap_name(c)?);
    }
    let mut cap_drop = Vec::new();
    for c in &a.cap_drop {
        cap_drop.push(barge_engine::containers::spec::cap_name(c)?);
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        ulimits.push(Ulimit::parse(u)?);
    }
    let network = a.network.as_deref().map(NetworkMode::parse).transpose()?;
    let ports = barge_engine::networks::parse_publish(&a.publish)?;
    if let Some(c) = a.cpus {
        if c <= 0.0 {
            bail!("invalid --cpus {c}: must be positive");
        }
    }
    let limits: Vec<&str> = [
        (a.memory.is_some(), "--memory"),
        (a.cpus.is_some(), "--cpus"),
        (a.pids_limit.is_some(), "--pids-limit"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if let (false, Some(note)) = (limits.is_empty(), barge_engine::rootless::limits_note()) {
        eprintln!("WARN: {}: {note}", limits.join(", "));
    }
    let pull = match a.pull.as_str() {
        "missing" => PullPolicy::Missing,
        "always" => PullPolicy::Always,
        "never" => PullPolicy::Never,
        p => bail!("invalid --pull {p:?}: expected missing, always or never"),
    };
    let config = ContainerConfig {
        env,
        workdir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        hostname: a.hostname.clone().unwrap_or_default(),
        labels,
        tty: a.tty,
        stdin: a.interactive,
        stop_signal: a.stop_signal.clone().unwrap_or_default(),
        stop_timeout: a.stop_timeout.unwrap_or(10),
        mounts,
        network,
        ports,
        add_hosts: a.add_host.clone(),
        dns: a.dns.clone(),
        cap_add,
        cap_drop,
        privileged: a.privileged,
        read_only: a.read_only,
        no_new_privileges: nnp,
        seccomp,
        memory: a.memory.as_deref().map(parse_bytes).transpose()?,
        cpus: a.cpus,
        pids_limit: a.pids_limit,
        ulimits,
        init: a.init,
        restart: a
            .restart
            .as_deref()
            .map(RestartPolicy::parse)
            .transpose()?
            .unwrap_or_default(),
        health_cmd: a.health_cmd.clone(),
        health: a.health.settings()?,
        log_driver: a.log_driver.clone().unwrap_or_default(),
        runtime: a.runtime.clone().unwrap_or_default(),
        auto_remove: a.rm,
        uidmap: a
            .uidmap
            .iter()
            .map(|m| IdMapping::parse("--uidmap", m))
            .collect::<Result<_, _>>()?,
        gidmap: a
            .gidmap
            .iter()
            .map(|m| IdMapping::parse("--gidmap", m))
            .collect::<Result<_, _>>()?,
        intercept,
        ..ContainerConfig::default()
    };
    for h in &config.add_hosts {
        match h.split_once(':') {
            Some((n, ip)) if !n.is_empty() && ip.parse::<std::net::IpAddr>().is_ok() => {}
            _ => bail!("invalid --add-host {h:?}: expected NAME:IP"),
        }
    }
    Ok(CreateOptions {
        image: a.image.clone(),
        name: a.name.clone(),
        command: a.command.clone(),
        entrypoint: a.entrypoint.clone(),
        config,
        pull,
        pod: a.pod.clone(),
    })
}

fn run_container(e: &mut Engine, mut a: RunArgs, start: bool) -> Result<()> {
    let mut opts = create_options(&mut a)?;
    if barge_engine::rootless::is_rootless() && !a.uidmap.is_empty() {
        return Err(exit_with(EngineError::NotSupported(
            "rootless: --uidmap (a container root that is a subordinate id cannot bind its \
             rootfs yet; use --userns=keep-id)"
                .into(),
        )));
    }
    if let Some(mode) = a.userns.as_deref() {
        let mode = barge_engine::containers::userns::UsernsMode::parse(mode)?;
        e.apply_userns_mode(mode, &mut opts.config)?;
    }
    if a.replace {
        if let Some(n) = &a.name {
            match e.remove(n, true, false) {
                Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    let quiet = a.quiet;
    let tls = a.tls_verify;
    barge_engine::timing::mark("options parsed");
    let rec = e.create(opts, |store, image| {
        crate::images::pull_for_create(store, image, quiet, tls)
    })?;
    barge_engine::timing::mark("created");
    if !start {
        println!("{}", rec.id);
        return Ok(());
    }
    if a.detach {
        match e.start(&rec.id, StartOptions::default()) {
            Ok(_) => {
                println!("{}", rec.id);
                Ok(())
            }
            Err(err) => Err(exit_with(err)),
        }
    } else {
        let detach_keys = tty::parse_detach_keys(&a.detach_keys)?;
        let (rec, conn) = match e.start(&rec.id, StartOptions { attach: true }) {
            Ok(v) => v,
            Err(err) => return Err(exit_with(err)),
        };
        let Some(conn) = conn else {
            bail!("container {} did not start", rec.name);
        };
        // We clean up (and remove with --rm) ourselves as soon as the
        // container exits (`start` with `attach` told the monitor so): its
        // exit command is only a fallback.
        let io = AttachIo {
            stdin: a.interactive,
            tty: a.tty,
            detach_keys,
        };
        let id = rec.id.clone();
        let sig_proxy = a.sig_proxy && !a.tty;
        let end = tty::attach(&conn, &io, |sig| {
            if sig_proxy {
                let _ = e.kill(&id, &sig.to_string());
            }
        });
        drop(conn);
        barge_engine::timing::mark("exited");
        finish_attached(e, &id, end, a.rm)
    }
}

/// After an attached session: the exit code (removing with `--rm`).
fn finish_attached(e: &mut Engine, id: &str, end: AttachEnd, rm: bool) -> Result<()> {
    let code = match end {
        AttachEnd::Detached => return Ok(()),
        AttachEnd::Exited(code) => code,
        AttachEnd::Lost => e.wait(id).unwrap_or(-1),
    };
    // Clean up now rather than waiting for the monitor's exit command
    // (removal cleans up too).
    if !rm {
        match e.cleanup(id) {
            Ok(()) => crate::container_extras::after_cleanup(e, id),
            Err(EngineError::NoSuchContainer(_)) => {}
            Err(err) => eprintln!("Error: cleaning up container {id}: {err}"),
        }
    }
    if rm {
        match e.remove(id, true, true) {
            Ok(_) | Err(EngineError::NoSuchContainer(_)) => {}
            Err(err) => eprintln!("Error: removing container {id}: {err}"),
        }
    }
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(u8::try_from(code.rem_euclid(256)).unwrap_or(EXIT_ENGINE)).into())
    }
}

/// Maps an engine error to podman's exit code (126/127 for commands that
/// cannot run), printing it.
fn exit_with(err: EngineError) -> anyhow::Error {
    let code = err.exit_code();
    eprintln!("Error: {err}");
    Exit(u8::try_from(code).unwrap_or(EXIT_ENGINE)).into()
}

fn start(e: &mut Engine, a: StartArgs) -> Result<()> {
    if a.attach || a.interactive {
        if a.names.len() != 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let rec = e.lookup(&a.names[0])?;
        let (rec, conn) = e
            .start(&rec.id, StartOptions { attach: true })
            .map_err(exit_with)?;
        let Some(conn) = conn else {
            bail!("container {} is already running", rec.name);
        };
        let io = AttachIo {
            stdin: a.interactive && rec.config.stdin,
            tty: rec.config.tty,
            detach_keys: tty::parse_detach_keys(&a.detach_keys)?,
        };
        let id = rec.id.clone();
        let end = tty::attach(&conn, &io, |sig| {
            let _ = e.kill(&id, &sig.to_string());
        });
        drop(conn);
        return finish_attached(e, &rec.id, end, rec.config.auto_remove);
    }
    each(e, &a.names, false, false, |e, n| {
        e.start(n, StartOptions::default())?;
        Ok(())
    })
}

fn rm(e: &mut Engine, a: RmArgs) -> Result<()> {
    let names: Vec<String> = if a.all {
        e.containers()?.into_iter().map(|c| c.id).collect()
    } else {
        a.names.clone()
    };
    if names.is_empty() && !a.all {
        bail!("you must provide at least one container name or id");
    }
    let mut failed: Option<EngineError> = None;
    for n in &names {
        if a.force {
            if let Some(t) = a.time {
                let _ = e.stop(n, Some(t));
            }
        }
        match e.remove(n, a.force, a.volumes) {
            Ok(_) => println!("{n}"),
            Err(EngineError::NoSuchContainer(_)) if a.ignore || a.force => {}
            Err(err) => {
                if let Some(prev) = failed.replace(err) {
                    eprintln!("Error: {prev}");
                }
            }
        }
    }
    match failed {
        Some(EngineError::NoSuchContainer(n)) => {
            eprintln!("Error: {}", EngineError::NoSuchContainer(n));
            Err(Exit(1).into())
        }
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

fn ps_headers(field: &str) -> Option<String> {
    match field {
        "ID" | "Id" => Some("CONTAINER ID".into()),
        "CreatedHuman" | "Created" | "CreatedAt" => Some("CREATED".into()),
        "PortsText" | "Ports" => Some("PORTS".into()),
        "CommandText" | "Command" => Some("COMMAND".into()),
        "Pod" => Some("POD ID".into()),
        "PodName" => Some("PODNAME".into()),
        _ => None,
    }
}

fn ps(e: &mut Engine, a: PsArgs) -> Result<()> {
    let recs = e.ps(&PsOptions {
        all: a.all,
        filters: a.filter.clone(),
        latest: a.latest,
        last: a.last,
    })?;
    let pod_names: std::collections::HashMap<String, String> =
        e.pods()?.into_iter().map(|p| (p.id, p.name)).collect();
    let rows: Vec<Value> = recs
        .iter()
        .map(|r| {
            let mut v = query::ps_row(r);
            if !a.no_trunc {
                v["ID"] = Value::from(r.id[..12].to_string());
            }
            let pod = r.pod.clone().unwrap_or_default();
            v["PodName"] = Value::from(pod_names.get(&pod).cloned().unwrap_or_default());
            v["Pod"] = Value::from(if a.no_trunc {
                pod
            } else {
                pod.chars().take(12).collect()
            });
            v["Names"] = Value::from(r.name.clone());
            // podman's `{{.Ports}}` is the text form (`0.0.0.0:8080->80/tcp`).
            v["Ports"] = v["PortsText"].clone();
            v
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or(""));
        }
        return Ok(());
    }
    match a.format.as_deref() {
        Some("json") => {
            let full: Vec<Value> = recs.iter().map(query::ps_row).collect();
            println!("{}", serde_json::to_string_pretty(&full)?);
            Ok(())
        }
        Some(f) => crate::images::print_rows(f, &rows, a.noheading, &ps_headers),
        None => {
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|mut r| {
                    let c = r["CommandText"].as_str().unwrap_or("").to_string();
                    let c = if !a.no_trunc && c.chars().count() > 20 {
                        format!("{}...", c.chars().take(17).collect::<String>())
                    } else {
                        c
                    };
                    r["CommandText"] = Value::from(format!("{c:?}"));
                    r
                })
                .collect();
            let table = if a.pod {
                "table {{.ID}}\t{{.Image}}\t{{.CommandText}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.PortsText}}\t{{.Names}}\t{{.Pod}}\t{{.PodName}}"
            } else {
                "table {{.ID}}\t{{.Image}}\t{{.CommandText}}\t{{.CreatedHuman}}\t{{.Status}}\t{{.PortsText}}\t{{.Names}}"
            };
            crate::images::print_rows(table, &rows, a.noheading, &ps_headers)
        }
    }
}

fn logs(e: &mut Engine, a: LogsArgs) -> Result<()> {
    let opts = LogsOptions {
        follow: a.follow,
        since: a.since.as_deref().map(query::parse_time).transpose()?,
        until: a.until.as_deref().map(query::parse_time).transpose()?,
        tail: a.tail.and_then(|t| usize::try_from(t).ok()),
        timestamps: a.timestamps,
    };
    for c in &a.containers {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        e.logs(c, &opts, &mut out, &mut err)?;
    }
    Ok(())
}

fn exec(e: &mut Engine, mut a: ExecArgs) -> Result<()> {
    let mut env = std::mem::take(&mut a.env);
    read_env_files(&a.env_file, &mut env)?;
    let opts = ExecOptions {
        command: a.command.clone(),
        env,
        user: a.user.clone().unwrap_or_default(),
        workdir: a.workdir.clone().unwrap_or_default(),
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
        privileged: a.privileged,
    };
    let name = if a.latest {
        e.ps(&PsOptions {
            latest: true,
            ..PsOptions::default()
        })?
        .first()
        .map(|c| c.id.clone())
        .ok_or_else(|| anyhow::anyhow!("no running containers"))?
    } else {
        a.container.clone()
    };
    let code = e.exec(&name, &opts).map_err(exit_with)?;
    if code == 0 {
        Ok(())
    } else {
        Err(Exit(u8::try_from(code.rem_euclid(256)).unwrap_or(EXIT_ENGINE)).into())
    }
}

fn attach(e: &mut Engine, a: AttachArgs) -> Result<()> {
    let rec = e.lookup(&a.container)?;
    let rec = e.refresh(rec)?;
    if rec.state.status != Status::Running {
        bail!(
            "you can only attach to running containers: {} is {}",
            rec.name,
            rec.state.status.as_str()
        );
    }
    let conn = barge_engine::containers::monitor::AttachConn::connect(
        &e.paths.container_run_dir(&rec.id),
    )?;
    let io = AttachIo {
        stdin: !a.no_stdin && rec.config.stdin,
        tty: rec.config.tty,
        detach_keys: tty::parse_detach_keys(&a.detach_keys)?,
    };
    let id = rec.id.clone();
    let sig_proxy = a.sig_proxy && !rec.config.tty;
    let end = tty::attach(&conn, &io, |sig| {
        if sig_proxy {
            let _ = e.kill(&id, &sig.to_string());
        }
    });
    drop(conn);
    finish_attached(e, &rec.id, end, rec.config.auto_remove)
}

fn inspect(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    a: InspectArgs,
    images_too: bool,
) -> Result<()> {
    let mut e = engine(root, runroot)?;
    let mut values = Vec::new();
    let mut failed = None;
    for n in &a.names {
        if a.kind == "pod" {
            match e.pod_inspect(n) {
                Ok(v) => values.push(v),
                Err(err) => failed = Some(err.into()),
            }
            continue;
        }
        let c = if a.kind == "image" {
            None
        } else {
            Some(e.inspect(n))
        };
        match c {
            Some(Ok(v)) => values.push(v),
            Some(Err(EngineError::NoSuchContainer(_))) | None
                if images_too || a.kind == "image" =>
            {
                match barge_engine::images::inspect(&e.store, n) {
                    Ok(v) => values.push(v),
                    // podman's `inspect` finds pods too.
                    Err(_) => match e.pod_inspect(n) {
                        Ok(v) if a.kind == "all" => values.push(v),
                        _ => failed = Some(anyhow::anyhow!("no such object: \"{n}\"")),
                    },
                }
            }
            Some(Err(err)) => failed = Some(err.into()),
            None => {}
        }
    }
    match a.format.as_deref() {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(&values)?),
        Some(f) => {
            let t = barge_engine::template::Template::parse(f)?;
            for v in &values {
                println!("{}", t.render_one(v));
            }
        }
    }
    match failed {
        Some(e) => {
            eprintln!("Error: {e}");
            Err(Exit(EXIT_ENGINE).into())
        }
        None => Ok(()),
    }
}

fn port(e: &mut Engine, a: PortArgs) -> Result<()> {
    let recs = if a.all {
        e.ps(&PsOptions::default())?
    } else {
        let Some(c) = &a.container else {
            bail!("you must provide a container name or id, or --all");
        };
        vec![e.lookup(c)?]
    };
    for r in recs {
        for p in &r.config.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            if let Some(want) = &a.port {
                let want = if want.contains('/') {
                    want.clone()
                } else {
                    format!("{want}/tcp")
                };
                if want != key {
                    continue;
                }
                println!(
                    "{}:{}",
                    if p.host_ip.is_empty() {
                        "0.0.0.0"
                    } else {
                        &p.host_ip
                    },
                    p.host_port
                );
                continue;
            }
            if a.all {
                print!("{}\t", &r.id[..12]);
            }
            println!(
                "{key} -> {}:{}",
                if p.host_ip.is_empty() {
                    "0.0.0.0"
                } else {
                    &p.host_ip
                },
                p.host_port
            );
        }
    }
    Ok(())
}
