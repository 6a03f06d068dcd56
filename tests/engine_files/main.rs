//! `barge cp`, `diff`, `commit`, `export`, `stats`, `healthcheck run` and
//! restart policies, driven through the CLI against real containers, with
//! hostile paths (symlinks out of the container, `..`, hostile tar
//! streams) and bad input.
//!
//! Needs root, the test image (`scripts/build-image.sh`) and the binaries:
//! `cargo build -p barge -p barge-runtime -p barge-monitor` (or
//! `BARGE=/path/to/barge` with the others beside it). Containers run with
//! `--network none`, each test under its own `--root`/`--runroot`; every
//! container is removed and no mount may remain afterwards.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use barge_integration::{is_root, rootfs, run_cmd, wait_until, workspace, Out, Value};
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
const IMAGE: &str = "localhost/busybox";

fn barge_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BARGE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|t| !t.is_empty())
        .map_or_else(|| workspace().join("target"), |t| workspace().join(t));
    ["debug/barge", "release/barge"]
        .iter()
        .map(|p| target.join(p))
        .filter(|p| p.with_file_name("barge-monitor").exists())
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "no barge (with barge-monitor beside it) under {}: run `cargo build -p barge -p barge-runtime -p barge-monitor`",
                target.display()
            )
        })
}

/// Skips without root; a missing image or binary is a failure.
macro_rules! need_root {
    () => {
        if !is_root() {
            eprintln!("SKIP {}: needs root", module_path!());
            return;
        }
        assert!(
            rootfs().join("bin/busybox").exists(),
            "test image missing: run scripts/build-image.sh"
        );
    };
}

/// A private barge state (root under a temp dir, a short runroot) with the
/// test image imported; drops remove every container and check for leaked
/// mounts.
struct Barge {
    dir: tempfile::TempDir,
    run: tempfile::TempDir,
}

impl Barge {
    fn new() -> Self {
        let b = Self {
            dir: tempfile::tempdir().unwrap(),
            run: tempfile::Builder::new()
                .prefix("bef")
                .tempdir_in("/tmp")
                .unwrap(),
        };
        let tar = b.dir.path().join("image.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(rootfs())
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        b.ok_stdin(&["import", "-", IMAGE], &tar);
        b
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(barge_bin());
        c.arg("--root")
            .arg(self.root())
            .arg("--runroot")
            .arg(self.run.path())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn show(args: &[&str], out: &Out) {
        eprintln!(
            "$ barge {}\n[{}]\n{}{}",
            args.join(" "),
            out.code,
            &out.stdout[..out.stdout.len().min(2000)],
            out.stderr
        );
    }

    fn run(&self, args: &[&str]) -> Out {
        let out = run_cmd(self.cmd(args), TIMEOUT);
        Self::show(args, &out);
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, 0, "barge {args:?} failed: {}", out.stderr);
        out.stdout
    }

    fn ok_stdin(&self, args: &[&str], input: &Path) -> String {
        let mut c = self.cmd(args);
        c.stdin(fs::File::open(input).unwrap());
        let out = run_cmd(c, TIMEOUT);
        Self::show(args, &out);
        assert_eq!(out.code, 0, "barge {args:?} failed: {}", out.stderr);
        out.stdout
    }

    /// Runs with stdout into `file` (binary output).
    fn ok_to_file(&self, args: &[&str], file: &Path) {
        let mut c = self.cmd(args);
        c.stdout(fs::File::create(file).unwrap());
        c.stderr(Stdio::piped());
        let out = c.output().unwrap();
        eprintln!(
            "$ barge {} > {}\n[{:?}]\n{}",
            args.join(" "),
            file.display(),
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "barge {args:?} failed");
    }

    fn fails(&self, args: &[&str], code: i32, message: &str) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, code, "barge {args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "{:?} lacks {message:?}",
            out.stderr
        );
        out
    }

    /// `run -d --network none [flags] IMAGE cmd...`; returns the id.
    fn run_detached(&self, flags: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none"];
        args.extend_from_slice(flags);
        args.push(IMAGE);
        args.extend_from_slice(cmd);
        self.ok(&args).trim().to_string()
    }

    fn inspect(&self, name: &str, format: &str) -> String {
        self.ok(&["inspect", "--format", format, name])
            .trim()
            .to_string()
    }
}

impl Drop for Barge {
    fn drop(&mut self) {
        let _ = run_cmd(self.cmd(&["rm", "-a", "-f", "-t", "0"]), TIMEOUT);
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        let run = self.run.path().display().to_string();
        let leaked: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(&root) || l.contains(&run))
            .collect();
        if !std::thread::panicking() {
            assert!(leaked.is_empty(), "leaked mounts: {leaked:#?}");
        }
    }
}

fn tar_list(file: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(file).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn cp_both_directions_streams_and_ownership() {
    need_root!();
    let b = Barge::new();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    b.run_detached(&["--name", "c1", "--user", "1000:1000"], &["sleep", "600"]);

    // A host file into the container: owned by the container's user
    // (podman's --archive default), or kept with --archive=false.
    fs::write(h.join("f.txt"), "from host\n").unwrap();
    std::os::unix::fs::chown(h.join("f.txt"), Some(4242), Some(4243)).unwrap();
    b.ok(&["cp", h.join("f.txt").to_str().unwrap(), "c1:/tmp/"]);
    b.ok(&[
        "cp",
        "--archive=false",
        h.join("f.txt").to_str().unwrap(),
        "c1:/tmp/kept.txt",
    ]);
    let owners = b.ok(&[
        "exec",
        "c1",
        "stat",
        "-c",
        "%u:%g",
        "/tmp/f.txt",
        "/tmp/kept.txt",
    ]);
    assert_eq!(owners, "1000:1000\n4242:4243\n");
    assert_eq!(b.ok(&["exec", "c1", "cat", "/tmp/f.txt"]), "from host\n");

    // A host directory: into an existing directory (DIR/name), to a new
    // name, and its contents with DIR/.
    fs::create_dir_all(h.join("d/sub")).unwrap();
    fs::write(h.join("d/sub/a"), "A").unwrap();
    std::os::unix::fs::symlink("sub/a", h.join("d/link")).unwrap();
    let d = h.join("d");
    let d = d.to_str().unwrap();
    b.ok(&["cp", d, "c1:/tmp"]);
    b.ok(&["cp", d, "c1:/tmp/renamed"]);
    b.ok(&["exec", "c1", "mkdir", "/tmp/contents"]);
    b.ok(&["cp", &format!("{d}/."), "c1:/tmp/contents"]);
    for p in [
        "/tmp/d/sub/a",
        "/tmp/renamed/sub/a",
        "/tmp/contents/sub/a",
        "/tmp/d/link",
    ] {
        assert_eq!(b.ok(&["exec", "c1", "cat", p]), "A", "{p}");
    }
    assert_eq!(
        b.ok(&["exec", "c1", "readlink", "/tmp/d/link"]).trim(),
        "sub/a"
    );

    // Container to host: a file to a new name, a directory into a dir.
    b.ok(&[
        "exec",
        "-u",
        "0",
        "c1",
        "sh",
        "-c",
        "mkdir -p /srv/x && echo payload > /srv/x/p && ln -s p /srv/x/l && chown 1000 /srv/x/p",
    ]);
    b.ok(&["cp", "c1:/srv/x/p", h.join("p.out").to_str().unwrap()]);
    assert_eq!(fs::read_to_string(h.join("p.out")).unwrap(), "payload\n");
    fs::create_dir(h.join("into")).unwrap();
    b.ok(&["cp", "c1:/srv/x", h.join("into").to_str().unwrap()]);
    assert_eq!(fs::read_to_string(h.join("into/x/p")).unwrap(), "payload\n");
    assert_eq!(fs::read_link(h.join("into/x/l")).unwrap(), Path::new("p"));
    // Ownership comes out as it is in the container.
    assert_eq!(fs::metadata(h.join("into/x/p")).unwrap().uid(), 1000);

    // `-`: a tar stream out and in.
    let t = h.join("out.tar");
    b.ok_to_file(&["cp", "c1:/srv/x", "-"], &t);
    let names = tar_list(&t);
    assert!(
        names.contains(&"x/".to_string()) && names.contains(&"x/p".to_string()),
        "{names:?}"
    );
    b.ok(&["exec", "-u", "0", "c1", "mkdir", "/in"]);
    b.ok_stdin(&["cp", "-", "c1:/in"], &t);
    assert_eq!(b.ok(&["exec", "c1", "cat", "/in/x/p"]), "payload\n");

    // A stopped container: its overlay is mounted for the copy only.
    b.ok(&["stop", "-t", "0", "c1"]);
    b.ok(&["cp", h.join("f.txt").to_str().unwrap(), "c1:/stopped.txt"]);
    b.ok(&[
        "cp",
        "c1:/stopped.txt",
        h.join("back.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(h.join("back.txt")).unwrap(),
        "from host\n"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(b.dir.path().to_str().unwrap()),
        "overlay left mounted"
    );
    b.ok(&["start", "c1"]);
    assert_eq!(b.ok(&["exec", "c1", "cat", "/stopped.txt"]), "from host\n");
}

#[test]
fn cp_into_a_running_containers_volume() {
    need_root!();
    let b = Barge::new();
    let host = tempfile::tempdir().unwrap();
    let vol = host.path().join("vol");
    fs::create_dir(&vol).unwrap();
    let spec = format!("{}:/data", vol.display());
    b.run_detached(&["--name", "v1", "-v", &spec], &["sleep", "600"]);
    fs::write(host.path().join("f"), "vol\n").unwrap();
    b.ok(&["cp", host.path().join("f").to_str().unwrap(), "v1:/data/f"]);
    // It landed in the bind mount, as podman does.
    assert_eq!(fs::read_to_string(vol.join("f")).unwrap(), "vol\n");
}

#[test]
fn cp_hostile_paths_stay_in_the_container() {
    need_root!();
    let b = Barge::new();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    b.run_detached(&["--name", "evil"], &["sleep", "600"]);
    // Symlinks pointing at host paths (absolute and climbing).
    b.ok(&[
        "exec",
        "evil",
        "sh",
        "-c",
        "ln -s /etc/shadow /abs && ln -s ../../../../../../etc/shadow /rel && ln -s / /rootlink",
    ]);
    // No /etc/shadow in the container: the links resolve inside it, to
    // nothing, never to the host's file.
    b.fails(
        &["cp", "evil:/abs", h.join("a").to_str().unwrap()],
        125,
        "could not be found on container evil",
    );
    b.fails(
        &["cp", "evil:/rel", h.join("r").to_str().unwrap()],
        125,
        "could not be found",
    );
    b.fails(
        &[
            "cp",
            "evil:/rootlink/etc/shadow",
            h.join("s").to_str().unwrap(),
        ],
        125,
        "could not be found",
    );
    assert!(!h.join("a").exists() && !h.join("r").exists() && !h.join("s").exists());
    // With the container's own /etc/shadow, that one is copied.
    b.ok(&[
        "exec",
        "evil",
        "sh",
        "-c",
        "echo container-shadow > /etc/shadow",
    ]);
    b.ok(&["cp", "evil:/rel", h.join("r").to_str().unwrap()]);
    assert_eq!(
        fs::read_to_string(h.join("r")).unwrap(),
        "container-shadow\n"
    );
    // A symlinked directory inside a copied tree stays a link.
    b.ok(&["exec", "evil", "sh", "-c", "mkdir /t && ln -s /etc /t/etc"]);
    b.ok(&["cp", "evil:/t", h.join("t").to_str().unwrap()]);
    assert!(fs::symlink_metadata(h.join("t/etc"))
        .unwrap()
        .file_type()
        .is_symlink());

    // Destinations: `..` and symlinks to host directories stay inside.
    let marker = h.join("marker");
    fs::write(&marker, "host\n").unwrap();
    let m = marker.to_str().unwrap();
    b.ok(&["cp", m, "evil:../../x"]);
    assert_eq!(b.ok(&["exec", "evil", "cat", "/x"]), "host\n");
    assert!(!Path::new("/x").exists());
    let hostdir = tempfile::tempdir().unwrap();
    let hd = hostdir.path().to_str().unwrap().to_string();
    b.ok(&[
        "exec",
        "evil",
        "sh",
        "-c",
        &format!("mkdir -p {hd} && ln -s {hd} /todir"),
    ]);
    b.ok(&["cp", m, "evil:/todir/planted"]);
    assert!(
        !hostdir.path().join("planted").exists(),
        "wrote through a symlink to the host"
    );
    assert_eq!(
        b.ok(&["exec", "evil", "cat", &format!("{hd}/planted")]),
        "host\n"
    );
    b.ok(&["cp", m, "evil:/rootlink/etc/viaroot"]);
    assert!(!Path::new("/etc/viaroot").exists());
    assert_eq!(b.ok(&["exec", "evil", "cat", "/etc/viaroot"]), "host\n");

    // A hostile tar stream: `../` names, absolute names, a symlink then a
    // file through it.
    let t = h.join("hostile.tar");
    let mut data = Vec::new();
    for (name, body) in [
        (&b"../../../../escaped"[..], &b"x"[..]),
        (b"/abs-escaped", b"y"),
    ] {
        let mut hdr = [0u8; 512];
        hdr[..name.len()].copy_from_slice(name);
        hdr[100..108].copy_from_slice(b"0000644\0");
        hdr[108..116].copy_from_slice(b"0000000\0");
        hdr[116..124].copy_from_slice(b"0000000\0");
        hdr[124..136].copy_from_slice(format!("{:011o}\0", body.len()).as_bytes());
        hdr[136..148].copy_from_slice(b"00000000000\0");
        hdr[156] = b'0';
        hdr[148..156].copy_from_slice(b"        ");
        let sum: u32 = hdr.iter().map(|&c| u32::from(c)).sum();
        hdr[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        data.extend_from_slice(&hdr);
        let mut body = body.to_vec();
        body.resize(512, 0);
        data.extend_from_slice(&body);
    }
    data.resize(data.len() + 1024, 0);
    fs::write(&t, &data).unwrap();
    b.ok_stdin(&["cp", "-", "evil:/"], &t);
    assert!(!Path::new("/escaped").exists() && !Path::new("/abs-escaped").exists());
    assert_eq!(
        b.ok(&["exec", "evil", "cat", "/escaped", "/abs-escaped"]),
        "xy"
    );
    // Symlink + write through it: lands inside (or is refused).
    let src = tempfile::tempdir().unwrap();
    fs::create_dir(src.path().join("pl")).unwrap();
    fs::write(src.path().join("pl/pwned"), "p").unwrap();
    std::os::unix::fs::symlink(hostdir.path(), src.path().join("lnk")).unwrap();
    let t2 = h.join("link.tar");
    // `lnk` (a link to the host dir) first, then `lnk/pwned`.
    let st = Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .arg("-cf")
        .arg(&t2)
        .arg("lnk")
        .arg("--transform=s,^pl,lnk,")
        .arg("pl/pwned")
        .status()
        .unwrap();
    assert!(st.success());
    let _ = b.run(&["exec", "evil", "rm", "-rf", "/lnk"]);
    let mut c = b.cmd(&["cp", "-", "evil:/"]);
    c.stdin(fs::File::open(&t2).unwrap());
    let _ = run_cmd(c, TIMEOUT);
    assert!(
        !hostdir.path().join("pwned").exists(),
        "a tar stream wrote through a symlink to the host"
    );
}

#[test]
fn cp_bad_input() {
    need_root!();
    let b = Barge::new();
    let host = tempfile::tempdir().unwrap();
    let h = host.path().to_str().unwrap();
    b.run_detached(&["--name", "c"], &["sleep", "600"]);
    b.fails(&["cp", "nosuch:/etc/passwd", h], 125, "no such container");
    b.fails(
        &["cp", "c:/nonexistent", h],
        125,
        "\"/nonexistent\" could not be found on container c",
    );
    b.fails(
        &["cp", "/nonexistent-host-path", "c:/tmp"],
        125,
        "could not be found on the host",
    );
    b.fails(
        &["cp", "c:/etc/hostname", &format!("{h}/no/such/dir/x")],
        125,
        "could not be found on the host",
    );
    b.fails(
        &["cp", "/etc/hostname", "/tmp/x"],
        125,
        "you must specify one container",
    );
    b.fails(&["cp", "c:/etc", "c:/tmp"], 125, "between containers");
    b.fails(&["cp", ":/x", h], 125, "empty container name");
    b.fails(&["cp", "c:/etc/hostname/", h], 125, "not a directory");
    // A directory onto a file needs --overwrite.
    fs::write(host.path().join("file"), "x").unwrap();
    b.fails(&["cp", "c:/etc", &format!("{h}/file")], 125, "--overwrite");
    b.ok(&["cp", "--overwrite", "c:/etc", &format!("{h}/file")]);
    assert!(host.path().join("file/passwd").exists());
    b.fails(&["cp", "-", "c:/etc/passwd"], 125, "must be a directory");
    b.fails(&["cp", "onlyone"], 125, "");
}

#[test]
fn diff_lists_changes() {
    need_root!();
    let b = Barge::new();
    b.run_detached(&["--name", "d"], &["sleep", "600"]);
    b.ok(&[
        "exec",
        "d",
        "sh",
        "-c",
        "echo x > /etc/newf && mkdir -p /a/b && rm /bin/vi",
    ]);
    let out = b.ok(&["diff", "d"]);
    let lines: Vec<&str> = out.lines().collect();
    for want in [
        "A /a",
        "A /a/b",
        "C /bin",
        "D /bin/vi",
        "C /etc",
        "A /etc/newf",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from {lines:?}");
    }
    let v: Value = serde_json::from_str(&b.ok(&["diff", "--format", "json", "d"])).unwrap();
    assert!(v["added"]
        .as_array()
        .unwrap()
        .contains(&Value::from("/etc/newf")));
    assert!(v["changed"]
        .as_array()
        .unwrap()
        .contains(&Value::from("/etc")));
    assert_eq!(v["deleted"], serde_json::json!(["/bin/vi"]));
    // Stopped: same answer.
    b.ok(&["stop", "-t", "0", "d"]);
    assert_eq!(b.ok(&["diff", "d"]), out);
    b.fails(&["diff", "nosuch"], 125, "no such container");
    b.fails(&["diff", "--format", "yaml", "d"], 125, "only json");
    b.fails(&["diff"], 125, "container name");
}

#[test]
fn commit_then_run_the_image() {
    need_root!();
    let b = Barge::new();
    b.run_detached(&["--name", "cm", "-e", "KEEP=me too"], &["sleep", "600"]);
    b.ok(&[
        "exec",
        "cm",
        "sh",
        "-c",
        "echo committed > /etc/committed && rm /bin/vi",
    ]);
    let out = b.run(&[
        "commit",
        "-c",
        "ENV FOO=bar",
        "-c",
        "CMD [\"cat\", \"/etc/committed\"]",
        "-m",
        "my message",
        "-a",
        "Jane <j@x>",
        "cm",
        "localhost/committed:1",
    ]);
    assert_eq!(out.code, 0);
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    assert!(out.stderr.contains("Writing manifest"));
    // The running container is still running (it was paused meanwhile).
    assert_eq!(b.inspect("cm", "{{.State.Status}}"), "running");
    // Its filesystem change, its environment and the changes are in the image.
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "localhost/committed:1"]),
        "committed\n"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/committed:1",
            "sh",
            "-c",
            "echo $FOO/$KEEP; test -e /bin/vi || echo novi"
        ]),
        "bar/me too\nnovi\n"
    );
    let img: Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "localhost/committed:1"])).unwrap();
    assert_eq!(img[0]["Author"], "Jane <j@x>");
    let hist = b.ok(&["history", "--no-trunc", "localhost/committed:1"]);
    assert!(hist.contains("my message"), "{hist}");
    // -q prints the id only; an untagged commit of a stopped container.
    b.ok(&["stop", "-t", "0", "cm"]);
    let q = b.ok(&["commit", "-q", "cm"]);
    assert_eq!(q.trim().len(), 64);
    b.fails(
        &["commit", "-c", "BOGUS x", "cm", "localhost/x"],
        125,
        "unknown instruction",
    );
    b.fails(
        &["commit", "nosuch", "localhost/x"],
        125,
        "no such container",
    );
    b.fails(&["commit", "--squash", "cm"], 125, "not supported");
}

#[test]
fn export_writes_the_filesystem() {
    need_root!();
    let b = Barge::new();
    let host = tempfile::tempdir().unwrap();
    b.run_detached(&["--name", "ex"], &["sleep", "600"]);
    b.ok(&["exec", "ex", "sh", "-c", "echo e > /exported"]);
    // Running: through descriptors on the merged mount.
    let t1 = host.path().join("running.tar");
    b.ok(&["export", "-o", t1.to_str().unwrap(), "ex"]);
    let names = tar_list(&t1);
    assert!(
        names.iter().any(|n| n == "exported") && names.iter().any(|n| n == "etc/passwd"),
        "{names:?}"
    );
    b.ok(&["stop", "-t", "0", "ex"]);
    let t2 = host.path().join("stopped.tar");
    b.ok_to_file(&["export", "ex"], &t2);
    let names2 = tar_list(&t2);
    assert!(
        names2.iter().any(|n| n == "exported") && names2.iter().any(|n| n == "bin/busybox"),
        "{names2:?}"
    );
    // A terminal is refused (podman's message).
    let out = Command::new("script")
        .arg("-qec")
        .arg(format!(
            "{} --root {} --runroot {} export ex",
            barge_bin().display(),
            b.root().display(),
            b.run.path().display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("refusing to export to terminal"), "{text}");
    assert_eq!(out.status.code(), Some(125));
    b.fails(&["export", "nosuch"], 125, "no such container");
    b.fails(
        &["export", "-o", "/nonexistent-dir/x.tar", "ex"],
        125,
        "/nonexistent-dir",
    );
    assert!(fs::read_dir("/").unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("x.tar")));
}

#[test]
fn stats_reports_usage() {
    need_root!();
    let b = Barge::new();
    b.run_detached(&["--name", "st"], &["sh", "-c", "while :; do :; done"]);
    b.ok(&[
        "create",
        "--name",
        "idle",
        "--network",
        "none",
        IMAGE,
        "true",
    ]);
    let out = b.ok(&["stats", "--no-stream", "st"]);
    let mut lines = out.lines();
    let header = lines.next().unwrap();
    for col in [
        "ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET IO",
        "BLOCK IO",
        "PIDS",
        "CPU TIME",
        "AVG CPU %",
    ] {
        assert!(header.contains(col), "{col} missing: {header}");
    }
    assert!(lines.next().unwrap().contains("st"));
    let v: Value =
        serde_json::from_str(&b.ok(&["stats", "--no-stream", "--format", "json", "st"])).unwrap();
    let row = &v[0];
    assert_eq!(row["name"], "st");
    let cpu: f64 = row["cpu_percent"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 5.0, "a busy loop uses CPU: {cpu}");
    assert!(row["mem_usage"].as_str().unwrap().contains(" / "));
    assert_eq!(row["pids"], "1");
    let t = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDS}} {{.NetIO}}",
        "st",
        "idle",
    ]);
    assert_eq!(t, "st 1 0B / 0B\nidle 0 0B / 0B\n");
    // Every running container by default; -a adds the others.
    let all = b.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(all, "st\n");
    let all = b.ok(&["stats", "-a", "--no-stream", "--format", "{{.Name}}"]);
    assert!(all.contains("idle") && all.contains("st"));
    b.fails(
        &["stats", "--no-stream", "nosuch"],
        125,
        "no such container",
    );
    b.fails(
        &["stats", "--no-stream", "--format", "{{.Bogus", "st"],
        125,
        "",
    );
    b.fails(&["stats", "--interval", "0", "st"], 125, "interval");
}

#[test]
fn healthcheck_run_records_status() {
    need_root!();
    let b = Barge::new();
    b.run_detached(
        &[
            "--name",
            "hc",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-retries",
            "2",
            "--health-timeout",
            "5s",
        ],
        &["sleep", "600"],
    );
    let status = |b: &Barge| b.ok(&["ps", "--format", "{{.Status}}", "--filter", "name=hc"]);
    assert!(status(&b).contains("(starting)"), "{}", status(&b));
    let out = b.run(&["healthcheck", "run", "hc"]);
    assert_eq!((out.code, out.stdout.as_str()), (1, "unhealthy\n"));
    assert!(status(&b).contains("(starting)"));
    assert_eq!(b.run(&["healthcheck", "run", "hc"]).code, 1);
    assert!(status(&b).contains("(unhealthy)"), "{}", status(&b));
    let h: Value = serde_json::from_str(&b.inspect("hc", "{{json .State.Health}}")).unwrap();
    assert_eq!(h["Status"], "unhealthy");
    assert_eq!(h["FailingStreak"], 2);
    assert_eq!(h["Log"].as_array().unwrap().len(), 2);
    b.ok(&["exec", "hc", "touch", "/tmp/ok"]);
    let out = b.run(&["healthcheck", "run", "hc"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, ""));
    assert!(status(&b).contains("(healthy)"));
    let h: Value = serde_json::from_str(&b.inspect("hc", "{{json .State.Health}}")).unwrap();
    assert_eq!(
        (h["Status"].as_str(), h["FailingStreak"].as_u64()),
        (Some("healthy"), Some(0))
    );
    let cfg: Value =
        serde_json::from_str(&b.inspect("hc", "{{json .Config.Healthcheck}}")).unwrap();
    assert_eq!(cfg["Retries"], 2);
    assert_eq!(cfg["Timeout"], 5_000_000_000_i64);
    // A check that hangs is killed at the timeout.
    b.run_detached(
        &[
            "--name",
            "slow",
            "--health-cmd",
            "sleep 100",
            "--health-timeout",
            "1s",
            "--health-retries",
            "1",
        ],
        &["sleep", "600"],
    );
    let t = std::time::Instant::now();
    assert_eq!(b.run(&["healthcheck", "run", "slow"]).code, 1);
    assert!(t.elapsed() < Duration::from_secs(10));
    let h: Value = serde_json::from_str(&b.inspect("slow", "{{json .State.Health}}")).unwrap();
    assert!(
        h["Log"][0]["Output"].as_str().unwrap().contains("timeout"),
        "{h}"
    );
    let top = b.ok(&["top", "slow"]);
    assert!(
        !top.contains("sleep 100"),
        "the timed-out check still runs: {top}"
    );
    // Bad input.
    b.run_detached(&["--name", "nohc"], &["sleep", "600"]);
    b.fails(
        &["healthcheck", "run", "nohc"],
        125,
        "has no defined healthcheck",
    );
    b.fails(&["healthcheck", "run", "nosuch"], 125, "no such container");
    b.ok(&["stop", "-t", "0", "hc"]);
    b.fails(&["healthcheck", "run", "hc"], 125, "is not running");
    b.fails(
        &[
            "create",
            "--health-cmd",
            "true",
            "--health-interval",
            "soon",
            IMAGE,
        ],
        125,
        "invalid duration",
    );
    b.fails(
        &[
            "create",
            "--health-cmd",
            "true",
            "--health-retries",
            "0",
            IMAGE,
        ],
        125,
        "retries",
    );
}

#[test]
fn restart_policies() {
    need_root!();
    let b = Barge::new();
    b.run_detached(
        &["--name", "of", "--restart", "on-failure:2"],
        &["sh", "-c", "exit 3"],
    );
    let done = wait_until(Duration::from_secs(30), || {
        b.inspect("of", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    });
    assert!(done, "on-failure:2 did not end exited after 2 restarts");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        b.inspect(
            "of",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"
        ),
        "2 exited 3"
    );
    // A foreground run is restarted too (after it returned the exit code).
    let out = b.run(&[
        "run",
        "--name",
        "fg",
        "--network",
        "none",
        "--restart",
        "on-failure:1",
        IMAGE,
        "sh",
        "-c",
        "exit 4",
    ]);
    assert_eq!(out.code, 4);
    assert!(wait_until(Duration::from_secs(20), || {
        b.inspect("fg", "{{.RestartCount}} {{.State.Status}}") == "1 exited"
    }));
    // on-failure does not restart a clean exit.
    b.run_detached(&["--name", "ok", "--restart", "on-failure"], &["true"]);
    assert!(wait_until(Duration::from_secs(10), || b
        .inspect("ok", "{{.State.Status}}")
        == "exited"));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(b.inspect("ok", "{{.RestartCount}}"), "0");
    // always: restarted after an exit, but not after a user's stop.
    b.run_detached(&["--name", "al", "--restart", "always"], &["sleep", "1"]);
    assert!(wait_until(Duration::from_secs(20), || {
        b.inspect("al", "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    }));
    // Stop it for good (a stop between two runs finds nothing to stop).
    assert!(wait_until(Duration::from_secs(20), || {
        let _ = b.run(&["stop", "-t", "0", "al"]);
        std::thread::sleep(Duration::from_millis(1500));
        b.inspect("al", "{{.State.Status}}") == "exited"
    }));
    b.run_detached(&["--name", "st", "--restart", "always"], &["sleep", "600"]);
    b.ok(&["stop", "-t", "0", "st"]);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        b.inspect("st", "{{.State.Status}} {{.RestartCount}}"),
        "exited 0"
    );
    // A start by the user resets the count.
    b.ok(&["start", "st"]);
    assert_eq!(b.inspect("st", "{{.State.Status}}"), "running");
    b.fails(
        &["run", "--restart", "sometimes", IMAGE],
        125,
        "invalid restart policy",
    );
}
