//! Resource limits are really enforced: memory (OOM kill), pids, cpu quota.

use barge_integration::{check, json, need_root, Container};

#[test]
fn memory_limit_oom_kills() {
    need_root!();
    let o = check("oomkill", &["alloc", "200"], |c| {
        let lim = 32 * 1024 * 1024;
        c.config["linux"]["resources"]["memory"] = json!({"limit": lim, "swap": lim});
    });
    assert_eq!(o.code, 137, "expected SIGKILL by the OOM killer: {o:#?}");
    assert!(!o.stdout.contains("allocated_mb"), "{o:#?}");
}

#[test]
fn memory_limit_allows_small() {
    need_root!();
    let o = check("oomok", &["alloc", "8"], |c| {
        c.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    });
    o.ok();
    assert_eq!(o.json()["allocated_mb"], 8);
}

#[test]
fn pids_limit_fork_fails() {
    need_root!();
    let o = check("pids", &["fork", "50"], |c| {
        c.config["linux"]["resources"]["pids"] = json!({"limit": 10});
    });
    o.ok();
    let v = o.json();
    let forked = v["forked"].as_u64().unwrap_or(99);
    assert!(forked < 10, "at most 9 children besides init: {v}");
    assert_eq!(v["errno_name"], "EAGAIN", "{v}");
}

#[test]
fn cpu_quota_throttles() {
    need_root!();
    let o = check("cpuq", &["spin", "1000"], |c| {
        c.config["linux"]["resources"]["cpu"] = json!({"quota": 20000, "period": 100_000});
    });
    o.ok();
    let v = o.json();
    let ratio = v["ratio"].as_f64().unwrap_or(1.0);
    assert!(ratio < 0.35, "cpu/wall ratio {ratio} should be ~0.2: {v}");
    assert!(ratio > 0.05, "the process did run: {v}");
}

#[test]
fn cgroup_files_reflect_resources() {
    need_root!();
    let mut c = Container::new("cgfiles");
    c.args(&["barge-check", "sleep", "600"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 48 * 1024 * 1024});
    c.config["linux"]["resources"]["pids"] = json!({"limit": 33});
    c.config["linux"]["resources"]["cpu"] =
        json!({"shares": 512, "quota": 50000, "period": 100_000});
    c.run_detached().ok();
    let pid = c.pid();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path_of = |ctrl: &str| -> Option<String> {
        cg.lines().find_map(|l| {
            let mut it = l.splitn(3, ':');
            let _ = it.next();
            let c = it.next()?;
            let p = it.next()?;
            c.split(',').any(|x| x == ctrl).then(|| p.to_string())
        })
    };
    let v1 = |ctrl: &str, file: &str| -> Option<String> {
        let p = path_of(ctrl)?;
        std::fs::read_to_string(format!("/sys/fs/cgroup/{ctrl}{p}/{file}"))
            .ok()
            .map(|s| s.trim().to_string())
    };
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(
            v1("memory", "memory.limit_in_bytes").as_deref(),
            Some("50331648"),
            "{cg}"
        );
        assert_eq!(v1("pids", "pids.max").as_deref(), Some("33"), "{cg}");
        assert_eq!(v1("cpu", "cpu.shares").as_deref(), Some("512"), "{cg}");
        assert_eq!(
            v1("cpu", "cpu.cfs_quota_us").as_deref(),
            Some("50000"),
            "{cg}"
        );
    } else {
        let p = path_of("").unwrap_or_default();
        let f =
            |n: &str| std::fs::read_to_string(format!("/sys/fs/cgroup{p}/{n}")).unwrap_or_default();
        assert_eq!(f("memory.max").trim(), "50331648");
        assert_eq!(f("pids.max").trim(), "33");
        assert_eq!(f("cpu.max").trim(), "50000 100000");
    }
    // update changes a limit in place.
    let o = c.rt(&["update", "--pids-limit", "44", &c.id]);
    o.ok();
    if std::path::Path::new("/sys/fs/cgroup/pids").is_dir() {
        assert_eq!(v1("pids", "pids.max").as_deref(), Some("44"));
    }
    c.delete_force().ok();
}

#[test]
fn events_stats() {
    need_root!();
    let mut c = Container::new("stats");
    c.args(&["barge-check", "sleep", "600"]);
    c.config["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
    c.run_detached().ok();
    let o = c.rt(&["events", "--stats", &c.id]);
    o.ok();
    let v = barge_integration::parse_last_json(&o.stdout).unwrap_or_else(|| panic!("{o:#?}"));
    assert_eq!(v["type"], "stats", "{v}");
    assert_eq!(v["id"], serde_json::Value::from(c.id.clone()));
    assert!(
        v["data"]["pids"]["current"].as_u64().unwrap_or(0) >= 1,
        "{v}"
    );
    assert!(
        v["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
        "{v}"
    );
    c.delete_force().ok();
}
