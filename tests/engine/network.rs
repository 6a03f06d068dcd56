//! Networks: two containers on a user network reach each other by name; a
//! published port serves a host-side client; `port`.

use crate::{free_port, need_network, need_root, net_lock, unique, Env, IMG};
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
