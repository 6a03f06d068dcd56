//! `barge network ...`: create, ls, inspect, rm, prune, connect,
//! disconnect, exists.

use crate::{Exit, EXIT_ENGINE};
use anyhow::Result;
use barge_engine::networks::{NetworkConnectOptions, NetworkCreateOptions, NetworkRecord};
use barge_engine::template::Template;
use barge_engine::EngineError;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
}

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display the configuration of networks.
    Inspect(InspectArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(ConnectArgs),
    /// Check whether a network exists (exit code 0 or 1).
    Exists(ExistsArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Subnet in CIDR notation.
    #[arg(long)]
    subnet: Option<String>,
    /// Gateway of the subnet.
    #[arg(long)]
    gateway: Option<String>,
    /// No access to the outside.
    #[arg(long)]
    internal: bool,
    /// Labels (`KEY=VALUE`).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Driver (only `bridge`).
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    /// Do not fail if the network exists.
    #[arg(long)]
    ignore: bool,
    /// Name (default: bargeN).
    #[arg(value_name = "NAME")]
    name: Option<String>,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Go template or `json`.
    #[arg(long)]
    format: Option<String>,
    /// Only names.
    #[arg(short, long)]
    quiet: bool,
    /// Filters (`name=`, `id=`, `driver=`, `label=`, `dangling=`).
    #[arg(short, long)]
    filter: Vec<String>,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// No header row.
    #[arg(long)]
    noheading: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Go template.
    #[arg(short, long)]
    format: Option<String>,
    /// Networks.
    #[arg(value_name = "NETWORK", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove the containers using the network first.
    #[arg(short, long)]
    force: bool,
    /// Networks.
    #[arg(value_name = "NETWORK", required = true)]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The network.
    #[arg(value_name = "NETWORK")]
    network: String,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Args, Debug)]
pub struct ExistsArgs {
    /// The network.
    #[arg(value_name = "NETWORK")]
    name: String,
}

/// `KEY=VALUE` flags into a map (a bare key gets an empty value).
pub(crate) fn key_values(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Asks `question` on stderr; true for yes.
pub(crate) fn confirm(question: &str) -> Result<bool> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// podman's exit codes for network and volume removal: 1 when the object
/// does not exist, 2 when it is in use, else 125.
pub(crate) fn rm_exit_code(err: &EngineError) -> u8 {
    let msg = err.to_string();
    if msg.ends_with("network not found") || msg.ends_with("no such volume") {
        1
    } else if msg.ends_with("network is being used") || msg.ends_with("volume is being used") {
        2
    } else {
        EXIT_ENGINE
    }
}

/// Prints values as `inspect` does: JSON, or a template per value.
pub(crate) fn print_inspect(format: Option<&str>, json: &[Value], views: &[Value]) -> Result<()> {
    match format {
        None | Some("json") => println!("{}", serde_json::to_string_pretty(json)?),
        Some(f) => {
            let t = Template::parse(f)?;
            for v in views {
                println!("{}", t.render_one(v));
            }
        }
    }
    Ok(())
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    TopCommand::Network(cmd): TopCommand,
) -> Result<()> {
    let mut e = crate::containers::engine(root, runroot)?;
    match cmd {
        NetworkCommand::Create(a) => {
            let rec = e.network_create(NetworkCreateOptions {
                name: a.name,
                subnet: a.subnet,
                gateway: a.gateway,
                internal: a.internal,
                labels: key_values(&a.label),
                driver: Some(a.driver),
                ignore: a.ignore,
            })?;
            println!("{}", rec.name);
            Ok(())
        }
        NetworkCommand::Ls(a) => {
            let nets = e.network_list(&a.filter)?;
            if a.quiet {
                for n in &nets {
                    println!("{}", n.name);
                }
                return Ok(());
            }
            if a.format.as_deref() == Some("json") {
                let v: Vec<Value> = nets.iter().map(NetworkRecord::to_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
                return Ok(());
            }
            let rows: Vec<Value> = nets
                .iter()
                .map(|n| {
                    let mut v = n.template_view();
                    if !a.no_trunc {
                        v["ID"] = Value::String(n.id.chars().take(12).collect());
                    }
                    v
                })
                .collect();
            let default = "table {{.ID}}\t{{.Name}}\t{{.Driver}}";
            crate::images::print_rows(
                a.format.as_deref().unwrap_or(default),
                &rows,
                a.noheading,
                &|f| match f {
                    "ID" | "Id" => Some("NETWORK ID".into()),
                    _ => None,
                },
            )
        }
        NetworkCommand::Inspect(a) => {
            let (mut json, mut views, mut failed) = (Vec::new(), Vec::new(), None);
            for n in &a.names {
                match e.network_inspect(n) {
                    Ok(v) => {
                        json.push(v);
                        views.push(e.network_record(n)?.template_view());
                    }
                    Err(err) => failed = Some(err),
                }
            }
            print_inspect(a.format.as_deref(), &json, &views)?;
            match failed {
                Some(err) => Err(anyhow::anyhow!("inspecting object: {err}")),
                None => Ok(()),
            }
        }
        NetworkCommand::Rm(a) => {
            let mut code = 0;
            for n in &a.names {
                match e.network_remove(n, a.force) {
                    Ok(()) => println!("{n}"),
                    Err(err) => {
                        eprintln!("Error: {err}");
                        code = rm_exit_code(&err);
                    }
                }
            }
            if code == 0 {
                Ok(())
            } else {
                Err(Exit(code).into())
            }
        }
        NetworkCommand::Prune(a) => {
            if !a.force
                && !confirm("WARNING! This will remove all networks not used by at least one container.\nAre you sure you want to continue? [y/N] ")?
            {
                return Ok(());
            }
            for n in e.network_prune()? {
                println!("{n}");
            }
            Ok(())
        }
        NetworkCommand::Connect(a) => {
            e.network_connect(&NetworkConnectOptions {
                network: a.network,
                container: a.container,
            })?;
            Ok(())
        }
        NetworkCommand::Disconnect(a) => {
            e.network_disconnect(&a.network, &a.container)?;
            Ok(())
        }
        NetworkCommand::Exists(a) => match e.network_record(&a.name) {
            Ok(_) => Ok(()),
            Err(err) if rm_exit_code(&err) == 1 => Err(Exit(1).into()),
            Err(err) => Err(err.into()),
        },
    }
}
