//! `barge-supervisor`: one process per container answering its seccomp
//! user notifications (see docs/supervisor.md).
//!
//! ```text
//! barge-supervisor --socket PATH [--config FILE] [--daemon] [--pid-file F]
//!                  [--log-file F] [--log-level L] [--report F]
//!                  [--accept-timeout SECS] [--cpu N]
//! ```
//!
//! It binds and listens on `PATH` (the container's
//! `linux.seccomp.listenerPath`) before it returns (with `--daemon`) or
//! starts serving, so the runtime may connect as soon as the command is
//! done. It exits when every process of the container is gone.

use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use barge_supervisor::{Options, Policy, Supervisor};
use clap::Parser;

/// The system-wide defaults, when present.
const SYSTEM_CONFIG: &str = "/etc/barge/supervisor.toml";

#[derive(Debug, Parser)]
#[command(
    name = "barge-supervisor",
    version,
    about = "barge's seccomp user-notification supervisor"
)]
struct Cli {
    /// The listener socket to create (the container's linux.seccomp.listenerPath).
    #[arg(long)]
    socket: PathBuf,
    /// System defaults (TOML); default /etc/barge/supervisor.toml if it exists.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Detach (double fork, new session) once the socket listens.
    #[arg(long)]
    daemon: bool,
    /// Write our pid here.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Log here instead of stderr.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// error, warn, info or debug (every decision is logged at debug).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Write the final report (JSON) here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Exit with an error if no container connects within this many seconds.
    #[arg(long)]
    accept_timeout: Option<u64>,
    /// Pin the supervisor to this CPU (benchmarks: the same CPU as the container).
    #[arg(long)]
    cpu: Option<usize>,
    /// Do not ask for SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP.
    #[arg(long)]
    no_sync_wake_up: bool,
    /// Test knob: each emulating worker sleeps this long before acting.
    #[arg(long, hide = true, default_value_t = 0)]
    worker_delay_ms: u64,
}

fn init_logging(cli: &Cli) -> Result<()> {
    let level = match cli.log_level.as_str() {
        "error" => tracing::Level::ERROR,
        "warn" | "warning" => tracing::Level::WARN,
        "info" => tracing::Level::INFO,
        "debug" | "trace" => tracing::Level::DEBUG,
        l => bail!("invalid --log-level {l:?}: expected error, warn, info or debug"),
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    let res = match &cli.log_file {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("opening the log file {}", p.display()))?;
            builder.with_writer(std::sync::Mutex::new(f)).try_init()
        }
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    let _ = res;
    Ok(())
}

fn load_policy(cli: &Cli) -> Result<Policy> {
    let path = match &cli.config {
        Some(p) => p.clone(),
        None if Path::new(SYSTEM_CONFIG).exists() => PathBuf::from(SYSTEM_CONFIG),
        None => return Ok(Policy::default()),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Policy::from_toml(&path.display().to_string(), &text)?)
}

fn bind(path: &Path) -> Result<OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    if let Ok(md) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt as _;
        if md.file_type().is_socket() {
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale {}", path.display()))?;
        } else {
            bail!("{} exists and is not a socket", path.display());
        }
    }
    let addr = SocketAddrUnix::new(path)
        .with_context(|| format!("socket path {} (at most 107 bytes)", path.display()))?;
    let sock = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("socket")?;
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o177));
    let bound = rustix::net::bind(&sock, &addr);
    rustix::process::umask(old);
    bound.with_context(|| format!("binding {}", path.display()))?;
    rustix::net::listen(&sock, 64).with_context(|| format!("listening on {}", path.display()))?;
    Ok(sock)
}

fn daemonize() -> Result<()> {
    use barge_sys::Fork;
    if let Fork::Parent(_) = barge_sys::fork().context("fork")? {
        barge_sys::exit_now(0);
    }
    rustix::process::setsid().context("setsid")?;
    if let Fork::Parent(_) = barge_sys::fork().context("fork")? {
        barge_sys::exit_now(0);
    }
    rustix::process::chdir("/").context("chdir /")?;
    let null = rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .context("opening /dev/null")?;
    rustix::stdio::dup2_stdin(&null).context("dup2")?;
    rustix::stdio::dup2_stdout(&null).context("dup2")?;
    rustix::stdio::dup2_stderr(&null).context("dup2")?;
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .context("current directory")?
            .join(p))
    }
}

fn run(cli: &Cli) -> Result<i32> {
    let socket = absolute(&cli.socket)?;
    let pid_file = cli.pid_file.as_deref().map(absolute).transpose()?;
    let report_file = cli.report.as_deref().map(absolute).transpose()?;
    let policy = load_policy(cli)?;
    let listener = bind(&socket)?;
    if cli.daemon {
        daemonize()?;
    }
    if let Some(p) = &pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(cpu) = cli.cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        rustix::thread::sched_setaffinity(None, &set)
            .with_context(|| format!("pinning to CPU {cpu}"))?;
    }
    let mut sigs = barge_sys::signal::SigSet::empty();
    for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        sigs.add(s);
    }
    barge_sys::signal::block(&sigs).context("blocking signals")?;
    let signals = barge_sys::signal::signalfd(&sigs).context("signalfd")?;
    let opts = Options {
        policy,
        accept_timeout: cli.accept_timeout.map(Duration::from_secs),
        worker_delay: Duration::from_millis(cli.worker_delay_ms),
        sync_wake_up: !cli.no_sync_wake_up,
    };
    tracing::info!(socket = %socket.display(), pid = std::process::id(), "supervisor: listening");
    let mut sup = Supervisor::new(listener, Some(signals), opts)?;
    let result = sup.run();
    let _ = std::fs::remove_file(&socket);
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    let (report, code) = match result {
        Ok(r) => (r, 0),
        Err(e) => {
            tracing::error!("{e}");
            let mut r = sup.report().clone();
            r.errors.push(e.to_string());
            (r, 1)
        }
    };
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "supervisor: exiting");
    if let Some(p) = &report_file {
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, p))
            .with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(code)
}

fn main() {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli) {
        let _ = writeln!(std::io::stderr(), "barge-supervisor: {e:#}");
        std::process::exit(2);
    }
    match run(&cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::error!("{e:#}");
            let _ = writeln!(std::io::stderr(), "barge-supervisor: {e:#}");
            std::process::exit(1);
        }
    }
}
