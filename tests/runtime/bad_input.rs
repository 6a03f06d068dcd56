//! Bad input exits non-zero with a clear message and leaves nothing behind
//! (the leak checker runs when each Container drops).

use barge_integration::{json, need_root, Container};

fn stderr_says(o: &barge_integration::Out, words: &[&str]) {
    let msg = format!("{}{}", o.stderr, o.stdout).to_lowercase();
    assert!(!msg.trim().is_empty(), "no error message: {o:#?}");
    assert!(
        words.iter().any(|w| msg.contains(&w.to_lowercase())),
        "message should mention one of {words:?}: {o:#?}"
    );
}

fn assert_gone(c: &Container) {
    assert!(
        !c.rt(&["state", &c.id]).success(),
        "container must not exist"
    );
}

#[test]
fn malformed_json_config() {
    need_root!();
    let mut c = Container::new("badjson");
    std::fs::write(
        c.bundle_path().join("config.json"),
        b"{\"ociVersion\": \"1.0.2\", \"process\": {",
    )
    .unwrap();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt_files(&["create", "--bundle", &b, &id]);
    o.fails();
    stderr_says(&o, &["json", "config", "unexpected end", "eof"]);
    assert_gone(&c);
}

#[test]
fn schema_invalid_config() {
    need_root!();
    let mut c = Container::new("badschema");
    c.config["process"] = json!(5);
    let o = c.create();
    o.fails();
    stderr_says(&o, &["process", "json", "config", "invalid"]);
    assert_gone(&c);
}

#[test]
fn missing_config() {
    need_root!();
    let mut c = Container::new("nocfg");
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt_files(&["create", "--bundle", &b, &id]);
    o.fails();
    stderr_says(&o, &["config.json", "no such file"]);
    assert_gone(&c);
}

#[test]
fn missing_rootfs() {
    need_root!();
    let mut c = Container::new("norootfs");
    c.config["root"]["path"] = json!("/nonexistent/barge-rootfs");
    let o = c.create();
    o.fails();
    stderr_says(&o, &["rootfs", "root", "no such file", "nonexistent"]);
    assert_gone(&c);
}

#[test]
fn unknown_namespace_type() {
    need_root!();
    let mut c = Container::new("badns");
    c.namespaces_mut().push(json!({"type": "bogus"}));
    let o = c.create();
    o.fails();
    stderr_says(&o, &["bogus", "namespace"]);
    assert_gone(&c);
}

#[test]
fn duplicate_container_id() {
    need_root!();
    let mut c = Container::new("dup");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let pid = c.pid();
    let o = c.create();
    o.fails();
    stderr_says(&o, &["exist", "already", "in use"]);
    // The first container is untouched.
    assert_eq!(c.status(), "running");
    assert_eq!(c.pid(), pid);
    c.delete_force().ok();
}

#[test]
fn invalid_container_ids() {
    need_root!();
    for bad in ["../x", "a b", "", "a/b", "."] {
        let mut c = Container::new("badid");
        c.write_config();
        let b = c.bundle_path().to_string_lossy().into_owned();
        let o = c.rt_files(&["create", "--bundle", &b, bad]);
        o.fails();
        if !bad.is_empty() {
            stderr_says(&o, &["id", "invalid"]);
        }
        // Nothing was created anywhere for the bad id.
        assert!(
            std::fs::read_dir(c.state_root.path())
                .map(|d| d.count())
                .unwrap_or(0)
                == 0,
            "state for {bad:?}"
        );
        assert!(!std::path::Path::new("/x").exists() || bad != "../x");
    }
}

#[test]
fn unknown_signal_name() {
    need_root!();
    let mut c = Container::new("badsig");
    c.args(&["barge-check", "sleep", "600"]);
    c.run_detached().ok();
    let o = c.kill("SIGBOGUS");
    o.fails();
    stderr_says(&o, &["signal", "bogus"]);
    let o = c.kill("999");
    o.fails();
    assert_eq!(c.status(), "running");
    c.delete_force().ok();
}

#[test]
fn missing_container_operations_fail() {
    need_root!();
    let c = Container::new("ghost");
    for args in [
        vec!["start", c.id.as_str()],
        vec!["state", c.id.as_str()],
        vec!["kill", c.id.as_str(), "KILL"],
        vec!["delete", c.id.as_str()],
        vec!["pause", c.id.as_str()],
    ] {
        let o = c.rt(&args);
        o.fails();
        stderr_says(&o, &["not exist", "not found", "no such"]);
    }
}

#[test]
fn bad_mount_destination_fails_cleanly() {
    need_root!();
    let mut c = Container::new("badmnt");
    c.add_mount(json!({"destination": "relative/path", "type": "tmpfs", "source": "tmpfs"}));
    c.add_mount(json!({"destination": "/mnt/a", "type": "bind", "source": "/nonexistent/src", "options": ["bind"]}));
    let o = c.create();
    o.fails();
    assert_gone(&c);
}

#[test]
fn missing_executable_names_the_failing_step() {
    need_root!();
    let mut c = Container::new("noexe");
    c.args(&["/nonexistent-binary"]);
    let o = c.run();
    o.fails();
    stderr_says(&o, &["/nonexistent-binary"]);
    assert_gone(&c);
    let mut c = Container::new("noexe2");
    c.args(&["/nonexistent-binary"]);
    let o = c.create();
    o.fails();
    stderr_says(&o, &["/nonexistent-binary"]);
    assert_gone(&c);
}

#[test]
fn cwd_is_a_file_fails() {
    need_root!();
    let mut c = Container::new("cwdfile");
    c.args(&["barge-check", "cwd"]);
    c.config["process"]["cwd"] = json!("/mnt/ro/file");
    let o = c.run();
    o.fails();
    stderr_says(&o, &["cwd", "/mnt/ro/file", "not a directory", "chdir"]);
}

#[test]
fn errors_go_to_log_file_as_json() {
    need_root!();
    let mut c = Container::new("logjson");
    c.config["process"] = json!(5);
    c.write_config();
    let log = c.bundle_path().join("runtime.log");
    let l = log.to_string_lossy().into_owned();
    let b = c.bundle_path().to_string_lossy().into_owned();
    let id = c.id.clone();
    let o = c.rt_files(&[
        "--log",
        &l,
        "--log-format",
        "json",
        "create",
        "--bundle",
        &b,
        &id,
    ]);
    o.fails();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let lines = barge_integration::json_lines(&text);
    assert!(
        lines
            .iter()
            .any(|v| v["level"] == "error" && v["msg"].is_string()),
        "--log-format json writes {{\"level\":\"error\",\"msg\":..}} lines: {text:?}"
    );
    assert_gone(&c);
}
