//! Networks: two containers on a user network reach each other by name; a
//! published port serves a host-side client; `port`. User-mode networking
//! (`--network pasta`, `--network slirp4netns`): a published port serves
//! a host client, the container's interface, route, resolv.conf and hosts
//! file, the helper process per run (gone after stop, rm, run --rm; a new
//! one on start), a pod on pasta, and a missing helper binary.
//!
//! Only loopback traffic: the host fetches from 127.0.0.1; the container
//! sends nothing and resolves nothing.

use crate::{free_port, need_network, need_root, net_helpers, net_lock, unique, Env, IMG};
use std::io::{Read as _, Write as _};
use std::time::Duration;

#[test]
fn user_network_resolves_names() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let net = unique("net");
    env.network_create(&net);
    let a = unique("a");
    let b = unique("b");
    // busybox ping needs a raw socket: CAP_NET_RAW is not a default
    // capability (podman's defaults neither).
    env.run_d(&[
        "--name",
        &a,
        "--network",
        &net,
        "--cap-add",
        "NET_RAW",
        IMG,
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    env.run_d(&[
        "--name",
        &b,
        "--network",
        &net,
        "--cap-add",
        "NET_RAW",
        IMG,
        "sh",
        "-c",
        "while :; do sleep 0.1; done",
    ]);
    // b reaches a by name (hosts file kept current), and a reaches b.
    let o = env.run(&["exec", &b, "ping", "-c", "1", "-W", "5", &a]);
    assert!(o.success(), "{o:#?}");
    let o = env.run(&["exec", &a, "ping", "-c", "1", "-W", "5", &b]);
    assert!(o.success(), "{o:#?}");
    // HTTP by name (nc: the test image's static busybox wget segfaults, in
    // podman too).
    let get = format!("printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | nc {a} 80");
    let o = env.run(&["exec", &b, "sh", "-c", &get]);
    assert!(o.success(), "{o:#?}");
    let a_host = env.fmt(&a, "{{.Config.Hostname}}");
    assert!(o.stdout.contains("200 OK"), "{o:#?}");
    assert_eq!(o.stdout.lines().last().unwrap_or_default().trim(), a_host);
    let ps = env.ok(&["ps", "--filter", &format!("network={net}"), "-q"]);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    env.ok(&["rm", "-f", &a, &b]);
}

#[test]
fn published_port_serves_host_client() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let name = unique("web");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    env.run_d(&[
        "--name",
        &name,
        "-p",
        &publish,
        IMG,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    // port.
    assert_eq!(
        env.ok(&["port", &name]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    assert_eq!(
        env.ok(&["port", &name, "80"]).trim(),
        format!("127.0.0.1:{port}")
    );
    let ps = env.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    let body = http_get(port);
    assert!(body.contains("hello-from-httpd"), "{body:?}");
    env.ok(&["rm", "-f", &name]);
    // The port is gone with the container.
    let gone = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    );
    assert!(gone.is_err(), "port {port} still answers");
}

/// GET / from 127.0.0.1:PORT, retrying while httpd starts.
fn http_get(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        match std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        ) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("200") {
                    return body;
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no answer on port {port}: {last}");
}

/// The helper binary of a user-mode network on PATH, or a SKIP reason.
fn helper_on_path(binary: &str) -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|d| d.join(binary).is_file()) {
        Ok(())
    } else {
        Err(format!(
            "{binary} is not installed (scripts/install-deps.sh)"
        ))
    }
}

/// The live helper processes of container `id`.
fn helpers_of(id: &str) -> Vec<String> {
    net_helpers(&[id.to_string()])
}

/// The host's nameservers a pasta container gets: those of the host's
/// resolv.conf but loopback ones (unreachable from the container).
fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.starts_with("127.") && ns != "::1")
        .collect()
}

/// `run -d --network MODE -p 127.0.0.1:PORT:80 … httpd`, fetched from the
/// host; the container's network as it sees it; the helper per run.
fn usernet_serves_published_port(mode: &str, binary: &str) {
    if let Err(why) = helper_on_path(binary) {
        eprintln!("SKIP: {why}");
        return;
    }
    let env = Env::new();
    let name = unique(mode);
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let id = env.run_d(&[
        "--name",
        &name,
        "--network",
        mode,
        "-p",
        &publish,
        IMG,
        "sh",
        "-c",
        &format!("mkdir -p /www && echo hello-from-{mode} > /www/index.html && exec httpd -f -p 80 -h /www"),
    ]);
    let body = http_get(port);
    assert!(body.contains(&format!("hello-from-{mode}")), "{body:?}");
    // Ports recorded: port, ps, inspect.
    assert_eq!(
        env.ok(&["port", &name]).trim(),
        format!("80/tcp -> 127.0.0.1:{port}")
    );
    let ps = env.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert_eq!(env.fmt(&name, "{{.HostConfig.NetworkMode}}"), mode);
    let netns = env.runroot.join("netns").join(&id);
    assert_eq!(
        env.fmt(&name, "{{.NetworkSettings.SandboxKey}}"),
        netns.display().to_string()
    );
    let v = env.inspect(&name);
    assert_eq!(
        v["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"],
        port.to_string(),
        "{v:#}"
    );
    // The container's interface, default route, resolv.conf and hosts.
    let o = env.ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "ip -4 -o addr show scope global; echo --; ip route; echo --; cat /etc/resolv.conf; echo --; cat /etc/hosts",
    ]);
    let parts: Vec<&str> = o.split("--\n").collect();
    assert_eq!(parts.len(), 4, "{o}");
    let (addrs, routes, resolv, hosts) = (parts[0], parts[1], parts[2], parts[3]);
    // `2: eth0    inet 192.0.2.2/24 …`
    let first = addrs.lines().next().unwrap_or_default();
    let fields: Vec<&str> = first.split_whitespace().collect();
    assert!(fields.len() > 3 && fields[2] == "inet", "{o}");
    let (ifname, ip) = (fields[1], fields[3].split('/').next().unwrap_or_default());
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("default via ") && l.contains(&format!("dev {ifname}"))),
        "no default route through {ifname}: {o}"
    );
    let nameservers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    let hostname = env.fmt(&name, "{{.Config.Hostname}}");
    if mode == "slirp4netns" {
        assert_eq!((ifname, ip), ("tap0", "10.0.2.100"), "{o}");
        assert!(routes.contains("default via 10.0.2.2 "), "{o}");
        assert_eq!(nameservers, ["10.0.2.3"], "{o}");
    } else {
        assert_eq!(nameservers, host_nameservers(), "{o}");
    }
    assert!(
        hosts.contains(&format!("{ip}\t{hostname} {name}")),
        "hosts lacks {ip} {hostname} {name}: {o}"
    );
    // One helper, detached from the CLI that started it.
    let running = helpers_of(&id);
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(
        running[0].contains(&netns.display().to_string()),
        "{running:?}"
    );
    let pid_file = env
        .runroot
        .join("containers")
        .join(&id)
        .join(format!("{binary}.pid"));
    let pid = std::fs::read_to_string(&pid_file).expect("helper pid file");
    assert!(
        running[0].starts_with(&format!("{}:", pid.trim())),
        "{running:?} vs {pid}"
    );
    // stop: the helper and the namespace go.
    env.ok(&["stop", "-t", "0", &name]);
    assert!(
        barge_integration::wait_until(Duration::from_secs(5), || helpers_of(&id).is_empty()),
        "helper left after stop: {:?}",
        helpers_of(&id)
    );
    assert!(!netns.exists(), "{} left after stop", netns.display());
    // start: a new helper, the port served again.
    env.ok(&["start", &name]);
    let again = helpers_of(&id);
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again, running, "the same helper after a restart");
    let body = http_get(port);
    assert!(body.contains(&format!("hello-from-{mode}")), "{body:?}");
    env.ok(&["rm", "-f", "-t", "0", &name]);
    assert!(helpers_of(&id).is_empty(), "{:?}", helpers_of(&id));
    assert!(!netns.exists(), "{} left after rm", netns.display());
    let gone = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    );
    assert!(gone.is_err(), "port {port} still answers");
    // run --rm (the CLI that started the helper cleans up): nothing left.
    let o = env.run(&[
        "run",
        "--rm",
        "--network",
        mode,
        "-p",
        "127.0.0.1::80",
        IMG,
        "sh",
        "-c",
        "ip -4 -o addr show scope global | wc -l",
    ]);
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.stdout.trim(), "1", "{o:#?}");
    assert!(env.all_ids().is_empty(), "{:?}", env.all_ids());
    // The Env's leak check covers helpers and namespaces of every id seen.
}

#[test]
fn pasta_serves_published_port() {
    need_root!();
    usernet_serves_published_port("pasta", "pasta");
}

#[test]
fn slirp4netns_serves_published_port() {
    need_root!();
    usernet_serves_published_port("slirp4netns", "slirp4netns");
}

#[test]
fn slirp4netns_options() {
    need_root!();
    if let Err(why) = helper_on_path("slirp4netns") {
        eprintln!("SKIP: {why}");
        return;
    }
    let env = Env::new();
    let o = env.run(&[
        "run",
        "--rm",
        "--network",
        "slirp4netns:port_handler=slirp4netns,mtu=1500,cidr=10.41.0.0/24",
        IMG,
        "sh",
        "-c",
        "ip -4 -o addr show tap0; cat /sys/class/net/tap0/mtu; cat /etc/resolv.conf",
    ]);
    assert!(o.success(), "{o:#?}");
    assert!(o.stdout.contains("inet 10.41.0.100/24"), "{o:#?}");
    assert!(o.stdout.contains("\n1500\n"), "{o:#?}");
    assert!(o.stdout.contains("nameserver 10.41.0.3"), "{o:#?}");
    env.fails(
        &["create", "--network", "slirp4netns:mtu=lots", IMG, "true"],
        125,
        "invalid slirp4netns option \"mtu=lots\"",
    );
    env.fails(
        &[
            "create",
            "--network",
            "slirp4netns:port_handler=rootlesskit",
            IMG,
            "true",
        ],
        125,
        "port_handler=rootlesskit",
    );
    assert!(env.all_ids().is_empty(), "{:?}", env.all_ids());
}

#[test]
fn pasta_pod_publishes_port() {
    need_root!();
    if let Err(why) = helper_on_path("pasta") {
        eprintln!("SKIP: {why}");
        return;
    }
    let env = Env::new();
    let pod = unique("ppod");
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:8080");
    env.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--network",
        "pasta",
        "-p",
        &publish,
    ]);
    let web = unique("web");
    env.run_d(&[
        "--name",
        &web,
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www",
    ]);
    let body = http_get(port);
    assert!(body.contains("hello-from-pod"), "{body:?}");
    let infra = env
        .ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod])
        .trim()
        .to_string();
    assert_eq!(infra.len(), 64, "{infra}");
    assert_eq!(helpers_of(&infra).len(), 1, "{:?}", helpers_of(&infra));
    assert_eq!(env.fmt(&infra, "{{.HostConfig.NetworkMode}}"), "pasta");
    // The member has the infra's hosts file: the pod's address and name.
    let hosts = env.ok(&["exec", &web, "cat", "/etc/hosts"]);
    assert!(
        hosts.lines().any(|l| l.contains(&format!("\t{pod} "))),
        "{hosts}"
    );
    env.ok(&["pod", "rm", "-f", "-t", "0", &pod]);
    assert!(helpers_of(&infra).is_empty(), "{:?}", helpers_of(&infra));
}

#[test]
fn missing_helper_binary_is_a_clear_error() {
    need_root!();
    let env = Env::new();
    for (mode, package) in [("pasta", "passt"), ("slirp4netns", "slirp4netns")] {
        // barge finds its runtime and monitor beside itself, not on PATH.
        let mut c = env.cmd(&[
            "run",
            "-d",
            "--network",
            mode,
            "-p",
            "127.0.0.1::80",
            IMG,
            "true",
        ]);
        c.env("PATH", env.path().join("empty"));
        let o = env.run_command(c, crate::TIMEOUT);
        assert_eq!(o.code, 125, "{o:#?}");
        assert!(
            o.stderr.contains(&format!("install the {package} package")),
            "{o:#?}"
        );
        let mut c = env.cmd(&["pod", "create", "--network", mode]);
        c.env("PATH", env.path().join("empty"));
        let o = env.run_command(c, crate::TIMEOUT);
        assert_eq!(o.code, 125, "{o:#?}");
        assert!(o.stderr.contains(package), "{o:#?}");
    }
    assert!(env.all_ids().is_empty(), "{:?}", env.all_ids());
    assert!(env.ok(&["pod", "ps", "-q"]).trim().is_empty());
    let netns: Vec<_> = std::fs::read_dir(env.runroot.join("netns"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(netns.is_empty(), "{netns:?}");
}
