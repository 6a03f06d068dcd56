//! Mounts: tmpfs options, bind/rbind, ro, propagation, readonly rootfs,
//! masked and readonly paths.

use barge_integration::{
    check, host, json, mount_bind, need_root, runc_deviation, umount, Container, Value,
};

fn mount_at<'a>(mounts: &'a Value, dst: &str) -> Option<&'a Value> {
    // The last mount on a mountpoint is the visible one.
    mounts["mounts"]
        .as_array()?
        .iter()
        .rev()
        .find(|m| m["mountpoint"] == dst)
}

fn has_opt(m: &Value, key: &str, o: &str) -> bool {
    m[key].as_array().is_some_and(|a| a.iter().any(|x| x == o))
}

#[test]
fn tmpfs_with_size_and_mode() {
    need_root!();
    let mut c = Container::new("tmpfs");
    c.args(&["barge-check", "mounts"]);
    c.add_mount(
        json!({"destination": "/mnt/a", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=0710"]}),
    );
    let o = c.run();
    o.ok();
    let v = o.json();
    let m = mount_at(&v, "/mnt/a").unwrap_or_else(|| panic!("no /mnt/a mount: {v}"));
    assert_eq!(m["fstype"], "tmpfs");
    assert!(has_opt(m, "super_options", "size=1024k"), "{m}");
    assert!(has_opt(m, "super_options", "mode=710"), "{m}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(has_opt(m, "options", o), "{o} missing: {m}");
    }
    // Note: runc then chmods the tmpfs root back to the mountpoint's mode
    // (0755 here); the superblock option above is what the config asks for.
}

#[test]
fn bind_ro_and_rw() {
    need_root!();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("hello"), "hi").unwrap();
    let s = src.path().to_string_lossy().into_owned();
    let mounts = |c: &mut Container| {
        c.add_mount(json!({"destination": "/mnt/a", "type": "bind", "source": s, "options": ["bind", "ro"]}));
        c.add_mount(json!({"destination": "/mnt/b", "type": "none", "source": s, "options": ["rbind", "rw"]}));
    };
    let o = check("bindro", &["read", "/mnt/a/hello"], mounts);
    o.ok();
    assert_eq!(o.json()["content"], "hi");
    let o = check("bindro2", &["write", "/mnt/a/new", "x"], mounts);
    o.fails();
    assert_eq!(o.json()["errno_name"], "EROFS", "{o:#?}");
    let o = check("bindrw", &["write", "/mnt/b/new", "x"], mounts);
    o.ok();
    assert_eq!(
        std::fs::read_to_string(src.path().join("new")).unwrap(),
        "x"
    );
}

#[test]
fn rbind_includes_submounts_bind_does_not() {
    need_root!();
    let src = tempfile::tempdir().unwrap();
    let sub = src.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    host(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "bt-rbind-sub",
            &sub.to_string_lossy(),
        ],
    );
    std::fs::write(sub.join("inner"), "submount").unwrap();
    let s = src.path().to_string_lossy().into_owned();
    let mut c = Container::new("rbind");
    let subc = sub.clone();
    c.cleanups.push(Box::new(move || umount(&subc)));
    c.args(&["barge-check", "mounts"]);
    c.add_mount(
        json!({"destination": "/mnt/a", "type": "bind", "source": s, "options": ["rbind"]}),
    );
    c.add_mount(json!({"destination": "/mnt/b", "type": "bind", "source": s, "options": ["bind"]}));
    let o = c.run();
    o.ok();
    let v = o.json();
    assert!(
        mount_at(&v, "/mnt/a/sub").is_some_and(|m| m["fstype"] == "tmpfs"),
        "rbind lacks submount: {v}"
    );
    assert!(
        mount_at(&v, "/mnt/b/sub").is_none(),
        "plain bind must not carry submounts: {v}"
    );
}

#[test]
fn propagation_modes_in_mountinfo() {
    need_root!();
    // A shared host mount as the source, so that slave/shared are observable.
    let src = tempfile::tempdir().unwrap();
    mount_bind(src.path(), src.path());
    host("mount", &["--make-shared", &src.path().to_string_lossy()]);
    let s = src.path().to_string_lossy().into_owned();
    let mut c = Container::new("prop");
    let sp = src.path().to_path_buf();
    c.cleanups.push(Box::new(move || umount(&sp)));
    c.args(&["barge-check", "mounts"]);
    c.add_mount(json!({"destination": "/mnt/a", "type": "bind", "source": s, "options": ["rbind", "rshared"]}));
    c.add_mount(json!({"destination": "/mnt/b", "type": "bind", "source": s, "options": ["rbind", "rslave"]}));
    c.add_mount(json!({"destination": "/mnt/c", "type": "bind", "source": s, "options": ["rbind", "rprivate"]}));
    c.add_mount(
        json!({"destination": "/mnt/d", "type": "tmpfs", "source": "tmpfs", "options": ["shared"]}),
    );
    c.add_mount(json!({"destination": "/mnt/e", "type": "tmpfs", "source": "tmpfs", "options": ["unbindable"]}));
    let o = c.run();
    o.ok();
    let v = o.json();
    let opt = |d: &str| -> Vec<String> {
        mount_at(&v, d).unwrap_or_else(|| panic!("no mount at {d}: {v}"))["optional"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let a = opt("/mnt/a");
    assert!(a.iter().any(|x| x.starts_with("shared:")), "rshared: {a:?}");
    let b = opt("/mnt/b");
    assert!(
        b.iter().any(|x| x.starts_with("master:")) && !b.iter().any(|x| x.starts_with("shared:")),
        "rslave: {b:?}"
    );
    let cc = opt("/mnt/c");
    assert!(cc.is_empty(), "rprivate: {cc:?}");
    let d = opt("/mnt/d");
    assert!(
        d.iter().any(|x| x.starts_with("shared:")),
        "shared tmpfs: {d:?}"
    );
    let e = opt("/mnt/e");
    assert!(e.iter().any(|x| x == "unbindable"), "unbindable: {e:?}");
}

#[test]
fn readonly_rootfs_is_erofs() {
    need_root!();
    let o = check("rootro", &["write", "/etc/newfile", "x"], |_| {});
    o.fails();
    assert_eq!(o.json()["errno_name"], "EROFS", "{o:#?}");
    let o = check("rootro2", &["mounts"], |_| {});
    let v = o.json();
    let root = mount_at(&v, "/").expect("a / mount");
    assert!(has_opt(root, "options", "ro"), "{root}");
}

#[test]
fn masked_paths() {
    need_root!();
    let edit = |c: &mut Container| {
        c.config["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/mnt/masked"));
    };
    // A masked file reads empty (bind of /dev/null); take one of the
    // default masked files this kernel has.
    let file = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("a default masked /proc file exists");
    let o = check("maskf", &["read", file], edit);
    o.ok();
    assert_eq!(o.json()["len"], 0, "{o:#?}");
    // A masked directory is an empty (read-only) tmpfs.
    let o = check("maskd", &["ls", "/mnt/masked"], edit);
    o.ok();
    assert_eq!(o.json()["entries"], json!([]), "{o:#?}");
    let o = check("maskm", &["mounts"], edit);
    let v = o.json();
    let m = mount_at(&v, "/mnt/masked").expect("a mount on the masked dir");
    assert_eq!(m["fstype"], "tmpfs", "{m}");
    assert!(has_opt(m, "options", "ro"), "{m}");
    // A masked path that does not exist is not an error.
    let o = check("maskn", &["pid"], |c| {
        c.config["linux"]["maskedPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/proc/does-not-exist"));
    });
    o.ok();
}

#[test]
fn readonly_paths() {
    need_root!();
    let edit = |c: &mut Container| {
        c.add_mount(json!({"destination": "/mnt/rw", "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}));
        c.config["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/mnt/rw"));
    };
    let o = check("rop", &["write", "/mnt/rw/x", "1"], edit);
    o.fails();
    assert_eq!(o.json()["errno_name"], "EROFS", "{o:#?}");
    // /proc/sys is read-only in the default config.
    let o = check("rop2", &["write", "/proc/sys/kernel/domainname", "x"], edit);
    o.fails();
    assert_eq!(o.json()["errno_name"], "EROFS", "{o:#?}");
}

#[test]
fn writable_rootfs_when_not_readonly_tmpfs_tmp() {
    need_root!();
    // /tmp as a tmpfs on a read-only rootfs is writable.
    let o = check("tmpw", &["write", "/tmp/x", "1"], |c| {
        c.add_mount(json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]}));
    });
    o.ok();
}

#[test]
fn idmapped_bind_mount() {
    need_root!();
    // Host file owned by 0; container user namespace maps 0 -> 100000.
    // Without an idmapped mount it shows as the overflow uid 65534; with
    // the mount's uid/gid mappings it shows as 0.
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("f"), "x").unwrap();
    let s = src.path().to_string_lossy().into_owned();
    let map = json!([{"containerID": 0, "hostID": 100_000, "size": 65536}]);
    let o = check("idmap", &["stat", "/mnt/a/f"], |c| {
        c.namespaces_mut().push(json!({"type": "user"}));
        c.config["linux"]["uidMappings"] = map.clone();
        c.config["linux"]["gidMappings"] = map.clone();
        let mounts: Vec<_> = c.config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] != "/sys/fs/cgroup")
            .cloned()
            .collect();
        c.config["mounts"] = json!(mounts);
        c.add_mount(json!({"destination": "/mnt/a", "type": "bind", "source": s,
            "options": ["rbind", "idmap"], "uidMappings": map.clone(), "gidMappings": map.clone()}));
    });
    if (!o.success() || o.json()["uid"] != 0)
        && runc_deviation("runc 1.1 does not support idmapped mounts")
    {
        return;
    }
    o.ok();
    let v = o.json();
    assert_eq!(
        (v["uid"].as_u64(), v["gid"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
}
