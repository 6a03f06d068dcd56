//! `barge`: the podman-compatible CLI, a thin layer over `barge_engine`.

mod container_extras;
mod containers;
mod images;
mod kube;
mod networks;
mod pods;
mod system;
mod volumes;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Podman's exit code for errors of the engine itself.
pub(crate) const EXIT_ENGINE: u8 = 125;

#[derive(Parser, Debug)]
#[command(
    name = "barge",
    version,
    about = "Manage images and containers",
    disable_help_subcommand = true
)]
struct Cli {
    /// Path to the persistent state (images, containers, volumes, database).
    #[arg(long, global = true, value_name = "PATH")]
    root: Option<PathBuf>,
    /// Path to the volatile state (monitor sockets, runtime state).
    #[arg(long, global = true, value_name = "PATH")]
    runroot: Option<PathBuf>,
    /// Path to a registries.conf to use for image operations (instead of
    /// $CONTAINERS_REGISTRIES_CONF or the default files).
    #[arg(long, global = true, value_name = "PATH")]
    registries_conf: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the `run` flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Containers(Box<containers::TopCommand>),
    #[command(flatten)]
    Images(images::TopCommand),
    #[command(flatten)]
    Kube(kube::TopCommand),
    #[command(flatten)]
    Networks(networks::TopCommand),
    #[command(flatten)]
    Volumes(volumes::TopCommand),
    #[command(flatten)]
    Pods(pods::TopCommand),
    #[command(flatten)]
    System(system::TopCommand),
}

/// An error with the exit code to leave with.
#[derive(Debug)]
pub(crate) struct Exit(pub(crate) u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::UnknownArgument => {
                    let arg = match e.get(ContextKind::InvalidArg) {
                        Some(ContextValue::String(s)) => s.clone(),
                        _ => String::new(),
                    };
                    let what = if arg.starts_with("--") || arg.starts_with('-') {
                        "flag"
                    } else {
                        "argument"
                    };
                    eprintln!("Error: unknown {what}: {arg}");
                    eprintln!("See 'barge --help'");
                }
                _ => {
                    let text = e.render().to_string();
                    // The message, up to the usage line, on one line.
                    let msg: Vec<&str> = text
                        .lines()
                        .map(str::trim)
                        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
                        .filter(|l| !l.is_empty())
                        .collect();
                    let msg = msg.join(" ");
                    eprintln!("Error: {}", msg.trim_start_matches("error: "));
                    eprintln!("See 'barge --help'");
                }
            }
            return ExitCode::from(EXIT_ENGINE);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("Error: {e}");
            ExitCode::from(EXIT_ENGINE)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    // An unprivileged user's barge works inside the user's namespaces;
    // joined first, while this process has a single thread.
    barge_engine::rootless::enter()?;
    if let Some(p) = &cli.registries_conf {
        if !p.is_file() {
            anyhow::bail!("--registries-conf {}: no such file", p.display());
        }
        // As podman does: every image operation (pull, push, login, and
        // local short-name lookups) reads the registries configuration
        // through this variable. Still single-threaded here.
        std::env::set_var(barge_engine::images::REGISTRIES_CONF_ENV, p);
    }
    let root = cli.root.as_ref();
    match cli.command {
        Command::Images(c) => images::run(root, c),
        Command::Kube(c) => kube::run(root, cli.runroot.as_ref(), c),
        Command::Containers(c) => containers::run(root, cli.runroot.as_ref(), *c),
        Command::Networks(c) => networks::run(root, cli.runroot.as_ref(), c),
        Command::Volumes(c) => volumes::run(root, cli.runroot.as_ref(), c),
        Command::Pods(c) => pods::run(root, cli.runroot.as_ref(), c),
        Command::System(c) => system::run(root, cli.runroot.as_ref(), c),
    }
}
