//! `barge pod ...`: create, start, stop, restart, kill, pause, unpause,
//! rm, ps, inspect, top, stats, logs, prune, exists (podman's flags and
//! output, over `barge_engine::pods`).

use crate::networks::confirm;
use crate::Exit;
use anyhow::{bail, Result};
use barge_engine::containers::query::{self, LogsOptions};
use barge_engine::containers::stats::{stats_row, StatsSample};
use barge_engine::containers::{Engine, NetworkMode, PullPolicy};
use barge_engine::pods::{
    PodCreateOptions, PodListEntry, PodLogsOptions, PodRemoveOptions, PodReport,
};
use barge_engine::template::Template;
use barge_engine::EngineError;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Manage pods.
    #[command(subcommand)]
    Pod(PodCommand),
}

#[derive(Subcommand, Debug)]
pub enum PodCommand {
    /// Create a new empty pod.
    Create(Box<CreateArgs>),
    /// Start one or more pods.
    Start(PodsArgs),
    /// Stop one or more pods.
    Stop(StopArgs),
    /// Restart one or more pods.
    Restart(PodsArgs),
    /// Send a signal to the containers of one or more pods.
    Kill(KillArgs),
    /// Pause one or more pods.
    Pause(PodsArgs),
    /// Unpause one or more pods.
    Unpause(PodsArgs),
    /// Remove one or more pods.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// List pods.
    #[command(alias = "ls", alias = "list")]
    Ps(PsArgs),
    /// Display the configuration of pods.
    Inspect(InspectArgs),
    /// Display the running processes of the containers in a pod.
    Top(TopArgs),
    /// Display the resource usage of the containers of pods.
    Stats(StatsArgs),
    /// Fetch the logs of the containers of a pod.
    Logs(LogsArgs),
    /// Remove all stopped pods and their containers.
    Prune(PruneArgs),
    /// Check whether a pod exists (exit code 0 or 1).
    Exists(ExistsArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Pod name.
    #[arg(short, long)]
    name: Option<String>,
    /// Publish ports of the pod (`[[IP:][HOSTPORT]:]PORT[/PROTO]`).
    #[arg(short, long = "publish", value_name = "PORTS")]
    publish: Vec<String>,
    /// Namespaces to share: cgroup, ipc, net, pid, uts or none; `+NS` adds
    /// to the default (ipc,net,uts).
    #[arg(long)]
    share: Option<String>,
    /// Network of the pod: bridge (default), none, host, pasta[:OPTIONS],
    /// slirp4netns[:OPTIONS], or network names.
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Hostname of the pod (default: its name).
    #[arg(long)]
    hostname: Option<String>,
    /// Create an infra container (default true).
    #[arg(long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    infra: bool,
    /// No infra container (= `--infra=false`).
    #[arg(long = "no-infra")]
    no_infra: bool,
    /// Image of the infra container (default: barge's built-in pause).
    #[arg(long = "infra-image")]
    infra_image: Option<String>,
    /// Command of the infra container.
    #[arg(long = "infra-command")]
    infra_command: Option<String>,
    /// Name of the infra container.
    #[arg(long = "infra-name")]
    infra_name: Option<String>,
    /// Labels (`KEY=VALUE`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// DNS servers of the pod.
    #[arg(long)]
    dns: Vec<String>,
    /// Add a host entry (`NAME:IP`).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    add_host: Vec<String>,
    /// What happens when the last container exits: continue or stop.
    #[arg(long = "exit-policy")]
    exit_policy: Option<String>,
    /// Replace a pod of the same name.
    #[arg(long)]
    replace: bool,
    /// Print the pod id to this file.
    #[arg(long = "pod-id-file")]
    pod_id_file: Option<PathBuf>,
    /// A name given without --name (podman accepts one).
    #[arg(value_name = "NAME")]
    positional: Option<String>,
}

#[derive(Args, Debug)]
pub struct PodsArgs {
    /// All pods.
    #[arg(short, long)]
    all: bool,
    /// Pods.
    #[arg(value_name = "POD")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<u32>,
    /// All pods.
    #[arg(short, long)]
    all: bool,
    /// Do not fail on unknown pods.
    #[arg(short, long)]
    ignore: bool,
    /// Pods.
    #[arg(value_name = "POD")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    /// All pods.
    #[arg(short, long)]
    all: bool,
    /// Pods.
    #[arg(value_name = "POD")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Stop and remove running pods.
    #[arg(short, long)]
    force: bool,
    /// All pods.
    #[arg(short, long)]
    all: bool,
    /// Do not fail on unknown pods.
    #[arg(short, long)]
    ignore: bool,
    /// With -f, seconds to wait for a stop before killing.
    #[arg(short = 't', long = "time")]
    time: Option<u32>,
    /// Pods.
    #[arg(value_name = "POD")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show only ids.
    #[arg(short, long)]
    quiet: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Output format: `json` or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Filters (`KEY=VALUE`).
    #[arg(short, long = "filter")]
    filter: Vec<String>,
    /// Do not print headers.
    #[arg(short = 'n', long)]
    noheading: bool,
    /// Show the names of the containers.
    #[arg(long = "ctr-names")]
    ctr_names: bool,
    /// Show the ids of the containers.
    #[arg(long = "ctr-ids")]
    ctr_ids: bool,
    /// Show the statuses of the containers.
    #[arg(long = "ctr-status")]
    ctr_status: bool,
    /// Sort by created, id, name, number or status.
    #[arg(long, default_value = "created")]
    sort: String,
    /// The newest pod only.
    #[arg(short, long)]
    latest: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// A Go template.
    #[arg(short, long)]
    format: Option<String>,
    /// Pods.
    #[arg(value_name = "POD", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The pod.
    #[arg(value_name = "POD")]
    pod: String,
    /// ps descriptors (accepted, ignored).
    #[arg(
        value_name = "DESCRIPTORS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    descriptors: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// All pods (the default without names).
    #[arg(short, long)]
    all: bool,
    /// One sample, then exit.
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not clear the screen between samples.
    #[arg(long = "no-reset")]
    no_reset: bool,
    /// Output format: `json` or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Pods.
    #[arg(value_name = "POD")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Only this container of the pod.
    #[arg(short, long)]
    container: Option<String>,
    /// Follow the logs.
    #[arg(short, long)]
    follow: bool,
    /// Only entries since (RFC 3339, unix seconds or a duration like 10m).
    #[arg(long)]
    since: Option<String>,
    /// Only entries until.
    #[arg(long)]
    until: Option<String>,
    /// The last N lines of each container.
    #[arg(long)]
    tail: Option<i64>,
    /// Show timestamps.
    #[arg(short, long)]
    timestamps: bool,
    /// Prefix lines with container names instead of ids.
    #[arg(short, long)]
    names: bool,
    /// Colours (accepted, ignored).
    #[arg(long)]
    color: bool,
    /// The pod.
    #[arg(value_name = "POD")]
    pod: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ExistsArgs {
    /// The pod.
    #[arg(value_name = "POD")]
    pod: String,
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    command: TopCommand,
) -> Result<()> {
    let TopCommand::Pod(cmd) = command;
    let mut e = crate::containers::engine(root, runroot)?;
    match cmd {
        PodCommand::Create(a) => create(&mut e, *a),
        PodCommand::Start(a) => each(&mut e, &a.names, a.all, false, Engine::pod_start),
        PodCommand::Stop(a) => each(&mut e, &a.names, a.all, a.ignore, |e, n| {
            e.pod_stop(n, a.time)
        }),
        PodCommand::Restart(a) => each(&mut e, &a.names, a.all, false, |e, n| {
            e.pod_restart(n, None)
        }),
        PodCommand::Kill(a) => {
            barge_engine::containers::lifecycle::signal_number(&a.signal)?;
            each(&mut e, &a.names, a.all, false, |e, n| {
                e.pod_kill(n, &a.signal)
            })
        }
        PodCommand::Pause(a) => each(&mut e, &a.names, a.all, false, Engine::pod_pause),
        PodCommand::Unpause(a) => each(&mut e, &a.names, a.all, false, Engine::pod_unpause),
        PodCommand::Rm(a) => rm(&mut e, &a),
        PodCommand::Ps(a) => ps(&mut e, &a),
        PodCommand::Inspect(a) => inspect(&mut e, &a),
        PodCommand::Top(a) => top(&mut e, &a),
        PodCommand::Stats(a) => stats(&mut e, &a),
        PodCommand::Logs(a) => logs(&mut e, &a),
        PodCommand::Prune(a) => {
            if !a.force
                && !confirm("WARNING! This will remove all stopped/exited pods..\nAre you sure you want to continue? [y/N] ")?
            {
                return Ok(());
            }
            for id in e.pod_prune()? {
                println!("{id}");
            }
            Ok(())
        }
        PodCommand::Exists(a) => {
            if e.pod_exists(&a.pod)? {
                Ok(())
            } else {
                Err(Exit(1).into())
            }
        }
    }
}

fn parse_labels(list: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for l in list {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}: expected KEY=VALUE");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

fn create(e: &mut Engine, a: CreateArgs) -> Result<()> {
    let name = match (&a.name, &a.positional) {
        (Some(_), Some(_)) => bail!("cannot specify both --name and a pod name argument"),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    let no_infra = a.no_infra || !a.infra;
    let share = a
        .share
        .as_deref()
        .map(barge_engine::pods::parse_share)
        .transpose()?;
    let network = a.network.as_deref().map(NetworkMode::parse).transpose()?;
    let ports = barge_engine::networks::parse_publish(&a.publish)?;
    for h in &a.add_host {
        match h.split_once(':') {
            Some((n, ip)) if !n.is_empty() && ip.parse::<std::net::IpAddr>().is_ok() => {}
            _ => bail!("invalid --add-host {h:?}: expected NAME:IP"),
        }
    }
    let infra_command = match a.infra_command.as_deref() {
        None => None,
        Some(c) if c.trim_start().starts_with('[') => Some(
            serde_json::from_str::<Vec<String>>(c)
                .map_err(|err| anyhow::anyhow!("invalid --infra-command {c:?}: {err}"))?,
        ),
        Some(c) => Some(c.split_whitespace().map(str::to_string).collect()),
    };
    let opts = PodCreateOptions {
        name: name.clone(),
        hostname: a.hostname.clone(),
        labels: parse_labels(&a.label)?,
        share: share.map(|s| {
            vec![if s.is_empty() {
                "none".into()
            } else {
                s.join(",")
            }]
        }),
        no_infra,
        infra_image: a.infra_image.clone(),
        infra_command,
        infra_name: a.infra_name.clone(),
        network,
        ports,
        add_hosts: a.add_host.clone(),
        dns: a.dns.clone(),
        exit_policy: a.exit_policy.clone(),
        pull: PullPolicy::Missing,
        create_command: std::env::args().collect(),
    };
    if a.replace {
        if let Some(n) = &name {
            match e.pod_remove(
                n,
                &PodRemoveOptions {
                    force: true,
                    ..PodRemoveOptions::default()
                },
            ) {
                Ok(r) => report_errors(&r, "removing")?,
                Err(EngineError::NoSuchPod(_)) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
    let pod = e.pod_create(opts, |store, image| {
        crate::images::pull_for_create(store, image, false, true)
    })?;
    if let Some(f) = &a.pod_id_file {
        std::fs::write(f, format!("{}\n", pod.id))
            .map_err(|err| anyhow::anyhow!("writing {}: {err}", f.display()))?;
    }
    println!("{}", pod.id);
    Ok(())
}

/// Fails with podman's wording when a pod operation failed on some of its
/// containers.
fn report_errors(r: &PodReport, what: &str) -> Result<()> {
    match r.errors.as_slice() {
        [] => Ok(()),
        [one] => bail!("{what} container {}: {}", one.id, one.error),
        many => {
            let mut msg = format!("{} errors occurred:", many.len());
            for e in many {
                let _ = write!(msg, "\n\t* {what} container {}: {}", e.id, e.error);
            }
            bail!("{msg}")
        }
    }
}

/// Applies `f` to each named (or, with `all`, every) pod, printing each
/// pod's id like podman; reports every failure and fails at the end if
/// any did.
fn each(
    e: &mut Engine,
    names: &[String],
    all: bool,
    ignore: bool,
    mut f: impl FnMut(&mut Engine, &str) -> barge_engine::Result<PodReport>,
) -> Result<()> {
    let targets: Vec<String> = if all {
        e.pods()?.into_iter().map(|p| p.id).collect()
    } else {
        if names.is_empty() {
            bail!("you must provide at least one pod name or id");
        }
        names.to_vec()
    };
    let mut failed: Option<anyhow::Error> = None;
    for n in &targets {
        let r = f(e, n).map_err(anyhow::Error::from).and_then(|r| {
            report_errors(&r, "acting on")?;
            Ok(r)
        });
        match r {
            Ok(r) => println!("{}", r.id),
            Err(err)
                if ignore
                    && matches!(
                        err.downcast_ref::<EngineError>(),
                        Some(EngineError::NoSuchPod(_))
                    ) => {}
            Err(err) => {
                if let Some(prev) = failed.replace(err) {
                    eprintln!("Error: {prev}");
                }
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn rm(e: &mut Engine, a: &RmArgs) -> Result<()> {
    let names: Vec<String> = if a.all {
        e.pods()?.into_iter().map(|p| p.id).collect()
    } else {
        if a.names.is_empty() {
            bail!("you must provide at least one pod name or id");
        }
        a.names.clone()
    };
    let opts = PodRemoveOptions {
        force: a.force,
        timeout: a.time,
        volumes: false,
    };
    let mut failed: Option<anyhow::Error> = None;
    let mut missing = false;
    for n in &names {
        match e.pod_remove(n, &opts) {
            Ok(r) => match report_errors(&r, "removing") {
                Ok(()) => println!("{}", r.id),
                Err(err) => {
                    if let Some(prev) = failed.replace(err) {
                        eprintln!("Error: {prev}");
                    }
                }
            },
            Err(EngineError::NoSuchPod(_)) if a.ignore => {}
            Err(err) => {
                missing = matches!(err, EngineError::NoSuchPod(_));
                if let Some(prev) = failed.replace(err.into()) {
                    eprintln!("Error: {prev}");
                }
            }
        }
    }
    match failed {
        // podman: 1 when a pod does not exist.
        Some(err) if missing => {
            eprintln!("Error: {err}");
            Err(Exit(1).into())
        }
        Some(err) => Err(err),
        None => Ok(()),
    }
}

fn ps_header(field: &str) -> Option<String> {
    Some(
        match field {
            "ID" | "Id" => "POD ID",
            "InfraID" | "InfraId" => "INFRA ID",
            "NumberOfContainers" => "# OF CONTAINERS",
            "ContainerNames" => "NAMES",
            "ContainerIds" => "IDS",
            "ContainerStatuses" => "STATUS",
            _ => return None,
        }
        .to_string(),
    )
}

fn ps(e: &mut Engine, a: &PsArgs) -> Result<()> {
    if let Some(f) = a.format.as_deref() {
        if f != "json" {
            Template::parse(f)?;
        }
    }
    let mut list = e.pod_list(&a.filter)?;
    match a.sort.as_str() {
        "created" => {}
        "id" => list.sort_by(|x, y| x.pod.id.cmp(&y.pod.id)),
        "name" => list.sort_by(|x, y| x.pod.name.cmp(&y.pod.name)),
        "number" => list.sort_by_key(|x| x.containers.len()),
        "status" => list.sort_by(|x, y| x.state.as_str().cmp(y.state.as_str())),
        s => bail!("invalid option for --sort {s:?}: expected created, id, name, number or status"),
    }
    if a.latest {
        list.sort_by_key(|p| std::cmp::Reverse(p.pod.created));
        list.truncate(1);
    }
    if a.quiet {
        for p in &list {
            if a.no_trunc {
                println!("{}", p.pod.id);
            } else {
                println!("{}", &p.pod.id[..12]);
            }
        }
        return Ok(());
    }
    if a.format.as_deref() == Some("json") {
        let v: Vec<Value> = list.iter().map(PodListEntry::to_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let rows: Vec<Value> = list.iter().map(|p| p.template_view(a.no_trunc)).collect();
    let format = if let Some(f) = a.format.as_deref() {
        f.to_string()
    } else {
        let mut f =
            String::from("table {{.ID}}\t{{.Name}}\t{{.Status}}\t{{.Created}}\t{{.InfraID}}");
        if a.ctr_ids {
            f.push_str("\t{{.ContainerIds}}");
        }
        if a.ctr_names {
            f.push_str("\t{{.ContainerNames}}");
        }
        if a.ctr_status {
            f.push_str("\t{{.ContainerStatuses}}");
        }
        if !(a.ctr_ids || a.ctr_names || a.ctr_status) {
            f.push_str("\t{{.NumberOfContainers}}");
        }
        f
    };
    crate::images::print_rows(&format, &rows, a.noheading, &ps_header)
}

fn inspect(e: &mut Engine, a: &InspectArgs) -> Result<()> {
    let t = a.format.as_deref().map(Template::parse).transpose()?;
    let mut values = Vec::new();
    let mut failed = None;
    for n in &a.names {
        match e.pod_inspect(n) {
            Ok(v) => values.push(v),
            Err(err) => failed = Some(err),
        }
    }
    match &t {
        Some(t) => {
            for v in &values {
                println!("{}", t.render_one(v));
            }
        }
        // podman 4: one pod is printed as an object, several as a list.
        None if a.names.len() == 1 => {
            if let Some(v) = values.first() {
                println!("{}", serde_json::to_string_pretty(v)?);
            }
        }
        None => println!("{}", serde_json::to_string_pretty(&values)?),
    }
    match failed {
        Some(err) => Err(err.into()),
        None => Ok(()),
    }
}

fn top(e: &mut Engine, a: &TopArgs) -> Result<()> {
    let mut out = String::from("USER\tPID\tPPID\tCONTAINER\tCOMMAND\n");
    for (ctr, rows) in e.pod_top(&a.pod)? {
        for (pid, ppid, uid, cmd) in rows {
            let user = if uid == 0 {
                "root".to_string()
            } else {
                uid.to_string()
            };
            let _ = writeln!(out, "{user}\t{pid}\t{ppid}\t{ctr}\t{cmd}");
        }
    }
    print!("{}", barge_engine::template::align(&out));
    Ok(())
}

fn stats_header(field: &str) -> Option<String> {
    Some(
        match field {
            "Pod" => "POD",
            "CID" | "ID" => "CID",
            "Name" => "NAME",
            "CPU" | "CPUPerc" => "CPU %",
            "MemUsage" | "MemUsageBytes" => "MEM USAGE / LIMIT",
            "Mem" | "MemPerc" => "MEM %",
            "NetIO" => "NET IO",
            "BlockIO" => "BLOCK IO",
            "PIDS" | "PIDs" => "PIDS",
            _ => return None,
        }
        .to_string(),
    )
}

const STATS_TABLE: &str = "table {{.Pod}}\t{{.CID}}\t{{.Name}}\t{{.CPU}}\t{{.MemUsage}}\t{{.Mem}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}";

fn stats(e: &mut Engine, a: &StatsArgs) -> Result<()> {
    if let Some(f) = a.format.as_deref() {
        if f != "json" {
            Template::parse(f)?;
        }
    }
    let pods: Vec<String> = if a.names.is_empty() || a.all {
        e.pods()?.into_iter().map(|p| p.id).collect()
    } else {
        let mut v = Vec::new();
        for n in &a.names {
            v.push(e.pod_lookup(n)?.id);
        }
        v
    };
    let mut prev: HashMap<String, StatsSample> = HashMap::new();
    loop {
        let mut rows = Vec::new();
        let mut samples = HashMap::new();
        for p in &pods {
            let samples_of_pod = match e.pod_stats(p) {
                Ok(s) => s,
                Err(EngineError::NoSuchPod(_)) if !a.no_stream => continue,
                Err(err) => return Err(err.into()),
            };
            for s in samples_of_pod {
                let mut row = stats_row(&s, prev.get(&s.id), false);
                row["Pod"] = Value::from(p[..12].to_string());
                row["CID"] = row["ID"].clone();
                row["CPU"] = row["CPUPerc"].clone();
                row["Mem"] = row["MemPerc"].clone();
                rows.push(row);
                samples.insert(s.id.clone(), s);
            }
        }
        if !a.no_stream && !a.no_reset {
            print!("\x1b[2J\x1b[H");
        }
        match a.format.as_deref() {
            Some("json") => {
                let keys = [
                    "CPU",
                    "MemUsage",
                    "MemUsageBytes",
                    "Mem",
                    "NetIO",
                    "BlockIO",
                    "PIDS",
                    "Pod",
                    "CID",
                    "Name",
                ];
                let v: Vec<Value> = rows
                    .iter()
                    .map(|r| {
                        let mut o = serde_json::Map::new();
                        for k in keys {
                            o.insert(k.into(), r.get(k).cloned().unwrap_or(Value::Null));
                        }
                        Value::Object(o)
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            Some(f) => crate::images::print_rows(f, &rows, false, &stats_header)?,
            None => crate::images::print_rows(STATS_TABLE, &rows, false, &stats_header)?,
        }
        std::io::stdout().flush()?;
        if a.no_stream {
            return Ok(());
        }
        prev = samples;
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn logs(e: &mut Engine, a: &LogsArgs) -> Result<()> {
    let opts = PodLogsOptions {
        container: a.container.clone(),
        names: a.names,
        logs: LogsOptions {
            follow: a.follow,
            since: a.since.as_deref().map(query::parse_time).transpose()?,
            until: a.until.as_deref().map(query::parse_time).transpose()?,
            tail: a.tail.and_then(|t| usize::try_from(t).ok()),
            timestamps: a.timestamps,
        },
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    e.pod_logs(&a.pod, &opts, &mut out, &mut err)?;
    Ok(())
}
