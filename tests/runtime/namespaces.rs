//! Namespaces: created and joined by path, hostname, user namespace maps.

use barge_integration::{check, host, json, need_root, runc_deviation, unique, Container};

#[test]
fn hostname_and_domainname() {
    need_root!();
    let o = check("uts", &["hostname"], |c| {
        c.config["hostname"] = json!("box-one");
        c.config["domainname"] = json!("example.test");
    });
    o.ok();
    let v = o.json();
    assert_eq!(v["hostname"], "box-one");
    if v["domainname"] != "example.test" && runc_deviation("runc 1.1 ignores domainname") {
        return;
    }
    assert_eq!(v["domainname"], "example.test");
}

#[test]
fn new_namespaces_differ_from_host() {
    need_root!();
    let o = check("nsnew", &["ns"], |_| {});
    o.ok();
    let v = o.json();
    for (k, hostk) in [
        ("net", "net"),
        ("mnt", "mnt"),
        ("pid", "pid"),
        ("uts", "uts"),
        ("ipc", "ipc"),
    ] {
        let h = std::fs::read_link(format!("/proc/self/ns/{hostk}")).unwrap();
        assert_ne!(
            v[k].as_str().unwrap_or(""),
            h.to_string_lossy(),
            "{k} namespace must be new"
        );
    }
    // No user namespace requested: the host's.
    let hu = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_eq!(v["user"].as_str().unwrap_or(""), hu.to_string_lossy());
}

#[test]
fn join_network_namespace_by_path() {
    need_root!();
    let name = unique("netns");
    host("ip", &["netns", "add", &name]);
    let nsfile = format!("/var/run/netns/{name}");
    // Give the namespace something recognisable: loopback up.
    host("ip", &["-n", &name, "link", "set", "lo", "up"]);
    let ino = std::fs::metadata(&nsfile)
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    let mut c = Container::new("joinnet");
    let n2 = name.clone();
    c.cleanups.push(Box::new(move || {
        let _ = std::process::Command::new("ip")
            .args(["netns", "delete", &n2])
            .status();
    }));
    c.args(&["barge-check", "ns"]);
    for ns in c.namespaces_mut() {
        if ns["type"] == "network" {
            ns["path"] = json!(nsfile);
        }
    }
    let o = c.run();
    o.ok();
    assert_eq!(o.json()["net"], json!(format!("net:[{ino}]")), "{o:#?}");
    // And a second container in the same namespace sees the same interfaces.
    let mut d = Container::new("joinnet2");
    d.args(&["barge-check", "netdev"]);
    d.config["linux"]["namespaces"] = c.config["linux"]["namespaces"].clone();
    let o = d.run();
    o.ok();
    assert_eq!(o.json()["interfaces"], json!(["lo"]), "{o:#?}");
}

#[test]
fn join_pid_and_ipc_of_another_container() {
    need_root!();
    let mut infra = Container::new("infra");
    infra.args(&["barge-check", "sleep", "600"]);
    infra.run_detached().ok();
    let pid = infra.pid();
    let mut app = Container::new("app");
    app.args(&["barge-check", "ns"]);
    for ns in app.namespaces_mut() {
        let t = ns["type"].as_str().unwrap_or("").to_string();
        let f = match t.as_str() {
            "network" => "net",
            "ipc" => "ipc",
            "uts" => "uts",
            _ => continue,
        };
        ns["path"] = json!(format!("/proc/{pid}/ns/{f}"));
    }
    let o = app.run();
    o.ok();
    let v = o.json();
    for f in ["net", "ipc", "uts"] {
        let want = std::fs::read_link(format!("/proc/{pid}/ns/{f}")).unwrap();
        assert_eq!(v[f].as_str().unwrap_or(""), want.to_string_lossy(), "{f}");
    }
    infra.delete_force().ok();
}

#[test]
fn user_namespace_mappings() {
    need_root!();
    let mut c = Container::new("userns");
    c.args(&["barge-check", "ids"]);
    c.namespaces_mut().push(json!({"type": "user"}));
    c.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // cgroup v1 cannot be mounted from a user namespace without cgroupns;
    // keep the mounts to what a user namespace can do.
    let mounts: Vec<_> = c.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/sys/fs/cgroup")
        .cloned()
        .collect();
    c.config["mounts"] = json!(mounts);
    let o = c.run();
    o.ok();
    let v = o.json();
    assert_eq!(v["uid"], 0);
    assert_eq!(v["gid"], 0);
    assert_eq!(v["uid_map"], json!([[0, 100_000, 65536]]), "{v}");
    assert_eq!(v["gid_map"], json!([[0, 100_000, 65536]]), "{v}");
    // Files owned by unmapped host root appear as the overflow id.
    let o2 = check("userns2", &["stat", "/usr/bin/barge-check"], |d| {
        d.config["linux"] = c.config["linux"].clone();
        d.config["mounts"] = c.config["mounts"].clone();
    });
    o2.ok();
    assert_eq!(o2.json()["uid"], 65534, "{o2:#?}");
}

#[test]
fn user_namespace_non_root_user() {
    need_root!();
    let o = check("userns3", &["ids"], |c| {
        c.namespaces_mut().push(json!({"type": "user"}));
        c.config["linux"]["uidMappings"] =
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c.config["linux"]["gidMappings"] =
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
        c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        let mounts: Vec<_> = c.config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] != "/sys/fs/cgroup")
            .cloned()
            .collect();
        c.config["mounts"] = json!(mounts);
    });
    o.ok();
    let v = o.json();
    assert_eq!(v["uid"], 1000);
    assert_eq!(v["euid"], 1000);
    assert_eq!(v["uid_map"], json!([[0, 200_000, 65536]]));
}

#[test]
fn cgroup_namespace() {
    need_root!();
    let o = check("cgns", &["cgroup"], |c| {
        c.namespaces_mut().push(json!({"type": "cgroup"}));
    });
    o.ok();
    // Inside a cgroup namespace every hierarchy's own path is the root.
    for e in o.json()["cgroups"].as_array().unwrap() {
        assert_eq!(e["path"], "/", "{e}");
    }
}

#[test]
fn time_namespace_offsets() {
    need_root!();
    let o = check("timens", &["read", "/proc/uptime"], |c| {
        c.namespaces_mut().push(json!({"type": "time"}));
        c.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 864_000, "nanosecs": 0}, "boottime": {"secs": 864_000, "nanosecs": 0}});
    });
    if !o.success() && runc_deviation("runc 1.1 does not support time namespaces") {
        return;
    }
    o.ok();
    let up: f64 = o.json()["content"]
        .as_str()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0);
    assert!(up >= 864_000.0, "boottime offset applied: uptime {up}");
}

#[test]
fn no_pivot_root() {
    need_root!();
    let mut c = Container::new("nopivot");
    c.args(&["barge-check", "pid"]);
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt_files(&["run", "--no-pivot", "--bundle", &b, &id]);
    o.ok();
    assert_eq!(o.json()["pid"], 1, "{o:#?}");
}
