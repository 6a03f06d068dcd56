//! Terminal via --console-socket: the pty master arrives over SCM_RIGHTS.

use barge_integration::{json, need_root, parse_last_json, read_fd_all, recv_fd, Container};
use std::os::unix::net::UnixListener;
use std::time::Duration;

#[test]
fn console_socket_receives_pty_master() {
    need_root!();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut c = Container::new("tty");
    c.args(&["barge-check", "tty"]);
    c.config["process"]["terminal"] = json!(true);
    c.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    let receiver = std::thread::spawn(move || -> Result<String, String> {
        let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (fd, _) = recv_fd(&conn).map_err(|e| e.to_string())?;
        Ok(read_fd_all(fd, Duration::from_secs(20)))
    });
    c.write_config();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let s = sock.to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt_files(&[
        "run",
        "--detach",
        "--console-socket",
        &s,
        "--bundle",
        &b,
        &id,
    ]);
    o.ok();
    let out = receiver
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("console: {e}; {o:#?}"));
    let v = parse_last_json(&out.replace('\r', ""))
        .unwrap_or_else(|| panic!("no JSON from the pty: {out:?}"));
    for fd in ["fd0", "fd1", "fd2"] {
        assert_eq!(v[fd]["isatty"], true, "{v}");
    }
    let name = v["fd0"]["ttyname"].as_str().unwrap_or("");
    assert!(
        name == "/dev/console" || name.starts_with("/dev/pts/"),
        "{v}"
    );
    assert_eq!(v["winsize"], json!({"rows": 33, "cols": 111}), "{v}");
    c.wait_status("stopped", Duration::from_secs(10));
    c.delete().ok();
}

#[test]
fn terminal_without_console_socket_fails_detached() {
    need_root!();
    let mut c = Container::new("ttynosock");
    c.args(&["barge-check", "tty"]);
    c.config["process"]["terminal"] = json!(true);
    let o = c.run_detached();
    o.fails();
}

#[test]
fn exec_tty_through_console_socket() {
    need_root!();
    let mut c = Container::new("exectty");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || -> Result<String, String> {
        let (conn, _) = listener.accept().map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (fd, _) = recv_fd(&conn).map_err(|e| e.to_string())?;
        Ok(read_fd_all(fd, Duration::from_secs(20)))
    });
    let s = sock.to_string_lossy().into_owned();
    let o = c.exec(
        &["--tty", "--detach", "--console-socket", &s],
        &["barge-check", "tty"],
    );
    o.ok();
    let out = receiver
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("console: {e}; {o:#?}"));
    let v = parse_last_json(&out.replace('\r', ""))
        .unwrap_or_else(|| panic!("no JSON from the pty: {out:?}"));
    for fd in ["fd0", "fd1", "fd2"] {
        assert_eq!(v[fd]["isatty"], true, "{v}");
    }
    c.delete_force().ok();
}
