//! Real network plumbing tests (root): namespaces, a bridge with a unique
//! name and a 10.250.X.0/24 subnet, veths, nftables port publishing. Only
//! loopback, the test's own namespaces and its own subnet are contacted.
//! Every object carries a per-test prefix and the tests assert `leaks()`
//! finds nothing of it after teardown.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use barge_net::ports::assign_host_ports;
use barge_net::{
    attach, cleanup_orphans, detach, ensure_bridge, ensure_network_firewall, leaks,
    parse_port_spec, publish_ports, remove_bridge, remove_network_firewall, unpublish_ports,
    Attachment, BridgeSpec, Netns, NetworkFirewall, PortPublish, Subnet,
};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

macro_rules! need_root {
    () => {
        if !rustix::process::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}

static SEQ: AtomicU32 = AtomicU32::new(0);

/// One test's network: a bridge, its firewall, namespaces and containers,
/// all named with a unique prefix and torn down on drop.
struct Net {
    prefix: String,
    bridge: String,
    subnet: Subnet,
    gateway: Ipv4Addr,
    dir: tempfile::TempDir,
    ids: Vec<String>,
}

impl Net {
    fn new() -> Net {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let prefix = format!("bt{:x}x{n}y", pid % 0xfffff);
        let third = ((pid as usize * 7 + n as usize) % 250) as u8;
        let subnet: Subnet = format!("10.250.{third}.0/24").parse().expect("subnet");
        let gateway = subnet.first_host().expect("gateway");
        let bridge = format!("{prefix}br");
        ensure_bridge(&BridgeSpec {
            name: bridge.clone(),
            gateway,
            prefix_len: 24,
            mtu: 0,
        })
        .expect("ensure_bridge");
        ensure_network_firewall(&NetworkFirewall {
            bridge: bridge.clone(),
            subnet,
        })
        .expect("ensure_network_firewall");
        Net {
            prefix,
            bridge,
            subnet,
            gateway,
            dir: tempfile::tempdir().expect("tempdir"),
            ids: Vec::new(),
        }
    }

    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn ns_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(self.id(name))
    }

    fn ip(&self, host: u8) -> Ipv4Addr {
        let o = self.subnet.addr().octets();
        Ipv4Addr::new(o[0], o[1], o[2], host)
    }

    /// A container: namespace + attachment at .host.
    fn container(&mut self, name: &str, host: u8) -> PathBuf {
        let path = self.ns_path(name);
        Netns::create(&path).expect("Netns::create");
        let id = self.id(name);
        self.ids.push(id.clone());
        attach(&Attachment {
            container_id: id,
            netns_path: path.clone(),
            bridge: self.bridge.clone(),
            ifname: "eth0".into(),
            ip: self.ip(host),
            prefix_len: 24,
            gateway: self.gateway,
            mac: None,
            default_route: true,
        })
        .expect("attach");
        path
    }

    fn teardown(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            let _ = barge_net::unpublish_container(&id);
            let _ = detach(&id);
            let _ = Netns::remove(self.dir.path().join(&id));
        }
        let _ = remove_network_firewall(&self.bridge);
        let _ = remove_bridge(&self.bridge);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Runs `f` in a thread that joined the namespace at `path`.
fn in_netns<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> T {
    let ns = File::open(path).expect("open netns");
    std::thread::scope(|s| {
        s.spawn(|| {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network)).expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A TCP server inside a namespace answering every connection with
/// `<tag>:<port>\n`; stops on drop.
struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(netns: &Path, tag: &str, ports: &[u16]) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for &port in ports {
            let l = in_netns(netns, || {
                TcpListener::bind(("0.0.0.0", port)).expect("bind in netns")
            });
            l.set_nonblocking(true).expect("nonblocking");
            let stop = stop.clone();
            let msg = format!("{tag}:{port}\n");
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match l.accept() {
                        Ok((mut c, _)) => {
                            let _ = c.write_all(msg.as_bytes());
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            }));
        }
        Server { stop, threads }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Connects, reads everything. Must not take a retransmission timeout
/// (1 s): a lost first packet means something was not ready after attach.
fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let t0 = Instant::now();
    let r = fetch_inner(addr);
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "fetch {addr} took {:?} ({r:?})",
        t0.elapsed()
    );
    r
}

fn fetch_inner(addr: SocketAddr) -> std::io::Result<String> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    c.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

#[test]
fn containers_talk_and_published_ports_reach_them() {
    need_root!();
    let mut net = Net::new();
    let ns_a = net.container("a", 2);
    let ns_b = net.container("b", 3);
    let (a_ip, gw) = (net.ip(2), net.gateway);

    // ICMP between the namespaces, and from the host to a container.
    let ping = Command::new("nsenter")
        .arg(format!("--net={}", ns_b.display()))
        .args(["/bin/busybox", "ping", "-c", "1", "-W", "3"])
        .arg(a_ip.to_string())
        .output()
        .expect("run busybox ping");
    assert!(
        ping.status.success(),
        "ping b -> a: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // The host side is a hairpin bridge port tagged with the container id.
    let host = barge_net::host_ifname(&net.id("a"));
    let hairpin = std::fs::read_to_string(format!("/sys/class/net/{host}/brport/hairpin_mode"))
        .expect("brport hairpin_mode");
    assert_eq!(hairpin.trim(), "1");
    let alias = std::fs::read_to_string(format!("/sys/class/net/{host}/ifalias")).expect("alias");
    assert_eq!(alias.trim(), format!("barge:{}", net.id("a")));

    let _server = Server::start(&ns_a, "a", &[80, 81]);
    // Container to container over the bridge.
    let got = in_netns(&ns_b, || fetch(sa(a_ip, 80))).expect("b -> a:80");
    assert_eq!(got, "a:80\n");

    // Publish: any-address random port, loopback-only random port, a range.
    let mut ports = parse_port_spec("80").expect("spec");
    ports.extend(parse_port_spec("127.0.0.1::80").expect("spec"));
    ports.extend(parse_port_spec("127.0.0.1::80-81").expect("spec"));
    assign_host_ports(&mut ports).expect("assign ports");
    let (any, lo, range) = (ports[0].host_port, ports[1].host_port, ports[2].host_port);
    let publish = PortPublish {
        container_id: net.id("a"),
        container_ip: a_ip,
        ports,
    };
    let t = Instant::now();
    publish_ports(&publish).expect("publish");
    eprintln!("publish_ports: {:?}", t.elapsed());
    // Idempotent re-publish; the same host port for another container is
    // refused.
    publish_ports(&publish).expect("publish again");
    let clash = PortPublish {
        container_id: net.id("b"),
        container_ip: net.ip(3),
        ports: publish.ports[..1].to_vec(),
    };
    let err = publish_ports(&clash).expect_err("host port taken");
    assert!(err.to_string().contains("already published"), "{err}");

    let lo_ip = Ipv4Addr::LOCALHOST;
    assert_eq!(fetch(sa(lo_ip, any)).expect("127.0.0.1:any"), "a:80\n");
    assert_eq!(fetch(sa(gw, any)).expect("gateway:any"), "a:80\n");
    assert_eq!(fetch(sa(lo_ip, lo)).expect("127.0.0.1:lo"), "a:80\n");
    assert!(
        fetch(sa(gw, lo)).is_err(),
        "a 127.0.0.1-bound port must not answer on the gateway address"
    );
    assert_eq!(fetch(sa(lo_ip, range)).expect("range 1"), "a:80\n");
    assert_eq!(fetch(sa(lo_ip, range + 1)).expect("range 2"), "a:81\n");
    // Another container through the gateway's published port, and the
    // container itself (hairpin).
    let got = in_netns(&ns_b, || fetch(sa(gw, any))).expect("b -> gw:any");
    assert_eq!(got, "a:80\n");
    let got = in_netns(&ns_a, || fetch(sa(gw, any))).expect("a -> gw:any (hairpin)");
    assert_eq!(got, "a:80\n");

    // UDP: a one-shot echo in "a" behind a loopback-bound published port.
    let udp = in_netns(&ns_a, || {
        std::net::UdpSocket::bind("0.0.0.0:5353").expect("udp bind")
    });
    let echo = std::thread::spawn(move || {
        udp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    let mut uports = parse_port_spec("127.0.0.1::5353/udp").expect("spec");
    assign_host_ports(&mut uports).expect("assign udp");
    let upub = PortPublish {
        container_id: net.id("a"),
        container_ip: a_ip,
        ports: uports,
    };
    publish_ports(&upub).expect("publish udp");
    let c = std::net::UdpSocket::bind("127.0.0.1:0").expect("client");
    c.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    c.send_to(b"ping", (lo_ip, upub.ports[0].host_port))
        .expect("send");
    let mut buf = [0u8; 16];
    let n = c
        .recv(&mut buf)
        .expect("udp answer through the published port");
    assert_eq!(&buf[..n], b"ping");
    echo.join().expect("echo thread");
    unpublish_ports(&upub).expect("unpublish udp");

    // Unpublish (twice: idempotent) and the ports are gone.
    let t = Instant::now();
    unpublish_ports(&publish).expect("unpublish");
    eprintln!("unpublish_ports: {:?}", t.elapsed());
    unpublish_ports(&publish).expect("unpublish again");
    assert!(fetch(sa(lo_ip, any)).is_err());

    let l = leaks(&net.prefix).expect("leaks");
    assert_eq!(l.links.len(), 3, "two veths and the bridge: {l:?}");
    assert_eq!(l.netns_mounts.len(), 2, "{l:?}");
    assert_eq!(l.nft_chains.len(), 2, "network chains: {l:?}");
    assert!(l.nft_ports.is_empty(), "{l:?}");

    detach(&net.id("a")).expect("detach");
    detach(&net.id("a")).expect("detach again");
    net.teardown();
    Netns::remove(&ns_a).expect("remove netns again");
    let l = leaks(&net.prefix).expect("leaks");
    assert!(l.is_empty(), "leftovers: {l:?}");
}

#[test]
fn attach_detach_is_fast() {
    need_root!();
    let mut net = Net::new();
    let ns = net.ns_path("t");
    Netns::create(&ns).expect("netns");
    let id = net.id("t");
    net.ids.push(id.clone());
    let att = Attachment {
        container_id: id.clone(),
        netns_path: ns.clone(),
        bridge: net.bridge.clone(),
        ifname: "eth0".into(),
        ip: net.ip(9),
        prefix_len: 24,
        gateway: net.gateway,
        mac: Some([0x02, 0, 0, 0, 0, 9]),
        default_route: true,
    };
    let (mut attach_t, mut detach_t, mut total_t) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..50 {
        let t = Instant::now();
        let r = attach(&att).expect("attach");
        let a = t.elapsed();
        assert_eq!(r.mac, [0x02, 0, 0, 0, 0, 9]);
        let t2 = Instant::now();
        detach(&id).expect("detach");
        detach_t.push(t2.elapsed());
        total_t.push(t.elapsed());
        attach_t.push(a);
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    eprintln!(
        "attach median {:?}, detach median {:?}, attach+detach median {:?}",
        median(&mut attach_t),
        median(&mut detach_t),
        median(&mut total_t)
    );

    // The fast teardown path: drop the namespace and let the kernel delete
    // the veth pair when the namespace dies (asynchronously).
    let (mut remove_t, mut gone_t) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let p = net.dir.path().join(format!("{}-m{i}", net.prefix));
        let mid = format!("{}-m{i}", net.prefix);
        Netns::create(&p).expect("netns");
        net.ids.push(mid.clone());
        attach(&Attachment {
            container_id: mid.clone(),
            netns_path: p.clone(),
            ..att.clone()
        })
        .expect("attach");
        let t = Instant::now();
        Netns::remove(&p).expect("remove netns");
        remove_t.push(t.elapsed());
        let host = barge_net::host_ifname(&mid);
        while Path::new(&format!("/sys/class/net/{host}")).exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "{host} never went away"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        gone_t.push(t.elapsed());
    }
    eprintln!(
        "Netns::remove with a veth inside: caller waits {:?}, veth gone after {:?} (medians)",
        median(&mut remove_t),
        median(&mut gone_t)
    );

    let mut create_t = Vec::new();
    for i in 0..20 {
        let p = net.dir.path().join(format!("{}-n{i}", net.prefix));
        let t = Instant::now();
        Netns::create(&p).expect("netns");
        Netns::remove(&p).expect("remove netns");
        create_t.push(t.elapsed());
    }
    eprintln!("netns create+remove median {:?}", median(&mut create_t));

    let (mut pub_t, mut unpub_t) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let mut ports = parse_port_spec("127.0.0.1::80").expect("spec");
        ports.extend(parse_port_spec("::81").expect("spec"));
        assign_host_ports(&mut ports).expect("assign");
        let p = PortPublish {
            container_id: id.clone(),
            container_ip: net.ip(9),
            ports,
        };
        let t = Instant::now();
        publish_ports(&p).expect("publish");
        pub_t.push(t.elapsed());
        let t = Instant::now();
        unpublish_ports(&p).expect("unpublish");
        unpub_t.push(t.elapsed());
    }
    eprintln!(
        "publish_ports median {:?}, unpublish_ports median {:?} (netlink)",
        median(&mut pub_t),
        median(&mut unpub_t)
    );
    let mut fw_t = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        ensure_network_firewall(&NetworkFirewall {
            bridge: net.bridge.clone(),
            subnet: net.subnet,
        })
        .expect("firewall");
        fw_t.push(t.elapsed());
    }
    eprintln!(
        "ensure_network_firewall (nft -f -) median {:?}",
        median(&mut fw_t)
    );
    let attach_median = median(&mut attach_t);
    assert!(
        attach_median < Duration::from_millis(50),
        "attach median {attach_median:?} is far too slow"
    );
    net.teardown();
    let l = leaks(&net.prefix).expect("leaks");
    assert!(l.is_empty(), "leftovers: {l:?}");
}

#[test]
fn ensure_bridge_is_idempotent_and_race_safe() {
    need_root!();
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let name = format!("bt{:x}x{n}r", std::process::id() % 0xfffff);
    let spec = BridgeSpec {
        name: name.clone(),
        gateway: Ipv4Addr::new(10, 250, 251, 1),
        prefix_len: 24,
        mtu: 1400,
    };
    let created = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(|| ensure_bridge(&spec))).collect();
        hs.into_iter()
            .map(|h| h.join().expect("thread").expect("concurrent ensure_bridge"))
            .filter(|c| *c)
            .count()
    });
    assert_eq!(created, 1, "exactly one caller creates the bridge");
    let t = Instant::now();
    assert!(!ensure_bridge(&spec).expect("again"));
    eprintln!("ensure_bridge on an existing bridge: {:?}", t.elapsed());
    assert!(barge_net::bridge_exists(&name).expect("exists"));
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{name}/mtu")).expect("mtu");
    assert_eq!(mtu.trim(), "1400");
    let rl = std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{name}/route_localnet"))
        .expect("route_localnet");
    assert_eq!(rl.trim(), "1");
    remove_bridge(&name).expect("remove");
    remove_bridge(&name).expect("remove again");
    assert!(!barge_net::bridge_exists(&name).expect("exists"));

    // A non-bridge device of that name is refused (the kernel here has no
    // dummy driver: a veth stands in).
    let dummy = format!("{name}d");
    let made = Command::new("ip")
        .args(["link", "add", &dummy, "type", "veth", "peer", "name"])
        .arg(format!("{name}p"))
        .status()
        .expect("run ip");
    assert!(made.success());
    let e = ensure_bridge(&BridgeSpec {
        name: dummy.clone(),
        ..spec
    });
    let _ = remove_bridge(&dummy);
    let e = e.expect_err("dummy is not a bridge");
    assert!(e.to_string().contains("not a bridge"), "{e}");
}

#[test]
fn orphans_are_cleaned_up() {
    need_root!();
    let mut net = Net::new();
    let a = net.container("a", 2);
    let _b = net.container("b", 3);
    let mut ports = parse_port_spec("127.0.0.1::80").expect("spec");
    assign_host_ports(&mut ports).expect("assign");
    for (name, host) in [("a", 2), ("b", 3)] {
        publish_ports(&PortPublish {
            container_id: net.id(name),
            container_ip: net.ip(host),
            ports: ports
                .iter()
                .map(|p| barge_net::PortMapping {
                    host_port: p.host_port + u16::from(host),
                    ..*p
                })
                .collect(),
        })
        .expect("publish");
    }
    // "b" is still known; everything of "a" is an orphan.
    let keep = net.id("b");
    let prefix = net.prefix.clone();
    let report = cleanup_orphans(
        |id| !id.starts_with(&prefix) || id == keep,
        Some(net.dir.path()),
    )
    .expect("cleanup");
    assert_eq!(report.veths, vec![net.id("a")]);
    assert_eq!(report.netns, vec![a.clone()]);
    assert_eq!(report.nft_ports.len(), 1, "{report:?}");
    let l = leaks(&net.id("a")).expect("leaks a");
    assert!(l.is_empty(), "{l:?}");
    let l = leaks(&net.id("b")).expect("leaks b");
    assert_eq!(l.links.len(), 1, "{l:?}");
    assert_eq!(l.nft_ports.len(), 1, "{l:?}");
    net.teardown();
    let l = leaks(&net.prefix).expect("leaks");
    assert!(l.is_empty(), "leftovers: {l:?}");
}

#[test]
fn attach_failures_leave_nothing_behind() {
    need_root!();
    let mut net = Net::new();
    let ns = net.ns_path("x");
    Netns::create(&ns).expect("netns");
    let id = net.id("x");
    net.ids.push(id.clone());
    let mut att = Attachment {
        container_id: id.clone(),
        netns_path: ns.clone(),
        bridge: "nosuchbridge0".into(),
        ifname: "eth0".into(),
        ip: net.ip(5),
        prefix_len: 24,
        gateway: net.gateway,
        mac: None,
        default_route: true,
    };
    let e = attach(&att).expect_err("missing bridge");
    assert!(e.to_string().contains("nosuchbridge0"), "{e}");
    // A gateway outside the subnet makes the route fail after the veth
    // exists: the veth must be rolled back.
    att.bridge = net.bridge.clone();
    att.gateway = Ipv4Addr::new(10, 251, 0, 1);
    let e = attach(&att).expect_err("unreachable gateway");
    assert!(e.to_string().contains("default route"), "{e}");
    assert!(leaks(&id).expect("leaks").links.is_empty());
    // The namespace's own sysctl was set, not the host's.
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["cat", "/proc/sys/net/ipv4/conf/default/arp_notify"])
        .output()
        .expect("nsenter");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    // Creating an existing namespace path fails clearly.
    let e = Netns::create(&ns).expect_err("exists");
    assert!(e.to_string().contains(&ns.display().to_string()), "{e}");
    net.teardown();
    assert!(leaks(&net.prefix).expect("leaks").is_empty());
}

#[test]
fn address_reuse_right_after_teardown_works() {
    need_root!();
    let mut net = Net::new();
    // First holder of .7: the host talks to it and caches its MAC.
    let first = net.container("first", 7);
    let s1 = Server::start(&first, "first", &[80]);
    assert_eq!(fetch(sa(net.ip(7), 80)).expect("first"), "first:80\n");
    drop(s1);
    // Fast teardown (namespace only), then at once a new container with the
    // same address and another MAC.
    Netns::remove(&first).expect("remove first");
    net.ids.retain(|i| !i.ends_with("-first"));
    let second = net.container("second", 7);
    let s2 = Server::start(&second, "second", &[80]);
    let t = Instant::now();
    assert_eq!(fetch(sa(net.ip(7), 80)).expect("second"), "second:80\n");
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stale neighbour entry delayed the new container by {:?}",
        t.elapsed()
    );
    drop(s2);
    net.teardown();
    // The first veth goes away asynchronously with its namespace.
    let t = Instant::now();
    while !leaks(&net.prefix).expect("leaks").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{:?}",
            leaks(&net.prefix)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn traffic_leaving_the_subnet_is_masqueraded() {
    need_root!();
    // Two networks: a client on the first reaches a server on the second
    // through the host (routed, leaving the first bridge), so the server
    // must see the second bridge's gateway address, not the client's.
    let mut inside = Net::new();
    let mut outside = Net::new();
    let client = inside.container("c", 2);
    let server = outside.container("s", 2);
    let listener = in_netns(&server, || TcpListener::bind("0.0.0.0:7070").expect("bind"));
    let peer = std::thread::spawn(move || {
        let (mut c, from) = listener.accept().expect("accept");
        let _ = c.write_all(b"ok\n");
        from.ip()
    });
    let target = sa(outside.ip(2), 7070);
    let got = in_netns(&client, || fetch(target)).expect("client -> other network");
    assert_eq!(got, "ok\n");
    let seen = peer.join().expect("server thread");
    assert_eq!(
        seen,
        std::net::IpAddr::V4(outside.gateway),
        "not masqueraded"
    );
    inside.teardown();
    outside.teardown();
    for p in [&inside.prefix, &outside.prefix] {
        let l = leaks(p).expect("leaks");
        assert!(l.is_empty(), "leftovers: {l:?}");
    }
}
