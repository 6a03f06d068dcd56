//! Tests of the manager. The `root_*` tests really create cgroups and are
//! skipped (with a message) when not running as root.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxHugepageLimitBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResources, LinuxResourcesBuilder,
};

use super::*;

static N: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "barge-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

fn is_root() -> bool {
    if rustix::process::geteuid().is_root() && Path::new("/sys/fs/cgroup").exists() {
        true
    } else {
        eprintln!("skipping: needs root and /sys/fs/cgroup");
        false
    }
}

fn read(p: &Path, f: &str) -> String {
    std::fs::read_to_string(p.join(f))
        .unwrap_or_else(|e| panic!("{}: {e}", p.join(f).display()))
        .trim()
        .to_string()
}

fn cfg(path: &str) -> CgroupConfig<'_> {
    CgroupConfig {
        path,
        container_id: "x",
        systemd: false,
        rootless: false,
    }
}

/// Fork a child that sleeps, return its pid.
fn sleeper() -> i32 {
    match barge_sys::fork().expect("fork") {
        barge_sys::Fork::Child => {
            std::thread::sleep(Duration::from_secs(30));
            barge_sys::exit_now(0);
        }
        barge_sys::Fork::Parent(pid) => pid.as_raw_nonzero().get(),
    }
}

fn reap(pid: i32) -> Option<rustix::process::WaitStatus> {
    let p = rustix::process::Pid::from_raw(pid)?;
    rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty())
        .ok()
        .flatten()
        .map(|(_, s)| s)
}

#[test]
fn systemd_paths() {
    assert_eq!(
        systemd_path("system.slice:barge:abc", "abc", false)
            .ok()
            .as_deref(),
        Some("/system.slice/barge-abc.scope")
    );
    assert_eq!(
        systemd_path("a-b.slice:p:n", "n", false).ok().as_deref(),
        Some("/a.slice/a-b.slice/p-n.scope")
    );
    assert_eq!(
        systemd_path("-.slice::n", "n", false).ok().as_deref(),
        Some("/n.scope")
    );
    assert_eq!(
        systemd_path("", "id", true).ok().as_deref(),
        Some("/user.slice/barge-id.scope")
    );
    assert!(systemd_path("/foo/bar", "x", false).is_err());
    assert!(systemd_path("a--b.slice:p:n", "x", false).is_err());
    assert!(expand_slice("foo").is_err());
}

#[test]
fn own_dir_and_join() {
    let m = CgroupMount {
        mount_point: "/sys/fs/cgroup/memory".into(),
        root: "/".into(),
        kind: MountKind::V1(vec!["memory".into()]),
    };
    let own = parse_proc_cgroup("4:memory:/process_api/h\n1:cpu:/\n0::/\n");
    assert_eq!(
        own_dir(&m, &own),
        PathBuf::from("/sys/fs/cgroup/memory/process_api/h")
    );
    assert!(join_cgroup(Path::new("/a"), "b/../c").is_err());
    assert_eq!(
        join_cgroup(Path::new("/a"), "/b//c/").ok(),
        Some(PathBuf::from("/a/b/c"))
    );
}

#[test]
fn disabled_is_noop() {
    let cg = Cgroup::disabled();
    assert!(cg.is_disabled());
    assert!(cg.clone_into_fd().is_none());
    assert!(cg.add_task(1, false).is_ok());
    assert!(cg.apply(&LinuxResources::default()).is_ok());
    assert_eq!(cg.pids().ok(), Some(Vec::new()));
    assert!(cg.freeze().is_ok() && cg.thaw().is_ok());
    assert!(cg.kill_all(9).is_ok());
    assert!(cg.stats().is_ok());
    assert!(cg.destroy().is_ok());
    let json = serde_json::to_string(&cg).expect("json");
    let back: Cgroup = serde_json::from_str(&json).expect("back");
    assert!(back.is_disabled());
}

#[test]
fn error_messages() {
    let e = CgroupError::Write {
        path: "/sys/fs/cgroup/pids/barge/x/pids.max".into(),
        value: "100".into(),
        source: std::io::Error::from_raw_os_error(libc::EINVAL),
    };
    assert_eq!(
        e.to_string(),
        "writing \"100\" to /sys/fs/cgroup/pids/barge/x/pids.max: Invalid argument"
    );
}

fn resources(huge: Option<&str>, with_swap: bool) -> LinuxResources {
    let mut mem = LinuxMemoryBuilder::default().limit(64_i64 << 20);
    if with_swap {
        mem = mem.swap(128_i64 << 20);
    }
    let mut b = LinuxResourcesBuilder::default()
        .memory(mem.build().expect("mem"))
        .pids(LinuxPidsBuilder::default().limit(20).build().expect("pids"))
        .cpu(
            LinuxCpuBuilder::default()
                .shares(512_u64)
                .quota(50_000_i64)
                .period(100_000_u64)
                .cpus("0")
                .build()
                .expect("cpu"),
        );
    if let Some(size) = huge {
        b = b.hugepage_limits(vec![LinuxHugepageLimitBuilder::default()
            .page_size(size)
            .limit(4_i64 << 20)
            .build()
            .expect("huge")]);
    }
    b.build().expect("resources")
}

#[test]
fn root_lifecycle() {
    if !is_root() {
        return;
    }
    let name = format!("/{}", unique());
    let cg = Cgroup::create(&cfg(&name)).expect("create");
    let mode = detect_mode().expect("mode");
    assert_eq!(cg.mode(), mode);
    for p in cg.paths() {
        assert!(p.is_dir(), "{} missing", p.display());
        assert!(p.ends_with(name.trim_start_matches('/')));
    }
    // The state round-trips through JSON.
    let cg: Cgroup = serde_json::from_str(&serde_json::to_string(&cg).expect("ser")).expect("de");

    let huge = hugepage_sizes().into_iter().find(|s| s == "2MB");
    let huge = huge.or_else(|| hugepage_sizes().into_iter().next());
    let huge_ok = huge.is_some()
        && (cg.v1_path("hugetlb").is_some()
            || cg
                .unified_path()
                .is_some_and(|d| read(d, "cgroup.controllers").contains("hugetlb")));
    let huge = huge.filter(|_| huge_ok);
    let memsw = mode != Mode::V2
        && cg
            .v1_path("memory")
            .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists());
    cg.apply(&resources(huge.as_deref(), memsw || mode == Mode::V2))
        .expect("apply");

    if mode == Mode::V2 {
        let d = cg.unified_path().expect("v2");
        assert_eq!(read(d, "memory.max"), (64_u64 << 20).to_string());
        assert_eq!(read(d, "pids.max"), "20");
        assert_eq!(read(d, "cpu.max"), "50000 100000");
        assert_eq!(read(d, "cpu.weight"), shares_weight(512));
    } else {
        let mem = cg.v1_path("memory").expect("memory");
        assert_eq!(
            read(mem, "memory.limit_in_bytes"),
            (64_u64 << 20).to_string()
        );
        if memsw {
            assert_eq!(
                read(mem, "memory.memsw.limit_in_bytes"),
                (128_u64 << 20).to_string()
            );
        }
        assert_eq!(read(cg.v1_path("pids").expect("pids"), "pids.max"), "20");
        let cpu = cg.v1_path("cpu").expect("cpu");
        assert_eq!(read(cpu, "cpu.shares"), "512");
        assert_eq!(read(cpu, "cpu.cfs_quota_us"), "50000");
        assert_eq!(read(cpu, "cpu.cfs_period_us"), "100000");
        assert_eq!(
            read(cg.v1_path("cpuset").expect("cpuset"), "cpuset.cpus"),
            "0"
        );
    }
    if let Some(size) = &huge {
        let (dir, file) = match cg.v1_path("hugetlb").filter(|_| mode != Mode::V2) {
            Some(d) => (d, format!("hugetlb.{size}.limit_in_bytes")),
            None => (
                cg.unified_path().expect("unified"),
                format!("hugetlb.{size}.max"),
            ),
        };
        assert_eq!(read(dir, &file), (4_u64 << 20).to_string());
    } else {
        eprintln!("no hugetlb size/controller: hugetlb limit not tested");
    }

    // A process in the cgroup.
    let fd = cg.clone_into_fd();
    assert_eq!(fd.is_some(), cg.unified_path().is_some());
    let pid = sleeper();
    cg.add_task(pid, false).expect("add_task");
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    for p in cg.paths() {
        assert_eq!(read(&p, "cgroup.procs"), pid.to_string(), "{}", p.display());
    }

    cg.freeze().expect("freeze");
    assert!(cg.is_frozen().expect("is_frozen"));
    cg.thaw().expect("thaw");
    assert!(!cg.is_frozen().expect("is_frozen"));

    let stats = cg.stats().expect("stats");
    let v = serde_json::to_value(&stats).expect("json");
    assert_eq!(v["pids"]["current"], 1);
    assert_eq!(v["pids"]["limit"], 20);
    assert_eq!(v["memory"]["usage"]["limit"], 64_u64 << 20);
    assert!(v["memory"]["usage"]["usage"].is_number());
    assert!(v["memory"]["raw"].is_object());
    assert!(v["cpu"]["usage"]["total"].is_number());
    assert!(v["cpu"]["throttling"]["periods"].is_number());
    if let Some(size) = &huge {
        assert!(v["hugetlb"][size.as_str()]["failcnt"].is_number(), "{v}");
    }
    assert_eq!(cg.oom_kill_count().expect("oom"), 0);

    cg.kill_all(libc::SIGKILL).expect("kill_all");
    let status = reap(pid).expect("reaped");
    assert_eq!(status.terminating_signal(), Some(libc::SIGKILL));
    // Gone from the cgroup (may take a moment to leave cgroup.procs).
    for _ in 0..100 {
        if cg.pids().expect("pids").is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(cg.pids().expect("pids").is_empty());

    cg.destroy().expect("destroy");
    for p in cg.paths() {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    cg.destroy().expect("destroy twice");
}

fn shares_weight(s: u64) -> String {
    resources::shares_to_weight(s).to_string()
}

#[test]
fn root_relative_and_nested() {
    if !is_root() {
        return;
    }
    let rel = format!("{}/inner", unique());
    let cg = Cgroup::create(&cfg(&rel)).expect("create");
    let own = parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").expect("cgroup"));
    let mounts = host_mounts().expect("mounts");
    for m in &mounts {
        let base = own_dir(m, &own);
        let h = match &m.kind {
            MountKind::V2 => cg.unified_path().map(Path::to_path_buf),
            MountKind::V1(c) => cg.v1_path(&c[0]).map(Path::to_path_buf),
        }
        .expect("hierarchy");
        assert_eq!(h, base.join(&rel));
        assert!(h.is_dir());
    }
    // Both levels were created by us and go away; a sub-cgroup the
    // container made is removed too.
    if let Some(d) = cg.v1_path("memory") {
        std::fs::create_dir(d.join("sub")).expect("sub");
    }
    cg.destroy().expect("destroy");
    for h in cg.v1_hierarchies() {
        assert!(!h.path.exists());
        assert!(!h.created[0].exists(), "{}", h.created[0].display());
    }
}

#[test]
fn root_devices_and_unified() {
    if !is_root() {
        return;
    }
    let name = format!("/{}", unique());
    let cg = Cgroup::create(&cfg(&name)).expect("create");
    let rules = devices::tests::sample_rules();
    let r = LinuxResourcesBuilder::default()
        .devices(rules.clone())
        .build()
        .expect("res");
    cg.update(&r).expect("devices");
    if cg.mode() != Mode::V2 {
        let list = read(cg.v1_path("devices").expect("devices"), "devices.list");
        let lines: Vec<&str> = list.lines().collect();
        for want in ["b 8:0 r", "c 1:3 rwm", "c 1:9 rwm", "c *:* m", "b *:* m"] {
            assert!(lines.contains(&want), "{want:?} not in {lines:?}");
        }
        assert!(!lines.contains(&"a *:* rwm"), "{lines:?}");
        // A unified key for a v1 controller is an error naming the key.
        let mut u = std::collections::HashMap::new();
        u.insert("memory.max".to_string(), "100".to_string());
        let r = LinuxResourcesBuilder::default()
            .unified(u)
            .build()
            .expect("res");
        let err = cg.apply(&r).expect_err("unified on v1");
        assert!(err.to_string().contains("memory.max"), "{err}");
    }
    // The eBPF device filter loads, attaches and is replaced on update
    // (directly on the cgroup2 node; on hybrid hosts that node is unused
    // for devices otherwise).
    if let Some(u) = cg.unified_path() {
        devices::apply_v2(u, &rules).expect("bpf attach");
        devices::apply_v2(u, &rules[..2]).expect("bpf replace");
        assert_eq!(
            attached_device_programs(u).expect("query"),
            vec![DEVICE_PROG_NAME.to_string()]
        );
    }
    cg.destroy().expect("destroy");
    for p in cg.paths() {
        assert!(!p.exists());
    }
}

#[test]
fn root_clone_into_cgroup() {
    if !is_root() {
        return;
    }
    let name = format!("/{}", unique());
    let cg = Cgroup::create(&cfg(&name)).expect("create");
    let Some(fd) = cg.clone_into_fd() else {
        eprintln!("no cgroup2 node: CLONE_INTO_CGROUP not tested");
        cg.destroy().expect("destroy");
        return;
    };
    use std::os::fd::AsFd;
    let args = barge_sys::CloneArgs {
        flags: 0,
        cgroup: Some(fd.as_fd()),
    };
    let pid = match barge_sys::clone3(&args).expect("clone3") {
        barge_sys::Fork::Child => {
            std::thread::sleep(Duration::from_secs(30));
            barge_sys::exit_now(0);
        }
        barge_sys::Fork::Parent(pid) => pid.as_raw_nonzero().get(),
    };
    let unified = cg.unified_path().expect("unified");
    assert_eq!(read(unified, "cgroup.procs"), pid.to_string());
    cg.add_task(pid, true).expect("add_task");
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    cg.kill_all(libc::SIGTERM).expect("kill_all");
    let status = reap(pid).expect("reaped");
    assert_eq!(status.terminating_signal(), Some(libc::SIGTERM));
    cg.destroy().expect("destroy");
    assert!(!unified.exists());
}

/// Pure cgroup v2 logic against a fake hierarchy in a temp dir: path
/// resolution, the v2 files `apply` writes, freezing and stats parsing.
#[test]
fn fake_v2_hierarchy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let mounts = vec![CgroupMount {
        mount_point: tmp.path().to_path_buf(),
        root: "/".into(),
        kind: MountKind::V2,
    }];
    let own = parse_proc_cgroup("0::/user.slice/me\n");
    let cg = Cgroup::create_from(&cfg("rel/ctr"), &mounts, &own).expect("create");
    assert_eq!(cg.mode(), Mode::V2);
    let dir = tmp.path().join("user.slice/me/rel/ctr");
    assert_eq!(cg.unified_path(), Some(dir.as_path()));
    assert!(cg.v1_hierarchies().is_empty());

    let files = [
        "cgroup.procs",
        "cgroup.freeze",
        "memory.max",
        "memory.low",
        "memory.swap.max",
        "cpu.weight",
        "cpu.max",
        "cpuset.cpus",
        "pids.max",
        "io.weight",
        "io.max",
        "hugetlb.2MB.max",
        "memory.high",
    ];
    for f in files {
        std::fs::write(dir.join(f), "").expect("fake file");
    }
    std::fs::write(dir.join("cgroup.controllers"), "cpu memory pids io hugetlb").expect("ctl");
    let mut r = resources(Some("2MB"), true);
    let mut u = std::collections::HashMap::new();
    u.insert("memory.high".to_string(), "50000000".to_string());
    r.set_unified(Some(u));
    r.set_block_io(Some(
        oci_spec::runtime::LinuxBlockIoBuilder::default()
            .weight(500_u16)
            .throttle_read_bps_device(vec![
                oci_spec::runtime::LinuxThrottleDeviceBuilder::default()
                    .major(8_i64)
                    .minor(0_i64)
                    .rate(1000_u64)
                    .build()
                    .expect("thr"),
            ])
            .build()
            .expect("blkio"),
    ));
    cg.apply(&r).expect("apply");
    assert_eq!(read(&dir, "memory.max"), (64_u64 << 20).to_string());
    assert_eq!(read(&dir, "memory.swap.max"), (64_u64 << 20).to_string());
    assert_eq!(read(&dir, "cpu.weight"), "20");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpuset.cpus"), "0");
    assert_eq!(read(&dir, "pids.max"), "20");
    assert_eq!(read(&dir, "io.weight"), "4950");
    assert_eq!(read(&dir, "io.max"), "8:0 rbps=1000");
    assert_eq!(read(&dir, "hugetlb.2MB.max"), (4_u64 << 20).to_string());
    assert_eq!(read(&dir, "memory.high"), "50000000");

    // Freeze: the "kernel" reports frozen at once.
    std::fs::write(dir.join("cgroup.events"), "populated 0\nfrozen 1\n").expect("events");
    cg.freeze().expect("freeze");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert!(cg.is_frozen().expect("is_frozen"));

    // Stats from v2 files.
    std::fs::write(
        dir.join("cpu.stat"),
        "usage_usec 10\nuser_usec 6\nsystem_usec 4\nnr_periods 3\nnr_throttled 1\nthrottled_usec 2\n",
    )
    .expect("cpu.stat");
    std::fs::write(dir.join("memory.current"), "4096\n").expect("mem");
    std::fs::write(dir.join("memory.max"), "max\n").expect("mem");
    std::fs::write(dir.join("memory.stat"), "anon 1\nfile 2\n").expect("mem");
    std::fs::write(dir.join("memory.events"), "max 5\noom_kill 2\n").expect("mem");
    std::fs::write(dir.join("pids.current"), "3\n").expect("pids");
    std::fs::write(dir.join("pids.max"), "max\n").expect("pids");
    std::fs::write(dir.join("io.stat"), "8:0 rbytes=7 wbytes=8 rios=1 wios=2\n").expect("io");
    std::fs::write(dir.join("cgroup.procs"), "11\n12\n").expect("procs");
    std::fs::create_dir(dir.join("sub")).expect("sub");
    std::fs::write(dir.join("sub/cgroup.procs"), "13\n").expect("procs");
    let v = serde_json::to_value(cg.stats().expect("stats")).expect("json");
    assert_eq!(v["cpu"]["usage"]["total"], 10_000);
    assert_eq!(v["cpu"]["usage"]["kernel"], 4_000);
    assert_eq!(v["cpu"]["throttling"]["throttledTime"], 2_000);
    assert_eq!(v["memory"]["usage"]["usage"], 4096);
    assert_eq!(v["memory"]["usage"]["limit"], u64::MAX);
    assert_eq!(v["memory"]["usage"]["failcnt"], 5);
    assert_eq!(v["memory"]["raw"]["file"], 2);
    assert_eq!(v["pids"]["current"], 3);
    assert_eq!(v["pids"]["limit"], 0);
    assert_eq!(v["blkio"]["ioServiceBytesRecursive"][1]["value"], 8);
    assert_eq!(cg.oom_kill_count().expect("oom"), 2);
    assert_eq!(cg.pids().expect("pids"), vec![11, 12, 13]);

    // Realtime is refused on v2.
    let rt = LinuxResourcesBuilder::default()
        .cpu(
            LinuxCpuBuilder::default()
                .realtime_runtime(1000_i64)
                .build()
                .expect("cpu"),
        )
        .build()
        .expect("res");
    assert!(cg.apply(&rt).is_err());

    // Absolute and systemd paths resolve against the mount point.
    let cg2 = Cgroup::create_from(&cfg("/abs/x"), &mounts, &own).expect("create");
    assert_eq!(cg2.unified_path(), Some(tmp.path().join("abs/x").as_path()));
    let sd = CgroupConfig {
        path: "machine.slice:barge:c1",
        container_id: "c1",
        systemd: true,
        rootless: false,
    };
    let cg3 = Cgroup::create_from(&sd, &mounts, &own).expect("create");
    assert_eq!(
        cg3.unified_path(),
        Some(tmp.path().join("machine.slice/barge-c1.scope").as_path())
    );
    let dflt = CgroupConfig {
        path: "",
        container_id: "c2",
        systemd: false,
        rootless: false,
    };
    let cg4 = Cgroup::create_from(&dflt, &mounts, &own).expect("create");
    assert_eq!(
        cg4.unified_path(),
        Some(tmp.path().join("barge/c2").as_path())
    );
    cg4.destroy().expect("destroy");
    assert!(!tmp.path().join("barge").exists());
}
