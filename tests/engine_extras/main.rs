//! `barge network`, `volume`, `system prune|reset`, `info`, `version` and
//! `containers.conf` defaults, driven through the CLI as a user would, with
//! real containers (root). Every test has its own `--root`/`--runroot`,
//! ends with `system reset -f` (also on panic) and checks that its
//! containers and networks left nothing behind (`barge_net::leaks`).
//!
//! Needs `cargo build --release -p barge -p barge-runtime -p barge-monitor`
//! (or `BARGE=/path/to/barge` with the helpers beside it) and the test
//! image (`scripts/build-image.sh`, or `BARGE_IMAGE`).

use barge_integration::{need_root, rootfs, run_cmd, workspace, Out};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const IMAGE: &str = "localhost/busybox";
const TIMEOUT: Duration = Duration::from_secs(90);

fn barge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
    let p = target.join("release/barge");
    assert!(
        p.exists() && target.join("release/barge-monitor").exists(),
        "no barge release build under {}: cargo build --release -p barge -p barge-runtime -p barge-monitor",
        target.display()
    );
    p
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A /24 no other test of this process uses (10.188.0.0/16, spread by pid).
fn unique_subnet() -> (String, String) {
    let n = (std::process::id() * 7 + SEQ.fetch_add(1, Ordering::SeqCst)) % 250 + 1;
    (format!("10.188.{n}.0/24"), format!("10.188.{n}.1"))
}

/// One private barge state (root, runroot, containers.conf).
struct Barge {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// `HOME` for barge (no user containers.conf unless a test writes one).
    home: PathBuf,
    /// Read the host's containers.conf files instead of `conf`.
    host_conf: bool,
    reset: bool,
}

impl Barge {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("bx")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let conf = dir.path().join("containers.conf");
        std::fs::write(&conf, "").expect("write conf");
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("mkdir home");
        Self {
            dir,
            conf,
            home,
            host_conf: false,
            reset: false,
        }
    }

    /// A state with the test image imported.
    fn with_image() -> Self {
        let b = Self::new();
        b.import(IMAGE);
        b
    }

    fn import(&self, name: &str) {
        let tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .args(["-cf", "-", "."])
            .output()
            .expect("tar");
        assert!(tar.status.success(), "tar of the test rootfs");
        let out = self.run_stdin(&["import", "-", name], &tar.stdout);
        assert!(out.success(), "import: {out:#?}");
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("s")
    }

    fn runroot(&self) -> PathBuf {
        self.dir.path().join("r")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(barge_bin());
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.runroot())
            .args(args)
            .env("HOME", &self.home)
            .env_remove("XDG_CONFIG_HOME")
            .stdin(std::process::Stdio::null());
        if self.host_conf {
            c.env_remove("CONTAINERS_CONF");
        } else {
            c.env("CONTAINERS_CONF", &self.conf);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = run_cmd(self.cmd(args), TIMEOUT);
        eprintln!(
            "$ barge {}\n[{}]\n{}{}",
            args.join(" "),
            out.code,
            &out.stdout[..out.stdout.len().min(4096)],
            out.stderr
        );
        out
    }

    fn run_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        use std::io::Write as _;
        let mut c = self.cmd(args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn barge");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(input);
        }
        let o = child.wait_with_output().expect("wait barge");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            timed_out: false,
        }
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "barge {args:?} failed: {out:#?}");
        out.stdout
    }

    #[track_caller]
    fn fails(&self, args: &[&str], code: i32, message: &str) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, code, "barge {args:?}: {out:#?}");
        assert!(
            out.stderr.lines().any(|l| l.starts_with("Error: ")),
            "{out:#?}"
        );
        assert!(
            out.stderr.contains(message),
            "{:?} lacks {message:?}",
            out.stderr
        );
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("JSON output")
    }

    fn id_of(&self, name: &str) -> String {
        self.ok(&["inspect", "--format", "{{.Id}}", name])
            .trim()
            .to_string()
    }

    fn exec(&self, ctr: &str, script: &str) -> Out {
        self.run(&["exec", ctr, "sh", "-c", script])
    }

    /// A network's bridge and gateway.
    fn bridge_of(&self, net: &str) -> (String, String) {
        let out = self.ok(&[
            "network",
            "inspect",
            "--format",
            "{{.NetworkInterface}} {{.Gateway}}",
            net,
        ]);
        let (b, g) = out.trim().split_once(' ').expect("bridge and gateway");
        (b.to_string(), g.to_string())
    }

    /// `system reset -f`, then: nothing mounted under the state, the
    /// directories gone, and no network leftovers of these containers and
    /// bridges.
    fn reset_and_check(&mut self, ids: &[String], bridges: &[(String, String)]) {
        self.ok(&["system", "reset", "-f"]);
        self.reset = true;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let dir = self.dir.path().display().to_string();
        assert!(
            !mounts.lines().any(|l| l.contains(&dir)),
            "mounts left under {dir}:\n{mounts}"
        );
        assert!(!self.root().exists(), "root left behind");
        assert!(!self.runroot().exists(), "runroot left behind");
        for id in ids {
            // A removed container's veth goes with its network namespace,
            // which the kernel destroys in the background.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let l = barge_net::leaks(id).expect("leaks");
                if l.is_empty() {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "leftovers of {id}: {l:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Bridge names are reused at once by other roots (tests run in
        // parallel): a bridge is ours if it has our gateway address.
        for (b, gateway) in bridges {
            assert!(
                !host_has_address(gateway),
                "bridge {b} with {gateway} left behind"
            );
        }
    }
}

impl Drop for Barge {
    fn drop(&mut self) {
        if !self.reset && self.root().exists() {
            let _ = run_cmd(self.cmd(&["system", "reset", "-f"]), TIMEOUT);
        }
    }
}

/// Whether a host interface has this IPv4 address.
fn host_has_address(ip: &str) -> bool {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show"])
        .output()
        .expect("ip addr");
    String::from_utf8_lossy(&out.stdout).contains(&format!("inet {ip}/"))
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[test]
fn network_commands() {
    need_root!();
    let mut b = Barge::with_image();
    let (subnet, gateway) = unique_subnet();
    let name = "xnet";
    assert_eq!(
        b.ok(&[
            "network",
            "create",
            "--subnet",
            &subnet,
            "--gateway",
            &gateway,
            "--label",
            "team=blue",
            "--internal",
            name
        ])
        .trim(),
        name
    );
    b.fails(
        &["network", "create", "--subnet", &subnet, name],
        125,
        "network already exists",
    );
    assert_eq!(b.ok(&["network", "create", "--ignore", name]).trim(), name);
    // A second network gets the next /24 of the pool.
    let other = b.ok(&["network", "create"]).trim().to_string();
    assert!(other.starts_with("barge"), "{other}");

    // ls: table, quiet, filters, json, template.
    let table = b.ok(&["network", "ls"]);
    let rows = lines(&table);
    assert!(rows[0].starts_with("NETWORK ID"), "{table}");
    assert!(rows[0].contains("NAME") && rows[0].contains("DRIVER"));
    assert!(rows
        .iter()
        .any(|r| r.contains(name) && r.contains("bridge")));
    assert!(rows.iter().any(|r| r.contains(" barge ")));
    let quiet = b.ok(&["network", "ls", "-q"]);
    let mut names = lines(&quiet);
    names.sort_unstable();
    let mut expect = vec!["barge", name, other.as_str()];
    expect.sort_unstable();
    assert_eq!(names, expect);
    assert_eq!(
        lines(&b.ok(&["network", "ls", "-q", "--filter", "name=xne"])),
        vec![name]
    );
    assert_eq!(
        lines(&b.ok(&["network", "ls", "-q", "--filter", "label=team=blue"])),
        vec![name]
    );
    assert!(lines(&b.ok(&["network", "ls", "-q", "--filter", "label=team=red"])).is_empty());
    let json = b.json(&["network", "ls", "--format", "json"]);
    let mine = json
        .as_array()
        .expect("array")
        .iter()
        .find(|n| n["name"] == name)
        .expect("xnet in json");
    assert_eq!(mine["subnets"][0]["subnet"], subnet.as_str());
    assert_eq!(mine["subnets"][0]["gateway"], gateway.as_str());
    assert_eq!(mine["internal"], true);
    assert_eq!(mine["dns_enabled"], true);
    assert_eq!(mine["labels"]["team"], "blue");
    assert_eq!(mine["id"].as_str().map(str::len), Some(64));
    assert_eq!(
        b.ok(&[
            "network",
            "ls",
            "--format",
            "{{.Name}}:{{.Driver}}",
            "--filter",
            "name=xnet"
        ])
        .trim(),
        "xnet:bridge"
    );
    b.fails(
        &["network", "ls", "--filter", "colour=red"],
        125,
        "invalid filter",
    );

    // inspect.
    let v = b.json(&["network", "inspect", name]);
    assert_eq!(v[0]["name"], name);
    assert_eq!(v[0]["driver"], "bridge");
    let bridge = b.bridge_of(name);
    assert_eq!(v[0]["network_interface"], bridge.0.as_str());
    assert!(host_has_address(&gateway), "bridge of {name} not created");
    assert_eq!(
        b.ok(&[
            "network",
            "inspect",
            "--format",
            "{{.Name}} {{.Internal}} {{.NetworkInterface}}",
            name
        ])
        .trim(),
        format!("{name} true {}", bridge.0)
    );
    let out = b.fails(
        &["network", "inspect", "nosuchnet"],
        125,
        "network not found",
    );
    assert_eq!(out.stdout.trim(), "[]");
    b.ok(&["network", "exists", name]);
    assert_eq!(b.run(&["network", "exists", "nosuchnet"]).code, 1);

    // Bad input.
    b.fails(
        &["network", "create", "--subnet", "10.1.2.3/33", "bad1"],
        125,
        "invalid subnet",
    );
    b.fails(
        &["network", "create", "--subnet", &subnet, "bad2"],
        125,
        "already used by network xnet",
    );
    b.fails(
        &[
            "network",
            "create",
            "--subnet",
            "10.187.9.0/24",
            "--gateway",
            "10.187.10.1",
            "bad3",
        ],
        125,
        "not in subnet",
    );
    b.fails(
        &["network", "create", "-d", "macvlan", "bad4"],
        125,
        "not supported",
    );
    b.fails(&["network", "create", "bad/name"], 125, "invalid name");
    b.fails(&["network", "rm", "nosuchnet"], 1, "network not found");
    b.fails(&["network", "rm", "barge"], 125, "cannot be removed");

    // In use: exit 2 without -f; -f removes the container too.
    let cid = b
        .ok(&[
            "create",
            "--name",
            "user1",
            "--network",
            name,
            IMAGE,
            "true",
        ])
        .trim()
        .to_string();
    b.fails(&["network", "rm", name], 2, "network is being used");
    assert_eq!(b.ok(&["network", "rm", "-f", name]).trim(), name);
    b.fails(&["inspect", "user1"], 125, "no such");
    assert!(!lines(&b.ok(&["network", "ls", "-q"])).contains(&name));

    // prune removes unused user networks only.
    b.ok(&["network", "create", "keepme"]);
    b.ok(&[
        "create",
        "--name",
        "user2",
        "--network",
        "keepme",
        IMAGE,
        "true",
    ]);
    let pruned = b.ok(&["network", "prune", "-f"]);
    assert_eq!(lines(&pruned), vec![other.as_str()]);
    let mut left = lines(&b.ok(&["network", "ls", "-q"])).join(",");
    left.push(',');
    assert_eq!(left, "barge,keepme,");
    let keep_bridge = b.bridge_of("keepme");
    let ids = vec![cid, b.id_of("user2")];
    b.reset_and_check(&ids, &[bridge, keep_bridge]);
}

/// A shell snippet fetching `http://NAME:8080/` with NAME looked up in
/// the container's `/etc/hosts` (the engine's name resolution; the test
/// image's static busybox cannot resolve names, and its wget crashes).
fn fetch_by_name(name: &str) -> String {
    format!(
        "ip=$(awk -v n={name} '{{for(i=2;i<=NF;i++) if($i==n){{print $1; exit}}}}' /etc/hosts); \
         [ -n \"$ip\" ] && printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 $ip 8080"
    )
}

/// Waits until `cmd` succeeds in container `ctr` (up to 10 s).
fn exec_until(b: &Barge, ctr: &str, script: &str) -> bool {
    for _ in 0..50 {
        if b.exec(ctr, script).success() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn network_connect_and_disconnect() {
    need_root!();
    let mut b = Barge::with_image();
    let (sa, _) = unique_subnet();
    let (sb, gb) = unique_subnet();
    b.ok(&["network", "create", "--subnet", &sa, "neta"]);
    b.ok(&["network", "create", "--subnet", &sb, "netb"]);
    let bridges: Vec<(String, String)> = ["neta", "netb"].iter().map(|n| b.bridge_of(n)).collect();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "alpha",
        "--network",
        "neta",
        IMAGE,
        "sleep",
        "300",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "beta",
        "--network",
        "netb",
        IMAGE,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-beta > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    // Not reachable before connecting: alpha has no route to netb (and no
    // name for beta).
    let before = b.exec("alpha", &fetch_by_name("beta"));
    assert!(!before.success());
    assert!(!b.exec("alpha", "cat /etc/hosts").stdout.contains("beta"));

    // Errors.
    b.fails(
        &["network", "connect", "nosuchnet", "alpha"],
        125,
        "network not found",
    );
    b.fails(
        &["network", "connect", "netb", "nosuchctr"],
        125,
        "no such container",
    );
    b.fails(
        &["network", "disconnect", "netb", "alpha"],
        125,
        "is not connected to network netb",
    );
    b.fails(
        &["network", "connect", "neta", "alpha"],
        125,
        "already connected",
    );

    b.ok(&["network", "connect", "netb", "alpha"]);
    let v = b.json(&["network", "inspect", "netb"]);
    let alpha_id = b.id_of("alpha");
    let att = &v[0]["containers"][&alpha_id];
    assert_eq!(att["name"], "alpha");
    let ipnet = att["interfaces"]["eth1"]["subnets"][0]["ipnet"]
        .as_str()
        .expect("eth1 on netb")
        .to_string();
    let ip = ipnet.split('/').next().expect("ip").to_string();
    assert!(
        ip.starts_with(gb.rsplit_once('.').expect("gw").0),
        "{ip} not in {sb}"
    );
    // Inside: eth1 with that address; the default route still via eth0.
    let addrs = b.exec("alpha", "ip -4 addr show eth1; ip route").stdout;
    assert!(addrs.contains(&ipnet), "{addrs}");
    assert!(
        addrs
            .lines()
            .any(|l| l.starts_with("default") && l.contains("eth0")),
        "{addrs}"
    );
    // By name, across the second interface.
    assert!(
        exec_until(
            &b,
            "alpha",
            &format!("{} | grep -q hello-from-beta", fetch_by_name("beta"))
        ),
        "alpha cannot reach beta over netb"
    );
    // beta learnt alpha's name too.
    let hosts = b.exec("beta", "cat /etc/hosts").stdout;
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(&ip) && l.contains("alpha")),
        "{hosts}"
    );
    // And the network is in use now.
    b.fails(&["network", "rm", "netb"], 2, "network is being used");

    b.ok(&["network", "disconnect", "netb", "alpha"]);
    let gone = b.exec("alpha", "ls /sys/class/net").stdout;
    assert!(!gone.contains("eth1") && gone.contains("eth0"), "{gone}");
    assert!(!b.exec("alpha", "cat /etc/hosts").stdout.contains("beta"));
    assert!(!b.exec("beta", "cat /etc/hosts").stdout.contains("alpha"));
    assert!(!b.exec("alpha", &fetch_by_name("beta")).success());
    let v = b.json(&["network", "inspect", "netb"]);
    assert!(v[0]["containers"].get(&alpha_id).is_none(), "{v}");
    // A veth of alpha's eth1 must be gone from the host.
    let links = std::fs::read_dir("/sys/class/net")
        .expect("ls")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect::<Vec<_>>();
    let eth1_host = format!("vb{}-1", &alpha_id[..8]);
    assert!(!links.contains(&eth1_host), "{eth1_host} still there");
    // Reconnecting works again (the index is reused).
    b.ok(&["network", "connect", "netb", "alpha"]);
    assert!(exec_until(
        &b,
        "alpha",
        &format!("{} | grep -q hello", fetch_by_name("beta"))
    ));

    // A created (not running) container: only its configuration changes.
    b.ok(&[
        "create",
        "--name",
        "gamma",
        "--network",
        "neta",
        IMAGE,
        "sleep",
        "300",
    ]);
    b.ok(&["network", "connect", "netb", "gamma"]);
    // podman: connecting a stopped container again is not an error.
    b.ok(&["network", "connect", "netb", "gamma"]);
    b.ok(&["start", "gamma"]);
    let nets = b.exec("gamma", "ls /sys/class/net").stdout;
    assert!(nets.contains("eth0") && nets.contains("eth1"), "{nets}");
    assert!(exec_until(
        &b,
        "gamma",
        &format!("{} | grep -q hello", fetch_by_name("beta"))
    ));
    b.ok(&["stop", "-t", "1", "gamma"]);
    b.ok(&["network", "disconnect", "neta", "gamma"]);
    b.ok(&["start", "gamma"]);
    let nets = b.exec("gamma", "ls /sys/class/net").stdout;
    assert!(nets.contains("eth0") && !nets.contains("eth1"), "{nets}");
    // Its only network now is netb.
    let v = b.json(&["network", "inspect", "netb"]);
    let gamma_id = b.id_of("gamma");
    assert!(
        v[0]["containers"][&gamma_id]["interfaces"]["eth0"].is_object(),
        "{v}"
    );

    // --network host cannot be connected.
    b.ok(&[
        "create",
        "--name",
        "hosty",
        "--network",
        "host",
        IMAGE,
        "true",
    ]);
    b.fails(
        &["network", "connect", "neta", "hosty"],
        125,
        "network mode is host",
    );

    let ids = vec![alpha_id, b.id_of("beta"), gamma_id, b.id_of("hosty")];
    b.reset_and_check(&ids, &bridges);
}

#[test]
fn volume_commands() {
    need_root!();
    let mut b = Barge::with_image();
    assert_eq!(
        b.ok(&["volume", "create", "--label", "team=blue", "vol1"])
            .trim(),
        "vol1"
    );
    b.fails(&["volume", "create", "vol1"], 125, "volume already exists");
    assert_eq!(
        b.ok(&["volume", "create", "--ignore", "vol1"]).trim(),
        "vol1"
    );
    let anon = b.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    b.fails(&["volume", "create", "bad/name"], 125, "invalid name");
    b.fails(
        &["volume", "create", "--opt", "type=tmpfs", "vol9"],
        125,
        "not supported",
    );
    b.fails(
        &["volume", "create", "--opt", "size=1", "vol9"],
        125,
        "invalid volume option",
    );

    let table = b.ok(&["volume", "ls"]);
    let rows = lines(&table);
    assert!(
        rows[0].starts_with("DRIVER") && rows[0].contains("VOLUME NAME"),
        "{table}"
    );
    assert!(rows
        .iter()
        .any(|r| r.starts_with("local") && r.ends_with("vol1")));
    let mut q = lines(&b.ok(&["volume", "ls", "-q"]))
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    q.sort();
    let mut expect = vec![anon.clone(), "vol1".to_string()];
    expect.sort();
    assert_eq!(q, expect);
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "--filter", "label=team"])),
        vec!["vol1"]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "--filter", "name=vol"])),
        vec!["vol1"]
    );
    b.fails(&["volume", "ls", "--filter", "nope"], 125, "invalid filter");
    let json = b.json(&["volume", "ls", "--format", "json"]);
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert_eq!(
        b.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}}",
            "--filter",
            "name=vol1"
        ])
        .trim(),
        "vol1 local"
    );

    let v = b.json(&["volume", "inspect", "vol1"]);
    assert_eq!(v[0]["Name"], "vol1");
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Labels"]["team"], "blue");
    assert_eq!(v[0]["Scope"], "local");
    let mp = b.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "vol1"]);
    let mp = PathBuf::from(mp.trim());
    assert!(mp.is_dir(), "{}", mp.display());
    assert!(mp.starts_with(b.root()), "{}", mp.display());
    let out = b.fails(&["volume", "inspect", "nosuchvol"], 125, "no such volume");
    assert_eq!(out.stdout.trim(), "[]");
    b.ok(&["volume", "exists", "vol1"]);
    assert_eq!(b.run(&["volume", "exists", "nosuchvol"]).code, 1);

    // Data written by a container lands in the volume.
    b.ok(&[
        "run",
        "--rm",
        "-v",
        "vol1:/data",
        IMAGE,
        "sh",
        "-c",
        "echo persisted > /data/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(mp.join("f")).expect("volume file"),
        "persisted\n"
    );
    // In use: exit 2; -f removes the container too.
    let cid = b
        .ok(&[
            "create",
            "--name",
            "holder",
            "-v",
            "vol1:/data",
            IMAGE,
            "true",
        ])
        .trim()
        .to_string();
    b.fails(&["volume", "rm", "vol1"], 2, "volume is being used");
    b.fails(&["volume", "rm", "nosuchvol"], 1, "no such volume");
    // prune keeps the used one.
    assert_eq!(
        lines(&b.ok(&["volume", "prune", "-f"])),
        vec![anon.as_str()]
    );
    assert_eq!(lines(&b.ok(&["volume", "ls", "-q"])), vec!["vol1"]);
    assert_eq!(b.ok(&["volume", "rm", "-f", "vol1"]).trim(), "vol1");
    assert!(!mp.exists());
    b.fails(&["inspect", "holder"], 125, "no such");
    assert!(lines(&b.ok(&["volume", "ls", "-q"])).is_empty());
    b.reset_and_check(&[cid], &[]);
}

#[test]
fn system_prune_info_version_reset() {
    need_root!();
    let mut b = Barge::with_image();
    // version
    let text = b.ok(&["version"]);
    assert!(
        text.contains("Version:") && text.contains("OS/Arch:"),
        "{text}"
    );
    let v = b.json(&["version", "--format", "json"]);
    assert_eq!(v["Client"]["Version"], env!("CARGO_PKG_VERSION"));
    assert!(v["Client"]["OsArch"]
        .as_str()
        .is_some_and(|s| s.starts_with("linux/")));
    assert_eq!(
        b.ok(&["version", "--format", "{{.Client.Version}}"]).trim(),
        env!("CARGO_PKG_VERSION")
    );

    // Things to prune and things to keep.
    let (subnet, _) = unique_subnet();
    b.ok(&["network", "create", "--subnet", &subnet, "unused"]);
    let unused_bridge = b.bridge_of("unused");
    let (subnet2, _) = unique_subnet();
    b.ok(&["network", "create", "--subnet", &subnet2, "busy"]);
    let busy_bridge = b.bridge_of("busy");
    b.ok(&["volume", "create", "spare"]);
    b.ok(&["volume", "create", "inuse"]);
    let stopped = b
        .ok(&["create", "--name", "stopped", IMAGE, "true"])
        .trim()
        .to_string();
    let running = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "running",
            "--network",
            "busy",
            "-p",
            "127.0.0.1::80",
            "-v",
            "inuse:/data",
            IMAGE,
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    // An image of its own (one file), no container uses it.
    let tiny = b.dir.path().join("tiny");
    std::fs::create_dir_all(&tiny).expect("mkdir");
    std::fs::write(tiny.join("file"), "tiny\n").expect("write");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&tiny)
        .args(["-cf", "-", "file"])
        .output()
        .expect("tar");
    assert!(b
        .run_stdin(&["import", "-", "localhost/spare-image"], &tar.stdout)
        .success());

    // info
    let uname = Command::new("uname").arg("-r").output().expect("uname");
    let kernel = String::from_utf8_lossy(&uname.stdout).trim().to_string();
    let yaml = b.ok(&["info"]);
    assert!(yaml.starts_with("host:\n"), "{yaml}");
    assert!(yaml.contains(&format!("  kernel: {kernel}\n")), "{yaml}");
    let info = b.json(&["info", "--format", "json"]);
    assert_eq!(info["store"]["graphRoot"], b.root().display().to_string());
    assert_eq!(info["store"]["runRoot"], b.runroot().display().to_string());
    assert_eq!(info["store"]["containerStore"]["number"], 2);
    assert_eq!(info["store"]["containerStore"]["running"], 1);
    assert_eq!(info["store"]["imageStore"]["number"], 2);
    assert_eq!(info["store"]["volumeStore"]["number"], 2);
    assert_eq!(info["host"]["ociRuntime"]["name"], "barge-runtime");
    assert!(info["host"]["ociRuntime"]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("barge-runtime")));
    assert!(info["host"]["conmon"]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("barge-monitor")));
    let cg = info["host"]["cgroupVersion"]
        .as_str()
        .expect("cgroupVersion");
    assert!(cg == "v1" || cg == "v2", "{cg}");
    let hybrid = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup/unified "));
    if hybrid {
        assert_eq!(info["host"]["cgroupMode"], "hybrid");
    }
    assert_eq!(
        b.ok(&["info", "--format", "{{.Host.Kernel}}"]).trim(),
        kernel
    );
    assert_eq!(
        b.ok(&["system", "info", "--format", "{{.Store.GraphRoot}}"])
            .trim(),
        b.root().display().to_string()
    );

    // prune without -a and --volumes: the stopped container and unused
    // network; no volume, no tagged image.
    let out = b.ok(&["system", "prune", "-f"]);
    let l = lines(&out);
    let at = |t: &str| l.iter().position(|x| *x == t);
    let c = at("Deleted Containers").expect("containers section");
    assert_eq!(l[c + 1], stopped);
    let n = at("Deleted Networks").expect("networks section");
    assert_eq!(l[n + 1], "unused");
    assert!(at("Deleted Volumes").is_none(), "{out}");
    assert!(at("Deleted Images").is_none(), "{out}");
    assert!(
        l.last()
            .is_some_and(|x| x.starts_with("Total reclaimed space: ")),
        "{out}"
    );
    assert!(!host_has_address(&unused_bridge.1));
    assert_eq!(lines(&b.ok(&["ps", "-a", "-q"])).len(), 1);

    // -a --volumes: the unused image and volume go, the used ones stay.
    let out = b.ok(&["system", "prune", "-f", "-a", "--volumes"]);
    let l = lines(&out);
    let v = l
        .iter()
        .position(|x| *x == "Deleted Volumes")
        .expect("volumes");
    assert_eq!(l[v + 1], "spare");
    assert!(l.contains(&"Deleted Images"), "{out}");
    assert_eq!(lines(&b.ok(&["volume", "ls", "-q"])), vec!["inuse"]);
    let images = b.ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(lines(&images), vec![IMAGE], "{images}");
    assert!(b.exec("running", "true").success());

    // reset: the running container, its published port, network, volume
    // and the image; nothing left.
    b.reset_and_check(&[stopped, running], &[unused_bridge, busy_bridge]);
}

#[test]
fn system_reset_on_empty_and_prompt() {
    need_root!();
    let mut b = Barge::new();
    // Without -f and no "y" on stdin nothing happens.
    b.ok(&["volume", "create", "v"]);
    let out = b.run_stdin(&["system", "reset"], b"n\n");
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains("Are you sure"), "{out:#?}");
    b.ok(&["volume", "exists", "v"]);
    let out = b.run_stdin(&["volume", "prune"], b"n\n");
    assert_eq!(out.code, 0);
    b.ok(&["volume", "exists", "v"]);
    b.reset_and_check(&[], &[]);
}

#[test]
fn containers_conf_defaults() {
    need_root!();
    let mut b = Barge::with_image();
    std::fs::write(
        &b.conf,
        r#"
# barge test
[containers]
default_ulimits = ["nofile=321:321"]
pids_limit = 77
env = ["FROMCONF=yes", "OTHER=conf"]
default_capabilities = ["CHOWN", "NET_RAW", "SETUID", "SETGID"]
unknown_option = "ignored"

[engine]
events_logger = "file"
"#,
    )
    .expect("write conf");
    let out = b.ok(&[
        "run",
        "--name",
        "c1",
        "-e",
        "OTHER=flag",
        IMAGE,
        "sh",
        "-c",
        "ulimit -n; echo $FROMCONF; echo $OTHER",
    ]);
    let id = b.id_of("c1");
    let l = lines(&out);
    assert_eq!(l.len(), 3, "{out}");
    assert_eq!(l[0], "321");
    assert_eq!(l[1], "yes");
    // -e beats containers.conf's env.
    assert_eq!(l[2], "flag");
    let spec: Value = serde_json::from_slice(
        &std::fs::read(b.root().join("containers").join(&id).join("config.json"))
            .expect("config.json"),
    )
    .expect("json");
    assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 77);
    let mut caps: Vec<String> = spec["process"]["capabilities"]["bounding"]
        .as_array()
        .expect("caps")
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    caps.sort();
    assert_eq!(
        caps,
        vec!["CAP_CHOWN", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID"]
    );
    // Flags win over the file.
    let out = b.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=222:222",
        "--pids-limit",
        "5",
        IMAGE,
        "sh",
        "-c",
        "ulimit -n",
    ]);
    assert_eq!(out.trim(), "222");
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.OCIRuntime}}", "c1"])
            .trim(),
        "barge-runtime"
    );

    // [engine] runtime from the user's file (CONTAINERS_CONF) is honoured.
    std::fs::write(&b.conf, "[engine]\nruntime = \"runc\"\n").expect("write conf");
    b.ok(&["create", "--name", "c2", IMAGE, "true"]);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.OCIRuntime}}", "c2"])
            .trim(),
        "runc"
    );

    // Malformed: every command fails, naming the file and line.
    std::fs::write(&b.conf, "[containers]\npids_limit = 1\nlog_driver = \n").expect("write");
    let msg = format!("{}: line 3", b.conf.display());
    b.fails(&["ps"], 125, &msg);
    std::fs::write(&b.conf, "[containers]\npids_limit = \"lots\"\n").expect("write");
    b.fails(&["ps"], 125, &format!("{}: line 2", b.conf.display()));
    std::fs::write(&b.conf, "").expect("write");

    // The host's files (as written for podman, runtime = "runc"): barge
    // keeps its own runtime; the user's file (HOME) can still choose.
    b.host_conf = true;
    b.ok(&["create", "--name", "c3", IMAGE, "true"]);
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.OCIRuntime}}", "c3"])
            .trim(),
        "barge-runtime"
    );
    let user = b.home.join(".config/containers");
    std::fs::create_dir_all(&user).expect("mkdir");
    std::fs::write(
        user.join("containers.conf"),
        "[engine]\nruntime = \"runc\"\n[containers]\npids_limit = 55\n",
    )
    .expect("write");
    let c4 = b
        .ok(&["create", "--name", "c4", IMAGE, "true"])
        .trim()
        .to_string();
    assert_eq!(
        b.ok(&["inspect", "--format", "{{.OCIRuntime}}", "c4"])
            .trim(),
        "runc"
    );
    let info = b.json(&["info", "--format", "json"]);
    let files = info["store"]["configFile"].to_string();
    assert!(
        files.contains(".config/containers/containers.conf"),
        "{files}"
    );
    let _ = c4;
    b.host_conf = false;
    b.reset_and_check(&[id], &[]);
}
