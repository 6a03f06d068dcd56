//! Seccomp: errno actions, default-allow with a denylist, default-errno with
//! an allowlist, and SCMP_ACT_NOTIFY with listenerPath.

use barge_integration::{check, json, need_root, recv_fd, Container};
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn mkdir_denied_with_errno_ret() {
    need_root!();
    let edit = |c: &mut Container| {
        c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
        c.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        });
    };
    let o = check("scmkdir", &["syscall", "mkdir", "/tmp/x"], edit);
    o.ok();
    let v = o.json();
    assert_eq!(
        (v["ret"].as_i64(), v["errno_name"].as_str()),
        (Some(-1), Some("EPERM")),
        "{v}"
    );
    let o = check("scchmod", &["syscall", "chmod", "/tmp", "0700"], edit);
    assert_eq!(o.json()["errno_name"], "ENOSYS", "{o:#?}");
    // Others are allowed; the filter is visible in status.
    let o = check("scok", &["syscall", "getcwd"], edit);
    assert_eq!(
        o.json()["ret"].as_i64().map(|r| r > 0),
        Some(true),
        "{o:#?}"
    );
    let o = check("scnnp", &["nnp"], edit);
    let v = o.json();
    assert_eq!(v["Seccomp"], 2, "{v}");
    assert!(v["Seccomp_filters"].as_i64().unwrap_or(0) >= 1, "{v}");
}

#[test]
fn default_allow_with_denylist_and_args() {
    need_root!();
    // Deny only unshare(CLONE_NEWUSER) (argument match) and sethostname.
    let edit = |c: &mut Container| {
        c.config["process"]["capabilities"]["bounding"] =
            json!(["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]);
        c.config["process"]["capabilities"]["effective"] =
            json!(["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]);
        c.config["process"]["capabilities"]["permitted"] =
            json!(["CAP_SYS_ADMIN", "CAP_SYS_CHROOT"]);
        c.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["unshare"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 268_435_456u64, "valueTwo": 268_435_456u64, "op": "SCMP_CMP_MASKED_EQ"}]}
            ]
        });
    };
    let o = check("scdeny1", &["syscall", "sethostname", "x"], edit);
    assert_eq!(o.json()["errno_name"], "EACCES", "{o:#?}");
    let o = check("scdeny2", &["syscall", "unshare", "user"], edit);
    assert_eq!(
        o.json()["errno_name"],
        "EPERM",
        "default errno is EPERM: {o:#?}"
    );
    let o = check("scdeny3", &["syscall", "unshare", "uts"], edit);
    assert_eq!(
        o.json()["ret"],
        0,
        "unshare(CLONE_NEWUTS) is allowed: {o:#?}"
    );
    let o = check("scdeny4", &["syscall", "chroot", "/"], edit);
    assert_eq!(o.json()["ret"], 0, "{o:#?}");
}

#[test]
fn default_errno_with_allowlist_kills_unknown() {
    need_root!();
    // An allowlist too small to even start barge-check: the container fails
    // (the process gets EPERM for everything else) but nothing leaks.
    let o = check("scallow", &["pid"], |c| {
        c.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_KILL_PROCESS",
            "syscalls": [{"names": ["exit_group", "exit", "write"], "action": "SCMP_ACT_ALLOW"}]
        });
    });
    o.fails();
}

#[test]
fn notify_listener_receives_fd() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("seccomp.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut c = Container::new("scnotify");
    c.args(&["barge-check", "syscall", "mkdir", "/tmp/notified"]);
    c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}));
    c.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock.to_string_lossy(),
        "listenerMetadata": "barge-test-metadata",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
    });
    // Answer in a thread: the container blocks in mkdir until we reply.
    let agent = std::thread::spawn(move || -> Result<(String, i32), String> {
        listener.set_nonblocking(false).map_err(|e| e.to_string())?;
        let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (fd, data) = recv_fd(&conn).map_err(|e| e.to_string())?;
        let state = String::from_utf8_lossy(&data).into_owned();
        // struct seccomp_notif (80 bytes) / seccomp_notif_resp (24 bytes).
        const RECV: libc::c_ulong = 0xc050_2100;
        const SEND: libc::c_ulong = 0xc018_2101;
        let mut req = [0u8; 80];
        // SAFETY: req is the size the ioctl expects; fd is the notify fd.
        let r = unsafe { libc::ioctl(fd, RECV, req.as_mut_ptr()) };
        if r != 0 {
            return Err(format!("NOTIF_RECV: {}", std::io::Error::last_os_error()));
        }
        let nr = i32::from_ne_bytes(req[16..20].try_into().unwrap());
        let mut resp = [0u8; 24];
        resp[0..8].copy_from_slice(&req[0..8]); // id
        resp[8..16].copy_from_slice(&0i64.to_ne_bytes()); // val
        resp[16..20].copy_from_slice(&(-libc::EDQUOT).to_ne_bytes()); // error
                                                                      // SAFETY: resp is a valid seccomp_notif_resp.
        let r = unsafe { libc::ioctl(fd, SEND, resp.as_mut_ptr()) };
        // SAFETY: we own fd.
        unsafe { libc::close(fd) };
        if r != 0 {
            return Err(format!("NOTIF_SEND: {}", std::io::Error::last_os_error()));
        }
        Ok((state, nr))
    });
    let o = c.run();
    let res = agent.join().unwrap();
    let (state, nr) = res.unwrap_or_else(|e| panic!("agent: {e}; run: {o:#?}"));
    o.ok();
    assert_eq!(nr as i64, libc::SYS_mkdir, "notified syscall");
    let v = o.json();
    assert_eq!(
        v["errno"],
        libc::EDQUOT,
        "the agent's answer reaches the container: {v}"
    );
    // The runtime sends the container process state (OCI "containerProcessState").
    let st: serde_json::Value =
        serde_json::from_str(&state).unwrap_or_else(|e| panic!("{e}: {state}"));
    assert_eq!(st["metadata"], "barge-test-metadata", "{st}");
    assert_eq!(
        st["state"]["id"],
        serde_json::Value::from(c.id.clone()),
        "{st}"
    );
    assert!(
        st["fds"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "seccompFd")),
        "{st}"
    );
}
