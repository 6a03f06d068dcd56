//! The syscall supervisor (`barge-supervisor`, docs/supervisor.md) with real
//! user-namespaced containers: barge-runtime runs a container whose root is
//! mapped to host 100000 (a writable overlay over the test image, mounted
//! on the host like the engine's), with `SCMP_ACT_NOTIFY` rules for
//! mknod/mknodat, mount and the setxattr family and `listenerPath` pointing
//! at a supervisor the test starts. Also hostile arguments, a caller killed
//! mid-call, a killed supervisor, a worker timeout, a path race, `exec`,
//! and `barge run --security-opt seccomp-intercept=…` through the CLI.
//!
//! Needs root, `cargo build --release -p barge -p barge-runtime
//! -p barge-monitor -p barge-check -p barge-supervisor` and the test image.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use barge_integration::{
    barge_bin, host, json, json_lines, need_root, rootfs, run_cmd, umount, wait_until, Container,
    Out, Value,
};

/// The host ids the container's 0..65536 map to.
const HOST_ID: u32 = 100_000;

fn supervisor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE_SUPERVISOR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map_or_else(
            || barge_integration::workspace().join("target"),
            |t| barge_integration::workspace().join(t),
        );
    target.join("release/barge-supervisor")
}

/// A supervisor started by the test (a child, so it can be stopped and
/// killed), with its report and debug log in a temp dir.
struct Sup {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Sup {
    fn start(extra: &[&str]) -> Self {
        let bin = supervisor_bin();
        assert!(
            bin.exists(),
            "{} missing: cargo build --release -p barge-supervisor",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("bsup")
            .tempdir_in("/tmp")
            .unwrap();
        let mut c = Command::new(&bin);
        c.arg("--socket")
            .arg(dir.path().join("s.sock"))
            .arg("--report")
            .arg(dir.path().join("report.json"))
            .arg("--log-file")
            .arg(dir.path().join("log"))
            .args(["--log-level", "debug", "--accept-timeout", "60"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.path().join("stderr")).unwrap());
        let child = c.spawn().unwrap();
        let s = Sup {
            child: Some(child),
            dir,
        };
        assert!(
            wait_until(Duration::from_secs(10), || s.socket().exists()),
            "the supervisor did not listen: {}",
            s.log()
        );
        s
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("s.sock")
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    fn log(&self) -> String {
        let a = fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        let b = fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        format!("{a}{b}")
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Wait for the supervisor to exit on its own; its exit code and report.
    fn finish(&mut self, timeout: Duration) -> (i32, Value) {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the supervisor did not exit: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let report = fs::read_to_string(self.dir.path().join("report.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        (status.code().unwrap_or(-1), report)
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A user-namespaced container whose root is a writable overlay over the
/// test image (mounted on the host, as the engine does) and whose mknod,
/// mount and setxattr calls go to `sup`.
fn userns_container(tag: &str, sup: &Sup) -> Container {
    let mut c = Container::new(tag);
    let b = c.bundle_path().to_path_buf();
    // The container's root (host 100000) must reach its rootfs.
    fs::set_permissions(&b, fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["upper", "work", "merged"] {
        fs::create_dir(b.join(d)).unwrap();
    }
    std::os::unix::fs::chown(b.join("upper"), Some(HOST_ID), Some(HOST_ID)).unwrap();
    let merged = b.join("merged");
    host(
        "mount",
        &[
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                rootfs().display(),
                b.join("upper").display(),
                b.join("work").display()
            ),
            &merged.to_string_lossy(),
        ],
    );
    let m = merged.clone();
    c.cleanups.push(Box::new(move || umount(&m)));
    c.config["root"] = json!({"path": merged.to_string_lossy(), "readonly": false});
    c.namespaces_mut().push(json!({"type": "user"}));
    c.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    c.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": HOST_ID, "size": 65536}]);
    let mounts: Vec<Value> = c.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] != "/sys/fs/cgroup")
        .cloned()
        .collect();
    c.config["mounts"] = json!(mounts);
    // podman's default capabilities: no CAP_MKNOD, no CAP_SYS_ADMIN.
    let caps = json!([
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETPCAP",
        "CAP_SETUID",
        "CAP_SYS_CHROOT"
    ]);
    for set in ["bounding", "effective", "permitted"] {
        c.config["process"]["capabilities"][set] = caps.clone();
    }
    c.config["process"]["capabilities"]["ambient"] = json!([]);
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": sup.socket().to_string_lossy(),
        "syscalls": [{
            "names": ["mknod", "mknodat", "mount", "setxattr", "lsetxattr", "fsetxattr"],
            "action": "SCMP_ACT_NOTIFY"
        }]
    });
    c
}

/// `sh -c SCRIPT` as the container's process.
fn script(c: &mut Container, s: &str) {
    c.args(&["sh", "-c", s]);
}

/// The JSON lines of a run, by their `syscall`/`path`/first key.
fn lines(o: &Out) -> Vec<Value> {
    json_lines(&o.stdout)
}

fn with_key<'a>(v: &'a [Value], key: &str) -> &'a Value {
    v.iter()
        .find(|x| x.get(key).is_some())
        .unwrap_or_else(|| panic!("no line with {key} in {v:#?}"))
}

fn find<'a>(v: &'a [Value], key: &str, val: &str) -> &'a Value {
    v.iter()
        .find(|x| x[key] == val)
        .unwrap_or_else(|| panic!("no line with {key}={val} in {v:#?}"))
}

#[test]
fn mknod_of_safe_devices_and_refusal_of_others() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("supmknod", &sup);
    script(
        &mut c,
        "barge-check syscall mknod /tmp/n c 1 3; barge-check stat /tmp/n; \
         echo hello > /tmp/n && head -c 16 /tmp/n | wc -c | sed 's/^/{\"read_bytes\":/;s/$/}/'; \
         barge-check syscall mknod /tmp/d b 8 0; \
         barge-check syscall mknod /tmp/fuse c 10 229; \
         mount -t tmpfs none /mnt/a && barge-check syscall mknod /mnt/a/wh c 0 0; barge-check stat /mnt/a/wh; \
         barge-check syscall mknod /tmp/fifo p 0 0; \
         mknod /tmp/z c 1 5 && barge-check stat /tmp/z; \
         barge-check syscall mknod /tmp/n c 1 3; \
         barge-check syscall mknod /etc/n c 1 3; \
         barge-check ids",
    );
    let o = c.run();
    o.ok();
    let v = lines(&o);
    let mknods: Vec<&Value> = v.iter().filter(|x| x["syscall"] == "mknod").collect();
    let errs: Vec<&str> = mknods
        .iter()
        .map(|x| x["errno_name"].as_str().unwrap_or("?"))
        .collect();
    // null; block 8:0; fuse; whiteout (on a tmpfs: overlayfs refuses
    // whiteouts to everyone); fifo; null again; in root-owned /etc.
    assert_eq!(
        errs,
        ["", "EPERM", "EPERM", "", "", "EEXIST", "EACCES"],
        "{o:#?}\n{}",
        sup.log()
    );
    let n = find(&v, "path", "/tmp/n");
    assert_eq!(
        (
            n["type"].as_str(),
            n["rdev_major"].as_u64(),
            n["rdev_minor"].as_u64()
        ),
        (Some("char"), Some(1), Some(3)),
        "{n}"
    );
    // Owned by the caller (container root) with its umask (022).
    assert_eq!(
        (n["uid"].as_u64(), n["gid"].as_u64()),
        (Some(0), Some(0)),
        "{n}"
    );
    assert_eq!(n["mode_octal"], "0644", "{n}");
    // It reads like /dev/null: writes vanish, reads are empty.
    assert_eq!(with_key(&v, "read_bytes")["read_bytes"], 0, "{o:#?}");
    let wh = find(&v, "path", "/mnt/a/wh");
    assert_eq!(
        (wh["type"].as_str(), wh["rdev_major"].as_u64()),
        (Some("char"), Some(0))
    );
    assert_eq!(find(&v, "path", "/tmp/z")["rdev_minor"], 5);
    // On the host the node is owned by the mapped root.
    let host_n = fs::metadata(c.bundle_path().join("upper/tmp/n")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(host_n.uid(), HOST_ID);
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{report:#}\n{}", sup.log());
    assert!(report["emulated"].as_u64().unwrap_or(0) >= 2, "{report:#}");
    assert!(report["refused"].as_u64().unwrap_or(0) >= 2, "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
    assert_eq!(report["sync_wake_up"], true, "{report:#}");
    // Each decision is logged at debug level.
    let log = sup.log();
    assert!(
        log.contains("reason=\"device not allowed\"")
            && log.contains("decision=\"emulate\" detail=mknod /tmp/n 1:3"),
        "{log}"
    );
}

#[test]
fn mount_tmpfs_proc_overlay_inside_only() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("supmount", &sup);
    script(
        &mut c,
        "mount -t tmpfs -o size=1m,mode=0700 none /mnt/a && echo hi > /mnt/a/f && barge-check stat /mnt/a; \
         barge-check syscall mount none /mnt/b ramfs; \
         barge-check syscall mount sysfs /mnt/c sysfs; \
         barge-check syscall mount /tmp /mnt/c none 4096; \
         barge-check syscall mount proc /mnt/b proc && barge-check ls /mnt/b; \
         barge-check stat /mnt/b/timer_list; barge-check stat /mnt/b/acpi; \
         mount -t tmpfs none /mnt/d && mkdir /mnt/d/u /mnt/d/w /mnt/d/m && \
         mount -t overlay overlay -o lowerdir=/etc,upperdir=/mnt/d/u,workdir=/mnt/d/w /mnt/d/m && \
         echo x > /mnt/d/m/new && barge-check stat /mnt/d/m/passwd && barge-check stat /mnt/d/u/new; \
         touch /tmp/ready; barge-check mounts; barge-check sleep 30",
    );
    let o = c.run_detached();
    o.ok();
    let pid = c.pid();
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let ready = wait_until(Duration::from_secs(20), || root.join("tmp/ready").exists());
    let out = c.stdout_of(c.last_call());
    assert!(ready, "{out}\n{}", sup.log());
    // Visible only there: not on the host.
    let host_mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let ctr_mounts = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    assert!(
        ctr_mounts.contains(" /mnt/a ") && ctr_mounts.contains(" - tmpfs "),
        "{ctr_mounts}"
    );
    assert!(
        !host_mounts
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|mp| mp.ends_with("/mnt/a"))),
        "{host_mounts}"
    );
    assert_eq!(fs::read_to_string(root.join("mnt/a/f")).unwrap(), "hi\n");
    c.kill("KILL");
    c.wait_status("stopped", Duration::from_secs(10));
    let v = lines(&Out {
        code: 0,
        stdout: out,
        stderr: String::new(),
        timed_out: false,
    });
    let a = find(&v, "path", "/mnt/a");
    // The tmpfs belongs to the caller (mode from its options, nosuid forced).
    assert_eq!(
        (a["uid"].as_u64(), a["mode_octal"].as_str()),
        (Some(0), Some("0700")),
        "{a}"
    );
    let mounts: Vec<&Value> = v.iter().filter(|x| x["syscall"] == "mount").collect();
    let errs: Vec<&str> = mounts
        .iter()
        .map(|x| x["errno_name"].as_str().unwrap_or("?"))
        .collect();
    // ramfs and sysfs: not allowed; a bind mount: the kernel refuses it
    // (no CAP_SYS_ADMIN); proc in the container's pid namespace: fine.
    assert_eq!(
        errs,
        ["EPERM", "EPERM", "EPERM", ""],
        "{v:#?}\n{}",
        sup.log()
    );
    let procs = find(&v, "path", "/mnt/b");
    let names: Vec<String> = procs["entries"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e.as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        names.iter().any(|n| n == "1") && !names.iter().any(|n| n == &pid.to_string()),
        "{procs}"
    );
    // Masked as the runtime masks the container's /proc.
    let kcore = find(&v, "path", "/mnt/b/timer_list");
    assert_eq!(
        (kcore["type"].as_str(), kcore["rdev_minor"].as_u64()),
        (Some("char"), Some(3)),
        "{kcore}"
    );
    let mounts_line = with_key(&v, "mounts")["mounts"].to_string();
    assert!(
        mounts_line.contains("\"mountpoint\":\"/mnt/b/acpi\""),
        "{mounts_line}"
    );
    assert_eq!(
        find(&v, "path", "/mnt/d/m/passwd")["type"],
        "file",
        "{v:#?}"
    );
    assert_eq!(find(&v, "path", "/mnt/d/u/new")["type"], "file", "{v:#?}");
    let all = with_key(&v, "mounts")["mounts"].clone();
    let a_mount = all
        .as_array()
        .and_then(|m| m.iter().find(|x| x["mountpoint"] == "/mnt/a").cloned())
        .unwrap_or(Value::Null);
    assert!(a_mount.to_string().contains("nosuid"), "{a_mount}");
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
}

#[test]
fn setxattr_trusted_overlay_opaque() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("supxattr", &sup);
    script(
        &mut c,
        "mkdir /tmp/o; barge-check syscall setxattr /tmp/o trusted.overlay.opaque y; \
         barge-check syscall getxattr /tmp/o trusted.overlay.opaque; \
         barge-check syscall setxattr /tmp/o trusted.other y; \
         barge-check syscall setxattr /tmp/o user.note y; \
         barge-check syscall setxattr /etc trusted.overlay.opaque y",
    );
    let o = c.run();
    o.ok();
    let v = lines(&o);
    let sets: Vec<&str> = v
        .iter()
        .filter(|x| x["syscall"] == "setxattr")
        .map(|x| x["errno_name"].as_str().unwrap_or("?"))
        .collect();
    // allowed; trusted.* not allowed: the kernel refuses it; user.*: the
    // kernel allows it; /etc is not the caller's to change.
    assert_eq!(sets, ["", "EPERM", "", "EACCES"], "{o:#?}\n{}", sup.log());
    // The caller cannot read trusted.* (that needs CAP_SYS_ADMIN); the host can.
    let g = find(&v, "syscall", "getxattr");
    assert_eq!(g["errno_name"], "ENODATA", "{g}");
    assert_eq!(
        host_xattr(
            &c.bundle_path().join("merged/tmp/o"),
            "trusted.overlay.opaque"
        )
        .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        host_xattr(&c.bundle_path().join("merged/tmp/o"), "trusted.other"),
        None
    );
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{report:#}");
}

/// An extended attribute as host root sees it.
fn host_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a writable buffer of the given length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| buf[..r as usize].to_vec())
}

#[test]
fn other_users_of_the_container_get_the_kernels_answer() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("supuser", &sup);
    c.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    script(
        &mut c,
        "barge-check syscall mknod /tmp/n c 1 3; barge-check syscall mount none /tmp tmpfs; \
         mkdir /tmp/o && barge-check syscall setxattr /tmp/o trusted.overlay.opaque y",
    );
    let o = c.run();
    o.ok();
    let errs: Vec<String> = lines(&o)
        .iter()
        .map(|x| x["errno_name"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(errs, ["EPERM", "EPERM", "EPERM"], "{o:#?}\n{}", sup.log());
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(
        (code, report["emulated"].as_u64()),
        (0, Some(0)),
        "{report:#}"
    );
    assert!(
        sup.log().contains("not root in its namespace"),
        "{}",
        sup.log()
    );
}

#[test]
fn tar_with_device_nodes_and_whiteouts_unpacks_rootless() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("suptar", &sup);
    // A layer made on the host: devices, a whiteout, a file.
    let src = c.bundle_path().join("layer");
    fs::create_dir_all(src.join("dev")).unwrap();
    fs::create_dir_all(src.join("etc")).unwrap();
    fs::write(src.join("etc/motd"), "layer\n").unwrap();
    for (name, maj, min) in [
        ("dev/null", "1", "3"),
        ("dev/zero", "1", "5"),
        ("dev/urandom", "1", "9"),
        ("gone", "0", "0"),
    ] {
        host("mknod", &[&src.join(name).to_string_lossy(), "c", maj, min]);
    }
    let tars = c.bundle_path().join("tars");
    fs::create_dir(&tars).unwrap();
    fs::set_permissions(&tars, fs::Permissions::from_mode(0o755)).unwrap();
    host(
        "tar",
        &[
            "-C",
            &src.to_string_lossy(),
            "-cf",
            &tars.join("layer.tar").to_string_lossy(),
            ".",
        ],
    );
    fs::set_permissions(tars.join("layer.tar"), fs::Permissions::from_mode(0o644)).unwrap();
    c.add_mount(json!({"destination": "/mnt/e", "type": "bind",
                       "source": tars.to_string_lossy(), "options": ["rbind", "ro"]}));
    script(
        &mut c,
        "mount -t tmpfs none /mnt/a && tar -xf /mnt/e/layer.tar -C /mnt/a && echo '{\"tar\":\"ok\"}'; \
         for f in dev/null dev/zero dev/urandom gone etc/motd; do barge-check stat /mnt/a/$f; done; \
         head -c 8 /mnt/a/dev/zero | wc -c | sed 's/^/{\"zero_bytes\":/;s/$/}/'",
    );
    let o = c.run();
    o.ok();
    let v = lines(&o);
    assert!(v.iter().any(|x| x["tar"] == "ok"), "{o:#?}\n{}", sup.log());
    for (p, maj, min) in [
        ("/mnt/a/dev/null", 1, 3),
        ("/mnt/a/dev/zero", 1, 5),
        ("/mnt/a/dev/urandom", 1, 9),
        ("/mnt/a/gone", 0, 0),
    ] {
        let s = find(&v, "path", p);
        assert_eq!(
            (
                s["type"].as_str(),
                s["rdev_major"].as_u64(),
                s["rdev_minor"].as_u64()
            ),
            (Some("char"), Some(maj), Some(min)),
            "{s}"
        );
    }
    assert_eq!(find(&v, "path", "/mnt/a/etc/motd")["type"], "file");
    assert_eq!(with_key(&v, "zero_bytes")["zero_bytes"], 8, "{o:#?}");
    let (code, _) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0);
}

#[test]
fn hostile_arguments_get_errors_and_the_supervisor_stays_clean() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let mut c = userns_container("suphostile", &sup);
    script(
        &mut c,
        "barge-check hostile /tmp; barge-check syscall mknod /tmp/after c 1 3",
    );
    let o = c.run();
    o.ok();
    let v = lines(&o);
    let h = &v[0];
    let want = json!({
        "mknod_null_path": "EFAULT",
        "mknod_bad_path": "EFAULT",
        "mknod_unterminated_path": "EFAULT",
        "mknod_path_too_long": "ENAMETOOLONG",
        "mknod_name_too_long": "ENAMETOOLONG",
        "mknodat_bad_dirfd": "EBADF",
        "mount_bad_type": "EFAULT",
        "mount_bad_target": "EFAULT",
        "mount_bad_data": "EFAULT",
        "mount_data_too_long": "EINVAL",
        "setxattr_bad_name": "EFAULT",
        "setxattr_bad_value": "EFAULT",
        "setxattr_huge_value": "E2BIG",
        "setxattr_bad_path": "EFAULT",
        "fsetxattr_bad_fd": "EBADF",
    });
    assert_eq!(h, &want, "{o:#?}\n{}", sup.log());
    // Still serving afterwards.
    assert_eq!(find(&v, "syscall", "mknod")["errno_name"], "", "{o:#?}");
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
    assert!(report["refused"].as_u64().unwrap_or(0) >= 14, "{report:#}");
}

#[test]
fn caller_killed_mid_call_and_exec_is_supervised() {
    need_root!();
    // Each emulated call takes 1.5 s, time to kill its caller.
    let mut sup = Sup::start(&["--worker-delay-ms", "1500"]);
    let mut c = userns_container("supkill", &sup);
    c.args(&["barge-check", "sleep", "60"]);
    c.run_detached().ok();
    // An exec'd process blocks in an emulated mknod; kill it meanwhile.
    let mut e = c.cmd();
    e.args([
        "exec",
        &c.id,
        "barge-check",
        "syscall",
        "mknod",
        "/tmp/k",
        "c",
        "1",
        "3",
    ]);
    let mut child = e
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log_has = |s: &str| sup.log().contains(s);
    assert!(
        wait_until(Duration::from_secs(20), || log_has("decision=\"emulate\"")),
        "{}",
        sup.log()
    );
    let victim = find_process(c.pid(), "/tmp/k").unwrap_or_else(|| {
        let ps = Command::new("ps")
            .args(["-eo", "pid,ppid,args"])
            .output()
            .unwrap();
        panic!("no exec'd process: {}", String::from_utf8_lossy(&ps.stdout))
    });
    // SAFETY: killing the container process the test started.
    unsafe { libc::kill(victim, libc::SIGKILL) };
    let _ = child.wait();
    assert!(
        wait_until(Duration::from_secs(10), || log_has("went away")),
        "{}",
        sup.log()
    );
    // Another exec is served (and waits for its own emulation).
    let o = c.exec(
        &[],
        &["barge-check", "syscall", "mknod", "/tmp/k2", "c", "1", "3"],
    );
    assert_eq!(o.json()["errno_name"], "", "{o:#?}\n{}", sup.log());
    c.kill("KILL");
    c.wait_status("stopped", Duration::from_secs(10));
    c.delete().ok();
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(code, 0, "{report:#}\n{}", sup.log());
    assert_eq!(report["gone"], 1, "{report:#}");
    assert_eq!(report["notify_fds"], 3, "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
}

/// A process under `init`'s pid whose cmdline contains `needle`.
fn find_process(init: i32, needle: &str) -> Option<i32> {
    let _ = init;
    for e in fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("barge-check syscall") && cmd.contains(needle) {
            return Some(pid);
        }
    }
    None
}

#[test]
fn a_killed_supervisor_fails_calls_instead_of_hanging() {
    need_root!();
    let sup = Sup::start(&[]);
    let mut c = userns_container("supdead", &sup);
    script(
        &mut c,
        "touch /tmp/started; barge-check syscall mknod /tmp/s c 1 3; \
         barge-check syscall mknod /tmp/s2 c 1 3; barge-check syscall mknod /tmp/p p 0 0",
    );
    // Stopped, the supervisor cannot answer: the first mknod blocks.
    let o = {
        c.create().ok();
        sup.signal(libc::SIGSTOP);
        let root = PathBuf::from(format!("/proc/{}/root", c.pid()));
        c.start().ok();
        assert!(wait_until(Duration::from_secs(20), || root
            .join("tmp/started")
            .exists()));
        std::thread::sleep(Duration::from_millis(500));
        sup.signal(libc::SIGKILL);
        c.wait_status("stopped", Duration::from_secs(20));
        c.stdout_of(c.last_call())
    };
    let v = json_lines(&o);
    let errs: Vec<&str> = v
        .iter()
        .map(|x| x["errno_name"].as_str().unwrap_or("?"))
        .collect();
    // The pending call and the next one fail with ENOSYS; a fifo too: the
    // filter has no listener any more.
    assert_eq!(errs, ["ENOSYS", "ENOSYS", "ENOSYS"], "{o}");
}

#[test]
fn a_slow_emulation_times_out_with_eio() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("supervisor.toml");
    fs::write(&conf, "[worker]\ntimeout_ms = 300\n").unwrap();
    let mut sup = Sup::start(&[
        "--worker-delay-ms",
        "5000",
        "--config",
        &conf.to_string_lossy(),
    ]);
    let mut c = userns_container("supslow", &sup);
    c.args(&[
        "barge-check",
        "syscall",
        "mknod",
        "/tmp/slow",
        "c",
        "1",
        "3",
    ]);
    let t = Instant::now();
    let o = c.run();
    assert_eq!(o.json()["errno_name"], "EIO", "{o:#?}\n{}", sup.log());
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    let (code, report) = sup.finish(Duration::from_secs(20));
    assert_eq!(
        (code, report["timed_out"].as_u64()),
        (0, Some(1)),
        "{report:#}"
    );
}

#[test]
fn racing_symlink_swaps_never_escape_the_container() {
    need_root!();
    let mut sup = Sup::start(&[]);
    let escape = tempfile::Builder::new()
        .prefix("barge-race-host-")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(escape.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = userns_container("suprace", &sup);
    let esc = escape.path().to_string_lossy().into_owned();
    script(
        &mut c,
        &format!("mkdir /tmp/race && barge-check race-mknod /tmp/race {esc} 300; ls /tmp/race/sub.dir | wc -l | sed 's/^/{{\"in_dir\":/;s/$/}}/'"),
    );
    let o = c.run();
    o.ok();
    let v = lines(&o);
    let r = &v[0];
    // Nothing reached the host directory the symlink names.
    let leaked: Vec<_> = fs::read_dir(escape.path()).unwrap().flatten().collect();
    assert!(
        leaked.is_empty(),
        "nodes escaped to the host: {leaked:?} {r}"
    );
    eprintln!("race: {r}");
    let created = r["created"].as_u64().unwrap_or(0);
    assert!(
        created > 0 && r["flips"].as_u64().unwrap_or(0) > 0,
        "the race did not run: {r}"
    );
    assert_eq!(
        with_key(&v, "in_dir")["in_dir"].as_u64(),
        Some(created),
        "{o:#?}"
    );
    let (code, report) = sup.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["errors"], json!([]), "{report:#}");
}

#[test]
fn barge_run_with_seccomp_intercept() {
    need_root!();
    let dir = tempfile::Builder::new()
        .prefix("bs")
        .tempdir_in("/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let root = dir.path().join("s");
    let runroot = dir.path().join("r");
    let barge = |args: &[&str]| -> Out {
        let mut c = Command::new(barge_bin());
        c.arg("--root")
            .arg(&root)
            .arg("--runroot")
            .arg(&runroot)
            .args(args)
            .stdin(Stdio::null());
        let o = run_cmd(c, Duration::from_secs(60));
        eprintln!("$ barge {args:?}\n[{}]\n{}{}", o.code, o.stdout, o.stderr);
        o
    };
    let mut imp = Command::new("sh");
    imp.arg("-c").arg(format!(
        "tar -C '{}' -c . | '{}' --root '{}' --runroot '{}' import - localhost/busybox",
        rootfs().display(),
        barge_bin().display(),
        root.display(),
        runroot.display()
    ));
    assert!(run_cmd(imp, Duration::from_secs(60)).success());
    let o = barge(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--uidmap",
        "0:100000:65536",
        "--security-opt",
        "seccomp-intercept=mknod,mount",
        "localhost/busybox",
        "sh",
        "-c",
        "barge-check ids; mknod /tmp/n c 1 3 && barge-check stat /tmp/n; \
         barge-check syscall mknod /tmp/b b 8 0; \
         mount -t tmpfs none /mnt && barge-check stat /mnt; \
         barge-check syscall mount none /mnt ramfs",
    ]);
    assert_eq!(o.code, 0, "{o:#?}");
    let v = json_lines(&o.stdout);
    assert_eq!(v[0]["uid_map"], json!([[0, 100_000, 65536]]), "{o:#?}");
    let n = find(&v, "path", "/tmp/n");
    assert_eq!(
        (n["type"].as_str(), n["rdev_minor"].as_u64()),
        (Some("char"), Some(3)),
        "{n}"
    );
    let errs: Vec<&str> = v
        .iter()
        .filter(|x| x["syscall"].is_string())
        .map(|x| x["errno_name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(errs, ["EPERM", "EPERM"], "{o:#?}");
    assert_eq!(find(&v, "path", "/mnt")["uid"], 0, "{o:#?}");
    // Bad values are refused up front.
    let bad = barge(&[
        "create",
        "--security-opt",
        "seccomp-intercept=open",
        "localhost/busybox",
        "true",
    ]);
    assert_eq!(bad.code, 125, "{bad:#?}");
    assert!(bad.stderr.contains("seccomp-intercept"), "{bad:#?}");
    let bad = barge(&["create", "--uidmap", "0:x:1", "localhost/busybox", "true"]);
    assert_eq!(bad.code, 125, "{bad:#?}");
    // No supervisor or container is left behind.
    barge(&["rm", "-fa"]);
    let left = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !left.contains(&dir.path().to_string_lossy().into_owned()),
        "{left}"
    );
    assert!(
        !Path::new(&runroot).join("containers").exists()
            || fs::read_dir(runroot.join("containers"))
                .unwrap()
                .next()
                .is_none()
    );
    let sups = Command::new("pgrep")
        .args([
            "-f",
            &format!("barge-supervisor --socket {}", runroot.display()),
        ])
        .output()
        .unwrap();
    assert!(
        sups.stdout.is_empty(),
        "supervisor left: {}",
        String::from_utf8_lossy(&sups.stdout)
    );
    let _ = barge(&["system", "reset", "-f"]);
}
