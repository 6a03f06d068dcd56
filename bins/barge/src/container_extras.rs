//! More container commands: cp, diff, commit, export, stats and
//! `healthcheck run`, plus the health flags of run/create.

use crate::Exit;
use anyhow::{bail, Result};
use barge_engine::containers::files::{CommitOptions, CopyEnd, CopyOptions, DiffReport};
use barge_engine::containers::health::{parse_duration, HealthSettings};
use barge_engine::containers::query::PsOptions;
use barge_engine::containers::stats::{stats_json, stats_row, StatsSample};
use barge_engine::containers::{Engine, Status};
use clap::{Args, Subcommand};
use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Subcommand, Debug)]
pub enum ExtraCommand {
    /// Copy files/folders between a container and the local filesystem.
    Cp(CpArgs),
    /// Inspect changes to the container's file systems.
    Diff(DiffArgs),
    /// Create new image based on the changed container.
    Commit(CommitArgs),
    /// Export a container's filesystem contents as a tar archive.
    Export(ExportArgs),
    /// Display a live stream of container resource usage statistics.
    Stats(StatsArgs),
    /// Manage health checks on containers.
    #[command(subcommand)]
    Healthcheck(HealthcheckCommand),
}

#[derive(Subcommand, Debug)]
pub enum HealthcheckCommand {
    /// Run the health check of a container.
    Run(HealthcheckRunArgs),
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Chown copied files to the primary uid/gid of the destination
    /// container (false: keep the archive's owners).
    #[arg(short, long, default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    archive: bool,
    /// Allow to overwrite directories with non-directories and vice versa.
    #[arg(long)]
    overwrite: bool,
    /// `[CONTAINER:]SRC_PATH` or `-`.
    #[arg(value_name = "SRC")]
    src: String,
    /// `[CONTAINER:]DEST_PATH` or `-`.
    #[arg(value_name = "DEST")]
    dst: String,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// Output format (json).
    #[arg(long)]
    format: Option<String>,
    /// The newest container.
    #[arg(short, long)]
    latest: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: Option<String>,
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Apply an instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR).
    #[arg(short, long)]
    change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    message: Option<String>,
    /// Author.
    #[arg(short, long)]
    author: Option<String>,
    /// Pause the container while committing (a running container is
    /// always paused while its changes are read).
    #[arg(short, long, default_value = "false", action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// Print only the image id.
    #[arg(short, long)]
    quiet: bool,
    /// Manifest format: oci (docker is not supported).
    #[arg(short, long, default_value = "oci")]
    format: String,
    /// Write the image id to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Accepted for compatibility (volumes are not included).
    #[arg(long = "include-volumes")]
    include_volumes: bool,
    /// Squash layers (not supported).
    #[arg(short, long)]
    squash: bool,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
    /// The new image's name.
    #[arg(value_name = "IMAGE")]
    image: Option<String>,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to this file (default: stdout, which must be redirected).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    all: bool,
    /// `json` or a Go template.
    #[arg(long)]
    format: Option<String>,
    /// Seconds between reports.
    #[arg(short, long, default_value_t = 5)]
    interval: u64,
    /// The newest container.
    #[arg(short, long)]
    latest: bool,
    /// Do not clear the screen between reports.
    #[arg(long = "no-reset")]
    no_reset: bool,
    /// One report only.
    #[arg(long = "no-stream")]
    no_stream: bool,
    /// Do not truncate ids.
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// Containers.
    #[arg(value_name = "CONTAINER")]
    names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct HealthcheckRunArgs {
    /// The container.
    #[arg(value_name = "CONTAINER")]
    container: String,
}

/// The health flags of `run`/`create` (`--health-cmd` is in RunArgs).
#[derive(Args, Debug, Default)]
#[allow(clippy::struct_field_names)] // podman's flag names
pub struct HealthArgs {
    /// Time between health checks (e.g. 30s; `disable`).
    #[arg(long = "health-interval")]
    health_interval: Option<String>,
    /// Consecutive failures before the container is unhealthy.
    #[arg(long = "health-retries")]
    health_retries: Option<u32>,
    /// A health check running longer fails (e.g. 30s).
    #[arg(long = "health-timeout")]
    health_timeout: Option<String>,
    /// Failures in this time after a start do not count (e.g. 10s).
    #[arg(long = "health-start-period")]
    health_start_period: Option<String>,
}

impl HealthArgs {
    /// The settings (None when no flag was given).
    pub fn settings(&self) -> Result<Option<HealthSettings>> {
        if self.health_interval.is_none()
            && self.health_retries.is_none()
            && self.health_timeout.is_none()
            && self.health_start_period.is_none()
        {
            return Ok(None);
        }
        let mut s = HealthSettings::default();
        if let Some(v) = &self.health_interval {
            s.interval_ns = parse_duration(v)?;
        }
        if let Some(v) = self.health_retries {
            if v == 0 {
                bail!("healthcheck-retries must be greater than 0");
            }
            s.retries = v;
        }
        if let Some(v) = &self.health_timeout {
            s.timeout_ns = parse_duration(v)?;
            if s.timeout_ns < 1_000_000_000 {
                bail!("healthcheck-timeout must be at least 1 second");
            }
        }
        if let Some(v) = &self.health_start_period {
            s.start_period_ns = parse_duration(v)?;
        }
        Ok(Some(s))
    }
}

pub(crate) fn run(e: &mut Engine, cmd: ExtraCommand) -> Result<()> {
    match cmd {
        ExtraCommand::Cp(a) => cp(e, &a),
        ExtraCommand::Diff(a) => diff(e, &a),
        ExtraCommand::Commit(a) => commit(e, &a),
        ExtraCommand::Export(a) => export(e, &a),
        ExtraCommand::Stats(a) => stats(e, &a),
        ExtraCommand::Healthcheck(HealthcheckCommand::Run(a)) => {
            let r = e.healthcheck_run(&a.container)?;
            if r.passed {
                Ok(())
            } else {
                println!("unhealthy");
                Err(Exit(1).into())
            }
        }
    }
}

fn cp(e: &mut Engine, a: &CpArgs) -> Result<()> {
    let src = CopyEnd::parse(&a.src)?;
    let dst = CopyEnd::parse(&a.dst)?;
    let opts = CopyOptions {
        archive: a.archive,
        overwrite: a.overwrite,
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut input = stdin.lock();
    let mut output = std::io::BufWriter::new(stdout.lock());
    e.copy(&src, &dst, opts, &mut input, &mut output)?;
    output.flush()?;
    Ok(())
}

fn latest_or(e: &mut Engine, latest: bool, name: Option<&str>) -> Result<String> {
    if latest {
        return e
            .ps(&PsOptions {
                all: true,
                latest: true,
                ..PsOptions::default()
            })?
            .first()
            .map(|c| c.id.clone())
            .ok_or_else(|| anyhow::anyhow!("no containers to act on"));
    }
    match name {
        Some(n) => Ok(n.to_string()),
        None => bail!("you must provide a container name or id, or --latest"),
    }
}

fn diff(e: &mut Engine, a: &DiffArgs) -> Result<()> {
    let name = latest_or(e, a.latest, a.container.as_deref())?;
    let changes = e.diff(&name)?;
    match a.format.as_deref() {
        Some("json") => {
            let mut r = DiffReport::default();
            for c in &changes {
                let p = c.path.display().to_string();
                match c.kind.letter() {
                    'A' => r.added.push(p),
                    'C' => r.changed.push(p),
                    _ => r.deleted.push(p),
                }
            }
            println!("{}", serde_json::to_string_pretty(&r)?);
        }
        None | Some("") => {
            let mut out = std::io::stdout().lock();
            for c in &changes {
                writeln!(out, "{c}")?;
            }
        }
        Some(f) => bail!("invalid --format {f:?}: only json is supported"),
    }
    Ok(())
}

fn commit(e: &mut Engine, a: &CommitArgs) -> Result<()> {
    if a.squash {
        bail!("--squash is not supported");
    }
    if a.format != "oci" {
        bail!("invalid --format {:?}: only oci is supported", a.format);
    }
    let _ = (a.pause, a.include_volumes);
    let rep = e.commit(
        &a.container,
        &CommitOptions {
            image: a.image.clone(),
            changes: a.change.clone(),
            message: a.message.clone(),
            author: a.author.clone(),
        },
    )?;
    let id = rep.image.id.hex().to_string();
    if !a.quiet {
        eprintln!("Writing manifest to image destination");
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, format!("sha256:{id}"))
            .map_err(|err| anyhow::anyhow!("writing {}: {err}", f.display()))?;
    }
    println!("{id}");
    Ok(())
}

fn export(e: &mut Engine, a: &ExportArgs) -> Result<()> {
    let Some(path) = &a.output else {
        if std::io::stdout().is_terminal() {
            bail!("refusing to export to terminal. Use -o flag or redirect");
        }
        let mut w = std::io::BufWriter::new(std::io::stdout().lock());
        e.export(&a.container, &mut w)?;
        w.flush()?;
        return Ok(());
    };
    // Into a temporary file beside the target, renamed when complete: a
    // failed export leaves no partial archive.
    let mut tmp_name = path.as_os_str().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)
            .map_err(|err| anyhow::anyhow!("creating {}: {err}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        e.export(&a.container, &mut w)?;
        w.flush()?;
        std::fs::rename(&tmp, path)
            .map_err(|err| anyhow::anyhow!("writing {}: {err}", path.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn stats_header(field: &str) -> Option<String> {
    Some(
        match field {
            "ID" => "ID",
            "Name" => "NAME",
            "CPUPerc" => "CPU %",
            "MemUsage" | "MemUsageBytes" => "MEM USAGE / LIMIT",
            "MemPerc" => "MEM %",
            "NetIO" => "NET IO",
            "BlockIO" => "BLOCK IO",
            "PIDS" | "PIDs" => "PIDS",
            "UpTime" => "CPU TIME",
            "AVGCPU" => "AVG CPU %",
            _ => return None,
        }
        .to_string(),
    )
}

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDS}}\t{{.UpTime}}\t{{.AVGCPU}}";

fn stats(e: &mut Engine, a: &StatsArgs) -> Result<()> {
    if a.interval == 0 {
        bail!("invalid --interval 0: must be at least 1 second");
    }
    if let Some(f) = a.format.as_deref() {
        if f != "json" {
            // Fail on a bad template before sampling anything.
            barge_engine::template::Template::parse(f)?;
        }
    }
    let mut prev: HashMap<String, StatsSample> = HashMap::new();
    loop {
        let recs = if a.latest {
            e.ps(&PsOptions {
                all: true,
                latest: true,
                ..PsOptions::default()
            })?
        } else if a.names.is_empty() {
            e.ps(&PsOptions {
                all: a.all,
                ..PsOptions::default()
            })?
        } else {
            let mut v = Vec::new();
            for n in &a.names {
                let r = e.lookup(n)?;
                v.push(e.refresh(r)?);
            }
            v
        };
        let mut rows = Vec::new();
        let mut samples = HashMap::new();
        for r in &recs {
            if r.state.status == Status::Removing {
                continue;
            }
            let s = e.stats_sample(r)?;
            rows.push(stats_row(&s, prev.get(&s.id), a.no_trunc));
            samples.insert(s.id.clone(), s);
        }
        if !a.no_stream && !a.no_reset {
            print!("\x1b[2J\x1b[H");
        }
        match a.format.as_deref() {
            Some("json") => {
                let v: Vec<_> = rows.iter().map(stats_json).collect();
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
        std::thread::sleep(Duration::from_secs(a.interval));
    }
}

/// After the monitor's cleanup: the restart policy (errors are reported,
/// the cleanup itself succeeded).
pub(crate) fn after_cleanup(e: &mut Engine, name: &str) {
    if let Err(err) = e.restart_after_exit(name) {
        eprintln!("Error: restarting container {name}: {err}");
    }
}
