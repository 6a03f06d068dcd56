//! User-mode networking: `--network pasta[:OPTIONS]` and
//! `--network slirp4netns[:OPTIONS]`, podman's network modes for rootless
//! containers (they work as root too).
//!
//! The engine creates the container's network namespace as for bridge
//! networks (a bind mount at `RUNROOT/netns/ID` that the runtime joins)
//! and, before the runtime creates the container, starts a helper process
//! on it that connects it to the host's network with sockets of its own:
//!
//! * pasta (the `passt` package): `pasta --config-net --quiet --netns PATH
//!   -t/-u … -T none -U none --no-map-gw --pid RUNDIR/pasta.pid`. pasta
//!   copies the host's address, gateway and MTU into the namespace and
//!   daemonizes once it is configured. Published ports become `-t`/`-u`
//!   options (`[IP/]HOST[-END]:CTR[-END]`); without any, `-t none -u none`
//!   (pasta's default, `auto`, would forward every port the container
//!   binds). As podman does, options given after `pasta:` go to pasta
//!   as they are, and a `-t`/`-u`/`-T`/`-U` among them replaces that
//!   `none`; `--map-gw` (not a pasta option) drops `--no-map-gw`.
//! * slirp4netns: `slirp4netns --configure --mtu=65520
//!   --disable-host-loopback --netns-type=path --api-socket
//!   RUNDIR/slirp4netns.sock --ready-fd=N PATH tap0` in a process group
//!   of its own, its output in `RUNDIR/slirp4netns.log`. barge waits for
//!   the ready byte, then publishes each port through the API socket
//!   (`add_hostfwd`). The container is 10.0.2.100/24, gateway 10.0.2.2,
//!   DNS 10.0.2.3 (or the same hosts of `cidr=`).
//!
//! The helper's pid is kept in the container's run directory
//! (`pasta.pid`, `slirp4netns.pid`); [`stop`] (from the network teardown
//! when the container stops or is removed) signals it, checking first that
//! the pid still names a helper of this namespace, and the teardown waits
//! until it is gone ([`wait_gone`]) once the rest of the cleanup is done. No exit fd is used: nothing of barge lives as long as the
//! container but the monitor, and the teardown always runs.

use crate::containers::networks::NetSetup;
use crate::containers::{ContainerRecord, Engine, NetworkMode};
use crate::error::EngineError;
use crate::Result;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A user-mode network helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Helper {
    /// pasta, from the passt package.
    Pasta,
    /// slirp4netns.
    Slirp4netns,
}

impl Helper {
    /// The helper of a network mode, if it has one.
    pub fn of(mode: &NetworkMode) -> Option<Self> {
        match mode {
            NetworkMode::Pasta(_) => Some(Self::Pasta),
            NetworkMode::Slirp4netns(_) => Some(Self::Slirp4netns),
            _ => None,
        }
    }

    /// The binary's name.
    pub fn binary(self) -> &'static str {
        match self {
            Self::Pasta => "pasta",
            Self::Slirp4netns => "slirp4netns",
        }
    }

    /// The Debian package that ships it.
    pub fn package(self) -> &'static str {
        match self {
            Self::Pasta => "passt",
            Self::Slirp4netns => "slirp4netns",
        }
    }

    /// Where its pid is kept, in the container's run directory.
    pub fn pid_file(self, rundir: &Path) -> PathBuf {
        rundir.join(format!("{}.pid", self.binary()))
    }

    /// Whether a process's `argv[0]` names this helper (pasta re-executes
    /// itself as `passt.avx2` but keeps its arguments).
    fn is_argv0(self, argv0: &[u8]) -> bool {
        let base = argv0.rsplit(|b| *b == b'/').next().unwrap_or(argv0);
        match self {
            Self::Pasta => base.starts_with(b"pasta") || base.starts_with(b"passt"),
            Self::Slirp4netns => base == b"slirp4netns",
        }
    }
}

/// Splits `pasta:`/`slirp4netns:` options (comma-separated, as podman).
pub fn split_options(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect()
}

/// The options of `--network slirp4netns:…` (podman's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlirpOptions {
    /// `allow_host_loopback=true`: the container may reach the host's
    /// 127.0.0.1 through 10.0.2.2 (default false).
    pub allow_host_loopback: bool,
    /// `cidr=`: the network (default 10.0.2.0/24).
    pub cidr: barge_net::Subnet,
    /// `enable_ipv6=true`.
    pub enable_ipv6: bool,
    /// `mtu=` (default 65520).
    pub mtu: u32,
    /// `outbound_addr=`: the host IPv4 address (or interface) to send from.
    pub outbound_addr: Option<String>,
    /// `outbound_addr6=`.
    pub outbound_addr6: Option<String>,
}

impl SlirpOptions {
    /// Parses `key=value` options; unknown keys and bad values are errors.
    pub fn parse(opts: &[String]) -> Result<Self> {
        let bad = |o: &str, why: &str| {
            EngineError::Invalid(format!("invalid slirp4netns option {o:?}: {why}"))
        };
        let boolean = |o: &str, v: &str| match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad(o, "expected true or false")),
        };
        let mut out = Self {
            allow_host_loopback: false,
            cidr: barge_net::Subnet::new(Ipv4Addr::new(10, 0, 2, 0), 24)
                .map_err(|e| EngineError::Invalid(e.to_string()))?,
            enable_ipv6: false,
            mtu: 65520,
            outbound_addr: None,
            outbound_addr6: None,
        };
        for o in opts {
            let (k, v) = o.split_once('=').unwrap_or((o.as_str(), ""));
            match k {
                "allow_host_loopback" => out.allow_host_loopback = boolean(o, v)?,
                "enable_ipv6" => out.enable_ipv6 = boolean(o, v)?,
                "cidr" => {
                    out.cidr = v.parse().map_err(|e: barge_net::NetError| {
                        bad(o, &e.to_string())
                    })?;
                    if out.cidr.prefix_len() > 25 {
                        return Err(bad(o, "the network must be /25 or larger"));
                    }
                }
                "mtu" => {
                    out.mtu = v
                        .parse()
                        .ok()
                        .filter(|m| (68..=65521).contains(m))
                        .ok_or_else(|| bad(o, "expected a number from 68 to 65521"))?;
                }
                "outbound_addr" if !v.is_empty() => out.outbound_addr = Some(v.to_string()),
                "outbound_addr6" if !v.is_empty() => out.outbound_addr6 = Some(v.to_string()),
                "port_handler" => match v {
                    "slirp4netns" => {}
                    "rootlesskit" => {
                        return Err(EngineError::NotSupported(
                            "slirp4netns:port_handler=rootlesskit (barge publishes ports through slirp4netns's API socket: port_handler=slirp4netns)".into(),
                        ))
                    }
                    _ => return Err(bad(o, "expected slirp4netns or rootlesskit")),
                },
                _ => {
                    return Err(bad(
                        o,
                        "expected allow_host_loopback, cidr, enable_ipv6, mtu, outbound_addr, outbound_addr6 or port_handler",
                    ))
                }
            }
        }
        Ok(out)
    }

    /// The n-th address of the network (2: gateway, 3: DNS, 100: container).
    fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.addr()) + n)
    }
}

/// Finds a helper binary on `PATH` (or beside barge).
fn find(helper: Helper) -> Result<PathBuf> {
    let p = crate::containers::find_binary(helper.binary());
    if p.is_file() {
        Ok(p)
    } else {
        Err(EngineError::HelperMissing {
            binary: helper.binary().into(),
            package: helper.package().into(),
        })
    }
}

/// Fails unless the helper a network mode needs is installed.
pub fn check_available(mode: &NetworkMode) -> Result<()> {
    if let NetworkMode::Slirp4netns(opts) = mode {
        SlirpOptions::parse(opts)?;
    }
    match Helper::of(mode) {
        Some(h) => find(h).map(|_| ()),
        None => Ok(()),
    }
}

/// Creates the container's network namespace and starts its helper on it:
/// the helper has published the ports (recorded on the container, random
/// host ports resolved) and configured the interface when this returns.
/// On error the caller's teardown ([`stop`]) removes what was made.
pub fn start(e: &mut Engine, rec: &ContainerRecord) -> Result<NetSetup> {
    let mode = rec.network();
    let Some(helper) = Helper::of(&mode) else {
        return Ok(NetSetup::default());
    };
    let binary = find(helper)?;
    let netns = e.paths.netns_dir().join(&rec.id);
    let rundir = e.paths.container_run_dir(&rec.id);
    std::fs::create_dir_all(&rundir)
        .map_err(EngineError::io(format!("creating {}", rundir.display())))?;
    let requested: Vec<barge_net::PortMapping> = rec
        .config
        .ports
        .iter()
        .map(crate::networks::to_net_port)
        .collect::<Result<_>>()?;
    let random_ports: Vec<bool> = requested.iter().map(|p| p.host_port == 0).collect();
    let random = random_ports.contains(&true);
    let mut tries = 0;
    let (ports, nameservers) = loop {
        barge_net::Netns::remove(&netns)?;
        barge_net::Netns::create(&netns)?;
        let mut ports = requested.clone();
        barge_net::assign_host_ports(&mut ports)?;
        let ctx = Ctx {
            id: &rec.id,
            binary: &binary,
            netns: &netns,
            rundir: &rundir,
            ports: &ports,
            random: &random_ports,
        };
        let started = match &mode {
            NetworkMode::Slirp4netns(opts) => {
                let o = SlirpOptions::parse(opts)?;
                start_slirp4netns(&ctx, &o).map(|()| vec![o.host(3).to_string()])
            }
            NetworkMode::Pasta(opts) => start_pasta(&ctx, opts).map(|()| Vec::new()),
            _ => Ok(Vec::new()),
        };
        match started {
            Ok(ns) => break (ports, ns),
            // A random host port was free when drawn, but something else
            // (another container starting) bound it first: draw again.
            Err(Failure { conflict: true, .. }) if random && tries < 4 => {
                tries += 1;
                stop_helper(helper, &rundir, &netns);
            }
            Err(f) => return Err(f.error),
        }
    };
    let addr = barge_net::netns_address(&netns)?;
    if rec.config.ports.iter().any(|p| p.host_port == 0) {
        let assigned: Vec<crate::containers::PortMapping> =
            ports.iter().map(crate::networks::from_net_port).collect();
        e.modify(&rec.id, |r| {
            r.config.ports.clone_from(&assigned);
            Ok(())
        })?;
    }
    Ok(NetSetup {
        netns: Some(netns),
        ip: addr.map(|a| a.ip.to_string()),
        nameservers,
        ..NetSetup::default()
    })
}

/// A helper that did not start; `conflict` when a host port was taken.
struct Failure {
    conflict: bool,
    error: EngineError,
}

impl From<EngineError> for Failure {
    fn from(error: EngineError) -> Self {
        Self {
            conflict: false,
            error,
        }
    }
}

struct Ctx<'a> {
    id: &'a str,
    binary: &'a Path,
    netns: &'a Path,
    rundir: &'a Path,
    ports: &'a [barge_net::PortMapping],
    /// Which of `ports` had a random host port (0) asked for.
    random: &'a [bool],
}

impl Ctx<'_> {
    fn failed(&self, helper: Helper, message: String) -> Failure {
        Failure {
            conflict: false,
            error: EngineError::HelperFailed {
                helper: helper.binary().into(),
                id: self.id.to_string(),
                message,
            },
        }
    }
}

/// pasta's `-t`/`-u` argument for a published port.
fn pasta_port(p: &barge_net::PortMapping) -> String {
    let addr = p.bound_ip().map(|ip| format!("{ip}/")).unwrap_or_default();
    if p.range > 1 {
        format!(
            "{addr}{}-{}:{}-{}",
            p.host_port,
            p.host_port + (p.range - 1),
            p.container_port,
            p.container_port + (p.range - 1)
        )
    } else {
        format!("{addr}{}:{}", p.host_port, p.container_port)
    }
}

/// pasta's arguments (before `--netns`), podman's defaults included.
fn pasta_args(ports: &[barge_net::PortMapping], opts: &[String], root: bool) -> Vec<String> {
    let mut args: Vec<String> = vec!["--config-net".into(), "--quiet".into()];
    for p in ports {
        args.push(
            match p.protocol {
                barge_net::Protocol::Tcp => "-t",
                barge_net::Protocol::Udp => "-u",
            }
            .into(),
        );
        args.push(pasta_port(p));
    }
    let given = |short: &str, long: &str| {
        opts.iter().any(|o| {
            o == short || o == long || o.starts_with(&format!("{long}=")) || {
                // `-t80`: the short option with its value attached.
                o.len() > 2 && o.starts_with(short) && !o.starts_with("--")
            }
        })
    };
    let (tcp, udp, tcp_ns, udp_ns) = (
        ports.iter().any(|p| p.protocol == barge_net::Protocol::Tcp) || given("-t", "--tcp-ports"),
        ports.iter().any(|p| p.protocol == barge_net::Protocol::Udp) || given("-u", "--udp-ports"),
        given("-T", "--tcp-ns"),
        given("-U", "--udp-ns"),
    );
    let map_gw = opts.iter().any(|o| o == "--map-gw");
    args.extend(opts.iter().filter(|o| *o != "--map-gw").cloned());
    for (set, flag) in [(tcp, "-t"), (udp, "-u"), (tcp_ns, "-T"), (udp_ns, "-U")] {
        if !set {
            args.push(flag.into());
            args.push("none".into());
        }
    }
    if !map_gw {
        args.push("--no-map-gw".into());
    }
    // As root, pasta (this version) switches to `nobody` and then cannot
    // enter a namespace it did not create: keep root, as the caller is.
    if root
        && !opts
            .iter()
            .any(|o| o == "--runas" || o.starts_with("--runas="))
    {
        args.push("--runas".into());
        args.push("0:0".into());
    }
    args
}

/// What a helper printed, without pasta's syslog complaints and usage text.
fn helper_message(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Failed to send") && !l.contains(" sent tapfd"))
        .take_while(|l| !l.starts_with("Usage:"))
        .collect();
    if lines.is_empty() {
        "no message".into()
    } else {
        lines.join("; ")
    }
}

fn start_pasta(ctx: &Ctx<'_>, opts: &[String]) -> std::result::Result<(), Failure> {
    let pid_file = Helper::Pasta.pid_file(ctx.rundir);
    let _ = std::fs::remove_file(&pid_file);
    let root = rustix::process::geteuid().is_root();
    let out = Command::new(ctx.binary)
        .args(pasta_args(ctx.ports, opts, root))
        .arg("--netns")
        .arg(ctx.netns)
        .arg("--pid")
        .arg(&pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(EngineError::io(format!("running {}", ctx.binary.display())))?;
    if !out.status.success() {
        let mut msg = out.stderr;
        msg.extend_from_slice(&out.stdout);
        let msg = helper_message(&msg);
        let mut f = ctx.failed(Helper::Pasta, format!("{}: {msg}", out.status));
        // "Failed to bind any port for '-t SPEC', exiting"
        f.conflict = ctx.ports.iter().zip(ctx.random).any(|(p, r)| {
            *r && msg.contains(&format!(
                "Failed to bind any port for '-{} {}'",
                if p.protocol == barge_net::Protocol::Tcp {
                    't'
                } else {
                    'u'
                },
                pasta_port(p)
            ))
        });
        return Err(f);
    }
    // pasta writes the pid file before its foreground process exits.
    match read_pid(&pid_file) {
        Some(pid) if crate::containers::alive(pid, 0) => Ok(()),
        Some(pid) => Err(ctx.failed(
            Helper::Pasta,
            format!("pid {pid} exited at once: {}", helper_message(&out.stderr)),
        )),
        None => Err(ctx.failed(Helper::Pasta, format!("no pid in {}", pid_file.display()))),
    }
}

fn start_slirp4netns(ctx: &Ctx<'_>, o: &SlirpOptions) -> std::result::Result<(), Failure> {
    let pid_file = Helper::Slirp4netns.pid_file(ctx.rundir);
    let log_path = ctx.rundir.join("slirp4netns.log");
    let log = std::fs::File::create(&log_path)
        .map_err(EngineError::io(format!("creating {}", log_path.display())))?;
    let log2 = log.try_clone().map_err(EngineError::io(format!(
        "duplicating {}",
        log_path.display()
    )))?;
    let (ready_r, ready_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| EngineError::io("creating slirp4netns's ready pipe")(e.into()))?;
    // The write end must survive exec. The CLI is single-threaded, so no
    // other spawn can inherit it meanwhile.
    rustix::io::fcntl_setfd(&ready_w, rustix::io::FdFlags::empty())
        .map_err(|e| EngineError::io("preparing slirp4netns's ready pipe")(e.into()))?;
    let mut cmd = Command::new(ctx.binary);
    cmd.arg("--configure")
        .arg(format!("--mtu={}", o.mtu))
        .arg("--netns-type=path");
    if !o.allow_host_loopback {
        cmd.arg("--disable-host-loopback");
    }
    cmd.arg(format!("--cidr={}", o.cidr));
    if o.enable_ipv6 {
        cmd.arg("--enable-ipv6");
    }
    if let Some(a) = &o.outbound_addr {
        cmd.arg(format!("--outbound-addr={a}"));
    }
    if let Some(a) = &o.outbound_addr6 {
        cmd.arg(format!("--outbound-addr6={a}"));
    }
    // The socket is named relative to the run directory (its cwd): the
    // absolute path may exceed the 108 bytes of a unix socket address.
    use std::os::fd::AsRawFd as _;
    use std::os::unix::process::CommandExt as _;
    cmd.arg("--api-socket")
        .arg(API_SOCKET)
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(ctx.netns)
        .arg("tap0")
        .current_dir(ctx.rundir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        // Not in the caller's process group: a ^C at `barge run` goes to
        // the container, not to its network.
        .process_group(0);
    let child = cmd.spawn().map_err(EngineError::io(format!(
        "starting {}",
        ctx.binary.display()
    )))?;
    drop(ready_w);
    drop(cmd);
    let pid = i32::try_from(child.id()).unwrap_or(0);
    std::fs::write(&pid_file, format!("{pid}\n"))
        .map_err(EngineError::io(format!("writing {}", pid_file.display())))?;
    // The child is left to run: the teardown kills (and, from this
    // process, reaps) it.
    drop(child);
    let log_text = || helper_message(&std::fs::read(&log_path).unwrap_or_default());
    match wait_ready(ready_r, Duration::from_secs(10)) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ctx.failed(
                Helper::Slirp4netns,
                format!("exited before it was ready: {}", log_text()),
            ))
        }
        Err(e) => {
            return Err(ctx.failed(
                Helper::Slirp4netns,
                format!("waiting for it to be ready: {e}: {}", log_text()),
            ))
        }
    }
    let guest = o.host(100);
    for (p, random) in ctx.ports.iter().zip(ctx.random) {
        for (host_port, container_port) in p.pairs() {
            let host_addr = match p.bound_ip() {
                Some(ip) => ip.to_string(),
                None if matches!(p.host_ip, Some(IpAddr::V6(_))) => "::".into(),
                None => "0.0.0.0".into(),
            };
            let req = serde_json::json!({
                "execute": "add_hostfwd",
                "arguments": {
                    "proto": p.protocol.as_str(),
                    "host_addr": host_addr,
                    "host_port": host_port,
                    "guest_addr": guest.to_string(),
                    "guest_port": container_port,
                }
            });
            api_call(ctx.rundir, &req).map_err(|m| {
                let mut f = ctx.failed(
                    Helper::Slirp4netns,
                    format!(
                        "publishing {host_addr}:{host_port} -> {container_port}/{}: {m}",
                        p.protocol.as_str()
                    ),
                );
                // slirp4netns says only "slirp_add_hostfwd failed".
                f.conflict = *random && m.contains("add_hostfwd failed");
                f
            })?;
        }
    }
    Ok(())
}

/// The API socket's name in the run directory.
const API_SOCKET: &str = "slirp4netns.sock";

/// Waits for the ready byte: true once written, false at EOF (exited).
fn wait_ready(read: std::os::fd::OwnedFd, timeout: Duration) -> std::io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let deadline = Instant::now() + timeout;
    let mut file = std::fs::File::from(read);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no ready byte in {} s", timeout.as_secs()),
            ));
        }
        let mut fds = [PollFd::new(&file, PollFlags::IN)];
        let ts = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e.into()),
        }
        let mut b = [0u8; 16];
        match file.read(&mut b) {
            Ok(0) => return Ok(false),
            Ok(n) if b[..n].contains(&b'1') => return Ok(true),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One request to slirp4netns's API socket; the error is its message.
fn api_call(rundir: &Path, req: &serde_json::Value) -> std::result::Result<(), String> {
    // Through an open directory: the socket's absolute path may be too
    // long for a unix socket address.
    use std::os::fd::AsRawFd as _;
    let dir = std::fs::File::open(rundir).map_err(|e| format!("{}: {e}", rundir.display()))?;
    let path = format!("/proc/self/fd/{}/{API_SOCKET}", dir.as_raw_fd());
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .map_err(|e| format!("connecting to {}/{API_SOCKET}: {e}", rundir.display()))?;
    drop(dir);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    s.write_all(req.to_string().as_bytes())
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| format!("sending to the API socket: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("reading the API socket: {e}"))?;
    let v: serde_json::Value =
        serde_json::from_str(reply.trim()).map_err(|_| format!("unexpected reply {reply:?}"))?;
    if v.get("return").is_some() {
        Ok(())
    } else {
        Err(v["error"]["desc"]
            .as_str()
            .map_or_else(|| format!("unexpected reply {reply:?}"), str::to_string))
    }
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Whether process `pid` is a `helper` serving the namespace `netns`.
fn serves(pid: i32, helper: Helper, netns: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    let argv0 = args.next().unwrap_or_default();
    let ns = netns.as_os_str().as_encoded_bytes();
    helper.is_argv0(argv0) && args.any(|a| a == ns)
}

/// The helper processes serving `netns` (a scan of `/proc`, for when the
/// pid file is gone).
pub fn find_helpers(netns: &Path) -> Vec<(i32, Helper)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        for h in [Helper::Pasta, Helper::Slirp4netns] {
            if serves(pid, h, netns) {
                out.push((pid, h));
            }
        }
    }
    out
}

/// Asks a helper process to exit (SIGTERM).
fn signal_helper(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
    }
}

/// Waits (up to 5 s) until a signalled helper is gone, SIGKILL after 2 s;
/// reaps it when it is this process's child. pasta takes ~50 ms to exit:
/// the kernel unregisters its tap device.
pub fn wait_gone(pid: i32) {
    let Some(p) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let start = Instant::now();
    let mut killed = false;
    loop {
        // Our own child (`barge run` that started it now cleans up): reap.
        let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
        if crate::containers::process_start_time(pid).is_none() {
            return;
        }
        let waited = start.elapsed();
        if waited > Duration::from_secs(2) && !killed {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            killed = true;
        }
        if waited > Duration::from_secs(5) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stops the container's helper (SIGTERM) and removes its network
/// namespace (best effort, idempotent). Returns the pids signalled: the
/// caller waits for them with [`wait_gone`], meanwhile doing other work.
pub fn stop(e: &Engine, rec: &ContainerRecord) -> Vec<i32> {
    let Some(helper) = Helper::of(&rec.network()) else {
        return Vec::new();
    };
    let netns = e.paths.netns_dir().join(&rec.id);
    let pids = signal_helpers(helper, &e.paths.container_run_dir(&rec.id), &netns);
    let _ = barge_net::Netns::remove(&netns);
    pids
}

/// Kills the helper serving `netns` and waits until it is gone.
fn stop_helper(helper: Helper, rundir: &Path, netns: &Path) {
    for pid in signal_helpers(helper, rundir, netns) {
        wait_gone(pid);
    }
}

/// Signals the helper serving `netns` whose pid is kept in `rundir`
/// (found by a scan of `/proc` when the pid file is gone); returns the
/// pids signalled.
fn signal_helpers(helper: Helper, rundir: &Path, netns: &Path) -> Vec<i32> {
    let pid_file = helper.pid_file(rundir);
    let pids: Vec<i32> = match read_pid(&pid_file) {
        Some(pid) if serves(pid, helper, netns) => vec![pid],
        Some(_) => Vec::new(),
        None => find_helpers(netns).into_iter().map(|(p, _)| p).collect(),
    };
    for pid in &pids {
        signal_helper(*pid);
    }
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_file(rundir.join(API_SOCKET));
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(spec: &str) -> barge_net::PortMapping {
        barge_net::parse_port_spec(spec).unwrap()[0]
    }

    #[test]
    fn pasta_arguments() {
        let args = pasta_args(&[], &[], false);
        assert_eq!(
            args.join(" "),
            "--config-net --quiet -t none -u none -T none -U none --no-map-gw"
        );
        let args = pasta_args(
            &[
                port("127.0.0.1:8080:80"),
                port("5353:53/udp"),
                port("9000-9001:90-91"),
            ],
            &[],
            true,
        );
        assert_eq!(
            args.join(" "),
            "--config-net --quiet -t 127.0.0.1/8080:80 -u 5353:53 -t 9000-9001:90-91 -T none -U none --no-map-gw --runas 0:0"
        );
        let args = pasta_args(
            &[],
            &[
                "-T".into(),
                "8080".into(),
                "--map-gw".into(),
                "--runas=1000".into(),
            ],
            true,
        );
        assert_eq!(
            args.join(" "),
            "--config-net --quiet -T 8080 --runas=1000 -t none -u none -U none"
        );
    }

    #[test]
    fn slirp_options() {
        let o = SlirpOptions::parse(&[]).unwrap();
        assert_eq!(o.mtu, 65520);
        assert_eq!(o.host(100), Ipv4Addr::new(10, 0, 2, 100));
        assert_eq!(o.host(3), Ipv4Addr::new(10, 0, 2, 3));
        let o = SlirpOptions::parse(&split_options(
            "port_handler=slirp4netns,mtu=1500,cidr=10.5.0.0/24,allow_host_loopback=true",
        ))
        .unwrap();
        assert_eq!((o.mtu, o.allow_host_loopback), (1500, true));
        assert_eq!(o.host(3), Ipv4Addr::new(10, 5, 0, 3));
        assert!(SlirpOptions::parse(&["mtu=10".into()]).is_err());
        assert!(SlirpOptions::parse(&["cidr=10.0.0.0/30".into()]).is_err());
        assert!(SlirpOptions::parse(&["enable_ipv6=maybe".into()]).is_err());
        assert!(matches!(
            SlirpOptions::parse(&["port_handler=rootlesskit".into()]),
            Err(EngineError::NotSupported(_))
        ));
    }

    #[test]
    fn helper_messages() {
        assert_eq!(
            helper_message(b"Failed to send 67 bytes to syslog\nFailed to bind any port for '-t 1:2', exiting\n"),
            "Failed to bind any port for '-t 1:2', exiting"
        );
        assert_eq!(
            helper_message(b"pasta: unrecognized option '--x'\nFailed to send 1 bytes to syslog\nUsage: pasta\n  -d\n"),
            "pasta: unrecognized option '--x'"
        );
        assert!(Helper::Pasta.is_argv0(b"/usr/bin/passt.avx2"));
        assert!(Helper::Slirp4netns.is_argv0(b"slirp4netns"));
        assert!(!Helper::Slirp4netns.is_argv0(b"sh"));
    }
}
