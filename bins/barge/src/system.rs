//! `barge system prune|reset|info`, `barge info`, `barge version`.

use crate::networks::confirm;
use anyhow::Result;
use barge_engine::images::human_size;
use barge_engine::system::SystemPruneOptions;
use barge_engine::template::Template;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// Manage barge.
    #[command(subcommand)]
    System(SystemCommand),
    /// Display barge related system information.
    Info(InfoArgs),
    /// Display the barge version information.
    Version(InfoArgs),
    /// Run a command inside the rootless user's namespaces (as root there).
    Unshare(UnshareArgs),
    /// A rootless container's port forwarder (started by the engine).
    #[command(name = "__port-forward", hide = true)]
    PortForward(PortForwardArgs),
}

#[derive(Args, Debug)]
pub struct UnshareArgs {
    /// The command and its arguments (default: $SHELL or /bin/sh).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PortForwardArgs {
    /// The network namespace holding the container's address.
    #[arg(long)]
    netns: PathBuf,
    /// Where to write the relaying process's pid.
    #[arg(long)]
    pid_file: PathBuf,
    /// `HOSTIP:HOSTPORT:CTRIP:CTRPORT`.
    forwards: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Remove unused data.
    Prune(PruneArgs),
    /// Reset barge storage: remove everything.
    Reset(ResetArgs),
    /// Display barge related system information.
    Info(InfoArgs),
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not only dangling ones.
    #[arg(short, long)]
    all: bool,
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
    /// Also remove unused volumes.
    #[arg(long)]
    volumes: bool,
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    /// Do not ask.
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// `json` or a Go template.
    #[arg(short, long)]
    format: Option<String>,
}

pub(crate) fn run(
    root: Option<&PathBuf>,
    runroot: Option<&PathBuf>,
    cmd: TopCommand,
) -> Result<()> {
    match cmd {
        TopCommand::Version(a) => version(a.format.as_deref()),
        TopCommand::Unshare(a) => unshare(&a.command),
        TopCommand::PortForward(a) => {
            let forwards = a
                .forwards
                .iter()
                .map(|f| barge_engine::portfwd::Forward::parse(f))
                .collect::<Result<Vec<_>, _>>()?;
            barge_engine::portfwd::run(&a.netns, &a.pid_file, &forwards)
        }
        TopCommand::Info(a) | TopCommand::System(SystemCommand::Info(a)) => {
            let mut e = crate::containers::engine(root, runroot)?;
            let info = e.info()?;
            match a.format.as_deref() {
                Some("json") => println!("{}", serde_json::to_string_pretty(&info)?),
                Some(f) => println!("{}", Template::parse(f)?.render_one(&template_view(&info))),
                None => print!("{}", yaml(&info)),
            }
            Ok(())
        }
        TopCommand::System(SystemCommand::Prune(a)) => {
            if !a.force {
                let mut what = String::from(
                    "WARNING! This command removes:\n\t- all stopped containers\n\t- all networks not used by at least one container\n",
                );
                if a.volumes {
                    what.push_str("\t- all volumes not used by at least one container\n");
                }
                what.push_str(if a.all {
                    "\t- all images without at least one container associated with them\n"
                } else {
                    "\t- all dangling images\n"
                });
                what.push_str("\nAre you sure you want to continue? [y/N] ");
                if !confirm(&what)? {
                    return Ok(());
                }
            }
            let mut e = crate::containers::engine(root, runroot)?;
            let r = e.system_prune(SystemPruneOptions {
                all: a.all,
                volumes: a.volumes,
            })?;
            for (title, list) in [
                ("Deleted Pods", &r.pods),
                ("Deleted Containers", &r.containers),
                ("Deleted Networks", &r.networks),
                ("Deleted Volumes", &r.volumes),
                ("Deleted Images", &r.images),
            ] {
                if !list.is_empty() {
                    println!("{title}");
                    for x in list {
                        println!("{x}");
                    }
                }
            }
            println!("Total reclaimed space: {}", human_size(r.reclaimed));
            Ok(())
        }
        TopCommand::System(SystemCommand::Reset(a)) => {
            if !a.force
                && !confirm("WARNING! This will remove all containers, pods, images, volumes, networks (except default) and resets the storage to initial state.\nAre you sure you want to continue? [y/N] ")?
            {
                return Ok(());
            }
            let mut e = crate::containers::engine(root, runroot)?;
            e.system_reset()?;
            Ok(())
        }
    }
}

fn version(format: Option<&str>) -> Result<()> {
    let v = barge_engine::system::version();
    match format {
        Some("json") => println!("{}", serde_json::to_string(&v)?),
        Some(f) => println!("{}", Template::parse(f)?.render_one(&v)),
        None => {
            let c = &v["Client"];
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            println!("Client:       barge");
            println!("Version:      {}", s("Version"));
            println!("API Version:  {}", s("APIVersion"));
            println!("Rust Version: {}", s("GoVersion"));
            println!("Built:        {}", s("BuiltTime"));
            println!("OS/Arch:      {}", s("OsArch"));
        }
    }
    Ok(())
}

/// The fields `--format` templates see: podman's Go names
/// (`{{.Host.Kernel}}`, `{{.Store.GraphRoot}}`): every key with its first
/// letter upper-cased, besides the original keys.
fn template_view(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                let t = template_view(x);
                let mut up = k.clone();
                if let Some(f) = up.get(..1) {
                    up = f.to_ascii_uppercase() + &up[1..];
                }
                out.insert(up, t.clone());
                out.insert(k.clone(), t);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(template_view).collect()),
        x => x.clone(),
    }
}

/// YAML as podman prints `info`.
fn yaml(v: &Value) -> String {
    let mut out = String::new();
    yaml_into(v, 0, &mut out);
    out
}

fn yaml_scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            if s.is_empty()
                || s.contains(['\n', ':', '#', '"', '\''])
                || s.starts_with([' ', '-', '[', '{', '*', '&', '!', '|', '>', '%', '@'])
                || s.ends_with(' ')
                || matches!(s.as_str(), "true" | "false" | "null" | "yes" | "no")
                || s.parse::<f64>().is_ok()
            {
                serde_json::to_string(s).unwrap_or_default()
            } else {
                s.clone()
            }
        }
        Value::Null => "null".into(),
        x => x.to_string(),
    }
}

fn yaml_into(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::Object(inner) if !inner.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        yaml_into(x, indent + 2, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}:");
                        yaml_into(x, indent, out);
                    }
                    Value::Object(_) => {
                        let _ = writeln!(out, "{pad}{k}: {{}}");
                    }
                    Value::Array(_) => {
                        let _ = writeln!(out, "{pad}{k}: []");
                    }
                    x => {
                        let _ = writeln!(out, "{pad}{k}: {}", yaml_scalar(x));
                    }
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                match x {
                    Value::Object(_) | Value::Array(_) => {
                        let mut inner = String::new();
                        yaml_into(x, indent + 2, &mut inner);
                        let inner = inner.trim_start().to_string();
                        let _ = write!(out, "{pad}- {inner}");
                    }
                    x => {
                        let _ = writeln!(out, "{pad}- {}", yaml_scalar(x));
                    }
                }
            }
        }
        x => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(x));
        }
    }
}

/// `barge unshare`: podman's, for looking at a rootless user's storage
/// with the ids the containers see. The namespaces are already joined
/// (see `main`); root has nothing to enter.
fn unshare(command: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if !barge_engine::rootless::is_rootless() {
        anyhow::bail!("please use unshare with rootless");
    }
    let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
    let (prog, args) = match command.split_first() {
        Some((p, a)) => (p.clone(), a.to_vec()),
        None => (shell, Vec::new()),
    };
    let err = std::process::Command::new(&prog).args(&args).exec();
    eprintln!("Error: running {prog}: {err}");
    Err(crate::Exit(if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    })
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_nests_maps_and_lists() {
        let v = json!({"host": {"arch": "amd64", "cpus": 2, "list": ["a", "b"], "empty": {}},
                       "store": {"graphRoot": "/x y", "version": "1.0"}});
        assert_eq!(
            yaml(&v),
            "host:\n  arch: amd64\n  cpus: 2\n  empty: {}\n  list:\n  - a\n  - b\nstore:\n  graphRoot: /x y\n  version: \"1.0\"\n"
        );
    }

    #[test]
    fn template_view_capitalises() {
        let v = template_view(&json!({"host": {"kernel": "6.1"}}));
        assert_eq!(v["Host"]["Kernel"], "6.1");
        assert_eq!(v["host"]["kernel"], "6.1");
    }
}
