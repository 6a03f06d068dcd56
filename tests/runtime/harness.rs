//! The harness's own checks: the leak checker really detects leaks.

use barge_integration::{need_root, Container};

#[test]
fn leak_checker_detects_cgroup_state_and_mount() {
    need_root!();
    let c = Container::new("leakself");
    assert!(c.leaks().is_empty(), "{:?}", c.leaks());
    // A cgroup named after the id in some hierarchy.
    let hier = [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).join("cgroup.procs").exists())
    .expect("a cgroup hierarchy");
    let cg = std::path::Path::new(hier).join(format!("x-{}-y", c.id));
    std::fs::create_dir(&cg).unwrap();
    // A state entry.
    std::fs::create_dir(c.state_root.path().join(&c.id)).unwrap();
    // A mount mentioning the bundle.
    let m = c.bundle_path().join("m");
    std::fs::create_dir(&m).unwrap();
    barge_integration::host("mount", &["-t", "tmpfs", "tmpfs", &m.to_string_lossy()]);
    let leaks = c.leaks();
    barge_integration::umount(&m);
    std::fs::remove_dir(&cg).unwrap();
    std::fs::remove_dir(c.state_root.path().join(&c.id)).unwrap();
    assert_eq!(leaks.len(), 3, "{leaks:#?}");
    assert!(leaks.iter().any(|l| l.starts_with("cgroup ")));
    assert!(leaks.iter().any(|l| l.starts_with("state ")));
    assert!(leaks.iter().any(|l| l.starts_with("mount ")));
    assert!(c.leaks().is_empty());
}
