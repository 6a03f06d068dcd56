//! Test support: a private instance of Debian's `docker-registry` on
//! loopback, for this crate's tests and for other crates' tests.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the registry binary is looked for: `$BARGE_DOCKER_REGISTRY`, else
/// `/usr/bin/docker-registry` (Debian's `docker-registry` package).
pub fn registry_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BARGE_DOCKER_REGISTRY") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from("/usr/bin/docker-registry");
    p.exists().then_some(p)
}

/// A `docker-registry` serving `127.0.0.1:<port>` from a fresh directory.
///
/// It runs under a small shell that kills it and removes the directory once
/// its standard input closes, which happens when this value is dropped or
/// when the test process exits however it exits (so a registry kept in a
/// `static` does not outlive the tests).
pub struct LocalRegistry {
    child: Child,
    addr: String,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRegistry")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn unique_dir() -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!(
        "barge-registry-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir)?;
    Ok(dir)
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Writes the registry's config and returns its path.
fn write_config(dir: &Path, port: u16, htpasswd: Option<&str>) -> io::Result<PathBuf> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    let mut cfg = format!(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
        data.display()
    );
    if let Some(h) = htpasswd {
        let path = dir.join("htpasswd");
        std::fs::write(&path, h)?;
        let _ = write!(
            cfg,
            "auth:\n  htpasswd:\n    realm: barge-test\n    path: {}\n",
            path.display()
        );
    }
    let p = dir.join("config.yml");
    std::fs::write(&p, cfg)?;
    Ok(p)
}

fn answers(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/")
}

impl LocalRegistry {
    /// Starts a registry; with `htpasswd` (file contents, bcrypt entries) it
    /// requires basic auth.
    pub fn start(htpasswd: Option<&str>) -> io::Result<Self> {
        let bin = registry_binary().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "docker-registry not found (install the Debian package docker-registry)",
            )
        })?;
        let mut last = None;
        for _ in 0..5 {
            let dir = unique_dir()?;
            let port = free_port()?;
            let cfg = write_config(&dir, port, htpasswd)?;
            let log = std::fs::File::create(dir.join("registry.log"))?;
            let child = Command::new("sh")
                .arg("-c")
                .arg(concat!(
                    "\"$0\" serve \"$1\" </dev/null >>\"$2/registry.log\" 2>&1 & p=$!; ",
                    "read -r _; kill $p 2>/dev/null; wait $p 2>/dev/null; rm -rf \"$2\""
                ))
                .arg(&bin)
                .arg(&cfg)
                .arg(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?;
            let mut reg = Self {
                child,
                addr: format!("127.0.0.1:{port}"),
                dir,
            };
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if answers(&reg.addr) {
                    return Ok(reg);
                }
                if reg.child.try_wait()?.is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let log = std::fs::read_to_string(reg.dir.join("registry.log")).unwrap_or_default();
            last = Some(io::Error::other(format!(
                "docker-registry on {} did not come up: {}",
                reg.addr,
                log.trim()
            )));
            reg.stop();
        }
        Err(last.unwrap_or_else(|| io::Error::other("docker-registry did not start")))
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The directory holding config, data and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
