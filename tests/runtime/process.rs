//! The process: sysctls, rlimits, capabilities, no_new_privileges, user,
//! groups, umask, cwd, env, personality, oomScoreAdj.

use barge_integration::{check, json, need_root, runc_deviation};

#[test]
fn sysctls() {
    need_root!();
    let edit = |c: &mut barge_integration::Container| {
        c.config["linux"]["sysctl"] =
            json!({"net.ipv4.ip_forward": "1", "kernel.shm_rmid_forced": "1"});
    };
    let o = check("sysctl", &["sysctl", "net.ipv4.ip_forward"], edit);
    o.ok();
    assert_eq!(o.json()["value"], "1");
    let o = check("sysctl2", &["sysctl", "kernel.shm_rmid_forced"], edit);
    o.ok();
    assert_eq!(o.json()["value"], "1");
    // The host's values are untouched (the container had its own net/ipc ns).
    let host = std::fs::read_to_string("/proc/sys/kernel/shm_rmid_forced").unwrap();
    assert_eq!(host.trim(), "0");
}

#[test]
fn sysctl_without_namespace_is_rejected() {
    need_root!();
    // net.* needs a new network namespace: joining the host's is refused.
    let o = check("sysctlh", &["pid"], |c| {
        c.namespaces_mut().retain(|n| n["type"] != "network");
        c.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    });
    o.fails();
}

#[test]
fn rlimits() {
    need_root!();
    let o = check("rlim", &["rlimits"], |c| {
        c.config["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
            {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0}
        ]);
    });
    o.ok();
    let v = o.json();
    assert_eq!(v["RLIMIT_NOFILE"], json!({"soft": 1024, "hard": 1024}));
    assert_eq!(v["RLIMIT_NPROC"], json!({"soft": 500, "hard": 600}));
    assert_eq!(v["RLIMIT_CORE"], json!({"soft": 0, "hard": 0}));
}

#[test]
fn rlimit_above_hard_limit_is_a_clear_error() {
    need_root!();
    // Root here lacks CAP_SYS_RESOURCE (hard nofile 20000): raising it fails.
    // Use a limit far above any host's hard limit.
    let o = check("rlimbad", &["rlimits"], |c| {
        c.config["process"]["rlimits"] =
            json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 2_000_000_000u64}]);
    });
    let host_hard = std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(str::to_string)
        .unwrap_or_default();
    if o.success() {
        // Only possible with CAP_SYS_RESOURCE and a huge fs.nr_open.
        eprintln!("note: host allowed raising nofile ({host_hard}); skipping the error check");
        return;
    }
    o.fails();
    let msg = format!("{}{}", o.stderr, o.stdout);
    if !msg.contains("RLIMIT_NOFILE")
        && runc_deviation(&format!(
            "runc's rlimit error does not name RLIMIT_NOFILE: {}",
            msg.trim()
        ))
    {
        return;
    }
    assert!(
        msg.contains("RLIMIT_NOFILE"),
        "message must name the limit: {o:#?}"
    );
}

#[test]
fn capabilities_all_five_sets() {
    need_root!();
    let o = check("caps", &["caps"], |c| {
        c.config["process"]["capabilities"] = json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_NET_RAW"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
        c.config["process"]["noNewPrivileges"] = json!(true);
    });
    o.ok();
    let v = o.json();
    assert_eq!(
        v["bounding"],
        json!([
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_SETUID",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_RAW"
        ]),
        "{v}"
    );
    assert_eq!(
        v["inheritable"],
        json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        "{v}"
    );
    assert_eq!(v["ambient"], json!(["CAP_NET_BIND_SERVICE"]), "{v}");
    // uid 0 execve with no_new_privs: permitted cannot grow past the
    // configured permitted set, and root's effective set equals permitted.
    assert_eq!(v["CapBnd"], "00000000000024a1", "{v}");
    assert_eq!(v["CapInh"], "0000000000000420", "{v}");
    assert_eq!(v["CapAmb"], "0000000000000400", "{v}");
    assert_eq!(v["CapPrm"], "0000000000002421", "{v}");
    assert_eq!(v["CapEff"], "0000000000002421", "{v}");
}

#[test]
fn ambient_capabilities_for_non_root_user() {
    need_root!();
    let o = check("ambient", &["caps"], |c| {
        c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c.config["process"]["capabilities"] = json!({
            "bounding": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "permitted": ["CAP_NET_BIND_SERVICE", "CAP_NET_RAW"],
            "inheritable": ["CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_NET_BIND_SERVICE"],
            "ambient": ["CAP_NET_BIND_SERVICE"]
        });
    });
    o.ok();
    let v = o.json();
    // A non-root user keeps only what ambient carries across execve.
    assert_eq!(v["ambient"], json!(["CAP_NET_BIND_SERVICE"]), "{v}");
    assert_eq!(v["effective"], json!(["CAP_NET_BIND_SERVICE"]), "{v}");
    assert_eq!(v["permitted"], json!(["CAP_NET_BIND_SERVICE"]), "{v}");
}

#[test]
fn no_new_privileges() {
    need_root!();
    let o = check("nnp1", &["nnp"], |c| {
        c.config["process"]["noNewPrivileges"] = json!(true)
    });
    o.ok();
    assert_eq!(o.json()["NoNewPrivs"], 1);
    let o = check("nnp0", &["nnp"], |c| {
        c.config["process"]["noNewPrivileges"] = json!(false)
    });
    o.ok();
    assert_eq!(o.json()["NoNewPrivs"], 0);
}

#[test]
fn user_groups_and_umask() {
    need_root!();
    let edit = |c: &mut barge_integration::Container| {
        c.config["process"]["user"] =
            json!({"uid": 1000, "gid": 100, "additionalGids": [5, 65534], "umask": 0o027});
    };
    let o = check("user", &["ids"], edit);
    o.ok();
    let v = o.json();
    assert_eq!(
        (v["uid"].as_u64(), v["euid"].as_u64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(
        (v["gid"].as_u64(), v["egid"].as_u64()),
        (Some(100), Some(100))
    );
    let mut groups: Vec<u64> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_u64)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups.retain(|g| *g != 100);
    assert_eq!(groups, vec![5, 65534], "{v}");
    let o = check("umask", &["umask"], edit);
    o.ok();
    assert_eq!(o.json()["umask_octal"], "0027");
    // Default umask is 0022.
    let o = check("umask0", &["umask"], |_| {});
    assert_eq!(o.json()["umask_octal"], "0022");
}

#[test]
fn cwd_and_env() {
    need_root!();
    let edit = |c: &mut barge_integration::Container| {
        c.config["process"]["cwd"] = json!("/mnt/ro");
        c.config["process"]["env"] = json!(["PATH=/usr/bin:/bin", "FOO=bar baz", "EMPTY="]);
    };
    let o = check("cwd", &["cwd"], edit);
    o.ok();
    assert_eq!(o.json()["cwd"], "/mnt/ro");
    let o = check("env", &["env"], edit);
    o.ok();
    let v = o.json();
    assert_eq!(v["env"]["FOO"], "bar baz");
    assert_eq!(v["env"]["EMPTY"], "");
    assert_eq!(v["env"]["PATH"], "/usr/bin:/bin");
    // A missing cwd is created (runc behaviour) on a writable tmpfs.
    let o = check("cwdnew", &["cwd"], |c| {
        c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        c.config["process"]["cwd"] = json!("/tmp/new/dir");
    });
    o.ok();
    assert_eq!(o.json()["cwd"], "/tmp/new/dir");
}

#[test]
fn personality_linux32() {
    need_root!();
    let o = check("pers", &["personality"], |c| {
        c.config["linux"]["personality"] = json!({"domain": "LINUX32"});
    });
    if (!o.success() || o.json()["linux32"] != true)
        && runc_deviation("runc 1.1 ignores linux.personality")
    {
        return;
    }
    o.ok();
    assert_eq!(o.json()["linux32"], true, "{o:#?}");
}

#[test]
fn oom_score_adj() {
    need_root!();
    let o = check("oom", &["read", "/proc/self/oom_score_adj"], |c| {
        c.config["process"]["oomScoreAdj"] = json!(500);
    });
    o.ok();
    assert_eq!(o.json()["content"].as_str().map(str::trim), Some("500"));
}
