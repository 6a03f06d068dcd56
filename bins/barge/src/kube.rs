//! `barge kube play|down|generate` (and podman 4's older spellings
//! `play kube`, `generate kube`): Kubernetes YAML over the engine's
//! `kube_*` operations.

use crate::Exit;
use anyhow::Result;
use barge_engine::kube::PlayOptions;
use clap::{Args, Subcommand};
use std::io::Read as _;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Play, tear down or generate Kubernetes YAML.
    #[command(subcommand)]
    Kube(KubeCommand),
    /// Play Kubernetes YAML (podman's older `play kube`).
    #[command(subcommand, hide = true)]
    Play(PlayKind),
    /// Generate Kubernetes YAML (podman's older `generate kube`).
    #[command(subcommand, hide = true)]
    Generate(GenerateKind),
}

#[derive(Subcommand, Debug)]
pub enum KubeCommand {
    /// Create pods, containers and volumes from Kubernetes YAML.
    Play(PlayArgs),
    /// Stop and remove the pods a Kubernetes YAML file created.
    Down(DownArgs),
    /// Write Kubernetes YAML for pods or containers.
    Generate(GenerateArgs),
}

#[derive(Subcommand, Debug)]
pub enum PlayKind {
    /// Same as `kube play`.
    Kube(PlayArgs),
}

#[derive(Subcommand, Debug)]
pub enum GenerateKind {
    /// Same as `kube generate`.
    Kube(GenerateArgs),
}

#[derive(Args, Debug)]
pub struct PlayArgs {
    /// Start the pods after creating them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    start: bool,
    /// Tear down the pods of the file first (as `kube down`).
    #[arg(long)]
    replace: bool,
    /// Tear down the pods of the file instead of creating them.
    #[arg(long)]
    down: bool,
    /// With `--down`: remove the claims' volumes too.
    #[arg(long)]
    force: bool,
    /// Pull images without progress output.
    #[arg(short, long)]
    quiet: bool,
    /// Verify TLS when pulling.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    tls_verify: bool,
    /// The YAML file (`-` for stdin).
    #[arg(value_name = "FILE")]
    file: String,
}

#[derive(Args, Debug)]
pub struct DownArgs {
    /// Remove the volumes of the file's PersistentVolumeClaims too.
    #[arg(long)]
    force: bool,
    /// The YAML file (`-` for stdin).
    #[arg(value_name = "FILE")]
    file: String,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Write to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    filename: Option<PathBuf>,
    /// Pods or containers.
    #[arg(value_name = "POD|CONTAINER", required = true)]
    names: Vec<String>,
}

fn read_file(file: &str) -> Result<String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| anyhow::anyhow!("reading YAML from stdin: {e}"))?;
        return Ok(s);
    }
    std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("reading {file}: {e}"))
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    cmd: TopCommand,
) -> Result<()> {
    let cmd = match cmd {
        TopCommand::Kube(c) => c,
        TopCommand::Play(PlayKind::Kube(a)) => KubeCommand::Play(a),
        TopCommand::Generate(GenerateKind::Kube(a)) => KubeCommand::Generate(a),
    };
    let mut e = crate::containers::engine(root, runroot)?;
    match cmd {
        KubeCommand::Play(a) => {
            if a.force && !a.down {
                anyhow::bail!("--force may be specified only with --down");
            }
            let yaml = read_file(&a.file)?;
            if a.down {
                return down(&mut e, &a.file, &yaml, a.force);
            }
            if a.replace {
                // Only the pods the file names, and only when they exist.
                let rep = e.kube_down(&a.file, &yaml, false)?;
                drop(rep);
            }
            let (quiet, tls) = (a.quiet, a.tls_verify);
            let rep = e.kube_play(
                &PlayOptions {
                    file: a.file.clone(),
                    yaml,
                    start: a.start,
                },
                &mut |store, image| crate::images::pull_for_create(store, image, quiet, tls),
            )?;
            for (i, v) in rep.volumes.iter().enumerate() {
                if i == 0 {
                    println!("Volumes:");
                }
                println!("{v}");
            }
            for p in &rep.pods {
                println!("Pod:\n{}", p.id);
                match p.containers.len() {
                    0 => continue,
                    1 => println!("Container:"),
                    _ => println!("Containers:"),
                }
                for c in &p.containers {
                    println!("{c}");
                }
                println!();
            }
            Ok(())
        }
        KubeCommand::Down(a) => {
            let yaml = read_file(&a.file)?;
            down(&mut e, &a.file, &yaml, a.force)
        }
        KubeCommand::Generate(a) => {
            let yaml = e.kube_generate(&a.names)?;
            let Some(f) = &a.filename else {
                print!("{yaml}");
                return Ok(());
            };
            if f.exists() {
                anyhow::bail!("cannot write to {}: the file exists", f.display());
            }
            std::fs::write(f, yaml).map_err(|e| anyhow::anyhow!("writing {}: {e}", f.display()))
        }
    }
}

fn down(
    e: &mut barge_engine::containers::Engine,
    file: &str,
    yaml: &str,
    force: bool,
) -> Result<()> {
    let rep = e.kube_down(file, yaml, force)?;
    println!("Pods stopped:");
    for id in &rep.stopped {
        println!("{id}");
    }
    println!("Pods removed:");
    for id in &rep.removed {
        println!("{id}");
    }
    if force {
        println!("Volumes removed:");
        for v in &rep.volumes {
            println!("{v}");
        }
    }
    for err in &rep.errors {
        eprintln!("Error: {err}");
    }
    if rep.errors.is_empty() {
        Ok(())
    } else {
        Err(Exit(crate::EXIT_ENGINE).into())
    }
}
