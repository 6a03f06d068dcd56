//! Published ports of a rootless user's containers on user networks: the
//! container's address lives in the user's bridge namespace
//! ([`crate::rootless::user_netns`]), which the host cannot route to, so a
//! small process per container (podman's `rootlessport`) listens on the
//! host ports and relays each TCP connection to `container-ip:port` from
//! inside that namespace.
//!
//! It is `barge` itself (the hidden `__port-forward` command): it binds
//! every listener in the host's namespace first, reports the bound ports
//! on stdout (`ready P1 P2 …`, or `error …`), moves into the bridge
//! namespace, detaches, and relays until the container's teardown kills it
//! (pid in `RUNROOT/containers/ID/portfwd.pid`).

use crate::error::EngineError;
use crate::Result;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

/// One forwarded TCP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Host address (unspecified: all).
    pub host_ip: IpAddr,
    /// Host port (0: any free one).
    pub host_port: u16,
    /// Container address.
    pub container_ip: Ipv4Addr,
    /// Container port.
    pub container_port: u16,
}

impl Forward {
    /// `HOSTIP:HOSTPORT:CTRIP:CTRPORT` (IPv4 host addresses).
    pub fn to_arg(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.host_ip, self.host_port, self.container_ip, self.container_port
        )
    }

    /// Parses [`Forward::to_arg`]'s form.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || EngineError::Invalid(format!("bad port forward {s:?}"));
        let f: Vec<&str> = s.split(':').collect();
        let [hip, hport, cip, cport] = f.as_slice() else {
            return Err(bad());
        };
        Ok(Self {
            host_ip: hip.parse().map_err(|_| bad())?,
            host_port: hport.parse().map_err(|_| bad())?,
            container_ip: cip.parse().map_err(|_| bad())?,
            container_port: cport.parse().map_err(|_| bad())?,
        })
    }
}

/// The pid file of a container's forwarder.
pub fn pid_file(run_dir: &Path) -> PathBuf {
    run_dir.join("portfwd.pid")
}

/// Starts the forwarder for `id` (from a thread in the host's network
/// namespace); returns the host ports bound, in order.
pub fn start(run_dir: &Path, netns: &Path, forwards: &[Forward]) -> Result<Vec<u16>> {
    std::fs::create_dir_all(run_dir)
        .map_err(EngineError::io(format!("creating {}", run_dir.display())))?;
    let exe = std::env::current_exe().map_err(EngineError::io("finding the barge executable"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__port-forward").arg("--netns").arg(netns);
    cmd.arg("--pid-file").arg(pid_file(run_dir));
    for f in forwards {
        cmd.arg(f.to_arg());
    }
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(EngineError::io("starting the port forwarder"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let line = line.trim();
    if let Some(ports) = line.strip_prefix("ready") {
        // The forwarder detaches by forking; this one exits at once.
        let _ = child.wait();
        return ports
            .split_whitespace()
            .map(|p| {
                p.parse()
                    .map_err(|_| EngineError::Invalid(format!("port forwarder said {line:?}")))
            })
            .collect();
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(EngineError::Invalid(format!(
        "publishing ports: {}",
        line.strip_prefix("error ")
            .unwrap_or("the port forwarder failed")
    )))
}

/// Stops a container's forwarder (best effort, idempotent).
pub fn stop(run_dir: &Path) {
    let file = pid_file(run_dir);
    if let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        // Only our forwarder: its command line names the pid file.
        let cmdline =
            std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).unwrap_or_default();
        let needle = file.as_os_str().as_encoded_bytes();
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let _ = std::fs::remove_file(file);
}

/// The forwarder's body (`barge __port-forward`): called while
/// single-threaded; never returns.
pub fn run(netns: &Path, pid_file: &Path, forwards: &[Forward]) -> ! {
    use std::io::Write;
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    for f in forwards {
        match TcpListener::bind(SocketAddr::new(f.host_ip, f.host_port)) {
            Ok(l) => {
                ports.push(l.local_addr().map_or(f.host_port, |a| a.port()));
                listeners.push((l, *f));
            }
            Err(e) => {
                println!("error binding {}:{}: {e}", f.host_ip, f.host_port);
                barge_sys::exit_now(1);
            }
        }
    }
    let joined = std::fs::File::open(netns).and_then(|ns| {
        use std::os::fd::AsFd;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(std::io::Error::from)
    });
    if let Err(e) = joined {
        println!("error entering {}: {e}", netns.display());
        barge_sys::exit_now(1);
    }
    // Detach: the parent exits (its caller waits for it), the child
    // relays in a new session with the pid file naming it.
    match barge_sys::fork() {
        Ok(barge_sys::Fork::Parent(pid)) => {
            let _ = std::fs::write(pid_file, format!("{}\n", pid.as_raw_nonzero()));
            let list: Vec<String> = ports.iter().map(u16::to_string).collect();
            println!("ready {}", list.join(" "));
            let _ = std::io::stdout().flush();
            barge_sys::exit_now(0);
        }
        Ok(barge_sys::Fork::Child) => {}
        Err(e) => {
            println!("error fork: {e}");
            barge_sys::exit_now(1);
        }
    }
    let _ = rustix::process::setsid();
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        use std::os::fd::AsFd;
        let _ = rustix::stdio::dup2_stdout(null.as_fd());
    }
    let mut handles = Vec::new();
    for (l, f) in listeners {
        handles.push(std::thread::spawn(move || serve(&l, f)));
    }
    for h in handles {
        let _ = h.join();
    }
    barge_sys::exit_now(0)
}

fn serve(l: &TcpListener, f: Forward) {
    let target = SocketAddr::new(IpAddr::V4(f.container_ip), f.container_port);
    for conn in l.incoming() {
        let Ok(client) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(upstream) = TcpStream::connect(target) else {
                return;
            };
            let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone()) else {
                return;
            };
            let (mut c1, mut u1) = (client, upstream);
            let up = std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
            let _ = std::io::copy(&mut u1, &mut c1);
            let _ = c1.shutdown(std::net::Shutdown::Write);
            let _ = up.join();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_arg_round_trips() {
        let f = Forward {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: 8080,
            container_ip: "10.91.0.2".parse().unwrap(),
            container_port: 80,
        };
        assert_eq!(Forward::parse(&f.to_arg()).unwrap(), f);
        assert!(Forward::parse("1:2:3").is_err());
        assert!(Forward::parse("x:1:10.0.0.1:2").is_err());
    }
}
