//! Pods: members share the infra's network (127.0.0.1), hostname and
//! /dev/shm, pod
//! ports reach the host, stop order (members first, infra last), `pod rm
//! -f` leaves nothing (the [`Env`] leak checker), the pod commands' output
//! and bad input.
//!
//! HTTP clients: busybox `wget` to an IP address. Debian's busybox-static
//! `wget` segfaults (exit 139) when a name is *not* in /etc/hosts, in any
//! container and on the host alike (`busybox wget http://nonexistent.invalid/`):
//! its statically linked glibc resolver crashes on the NSS fallback. Names
//! in /etc/hosts and addresses work, so nothing here resolves other names.

use crate::{
    free_port, need_network, need_root, net_lock, network_skips_part, rootless, unique, Env, IMG,
};
use std::io::{Read as _, Write as _};
use std::time::Duration;

/// A member that serves `text` on port `port` (busybox httpd, foreground).
fn httpd_args<'a>(name: &'a str, pod: &'a str, script: &'a str) -> Vec<&'a str> {
    vec!["--name", name, "--pod", pod, IMG, "sh", "-c", script]
}

/// Parses RFC 3339 with nanoseconds (`2026-12-01T05:56:57.859498169Z`) to
/// (date-time, nanos) for ordering.
fn stamp(s: &str) -> (String, u64) {
    let s = s.trim().trim_end_matches('Z');
    match s.split_once('.') {
        Some((dt, frac)) => {
            let digits: String = frac.chars().take_while(char::is_ascii_digit).collect();
            let padded = format!("{digits:0<9}");
            (dt.to_string(), padded[..9].parse().unwrap_or(0))
        }
        None => (s.to_string(), 0),
    }
}

#[test]
fn members_share_loopback_and_hostname() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    let id = env
        .ok(&["pod", "create", "--name", &pod])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "{id}");
    // Nothing runs until a member starts; the infra is listed by ps -a.
    let st = env.ok(&["pod", "inspect", "--format", "{{.State}}", &pod]);
    assert_eq!(st.trim(), "Created");
    let web = unique("web");
    env.run_d(&httpd_args(
        &web,
        &pod,
        "mkdir -p /www && hostname > /www/index.html && echo shm-ok > /dev/shm/x && exec httpd -f -p 8080 -h /www",
    ));
    let st = env.ok(&["pod", "inspect", "--format", "{{.State}}", &pod]);
    assert_eq!(st.trim(), "Running", "starting a member starts the infra");
    // Another member reaches it on 127.0.0.1 (one network namespace) and
    // both report the pod's hostname (one UTS namespace).
    let o = env.run(&[
        "run",
        "--rm",
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "for i in $(seq 50); do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.1; done; hostname; cat /etc/hostname; cat /dev/shm/x",
    ]);
    assert!(o.success(), "{o:#?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    // One IPC namespace: /dev/shm is the pod's (podman).
    assert_eq!(
        lines,
        [pod.as_str(), pod.as_str(), pod.as_str(), "shm-ok"],
        "{o:#?}"
    );
    // The member's environment and its /etc/hosts name the pod's host too.
    let o = env.ok(&["exec", &web, "sh", "-c", "echo $HOSTNAME; cat /etc/hosts"]);
    assert!(o.starts_with(&format!("{pod}\n")), "{o}");
    assert!(o.contains(&pod), "{o}");
    // `ps --pod` shows the pod's name beside its members and its infra.
    let ps = env.ok(&[
        "ps",
        "-a",
        "--pod",
        "--format",
        "{{.Names}} {{.PodName}} {{.IsInfra}}",
    ]);
    let infra_name = format!("{}-infra", &id[..12]);
    assert!(ps.contains(&format!("{web} {pod} false")), "{ps}");
    assert!(ps.contains(&format!("{infra_name} {pod} true")), "{ps}");
    env.ok(&["pod", "rm", "-f", &pod]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn pod_ports_reach_the_host() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    let port = free_port();
    env.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "-p",
        &format!("127.0.0.1:{port}:8080"),
    ]);
    let ports = env.ok(&[
        "pod",
        "inspect",
        "--format",
        "{{json .InfraConfig.PortBindings}}",
        &pod,
    ]);
    assert!(
        ports.contains(&format!("\"HostPort\":\"{port}\"")),
        "{ports}"
    );
    env.run_d(&httpd_args(
        &unique("web"),
        &pod,
        "mkdir -p /www && echo pod-served > /www/index.html && exec httpd -f -p 8080 -h /www",
    ));
    let mut body = String::new();
    let ok = barge_integration::wait_until(Duration::from_secs(10), || {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
        body.clear();
        let _ = s.read_to_string(&mut body);
        body.contains("pod-served")
    });
    assert!(ok, "no answer on 127.0.0.1:{port}: {body:?}");
    // A member cannot publish ports of its own.
    env.fails(
        &["run", "--pod", &pod, "-p", "9999:80", IMG, "true"],
        125,
        "published or exposed ports must be defined when the pod is created",
    );
    env.ok(&["pod", "rm", "-f", &pod]);
}

#[test]
fn stop_stops_members_then_infra() {
    need_root!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    let id = env
        .ok(&["pod", "create", "--name", &pod])
        .trim()
        .to_string();
    let infra = env.ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod]);
    let infra = infra.trim();
    let (a, b) = (unique("a"), unique("b"));
    // `a` exits at once on SIGTERM; `b` ignores it (pid 1 without a
    // handler) and is killed after the timeout.
    env.run_d(&[
        "--name",
        &a,
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "trap 'exit 3' TERM; while :; do sleep 0.1; done",
    ]);
    env.run_d(&["--name", &b, "--pod", &pod, IMG, "sleep", "1000"]);
    let t0 = std::time::Instant::now();
    let out = env.ok(&["pod", "stop", "-t", "2", &pod]);
    assert_eq!(out.trim(), id);
    assert!(
        t0.elapsed() < Duration::from_secs(9),
        "members are stopped together"
    );
    for (c, code) in [(a.as_str(), "3"), (b.as_str(), "137"), (infra, "0")] {
        assert_eq!(env.status(c), "exited", "{c}");
        assert_eq!(env.fmt(c, "{{.State.ExitCode}}"), code, "{c}");
    }
    let fin = |c: &str| stamp(&env.fmt(c, "{{.State.FinishedAt}}"));
    let infra_end = fin(infra);
    assert!(fin(&a) < infra_end, "{a} stopped after the infra");
    assert!(fin(&b) < infra_end, "{b} stopped after the infra");
    let st = env.ok(&["pod", "ps", "--format", "{{.Name}} {{.Status}}"]);
    assert_eq!(st.trim(), format!("{pod} Exited"));
    // Start again: infra first, then both members; restart keeps them up.
    env.ok(&["pod", "start", &pod]);
    for c in [a.as_str(), b.as_str(), infra] {
        assert_eq!(env.status(c), "running", "{c}");
    }
    env.ok(&["pod", "restart", &pod]);
    assert_eq!(env.status(&a), "running");
    // `pod kill` ends everything; `pod prune` then removes the pod.
    env.ok(&["pod", "kill", &pod]);
    env.wait_status(infra, "exited", Duration::from_secs(10));
    env.wait_status(&a, "exited", Duration::from_secs(10));
    env.wait_status(&b, "exited", Duration::from_secs(10));
    let pruned = env.ok(&["pod", "prune", "-f"]);
    assert_eq!(pruned.trim(), id);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn rm_force_leaves_nothing_behind() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    let port = free_port();
    env.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--share",
        "+pid",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "--label",
        "app=test",
    ]);
    let a = env.run_d(&["--pod", &pod, IMG, "sleep", "1000"]);
    env.run_d(&[
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "while :; do sleep 0.1; done",
    ]);
    // With the PID namespace shared the pause process is PID 1 for all.
    let o = env.ok(&["exec", &a, "cat", "/proc/1/cmdline"]);
    assert!(o.starts_with("/pause"), "{o:?}");
    let infra = env.ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod]);
    let infra = infra.trim().to_string();
    let netns = env.runroot.join("netns").join(&infra);
    assert!(netns.exists(), "{}", netns.display());
    // Running: `pod rm` without -f is refused and removes nothing.
    env.fails(&["pod", "rm", &pod], 125, "cannot be removed without force");
    assert_eq!(env.ok(&["ps", "-q"]).lines().count(), 3);
    // The infra alone cannot go.
    env.fails(&["rm", &infra], 125, "is the infra container of pod");
    assert_eq!(env.status(&infra), "running");
    env.ok(&["pod", "rm", "-f", &pod]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
    assert_eq!(env.ok(&["pod", "ps", "-q"]).trim(), "");
    assert!(!netns.exists());
    let leaks = env.leaks();
    assert!(leaks.is_empty(), "{leaks:#?}");
    let o = env.run(&["pod", "exists", &pod]);
    assert_eq!(o.code, 1);
}

#[test]
fn rm_of_a_member_keeps_the_pod_and_rm_f_infra_removes_it() {
    need_root!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    env.ok(&["pod", "create", "--name", &pod]);
    let a = env.run_d(&["--pod", &pod, IMG, "sleep", "1000"]);
    let b = env.run_d(&["--pod", &pod, IMG, "sleep", "1000"]);
    env.ok(&["rm", "-f", &a]);
    let n = env.ok(&[
        "pod",
        "ps",
        "--format",
        "{{.NumberOfContainers}} {{.Status}}",
    ]);
    assert_eq!(n.trim(), "2 Running");
    let names = env.ok(&["pod", "inspect", "--format", "{{json .Containers}}", &pod]);
    assert!(!names.contains(&a) && names.contains(&b), "{names}");
    // podman: removing the infra with -f removes its pod.
    let infra = env.ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod]);
    env.ok(&["rm", "-f", infra.trim()]);
    assert_eq!(env.run(&["pod", "exists", &pod]).code, 1);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn pod_commands_output() {
    need_root!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    let id = env
        .ok(&[
            "pod",
            "create",
            "--name",
            &pod,
            "--label",
            "tier=web",
            "--hostname",
            "podhost",
        ])
        .trim()
        .to_string();
    assert_eq!(env.ok(&["pod", "exists", &pod]), "");
    assert_eq!(env.ok(&["pod", "exists", &id[..12]]), "");
    let m = unique("m");
    env.run_d(&[
        "--name",
        &m,
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "echo out-line; echo err-line >&2; hostname; exec sleep 1000",
    ]);
    let m2 = unique("m2");
    env.run_d(&[
        "--name",
        &m2,
        "--pod",
        &pod,
        IMG,
        "sh",
        "-c",
        "echo second; exec sleep 1000",
    ]);
    // Default table.
    let t = env.ok(&["pod", "ps"]);
    let mut lines = t.lines();
    let head = lines.next().unwrap_or_default();
    for col in [
        "POD ID",
        "NAME",
        "STATUS",
        "CREATED",
        "INFRA ID",
        "# OF CONTAINERS",
    ] {
        assert!(head.contains(col), "{t}");
    }
    let row = lines.next().unwrap_or_default();
    assert!(
        row.starts_with(&id[..12]) && row.contains(&pod) && row.contains("Running"),
        "{t}"
    );
    assert!(row.trim_end().ends_with('3'), "{t}");
    // Templates and JSON.
    let f = env.ok(&[
        "pod",
        "ps",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Name}} {{.Status}} {{.NumberOfContainers}} {{.Labels}}",
    ]);
    assert_eq!(f.trim(), format!("{id} {pod} Running 3 map[tier:web]"));
    let j: serde_json::Value =
        serde_json::from_str(&env.ok(&["pod", "ps", "--format", "json"])).expect("pod ps json");
    assert_eq!(j[0]["Id"], id.as_str());
    assert_eq!(j[0]["Name"], pod.as_str());
    assert_eq!(j[0]["Status"], "Running");
    assert_eq!(j[0]["Containers"].as_array().map(Vec::len), Some(3));
    assert_eq!(j[0]["Labels"]["tier"], "web");
    if !network_skips_part("Networks") {
        // A rootless user's pods default to pasta, root's to the bridge.
        let default = if crate::rootless().is_some() {
            "pasta"
        } else {
            "barge"
        };
        assert_eq!(j[0]["Networks"][0], default);
    }
    let f = env.ok(&["pod", "ps", "--filter", "label=tier=web", "-q"]);
    assert_eq!(f.trim(), &id[..12]);
    let f = env.ok(&["pod", "ps", "--filter", "name=nomatch", "-q"]);
    assert_eq!(f.trim(), "");
    // inspect: one pod is an object (podman 4), several a list.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["pod", "inspect", &pod])).expect("inspect json");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Hostname"], "podhost");
    assert_eq!(v["NumContainers"], 3);
    assert_eq!(
        v["SharedNamespaces"],
        serde_json::json!(["ipc", "net", "uts"])
    );
    assert_eq!(v["State"], "Running");
    // Members see the pod's hostname.
    let pod2 = unique("pod2");
    env.ok(&["pod", "create", "--name", &pod2, "--infra=false"]);
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["pod", "inspect", &pod, &pod2])).expect("inspect list");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[1]["CreateInfra"], false);
    // logs: members only, each line prefixed with the short id (podman),
    // or the name with -n; stderr lines on stderr.
    let ok = barge_integration::wait_until(Duration::from_secs(10), || {
        env.run(&["pod", "logs", "-n", &pod])
            .stdout
            .contains("second")
    });
    assert!(ok);
    let o = env.run(&["pod", "logs", "-n", &pod]);
    assert!(o.stdout.contains(&format!("{m} out-line\n")), "{o:#?}");
    assert!(o.stdout.contains(&format!("{m} podhost\n")), "{o:#?}");
    assert!(o.stdout.contains(&format!("{m2} second\n")), "{o:#?}");
    assert!(o.stderr.contains(&format!("{m} err-line\n")), "{o:#?}");
    let mid = env.fmt(&m, "{{.Id}}");
    let o = env.run(&["pod", "logs", "-c", &m2, &pod]);
    assert!(!o.stdout.contains(&mid[..12]), "{o:#?}");
    assert!(o.stdout.contains("second"), "{o:#?}");
    let o = env.run(&["pod", "logs", &pod]);
    assert!(
        o.stdout.contains(&format!("{} out-line", &mid[..12])),
        "{o:#?}"
    );
    // top lists the pause process and the members'.
    let top = env.ok(&["pod", "top", &pod]);
    assert!(
        top.contains("/pause") && top.contains("sleep 1000"),
        "{top}"
    );
    if rootless().is_some() {
        // No cgroup here: no statistics, no freezer; refused, naming why.
        env.fails(&["pod", "stats", "--no-stream", &pod], 125, "has no cgroup");
        env.fails(&["pod", "pause", &pod], 125, "has no cgroup");
        assert_eq!(env.status(&m), "running");
        crate::report_skip(
            "pod stats, pod pause/unpause: they need cgroups: no cgroup is delegated to a rootless user on this host (cgroup v1)",
        );
    } else {
        pod_stats_pause_unpause(&env, &pod, &id, &m);
    }
    // rm -a -f removes both pods.
    env.ok(&["pod", "rm", "-a", "-f"]);
    assert_eq!(env.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
}

/// `pod stats` and `pod pause`/`unpause` of a running pod of three with
/// member `m`.
fn pod_stats_pause_unpause(env: &Env, pod: &str, id: &str, m: &str) {
    // stats --no-stream: one row per container.
    let s = env.ok(&["pod", "stats", "--no-stream", "--format", "json", pod]);
    let s: serde_json::Value = serde_json::from_str(&s).expect("stats json");
    assert_eq!(s.as_array().map(Vec::len), Some(3), "{s}");
    assert_eq!(s[0]["Pod"], &id[..12]);
    let s = env.ok(&["pod", "stats", "--no-stream", pod]);
    assert!(s.starts_with("POD") && s.lines().count() == 4, "{s}");
    // pause/unpause.
    env.ok(&["pod", "pause", pod]);
    assert_eq!(
        env.ok(&["pod", "inspect", "--format", "{{.State}}", pod])
            .trim(),
        "Paused"
    );
    assert_eq!(env.status(m), "paused");
    env.ok(&["pod", "unpause", pod]);
    assert_eq!(
        env.ok(&["pod", "inspect", "--format", "{{.State}}", pod])
            .trim(),
        "Running"
    );
}

#[test]
fn pod_new_and_infra_image() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    // `--pod new:NAME` creates the pod, which takes the container's ports.
    let pod = unique("pod");
    let port = free_port();
    let c = env.run_d(&[
        "--pod",
        &format!("new:{pod}"),
        "-p",
        &format!("127.0.0.1:{port}:80"),
        IMG,
        "sleep",
        "1000",
    ]);
    let ports = env.ok(&[
        "pod",
        "inspect",
        "--format",
        "{{json .InfraConfig.PortBindings}}",
        &pod,
    ]);
    assert!(ports.contains(&port.to_string()), "{ports}");
    assert_eq!(
        env.fmt(&c, "{{.Pod}}"),
        env.ok(&["pod", "inspect", "--format", "{{.Id}}", &pod])
            .trim()
    );
    env.ok(&["pod", "rm", "-f", &pod]);
    // An infra from an image with its own command.
    let pod = unique("pod");
    env.ok(&[
        "pod",
        "create",
        "--name",
        &pod,
        "--infra-image",
        IMG,
        "--infra-command",
        r#"["sh","-c","trap 'exit 0' TERM; while :; do sleep 0.1; done"]"#,
        "--infra-name",
        &format!("{pod}-i"),
    ]);
    env.run_d(&["--pod", &pod, IMG, "sleep", "1000"]);
    assert_eq!(env.status(&format!("{pod}-i")), "running");
    let img = env.fmt(&format!("{pod}-i"), "{{.ImageName}}");
    assert!(img.contains("busybox"), "{img}");
    env.ok(&["pod", "stop", "-t", "1", &pod]);
    assert_eq!(env.fmt(&format!("{pod}-i"), "{{.State.ExitCode}}"), "0");
    env.ok(&["pod", "rm", &pod]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).trim(), "");
}

#[test]
fn bad_input_leaves_no_state() {
    need_root!();
    let env = Env::new();
    let nothing = |env: &Env| {
        assert_eq!(env.ok(&["pod", "ps", "-q"]).trim(), "", "a pod was left");
        assert_eq!(
            env.ok(&["ps", "-a", "-q"]).trim(),
            "",
            "a container was left"
        );
    };
    env.fails(
        &["pod", "start", "nope"],
        125,
        "no pod with name or ID nope found: no such pod",
    );
    env.fails(&["pod", "stop", "nope"], 125, "no such pod");
    env.fails(&["pod", "inspect", "nope"], 125, "no such pod");
    env.fails(&["pod", "logs", "nope"], 125, "no such pod");
    env.fails(&["pod", "rm", "nope"], 1, "no such pod");
    assert_eq!(env.run(&["pod", "exists", "nope"]).code, 1);
    env.fails(
        &["run", "--pod", "nope", IMG, "true"],
        125,
        "no pod with name or ID nope found",
    );
    env.fails(
        &["create", "--pod", "nope", IMG, "true"],
        125,
        "no such pod",
    );
    env.fails(&["pod", "create", "-p", "bad"], 125, "bad");
    env.fails(
        &["pod", "create", "--share", "net,foo"],
        125,
        "invalid kernel namespace to share: foo",
    );
    env.fails(
        &["pod", "create", "--infra=false", "--share", "net"],
        125,
        "cannot set share(net) namespaces without an infra container",
    );
    env.fails(
        &["pod", "create", "--no-infra", "-p", "8080:80"],
        125,
        "you must have an infra container to publish port bindings",
    );
    env.fails(
        &["pod", "create", "--name", "bad name"],
        125,
        "invalid name",
    );
    env.fails(
        &["pod", "create", "--network", "nonet"],
        125,
        "network not found",
    );
    env.fails(
        &["pod", "create", "--infra-image", "localhost/nope"],
        125,
        "nope",
    );
    env.fails(&["pod", "kill", "-s", "BOGUS", "x"], 125, "invalid signal");
    nothing(&env);
    // Names: pods and containers share them.
    let pod = unique("pod");
    env.ok(&["pod", "create", "--name", &pod]);
    env.fails(
        &["pod", "create", "--name", &pod],
        125,
        "pod already exists",
    );
    env.fails(&["create", "--name", &pod, IMG, "true"], 125, "is in use");
    let c = unique("c");
    env.ok(&["create", "--name", &c, IMG, "true"]);
    env.fails(&["pod", "create", "--name", &c], 125, "is in use");
    env.ok(&["rm", &c]);
    // Members cannot set what the pod owns.
    env.fails(
        &["create", "--pod", &pod, "--hostname", "h", IMG, "true"],
        125,
        "cannot set hostname when joining the pod UTS namespace",
    );
    env.fails(
        &["create", "--pod", &pod, "--network", "none", IMG, "true"],
        125,
        "network cannot be configured when it is shared with a pod",
    );
    // `--pod new:` with a bad image takes its new pod away again.
    let p2 = unique("p2");
    env.fails(
        &[
            "run",
            "--pod",
            &format!("new:{p2}"),
            "--pull",
            "never",
            "localhost/nope",
            "true",
        ],
        125,
        "nope",
    );
    assert_eq!(env.run(&["pod", "exists", &p2]).code, 1);
    let infra = env.ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod]);
    env.fails(
        &["rm", infra.trim()],
        125,
        "cannot be removed without removing the pod",
    );
    // `container prune` leaves the pod's infra alone.
    env.ok(&["container", "prune", "-f"]);
    assert_eq!(env.ok(&["ps", "-a", "-q"]).lines().count(), 1);
    env.ok(&["pod", "rm", &pod]);
    nothing(&env);
}

#[test]
fn exit_policy_stop_stops_the_infra() {
    need_root!();
    let _g = net_lock();
    let env = Env::new();
    let pod = unique("pod");
    env.ok(&["pod", "create", "--name", &pod, "--exit-policy", "stop"]);
    let infra = env.ok(&["pod", "inspect", "--format", "{{.InfraContainerID}}", &pod]);
    let infra = infra.trim();
    let a = env.run_d(&["--pod", &pod, IMG, "sleep", "1000"]);
    env.run_d(&["--pod", &pod, IMG, "sh", "-c", "sleep 0.3"]);
    // One member exited, the other runs: the infra stays.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(env.status(infra), "running");
    env.ok(&["kill", &a]);
    env.wait_status(infra, "exited", Duration::from_secs(15));
    let st = env.ok(&[
        "pod",
        "inspect",
        "--format",
        "{{.State}} {{.ExitPolicy}}",
        &pod,
    ]);
    assert_eq!(st.trim(), "Exited stop");
    env.fails(
        &["pod", "create", "--exit-policy", "sometimes"],
        125,
        "invalid pod exit policy",
    );
}
