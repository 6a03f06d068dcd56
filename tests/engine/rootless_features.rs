//! Rootless-only features driven as the unprivileged user `barge-rootless`
//! (created by scripts/install-deps.sh): `--userns=keep-id`, the note when
//! resource limits are ignored, `barge unshare`, user networks in the
//! user's bridge namespace with name resolution and a published port
//! relayed by the forwarder, and the refusals of what rootless does not
//! support yet. Each test has its own store and run directory (so its own
//! pause process, stopped at the end).

use barge_integration::{barge_bin, is_root, rootfs, run_cmd, wait_until, Out};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const USER: &str = "barge-rootless";

struct UserEnv {
    dir: tempfile::TempDir,
    home: String,
}

impl UserEnv {
    /// None (with a SKIP line) when the user does not exist.
    fn new() -> Option<Self> {
        let out = Command::new("getent")
            .args(["passwd", USER])
            .output()
            .ok()?;
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let Some(home) = line.split(':').nth(5).map(|h| h.trim().to_string()) else {
            eprintln!("SKIP: no user {USER} (scripts/install-deps.sh creates it)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("brl")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let st = Command::new("chown")
            .args([&format!("{USER}:"), &dir.path().display().to_string()])
            .status()
            .expect("chown");
        assert!(st.success());
        std::fs::create_dir(dir.path().join("xdg")).unwrap();
        Command::new("chown")
            .args([
                &format!("{USER}:"),
                &dir.path().join("xdg").display().to_string(),
            ])
            .status()
            .unwrap();
        let env = Self { dir, home };
        let o = env.sh(&format!(
            "tar -C '{}' -c . | {} import - localhost/busybox",
            rootfs().display(),
            env.barge_cmdline()
        ));
        assert!(o.success(), "import: {o:#?}");
        Some(env)
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn barge_cmdline(&self) -> String {
        format!(
            "setpriv --reuid={USER} --regid={USER} --init-groups env HOME='{}' XDG_RUNTIME_DIR='{}' '{}' --root '{}' --runroot '{}'",
            self.home,
            self.path("xdg").display(),
            barge_bin().display(),
            self.path("s").display(),
            self.path("r").display()
        )
    }

    fn sh(&self, script: &str) -> Out {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        run_cmd(c, Duration::from_secs(60))
    }

    fn barge(&self, args: &str) -> Out {
        self.sh(&format!("{} {args}", self.barge_cmdline()))
    }

    fn pause_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path("xdg/barge/pause.pid"))
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

impl Drop for UserEnv {
    fn drop(&mut self) {
        let _ = self.barge("rm -f -a");
        let _ = self.barge("network prune -f");
        let _ = self.barge("system reset -f");
        if let Some(pid) = self.pause_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn processes_matching(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push(cmd);
        }
    }
    out
}

macro_rules! user_env {
    () => {{
        if !is_root() {
            eprintln!("SKIP: creating the rootless user's environment needs root");
            return;
        }
        match UserEnv::new() {
            Some(e) => e,
            None => return,
        }
    }};
}

#[test]
fn keep_id_unshare_and_ignored_limits() {
    let env = user_env!();
    let uid = env.sh(&format!("id -u {USER}")).stdout.trim().to_string();
    // keep-id: the user's own uid inside, container root is a subordinate id.
    let o = env.barge("run --rm --network none --userns keep-id localhost/busybox sh -c 'id -u; cat /proc/self/uid_map'");
    o.ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next().map(str::trim), Some(uid.as_str()), "{o:#?}");
    assert!(
        o.stdout.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f == [uid.as_str(), "0", "1"]
        }),
        "{o:#?}"
    );
    // keep-id is for rootless users only.
    let o = Command::new(barge_bin())
        .args(["--root", &env.path("root-s").display().to_string()])
        .args(["--runroot", &env.path("root-r").display().to_string()])
        .args(["create", "--userns", "keep-id", "localhost/busybox", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("rootless"));
    // unshare: root in the user's namespace.
    let o = env.barge("unshare id -u");
    o.ok();
    assert_eq!(o.stdout.trim(), "0");
    // A limit flag: one warning naming the flag, and the container runs.
    let o = env
        .barge("run --rm --network none --memory 64m --pids-limit 50 localhost/busybox echo ran");
    o.ok();
    assert_eq!(o.stdout.trim(), "ran");
    let warns: Vec<&str> = o.stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warns.len(), 1, "{o:#?}");
    assert!(
        warns[0].contains("--memory") && warns[0].contains("ignored"),
        "{o:#?}"
    );
    // Not supported yet: a clear error, exit 125, nothing left.
    for flags in ["--userns auto", "--uidmap 0:1:1000"] {
        let o = env.barge(&format!(
            "run --rm --network none {flags} localhost/busybox true"
        ));
        assert_eq!(o.code, 125, "{flags}: {o:#?}");
        assert!(o.stderr.contains("keep-id"), "{flags}: {o:#?}");
    }
    let o = env.barge("ps -a -q");
    o.ok();
    assert!(o.stdout.trim().is_empty(), "{o:#?}");
}

#[test]
fn user_network_names_and_forwarded_port() {
    let env = user_env!();
    env.barge("network create rlnet").ok();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    env.barge(&format!(
        "run -d --name web --network rlnet -p 127.0.0.1:{port}:8080 localhost/busybox \
         sh -c 'mkdir -p /w && echo rootless-web > /w/index.html && exec httpd -f -p 8080 -h /w'"
    ))
    .ok();
    // Another container on the network reaches it by name.
    let o = env.barge("run --rm --network rlnet localhost/busybox wget -q -O - http://web:8080/");
    o.ok();
    assert_eq!(o.stdout.trim(), "rootless-web");
    // The host reaches it through the published port.
    let mut body = String::new();
    let fetched = wait_until(Duration::from_secs(5), || {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = s.read_to_string(&mut body);
        body.contains("rootless-web")
    });
    assert!(fetched, "no page on 127.0.0.1:{port}: {body:?}");
    let id = env
        .barge("inspect web --format '{{.Id}}'")
        .stdout
        .trim()
        .to_string();
    assert_eq!(processes_matching(&format!("{id}/portfwd.pid")).len(), 1);
    // Removal stops the forwarder and frees the port.
    env.barge("rm -f web").ok();
    assert!(
        wait_until(Duration::from_secs(5), || processes_matching(&format!(
            "{id}/portfwd.pid"
        ))
        .is_empty()),
        "forwarder left: {:?}",
        processes_matching("__port-forward")
    );
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    env.barge("network rm rlnet").ok();
}
