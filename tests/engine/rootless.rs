//! Isolation between root and a rootless user, driven by the root test
//! process with the unprivileged user directly (`BARGE_TEST_ROOTLESS`'s
//! user, else `barge-rootless` from scripts/install-deps.sh): a root-only
//! host file bound into the user's container stays unreadable; neither
//! sees the other's containers or images; the user cannot use root's
//! store; a user without a `/etc/subuid` entry gets an error naming the
//! user and the file.
//!
//! The user's commands use its default storage below a fresh
//! `XDG_DATA_HOME` (other sessions on the host use the user's real home
//! with other builds) and their own runtime directory
//! ([`RootlessUser`]); root's use root's defaults
//! (`/var/lib/barge/storage`, `/run/barge`). Containers run with
//! `--network none`: isolation, not networking, is tested here. Last, a
//! check that the [`crate::Env`] leak checker sees a running container.

use crate::{need_root, unique, IMG, TIMEOUT};
use barge_integration::{barge_bin, rootfs, run_cmd, Out, RootlessUser};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The rootless user, or `None` (reported) when it does not exist.
fn test_user() -> Option<RootlessUser> {
    if let Some(u) = crate::rootless() {
        return Some(u.clone());
    }
    match RootlessUser::lookup("barge-rootless") {
        Ok(u) => Some(u),
        Err(e) => {
            eprintln!("SKIP: {e} (scripts/install-deps.sh creates barge-rootless)");
            None
        }
    }
}

/// The user with its own `XDG_DATA_HOME` (its default store below).
struct UserSide {
    user: RootlessUser,
    data: tempfile::TempDir,
}

impl UserSide {
    fn new(user: RootlessUser) -> Self {
        let data = tempfile::Builder::new()
            .prefix("brl-data")
            .tempdir_in("/tmp")
            .expect("tempdir");
        user.chown(data.path());
        Self { user, data }
    }

    /// `barge ARGS` as the user with default paths.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.user.command_with(
            &barge_bin(),
            &[format!("XDG_DATA_HOME={}", self.data.path().display())],
        );
        c.args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Out {
        let o = run_cmd(self.cmd(args), TIMEOUT);
        eprintln!("$ [{}] barge {}\n{o:?}", self.user.name, args.join(" "));
        o
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(o.success(), "as {}: barge {args:?}: {o:#?}", self.user.name);
        o.stdout
    }

    /// Imports the test image as `tag` into the user's default store.
    fn import(&self, tag: &str) {
        let o = import(self.cmd(&["import", "-", tag]));
        assert!(o.success(), "import as {}: {o:#?}", self.user.name);
    }

    /// Mounts under the user's data directory left in its namespace.
    fn mounts(&self) -> Vec<String> {
        let dir = self.data.path().to_string_lossy().into_owned();
        self.user
            .mountinfo()
            .lines()
            .filter(|l| l.contains(&dir))
            .map(str::to_string)
            .collect()
    }
}

/// `barge ARGS` as root with default paths.
fn root_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(barge_bin());
    c.args(args).stdin(Stdio::null());
    c
}

fn root_run(args: &[&str]) -> Out {
    let o = run_cmd(root_cmd(args), TIMEOUT);
    eprintln!("$ [root] barge {}\n{o:?}", args.join(" "));
    o
}

/// Runs `barge import - TAG` (`cmd`) with the test image's tar on stdin.
fn import(mut cmd: Command) -> Out {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(rootfs())
        .args(["-c", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tar");
    cmd.stdin(tar.stdout.take().expect("tar stdout"));
    let o = run_cmd(cmd, TIMEOUT);
    let _ = tar.wait();
    o
}

/// Runs `f` on drop (cleanup that must happen when an assertion fails).
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn root_only_file_is_unreadable_in_a_rootless_container() {
    need_root!();
    let Some(user) = test_user() else { return };
    let side = UserSide::new(user);
    side.import(IMG);
    // A host file only root may read, beside one anybody may.
    let dir = tempfile::Builder::new()
        .prefix("brl-secret")
        .tempdir_in("/tmp")
        .expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = dir.path().join("secret");
    fs::write(&secret, "root-only-content\n").expect("write");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).expect("chmod");
    let public = dir.path().join("public");
    fs::write(&public, "public-content\n").expect("write");
    fs::set_permissions(&public, fs::Permissions::from_mode(0o644)).expect("chmod");

    // The bind mount works: the readable file is read.
    let v = format!("{}:/public", public.display());
    let out = side.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &v,
        IMG,
        "cat",
        "/public",
    ]);
    assert_eq!(out, "public-content\n");
    // The container's root is the user on the host: the secret stays
    // closed, read-only or not, whatever its root tries.
    for v in [
        format!("{}:/secret", secret.display()),
        format!("{}:/secret:ro", secret.display()),
    ] {
        let o = side.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &v,
            IMG,
            "sh",
            "-c",
            "cat /secret; chmod 644 /secret; cat /secret",
        ]);
        assert_ne!(o.code, 0, "{o:#?}");
        assert!(!o.stdout.contains("root-only"), "secret read: {o:#?}");
        assert!(o.stderr.contains("Permission denied"), "{o:#?}");
    }
    let o = side.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{}:/dir", dir.path().display()),
        IMG,
        "cat",
        "/dir/secret",
    ]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(!o.stdout.contains("root-only"), "secret read: {o:#?}");
    // Unchanged on the host.
    let mode = fs::metadata(&secret).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(side.ok(&["ps", "-a", "-q"]).trim().is_empty());
    assert_eq!(side.mounts(), Vec::<String>::new());
}

#[test]
fn user_and_root_do_not_see_each_other() {
    need_root!();
    let Some(user) = test_user() else { return };
    let side = UserSide::new(user);
    let root_img = format!("localhost/{}", unique("rootonly"));
    let root_ctr = unique("rootctr");
    let user_img = format!("localhost/{}", unique("useronly"));
    let user_ctr = unique("userctr");
    let _cleanup = Defer(|| {
        let _ = run_cmd(root_cmd(&["rm", "-f", "-t", "0", &root_ctr]), TIMEOUT);
        let _ = run_cmd(root_cmd(&["rmi", &root_img]), TIMEOUT);
        let _ = run_cmd(side.cmd(&["rm", "-f", "-t", "0", &user_ctr]), TIMEOUT);
    });

    // Root's container and image, in root's default store.
    let o = import(root_cmd(&["import", "-", &root_img]));
    assert!(o.success(), "import as root: {o:#?}");
    let o = root_run(&[
        "create",
        "--name",
        &root_ctr,
        "--network",
        "none",
        &root_img,
        "true",
    ]);
    assert!(o.success(), "{o:#?}");
    // The user's, in its default store.
    side.import(&user_img);
    side.ok(&[
        "create",
        "--name",
        &user_ctr,
        "--network",
        "none",
        &user_img,
        "true",
    ]);

    // The user sees its own only.
    let names = side.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(names.lines().any(|l| l == user_ctr), "{names}");
    assert!(
        !names.contains(&root_ctr),
        "root's container listed: {names}"
    );
    let images = side.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(images.contains(&user_img), "{images}");
    assert!(!images.contains(&root_img), "root's image listed: {images}");
    // Root sees its own only.
    let o = root_run(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(o.success(), "{o:#?}");
    assert!(o.stdout.lines().any(|l| l == root_ctr), "{o:#?}");
    assert!(
        !o.stdout.contains(&user_ctr),
        "the user's container listed: {o:#?}"
    );
    let o = root_run(&["images", "--format", "{{.Repository}}"]);
    assert!(o.success(), "{o:#?}");
    assert!(
        !o.stdout.contains(&user_img),
        "the user's image listed: {o:#?}"
    );

    // Root's store is closed to the user: through barge and directly.
    for args in [
        ["--root", "/var/lib/barge/storage", "ps", "-a"],
        ["--root", "/var/lib/barge/storage", "images", "-q"],
    ] {
        let o = side.run(&args);
        assert_eq!(o.code, 125, "{o:#?}");
        assert!(
            o.stderr.starts_with("Error: ")
                && o.stderr.contains("storage root /var/lib/barge/storage")
                && o.stderr.contains("Permission denied")
                && o.stderr.contains("another user's store"),
            "{o:#?}"
        );
        assert!(!o.stdout.contains(&root_ctr), "{o:#?}");
    }
    let mut cat = side.user.command(Path::new("/bin/cat"));
    cat.arg("/var/lib/barge/storage/barge.db")
        .stdin(Stdio::null());
    let o = run_cmd(cat, TIMEOUT);
    assert_ne!(
        o.code,
        0,
        "root's database is readable by the user: {} bytes",
        o.stdout.len()
    );
    assert!(o.stderr.contains("Permission denied"), "{o:#?}");
    let mode = fs::metadata("/var/lib/barge/storage")
        .expect("root's store")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "root's store is open to others: {mode:o}");

    // Each removes its own; neither can remove the other's.
    let o = side.run(&["rm", &root_ctr]);
    assert_ne!(o.code, 0, "{o:#?}");
    side.ok(&["rm", &user_ctr]);
    side.ok(&["rmi", &user_img]);
    assert!(root_run(&["rm", &root_ctr]).success());
    assert!(root_run(&["rmi", &root_img]).success());
    assert_eq!(side.mounts(), Vec::<String>::new());
}

/// A system user (no subordinate ids allocated) removed on drop.
struct ThrowawayUser {
    name: String,
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

#[test]
fn missing_subuid_entry_is_a_clear_error() {
    need_root!();
    // Short: user names have at most 32 characters.
    let name = format!("bt-nosub-{}", std::process::id());
    let o = run_cmd(
        {
            let mut c = Command::new("useradd");
            c.args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ]);
            c
        },
        TIMEOUT,
    );
    assert!(o.success(), "useradd {name}: {o:#?}");
    let _user = ThrowawayUser { name: name.clone() };
    let (uid, gid, _) = barge_integration::passwd_entry(&name).expect("the new user");
    let listed = |file: &str| {
        fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let who = l.split(':').next().unwrap_or_default();
                who == name || who == uid.to_string()
            })
    };
    assert!(
        !listed("/etc/subuid") && !listed("/etc/subgid"),
        "useradd --system gave {name} subordinate ids"
    );
    let dirs = tempfile::Builder::new()
        .prefix("brl-nosub")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let user = RootlessUser {
        name: name.clone(),
        uid,
        gid,
        home: dirs.path().join("home"),
        runtime_dir: dirs.path().join("run"),
        config_home: dirs.path().join("config"),
    };
    for d in [&user.home, &user.runtime_dir, &user.config_home] {
        fs::create_dir(d).expect("mkdir");
        user.chown(d);
    }
    user.chown(dirs.path());
    for args in [
        &["ps", "-a"][..],
        &["run", "--rm", "--network", "none", IMG, "true"],
    ] {
        let mut c = user.command(&barge_bin());
        c.args(args).stdin(Stdio::null());
        let o = run_cmd(c, TIMEOUT);
        eprintln!("$ [{name}] barge {}\n{o:?}", args.join(" "));
        assert_eq!(o.code, 125, "{o:#?}");
        let err = o
            .stderr
            .lines()
            .find(|l| l.starts_with("Error: "))
            .unwrap_or_else(|| panic!("no Error: line: {o:#?}"));
        assert!(
            err.contains(&name) && err.contains("/etc/subuid") && err.contains(&uid.to_string()),
            "the error names neither the user nor the file: {err}"
        );
    }
    // Nothing started for the user.
    assert!(!user.runtime_dir.join("barge/pause.pid").exists());
    let left: Vec<PathBuf> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            use std::os::unix::fs::MetadataExt;
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                && fs::metadata(p).is_ok_and(|m| m.uid() == uid)
        })
        .collect();
    assert!(left.is_empty(), "processes of {name} left: {left:?}");
}

/// The harness's leak checker sees a running container where it is: its
/// mounts (in the pause process's mount namespace when rootless), its
/// processes (by their monitor when rootless, without cgroups) or its
/// cgroups (root); and nothing once it is removed.
#[test]
fn leak_checker_sees_a_running_container() {
    need_root!();
    let env = crate::Env::new();
    let name = unique("seen");
    env.run_d(&["--name", &name, "--network", "none", IMG, "sleep", "1000"]);
    let leaks = env.leaks_now();
    let has = |what: &str| leaks.iter().any(|l| l.starts_with(what));
    assert!(has("mount"), "no mount found: {leaks:#?}");
    if crate::rootless().is_some() {
        assert!(
            leaks
                .iter()
                .any(|l| l.starts_with("process") && l.contains("sleep 1000")),
            "the container's process not found: {leaks:#?}"
        );
    } else {
        assert!(has("cgroup"), "no cgroup found: {leaks:#?}");
    }
    env.ok(&["rm", "-f", "-t", "0", &name]);
    assert_eq!(env.leaks(), Vec::<String>::new());
}
