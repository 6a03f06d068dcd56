//! `barge-runtime`: a runc-compatible OCI runtime.
//!
//! Thin over `barge_runtime` (the core library): parses runc's command line,
//! sets up logging, and maps errors to runc's exit codes and log format.

mod cli;
mod logging;

/// `println!` that ignores a closed stdout (`state | head` must not panic).
macro_rules! outln {
    ($($t:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use barge_runtime::container::{self, CreateOptions};
use barge_runtime::exec::{self, ExecOptions};
use barge_runtime::{selfclone, util};
use clap::Parser;
use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli);
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let msg = error_chain(&err);
            logging::error(&cli, &msg);
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, skipping causes already spelled out by the
/// message before them (our error types include their source).
fn error_chain(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}

fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        PathBuf::from(barge_runtime::state::DEFAULT_ROOT)
    } else if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        Path::new(&dir).join("barge-runtime")
    } else {
        PathBuf::from(format!(
            "/tmp/barge-runtime-{}",
            rustix::process::geteuid().as_raw()
        ))
    }
}

fn run(cli: &Cli) -> Result<u8> {
    let root = cli.root.clone().unwrap_or_else(default_root);
    match &cli.command {
        Command::Create(a) => {
            guard_self(a.common.bundle.as_deref(), None, &root)?;
            let opts = create_options(&root, cli, &a.common);
            container::create(&opts)?;
            Ok(0)
        }
        Command::Run(a) => {
            guard_self(a.common.bundle.as_deref(), None, &root)?;
            let mut opts = create_options(&root, cli, &a.common);
            let spec = barge_oci::load_config(&opts.bundle)?;
            let terminal = spec
                .process()
                .as_ref()
                .and_then(oci_spec::runtime::Process::terminal)
                .unwrap_or(false);
            if terminal && a.detach && opts.console_socket.is_none() {
                bail!("cannot allocate a tty if barge-runtime will detach without setting --console-socket");
            }
            opts.stdio_pipes = !a.detach && !terminal;
            let has_userns = spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().as_ref())
                .is_some_and(|ns| {
                    ns.iter()
                        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
                });
            // With a user namespace the init may be our grandchild (two-step
            // creation): we must be its subreaper to wait for it.
            if !a.detach && (!a.no_subreaper || has_userns) {
                rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
                    .context("becoming a child subreaper")?;
            }
            // Block signals before the init exists so none is lost; the init
            // clears its mask before exec.
            let sigfd = if a.detach {
                None
            } else {
                Some(exec::forwarding_signals()?)
            };
            let created = container::create(&opts)?;
            if let Err(e) = container::start(&root, &opts.id) {
                let _ = container::delete(&root, &opts.id, true);
                return Err(e.into());
            }
            if a.detach {
                return Ok(0);
            }
            let attach = exec::Attach {
                console: created.console,
                pipes: created.pipes,
            };
            // Never leave a running container behind if waiting fails.
            let code = match exec::wait_attached(created.state.pid, attach, sigfd) {
                Ok(code) => code,
                Err(e) => {
                    let _ = container::delete(&root, &opts.id, true);
                    return Err(e.into());
                }
            };
            if !a.keep {
                container::delete(&root, &opts.id, true)?;
            }
            Ok(code as u8)
        }
        Command::Start(a) => {
            container::start(&root, &a.id)?;
            Ok(0)
        }
        Command::State(a) => {
            let st = container::state(&root, &a.id)?;
            outln!("{}", serde_json::to_string_pretty(&st)?);
            Ok(0)
        }
        Command::Kill(a) => {
            let sig = util::parse_signal(a.signal.as_deref().unwrap_or("SIGTERM"))?;
            container::kill(&root, &a.id, sig, a.all)?;
            Ok(0)
        }
        Command::Delete(a) => {
            container::delete(&root, &a.id, a.force)?;
            Ok(0)
        }
        Command::Exec(a) => {
            guard_self(None, Some(&a.id), &root)?;
            let process = cli::exec_process(&root, a)?;
            let code = exec::exec(&ExecOptions {
                root,
                id: a.id.clone(),
                process,
                console_socket: a.console_socket.clone(),
                pid_file: a.pid_file.clone(),
                detach: a.detach,
                preserve_fds: a.preserve_fds,
            })?;
            Ok(code as u8)
        }
        Command::Ps(a) => {
            let pids = container::pids(&root, &a.id)?;
            if a.format == "json" {
                outln!("{}", serde_json::to_string(&pids)?);
                return Ok(0);
            }
            let mut args = a.ps_args.clone();
            if args.is_empty() {
                args.push("-ef".into());
            }
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let pid_col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{header}")?;
            for line in lines {
                let pid: Option<i32> = line
                    .split_whitespace()
                    .nth(pid_col)
                    .and_then(|p| p.parse().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    writeln!(stdout, "{line}")?;
                }
            }
            Ok(0)
        }
        Command::Pause(a) => {
            container::pause(&root, &a.id)?;
            Ok(0)
        }
        Command::Resume(a) => {
            container::resume(&root, &a.id)?;
            Ok(0)
        }
        Command::List(a) => {
            let entries = container::list(&root)?;
            if a.quiet {
                for e in &entries {
                    outln!("{}", e.id);
                }
            } else if a.format == "json" {
                outln!("{}", serde_json::to_string(&entries)?);
            } else {
                let mut rows = vec![[
                    "ID".to_string(),
                    "PID".into(),
                    "STATUS".into(),
                    "BUNDLE".into(),
                    "CREATED".into(),
                    "OWNER".into(),
                ]];
                for e in &entries {
                    rows.push([
                        e.id.clone(),
                        e.pid.to_string(),
                        e.status.clone(),
                        e.bundle.display().to_string(),
                        e.created.clone(),
                        e.owner.clone(),
                    ]);
                }
                print_table(&rows);
            }
            Ok(0)
        }
        Command::Spec(a) => {
            let dir = a.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
            let path = dir.join("config.json");
            if path.exists() {
                bail!("File {} exists. Remove it first", path.display());
            }
            let spec = barge_oci::default::spec(a.rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("writing {}", path.display()))?;
            Ok(0)
        }
        Command::Features => {
            outln!(
                "{}",
                serde_json::to_string_pretty(&barge_oci::features::features(
                    cli::SECCOMP_ACTIONS,
                    cli::SECCOMP_ARCHES
                ))?
            );
            Ok(0)
        }
        Command::Update(a) => {
            let resources = cli::update_resources(a)?;
            container::update(&root, &a.id, &resources)?;
            Ok(0)
        }
        Command::Events(a) => {
            let interval = cli::parse_duration(&a.interval)?;
            let st = barge_runtime::state::ContainerState::load(&root, &a.id)?;
            let mut ooms = st.cgroup.oom_kill_count().unwrap_or(0);
            loop {
                let stats = container::stats(&root, &a.id)?;
                // A reader that went away ends the stream quietly.
                if writeln!(std::io::stdout(), "{}", serde_json::to_string(&stats)?).is_err() {
                    return Ok(0);
                }
                if a.stats {
                    return Ok(0);
                }
                let deadline = std::time::Instant::now() + interval;
                while std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(100).min(interval));
                    let now = st.cgroup.oom_kill_count().unwrap_or(ooms);
                    if now > ooms {
                        ooms = now;
                        let oom = serde_json::json!({"type": "oom", "id": a.id});
                        if writeln!(std::io::stdout(), "{oom}").is_err() {
                            return Ok(0);
                        }
                    }
                    if !util::process_alive(st.pid, st.start_time) {
                        return Ok(0);
                    }
                }
            }
        }
        Command::Checkpoint(_) | Command::Restore(_) => {
            bail!("checkpoint/restore is not supported by barge-runtime yet")
        }
    }
}

/// Re-execute from a sealed copy of ourselves when the exec trampoline
/// alone does not protect the host binary (see `selfclone::needs_full_copy`).
fn guard_self(bundle: Option<&Path>, exec_id: Option<&str>, root: &Path) -> Result<()> {
    if !selfclone::has_trampoline() {
        return Ok(selfclone::ensure_cloned()?);
    }
    let needs = match exec_id {
        Some(id) => barge_runtime::state::ContainerState::load(root, id).is_ok_and(|st| {
            let no_userns = st
                .config
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().as_ref())
                .is_none_or(|ns| {
                    !ns.iter()
                        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User)
                });
            selfclone::needs_full_copy(&st.config, true)
                || (no_userns
                    && selfclone::any_ptrace_capable(
                        &container::processes(&st).unwrap_or_default(),
                    ))
        }),
        None => barge_oci::load_config(bundle.unwrap_or(Path::new(".")))
            .is_ok_and(|spec| selfclone::needs_full_copy(&spec, false)),
    };
    if needs {
        selfclone::ensure_cloned()?;
    }
    Ok(())
}

fn create_options(root: &Path, cli: &Cli, a: &cli::CreateArgs) -> CreateOptions {
    CreateOptions {
        id: a.id.clone(),
        bundle: a.bundle.clone().unwrap_or_else(|| PathBuf::from(".")),
        root: root.to_path_buf(),
        console_socket: a.console_socket.clone(),
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        systemd_cgroup: cli.systemd_cgroup,
        stdio_pipes: false,
    }
}

fn print_table(rows: &[[String; 6]]) {
    let mut widths = [0usize; 6];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}   ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{line}");
    }
}
