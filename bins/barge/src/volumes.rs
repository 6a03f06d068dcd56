//! `barge volume ...`: create, ls, inspect, rm, prune, exists.

use crate::networks::{confirm, key_values, print_inspect, rm_exit_code};
use crate::Exit;
use anyhow::Result;
use barge_engine::volumes::VolumeCreateOptions;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Manage volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
}

#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display the configuration of volumes.
    Inspect(InspectArgs),
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused volumes.
    Prune(PruneArgs),
    /// Check whether a volume exists (exit code 0 or 1).
    Exists(ExistsArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Labels (`KEY=VALUE`).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Driver options (`KEY=VALUE`).
    #[arg(short, long = "opt", value_name = "KEY=VALUE")]
    opt: Vec<String>,
    /// Driver (only `local`).
    #[arg(short, long, default_value = "local")]
    driver: String,
    /// Do not fail if the volume exists.
    #[arg(long)]
    ignore: bool,
    /// Name (default: random).
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
    /// Filters (`name=`, `label=`, `driver=`, `dangling=`).
    #[arg(short, long)]
    filter: Vec<String>,
    /// No header row.
    #[arg(long)]
    noheading: bool,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Go template.
    #[arg(short, long)]
    format: Option<String>,
    /// All volumes.
    #[arg(short, long)]
    all: bool,
    /// Volumes.
    #[arg(value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove the containers using the volume first.
    #[arg(short, long)]
    force: bool,
    /// All volumes.
    #[arg(short, long)]
    all: bool,
    /// Volumes.
    #[arg(value_name = "VOLUME")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ExistsArgs {
    /// The volume.
    #[arg(value_name = "VOLUME")]
    name: String,
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    TopCommand::Volume(cmd): TopCommand,
) -> Result<()> {
    let mut e = crate::containers::engine(root, runroot)?;
    match cmd {
        VolumeCommand::Create(a) => {
            if a.driver != "local" {
                anyhow::bail!("volume driver {:?} is not supported yet", a.driver);
            }
            let v = e.volume_create(VolumeCreateOptions {
                name: a.name,
                labels: key_values(&a.label),
                options: key_values(&a.opt),
                ignore_existing: a.ignore,
            })?;
            println!("{}", v.name);
            Ok(())
        }
        VolumeCommand::Ls(a) => {
            let vols = e.volume_list(&a.filter)?;
            if a.quiet {
                for v in &vols {
                    println!("{}", v.name);
                }
                return Ok(());
            }
            let rows: Vec<Value> = vols
                .iter()
                .map(|v| e.volume_json(v))
                .collect::<barge_engine::Result<_>>()?;
            if a.format.as_deref() == Some("json") {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            let default = "table {{.Driver}}\t{{.Name}}";
            crate::images::print_rows(
                a.format.as_deref().unwrap_or(default),
                &rows,
                a.noheading,
                &|f| match f {
                    "Name" => Some("VOLUME NAME".into()),
                    _ => None,
                },
            )
        }
        VolumeCommand::Inspect(a) => {
            let names = if a.all {
                e.volumes()?.into_iter().map(|v| v.name).collect()
            } else if a.names.is_empty() {
                anyhow::bail!("provide one or more volume names or use --all");
            } else {
                a.names
            };
            let (mut rows, mut failed) = (Vec::new(), None);
            for n in &names {
                match e.volume(n).and_then(|v| e.volume_json(&v)) {
                    Ok(v) => rows.push(v),
                    Err(_) => failed = Some(n.clone()),
                }
            }
            print_inspect(a.format.as_deref(), &rows, &rows)?;
            match failed {
                Some(n) => Err(anyhow::anyhow!("inspecting object: no such volume {n}")),
                None => Ok(()),
            }
        }
        VolumeCommand::Rm(a) => {
            let names = if a.all {
                e.volumes()?.into_iter().map(|v| v.name).collect()
            } else if a.names.is_empty() {
                anyhow::bail!("choose either one or more volumes or all");
            } else {
                a.names
            };
            let mut code = 0;
            for n in &names {
                match e.volume_remove(n, a.force) {
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
        VolumeCommand::Prune(a) => {
            if !a.force
                && !confirm("WARNING! This will remove all volumes not used by at least one container. The following volumes will be removed:\nAre you sure you want to continue? [y/N] ")?
            {
                return Ok(());
            }
            for n in e.volume_prune()? {
                println!("{n}");
            }
            Ok(())
        }
        VolumeCommand::Exists(a) => match e.volume(&a.name) {
            Ok(_) => Ok(()),
            Err(err) if rm_exit_code(&err) == 1 => Err(Exit(1).into()),
            Err(err) => Err(err.into()),
        },
    }
}
