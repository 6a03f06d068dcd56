//! The `barge` CLI driven as a user would: images loaded from an OCI
//! archive, listed, tagged, pushed to a private registry on loopback,
//! removed, pulled back, saved and loaded again, and bad input.
//!
//! Needs the binary: `cargo build -p barge` (or `BARGE=/path/to/barge`).
//! Registry tests need docker-registry (skipped with a note without it).

use barge_integration::{barge_bin, workspace};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Barge {
    root: tempfile::TempDir,
    /// `CONTAINERS_REGISTRIES_CONF` for every command, if set.
    registries_conf: Option<PathBuf>,
}

impl Barge {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().expect("tempdir"),
            registries_conf: None,
        }
    }

    /// Runs every command with `CONTAINERS_REGISTRIES_CONF=<conf>`.
    fn with_registries_conf(conf: &Path) -> Self {
        Self {
            registries_conf: Some(conf.to_path_buf()),
            ..Self::new()
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, "")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let mut child = Command::new(barge_bin())
            .arg("--root")
            .arg(self.root.path().join("storage"))
            .args(args)
            .env("REGISTRY_AUTH_FILE", self.root.path().join("auth.json"))
            .envs(
                self.registries_conf
                    .iter()
                    .map(|c| ("CONTAINERS_REGISTRIES_CONF", c)),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run barge");
        if let Some(mut i) = child.stdin.take() {
            let _ = i.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("wait for barge");
        eprintln!(
            "$ barge {}\n[{:?}]\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4096)]),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "barge {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str], code: i32, message: &str) {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(code), "barge {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.lines().any(|l| l.starts_with("Error: ")), "{err}");
        assert!(err.contains(message), "{err:?} lacks {message:?}");
    }

    fn images_json(&self) -> Vec<Value> {
        let out = self.ok(&["images", "--format", "json"]);
        serde_json::from_str::<Vec<Value>>(&out).expect("images json")
    }
}

fn sha256(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("sha256:");
    for b in Sha256::digest(data) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let d = sha256(data);
    std::fs::write(
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
        data,
    )
    .expect("write blob");
    (d, data.len() as u64)
}

fn tar_of(dir: &Path, entries: &[&str]) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("--numeric-owner")
        .arg("--sort=name")
        .arg("--mtime=@0")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg("-")
        .args(entries)
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A two-layer OCI archive of the test rootfs (busybox), named `name`:
/// layer 1 the rootfs, layer 2 one file. Returns the archive and the image
/// id (config digest hex).
fn build_archive(dir: &Path, name: &str) -> (PathBuf, String) {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    let rootfs = workspace().join("build/bundle/rootfs");
    assert!(
        rootfs.join("bin/busybox").exists() || rootfs.join("bin/sh").exists(),
        "no test rootfs at {} (scripts/build-image.sh)",
        rootfs.display()
    );
    let l1 = tar_of(&rootfs, &["."]);
    let extra = dir.join("extra");
    std::fs::create_dir_all(extra.join("etc")).expect("mkdir");
    std::fs::write(extra.join("etc/barge-test"), "layer two\n").expect("write");
    let l2 = tar_of(&extra, &["etc/barge-test"]);
    let (d1, s1) = put_blob(&layout, &l1);
    let (d2, s2) = put_blob(&layout, &l2);
    let config = json!({
        "created": "2024-03-01T01:02:03Z",
        "architecture": std::process::Command::new("uname").arg("-m").output().map(|o| match String::from_utf8_lossy(&o.stdout).trim() {
            "x86_64" => "amd64".to_string(),
            "aarch64" => "arm64".to_string(),
            a => a.to_string(),
        }).expect("uname"),
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin:/sbin"], "Labels": {"test": "barge"}},
        "rootfs": {"type": "layers", "diff_ids": [d1, d2]},
        "history": [
            {"created": "2024-03-01T01:02:03Z", "created_by": "ADD rootfs /"},
            {"created": "2024-03-01T01:02:03Z", "created_by": "RUN echo layer two > /etc/barge-test"},
            {"created": "2024-03-01T01:02:03Z", "created_by": "CMD [\"/bin/sh\"]", "empty_layer": true},
        ],
    });
    let cbytes = serde_json::to_vec(&config).expect("json");
    let (cd, cs) = put_blob(&layout, &cbytes);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d1, "size": s1},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d2, "size": s2},
        ],
    });
    let mbytes = serde_json::to_vec(&manifest).expect("json");
    let (md, ms) = put_blob(&layout, &mbytes);
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    let archive = dir.join("image.tar");
    let tar = tar_of(&layout, &["oci-layout", "index.json", "blobs"]);
    std::fs::write(&archive, tar).expect("write archive");
    (archive, cd.trim_start_matches("sha256:").to_string())
}

fn names(images: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = images
        .iter()
        .flat_map(|i| i["Names"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[test]
fn load_list_tag_inspect_history_save_load_rmi() {
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/bbtest:1.0");
    let out = b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    assert_eq!(out.trim(), "Loaded image: localhost/bbtest:1.0");

    let imgs = b.images_json();
    assert_eq!(imgs.len(), 1);
    assert_eq!(imgs[0]["Id"], json!(id));
    assert_eq!(imgs[0]["Labels"]["test"], json!("barge"));
    assert_eq!(names(&imgs), ["localhost/bbtest:1.0"]);

    b.ok(&["tag", "bbtest:1.0", "other", "quay.io/x/y:z"]);
    assert_eq!(
        names(&b.images_json()),
        [
            "localhost/bbtest:1.0",
            "localhost/other:latest",
            "quay.io/x/y:z"
        ]
    );
    let out = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    let short = &id[..12];
    assert_eq!(
        lines,
        [
            format!("localhost/bbtest:1.0 {short}"),
            format!("localhost/other:latest {short}"),
            format!("quay.io/x/y:z {short}"),
        ]
    );
    let out = b.ok(&[
        "image",
        "ls",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}",
    ]);
    assert!(
        out.lines()
            .next()
            .expect("header")
            .starts_with("REPOSITORY"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 4);
    let out = b.ok(&["images", "--format", "{{json .}}"]);
    for l in out.lines() {
        let v: Value = serde_json::from_str(l).expect("json line");
        assert_eq!(v["Id"], json!(id));
    }
    assert_eq!(b.ok(&["images", "-q"]).trim(), short);
    let out = b.ok(&["images"]);
    assert!(out.starts_with("REPOSITORY"), "{out}");
    assert!(out.contains("IMAGE ID"), "{out}");

    // untag one name, inspect.
    b.ok(&["untag", "bbtest:1.0", "other"]);
    assert_eq!(
        names(&b.images_json()),
        ["localhost/bbtest:1.0", "quay.io/x/y:z"]
    );
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", "bbtest:1.0"])).expect("json");
    assert_eq!(v[0]["Id"], json!(id));
    assert_eq!(v[0]["Config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "--format",
            "{{.Os}} {{.Config.Cmd}}",
            short
        ])
        .trim(),
        "linux [/bin/sh]"
    );

    // history: three entries from the config, newest first.
    let out = b.ok(&[
        "history",
        "--format",
        "{{.ID}} {{.CreatedBy}}",
        "bbtest:1.0",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(short), "{out}");
    assert!(lines[2].contains("ADD rootfs"), "{out}");

    // save (archive and dir) → load into a fresh store: same id and name.
    let saved = tmp.path().join("saved.tar");
    b.ok(&["save", "-o", saved.to_str().expect("utf8"), "bbtest:1.0"]);
    let savedir = tmp.path().join("saved-dir");
    b.ok(&[
        "save",
        "--format",
        "oci-dir",
        "-o",
        savedir.to_str().expect("utf8"),
        "bbtest:1.0",
    ]);
    let saved_oci = tmp.path().join("saved-oci.tar");
    b.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        saved_oci.to_str().expect("utf8"),
        "bbtest:1.0",
    ]);
    b.fails(
        &[
            "save",
            "--format",
            "docker-dir",
            "-o",
            "/tmp/x.tar",
            "bbtest:1.0",
        ],
        125,
        "not supported yet",
    );
    for input in [&saved, &saved_oci, &savedir] {
        let b2 = Barge::new();
        let out = b2.ok(&["load", "-i", input.to_str().expect("utf8")]);
        assert_eq!(out.trim(), "Loaded image: localhost/bbtest:1.0");
        let imgs = b2.images_json();
        assert_eq!(imgs[0]["Id"], json!(id));
        b2.ok(&["image", "check"]);
    }

    // save to stdout, load from stdin.
    let out = b.run(&["save", "bbtest:1.0"]);
    assert!(out.status.success());
    let b3 = Barge::new();
    let mut child = Command::new(barge_bin())
        .arg("--root")
        .arg(b3.root.path().join("storage"))
        .arg("load")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("barge load");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&out.stdout).expect("write archive");
    }
    let loaded = child.wait_with_output().expect("wait");
    assert!(loaded.status.success());
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        "Loaded image: localhost/bbtest:1.0"
    );
    assert_eq!(b3.images_json()[0]["Id"], json!(id));

    // rmi: by name with another name left only untags; then deletes.
    let out = b.ok(&["rmi", "quay.io/x/y:z"]);
    assert_eq!(out.trim(), "Untagged: quay.io/x/y:z");
    b.ok(&["tag", short, "again"]);
    b.fails(&["rmi", short], 125, "more than one tag");
    let out = b.ok(&["rmi", "-f", short]);
    assert!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert!(b.images_json().is_empty());
    b.fails(&["rmi", "bbtest:1.0"], 1, "bbtest:1.0: image not known");
    // The blobs went with the image.
    let blobs = std::fs::read_dir(b.root.path().join("storage/blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(blobs, 0);
    b.ok(&["image", "check"]);
}

#[test]
fn prune_removes_dangling_then_all() {
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/prune:1");
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    assert_eq!(b.ok(&["image", "prune", "-f"]).trim(), "");
    b.ok(&["untag", "prune:1"]);
    let imgs = b.images_json();
    assert_eq!(imgs[0]["Dangling"], json!(true));
    let out = b.ok(&["images", "--format", "{{.Repository}} {{.Tag}}"]);
    assert_eq!(out.trim(), "<none> <none>");
    assert_eq!(b.ok(&["image", "prune", "-f"]).trim(), id);
    assert!(b.images_json().is_empty());
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    assert_eq!(b.ok(&["image", "prune", "-a", "-f"]).trim(), id);
    assert!(b.images_json().is_empty());
}

#[test]
fn push_pull_round_trip_through_local_registry() {
    let Ok(reg) = barge_registry::testing::LocalRegistry::start(None) else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/pushme:1");
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    let dest = format!("{}/barge/pushme:v1", reg.addr());
    b.ok(&["tag", "pushme:1", &dest]);
    let out = b.run(&["push", "--tls-verify=false", &dest]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Copying blob sha256:"), "{err}");
    assert!(
        err.contains("Writing manifest to image destination"),
        "{err}"
    );
    // push SRC DEST.
    let dest2 = format!("docker://{}/barge/other:v2", reg.addr());
    b.ok(&["push", "--tls-verify=false", "pushme:1", &dest2]);

    b.ok(&["rmi", "-f", &id[..12]]);
    assert!(b.images_json().is_empty());

    let out = b.run(&["pull", &dest]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("Trying to pull {dest}")), "{err}");
    assert!(err.contains("done"), "{err}");
    assert_eq!(names(&b.images_json()), std::slice::from_ref(&dest));
    // Pulling again skips the layers; -q prints only the id.
    let out = b.ok(&["pull", "-q", &format!("{}/barge/other:v2", reg.addr())]);
    assert_eq!(out.trim(), id);
    assert_eq!(
        names(&b.images_json()),
        [format!("{}/barge/other:v2", reg.addr()), dest.clone()]
    );
    // The pulled image's layers are unpacked and verified.
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", &dest])).expect("json");
    let lower = v[0]["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .expect("lowerdir")
        .to_string();
    let top = lower.split(':').next().expect("top layer");
    assert_eq!(
        std::fs::read_to_string(Path::new(top).join("etc/barge-test")).expect("file from layer 2"),
        "layer two\n"
    );
    b.ok(&["image", "check"]);

    // A container runs from the pulled two-layer image (busybox from the
    // first layer, the file from the second).
    if barge_integration::is_root() {
        let out = b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &dest,
            "sh",
            "-c",
            "cat /etc/barge-test; busybox | head -1",
        ]);
        assert!(out.starts_with("layer two\nBusyBox"), "{out}");
        assert_eq!(b.ok(&["ps", "-a", "-q"]).trim(), "");
    }

    // A missing image: podman-like message, exit 125.
    b.fails(
        &["pull", &format!("{}/barge/nothere:latest", reg.addr())],
        125,
        "manifest unknown",
    );
}

#[test]
fn login_push_pull_logout_with_htpasswd_registry() {
    let hash = bcrypt::hash("s3cret", 4).expect("bcrypt");
    let Ok(reg) = barge_registry::testing::LocalRegistry::start(Some(&format!("tester:{hash}\n")))
    else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/authme:1");
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    let dest = format!("{}/private/authme:1", reg.addr());
    b.ok(&["tag", "authme:1", &dest]);
    b.fails(&["push", &dest], 125, "401");
    let out = b.run_stdin(
        &[
            "login",
            "--username",
            "tester",
            "--password-stdin",
            reg.addr(),
        ],
        "wrong\n",
    );
    assert_eq!(out.status.code(), Some(125));
    let out = b.run_stdin(
        &[
            "login",
            "--username",
            "tester",
            "--password-stdin",
            reg.addr(),
        ],
        "s3cret\n",
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Login Succeeded!"
    );
    assert!(b.root.path().join("auth.json").exists());
    b.ok(&["push", &dest]);
    b.ok(&["rmi", &dest]);
    b.ok(&["rmi", "authme:1"]);
    assert_eq!(b.ok(&["pull", "-q", &dest]).trim(), id);
    let out = b.ok(&["logout", reg.addr()]);
    assert_eq!(
        out.trim(),
        format!("Removed login credentials for {}", reg.addr())
    );
    b.fails(&["logout", reg.addr()], 125, "not logged into");
    b.fails(&["pull", "-q", &dest], 125, "401");
}

#[test]
fn bad_input() {
    let b = Barge::new();
    b.fails(&["images", "--bogus"], 125, "unknown flag: --bogus");
    b.fails(&["rmi", "nosuchimage"], 1, "nosuchimage: image not known");
    b.fails(
        &["tag", "nosuchimage", "x"],
        125,
        "nosuchimage: image not known",
    );
    b.fails(&["image", "inspect", "nosuchimage"], 125, "image not known");
    b.fails(&["load", "-i", "/nonexistent.tar"], 125, "no such file");
    b.fails(
        &["save", "--format", "zip", "-o", "/tmp/x", "a"],
        125,
        "unknown format",
    );
    b.fails(
        &["images", "--format", "{{range .}}"],
        125,
        "unsupported action",
    );
    b.fails(
        &["pull", "--platform", "linux", "busybox"],
        125,
        "invalid platform",
    );
    b.fails(&["pull", "UPPER/Case"], 125, "invalid");
    b.fails(&["tag", "onlyone"], 125, "required arguments");
    b.fails(&["rmi"], 125, "image name or ID must be specified");
    let out = b.run(&["--help"]);
    assert!(out.status.success());
}

/// splitmix64: a fast PRNG, so the random layers are reproducible from a seed.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An OCI archive named `name` with `layers` uncompressed tar layers, each
/// one file of `layer_size` incompressible bytes. Returns the archive and
/// the image id (config digest hex).
fn build_random_archive(
    dir: &Path,
    name: &str,
    layers: usize,
    layer_size: usize,
    seed: u64,
) -> (PathBuf, String) {
    let layout = dir.join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..layers {
        let src = dir.join(format!("layer{i}"));
        std::fs::create_dir_all(src.join("data")).expect("mkdir");
        let file = format!("data/random-{i}.bin");
        std::fs::write(
            src.join(&file),
            random_bytes(seed.wrapping_add(i as u64), layer_size),
        )
        .expect("write random file");
        let tar = tar_of(&src, &[&file]);
        std::fs::remove_dir_all(&src).expect("rm layer src");
        let (d, s) = put_blob(&layout, &tar);
        descs.push(
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}),
        );
        diff_ids.push(d);
    }
    let config = json!({
        "created": "2024-03-01T01:02:03Z",
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cd, cs) = put_blob(&layout, &serde_json::to_vec(&config).expect("json"));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": descs,
    });
    let (md, ms) = put_blob(&layout, &serde_json::to_vec(&manifest).expect("json"));
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("write");
    let archive = dir.join("image.tar");
    let tar = tar_of(&layout, &["oci-layout", "index.json", "blobs"]);
    std::fs::remove_dir_all(&layout).expect("rm layout");
    std::fs::write(&archive, tar).expect("write archive");
    (archive, cd.trim_start_matches("sha256:").to_string())
}

/// Bytes written so far into the store's blobs and temp files.
fn bytes_arrived(storage: &Path) -> u64 {
    ["tmp", "blobs/sha256"]
        .iter()
        .filter_map(|d| std::fs::read_dir(storage.join(d)).ok())
        .flatten()
        .filter_map(|e| e.ok()?.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum()
}

/// Starts a pull in `b`'s store, SIGKILLs it once some layer bytes have
/// arrived. Returns whether the kill landed mid-pull.
fn kill_pull_midway(b: &Barge, reference: &str) -> bool {
    use std::os::unix::process::ExitStatusExt as _;
    let storage = b.root.path().join("storage");
    let mut child = Command::new(barge_bin())
        .arg("--root")
        .arg(&storage)
        .args(["pull", "-q", "--tls-verify=false", reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn barge pull");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            eprintln!("pull finished before the kill");
            return false;
        }
        // Some layer data (more than a manifest or config) has arrived.
        if bytes_arrived(&storage) > 1 << 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pull made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // Child::kill sends SIGKILL.
    child.kill().expect("kill pull");
    let status = child.wait().expect("wait pull");
    eprintln!(
        "killed pull after {} bytes: {status:?}",
        bytes_arrived(&storage)
    );
    if status.signal() != Some(libc::SIGKILL) {
        return false;
    }
    // Killed mid-pull: the image was not recorded.
    assert!(
        b.images_json().is_empty(),
        "image listed after a killed pull"
    );
    true
}

#[test]
fn killed_pull_is_recovered() {
    let Ok(reg) = barge_registry::testing::LocalRegistry::start(None) else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let pusher = Barge::new();
    let mut killed = false;
    // 4 × 16 MiB, then larger if the pull outran the kill.
    for (attempt, layer_mb) in [16usize, 48].into_iter().enumerate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let name = format!("localhost/bigrandom:{attempt}");
        let (archive, id) = build_random_archive(
            tmp.path(),
            &name,
            4,
            layer_mb << 20,
            0x5eed_0000 + attempt as u64,
        );
        pusher.ok(&["load", "-i", archive.to_str().expect("utf8")]);
        drop(tmp);
        let dest = format!("{}/barge/bigrandom:{attempt}", reg.addr());
        pusher.ok(&["push", "-q", "--tls-verify=false", &name, &dest]);

        let b = Barge::new();
        if !kill_pull_midway(&b, &dest) {
            continue;
        }
        killed = true;
        // The leftover is reported as a partial download (or nothing), never
        // as a corrupt blob.
        let out = b.run(&["image", "check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("corrupt"), "{stdout}");
        for l in stdout.lines().filter(|l| !l.ends_with("problems found")) {
            assert!(l.starts_with("partial download"), "{stdout}");
        }
        assert!(
            stdout.contains(" 0 problems found") == out.status.success(),
            "{stdout}"
        );

        // A second pull succeeds with the pushed image's id.
        let out = b.ok(&["pull", "-q", "--tls-verify=false", &dest]);
        assert_eq!(out.trim(), id);
        assert_eq!(b.images_json()[0]["Id"], json!(id));
        // The killed pull's temp files may still be reported if they are
        // younger than the store's 2 s grace period (pull cleans older
        // ones), as partial downloads only; with --repair they go and the
        // store is healthy.
        let out = b.run(&["image", "check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("corrupt"), "{stdout}");
        assert!(!stdout.contains("missing"), "{stdout}");
        for l in stdout.lines().filter(|l| !l.ends_with("problems found")) {
            assert!(l.starts_with("partial download"), "{stdout}");
        }
        // Temp files younger than the store's 2 s grace period are left
        // alone (a writer may be between creating and locking its file).
        std::thread::sleep(std::time::Duration::from_millis(2200));
        b.ok(&["image", "check", "--repair"]);
        let out = b.ok(&["image", "check"]);
        assert!(out.trim().ends_with(" 0 problems found"), "{out}");
        assert!(out.trim().starts_with("6 blobs verified"), "{out}");
        assert_eq!(b.images_json()[0]["Id"], json!(id));
        break;
    }
    assert!(killed, "every pull finished before it could be killed");
}

/// podman with its own storage under `dir`, so the system's is untouched.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Option<Self> {
        let ok = Command::new("podman")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("containers.conf"),
            "[engine]\nruntime = \"runc\"\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .expect("write containers.conf");
        std::fs::write(dir.path().join("auth.json"), "{}").expect("write auth.json");
        Some(Self { dir })
    }

    fn run(&self, args: &[&str]) -> Output {
        let d = self.dir.path();
        let out = Command::new("podman")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(args)
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("REGISTRY_AUTH_FILE", d.join("auth.json"))
            .env("TMPDIR", d)
            .output()
            .expect("run podman");
        eprintln!(
            "$ podman {}\n[{:?}]\n{}{}",
            args.join(" "),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podman {args:?} failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn podman_pulls_what_barge_pushed() {
    let Some(podman) = Podman::new() else {
        eprintln!("SKIP: podman is not installed");
        return;
    };
    let Ok(reg) = barge_registry::testing::LocalRegistry::start(None) else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/interop:1");
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    let dest = format!("{}/barge/interop:1", reg.addr());
    b.ok(&["push", "--tls-verify=false", "interop:1", &dest]);
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", "interop:1"])).expect("json");
    let barge_layers = v[0]["RootFS"]["Layers"].clone();
    assert_eq!(barge_layers.as_array().map(Vec::len), Some(2));

    // barge → registry → podman: same config digest (image id) and layers.
    podman.ok(&["pull", "-q", "--tls-verify=false", &dest]);
    let v: Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", &dest])).expect("podman inspect");
    assert_eq!(v[0]["Id"], json!(id));
    assert_eq!(v[0]["RootFS"]["Layers"], barge_layers);
    assert_eq!(v[0]["Config"]["Labels"]["test"], json!("barge"));
    podman.ok(&["rmi", &dest]);

    // podman → registry → barge.
    let rootfs = workspace().join("build/bundle/rootfs");
    let rootfs_tar = tmp.path().join("rootfs.tar");
    std::fs::write(&rootfs_tar, tar_of(&rootfs, &["."])).expect("write rootfs tar");
    let from_podman = format!("{}/podman/imported:1", reg.addr());
    podman.ok(&[
        "import",
        "-q",
        "--change",
        "CMD [\"/bin/sh\"]",
        rootfs_tar.to_str().expect("utf8"),
        &from_podman,
    ]);
    let pid = podman.ok(&["image", "inspect", "--format", "{{.Id}}", &from_podman]);
    let pid = pid.trim().to_string();
    podman.ok(&["push", "--tls-verify=false", &from_podman]);
    podman.ok(&["rmi", &from_podman]);
    let out = b.ok(&["pull", "-q", "--tls-verify=false", &from_podman]);
    assert_eq!(out.trim(), pid);
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", &from_podman])).expect("json");
    assert_eq!(v[0]["Config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().map(Vec::len), Some(1));
    b.ok(&["image", "check"]);
}

// ------------------------------------------------- docker-archive, import

/// Runs barge with binary stdin.
fn barge_with_input(b: &Barge, args: &[&str], input: &[u8]) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(barge_bin())
        .arg("--root")
        .arg(b.root.path().join("storage"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run barge");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait for barge");
    let _ = writer.join();
    eprintln!(
        "$ barge {} < {} bytes\n[{:?}]\n{}{}",
        args.join(" "),
        input.len(),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(4096)]),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A small rootfs tarball (no busybox needed): a few files, a symlink, a dir.
fn small_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::create_dir_all(root.join("data")).expect("mkdir");
    std::fs::write(root.join("etc/hello"), "hello from import\n").expect("write");
    std::fs::write(root.join("data/blob"), vec![7u8; 100_000]).expect("write");
    std::os::unix::fs::symlink("hello", root.join("etc/link")).expect("symlink");
    let tar = dir.join("rootfs.tar");
    std::fs::write(&tar, tar_of(&root, &["."])).expect("write tar");
    tar
}

fn compress(cmd: &str, data: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new(cmd)
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().ok()?;
    w.join().ok()?.ok()?;
    out.status.success().then_some(out.stdout)
}

fn manifest_json(archive: &Path) -> Value {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg("manifest.json")
        .output()
        .expect("tar");
    assert!(
        out.status.success(),
        "no manifest.json in {}",
        archive.display()
    );
    serde_json::from_slice(&out.stdout).expect("manifest.json")
}

fn inspect(b: &Barge, image: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", image])).expect("inspect json");
    v[0].clone()
}

#[test]
fn import_with_changes_then_docker_archive_round_trip() {
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = small_rootfs(tmp.path());
    let p = rootfs.to_str().expect("utf8");
    let out = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\", \"-c\", \"cat /etc/hello\"]",
        "--change",
        "ENTRYPOINT=/bin/entry point",
        "-c",
        "ENV A=1 B=\"two words\"",
        "-c",
        "ENV C see",
        "-c",
        "WORKDIR /data",
        "-c",
        "LABEL org.test=yes \"with space\"=ok",
        "-c",
        "USER 1000:1000",
        "-c",
        "EXPOSE 8080 53/udp",
        "-c",
        "VOLUME [\"/data\"]",
        "-c",
        "STOPSIGNAL SIGTERM",
        "-m",
        "imported for a test",
        p,
        "imp:1",
    ]);
    let id = out
        .trim()
        .strip_prefix("sha256:")
        .expect("sha256: id")
        .to_string();
    assert_eq!(id.len(), 64, "{out}");
    let v = inspect(&b, "imp:1");
    assert_eq!(v["Id"], json!(id));
    assert_eq!(v["RepoTags"], json!(["localhost/imp:1"]));
    assert_eq!(v["Comment"], json!("imported for a test"));
    let c = &v["Config"];
    assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "cat /etc/hello"]));
    assert_eq!(
        c["Entrypoint"],
        json!(["/bin/sh", "-c", "/bin/entry point"])
    );
    assert_eq!(c["Env"], json!(["A=1", "B=two words", "C=see"]));
    assert_eq!(c["WorkingDir"], json!("/data"));
    assert_eq!(c["Labels"], json!({"org.test": "yes", "with space": "ok"}));
    assert_eq!(c["User"], json!("1000:1000"));
    assert_eq!(c["ExposedPorts"], json!({"8080/tcp": {}, "53/udp": {}}));
    assert_eq!(c["Volumes"], json!({"/data": {}}));
    assert_eq!(c["StopSignal"], json!("SIGTERM"));
    // One layer, stored uncompressed: its DiffID is the tarball's sha256.
    let raw = std::fs::read(&rootfs).expect("read");
    assert_eq!(v["RootFS"]["Layers"], json!([sha256(&raw)]));
    let hist = b.ok(&[
        "history",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "imp:1",
    ]);
    assert!(
        hist.trim().starts_with("/bin/sh -c #(nop) ADD file:")
            && hist.trim().ends_with("|imported for a test"),
        "{hist}"
    );

    // gzip and zstd tarballs, from a file and from stdin: same layer.
    let gz = compress("gzip", &raw).expect("gzip");
    let out = barge_with_input(&b, &["import", "-q", "-", "imp:gz"], &gz);
    assert!(out.status.success());
    assert_eq!(
        inspect(&b, "imp:gz")["RootFS"]["Layers"],
        json!([sha256(&raw)])
    );
    if let Some(zst) = compress("zstd", &raw) {
        let zpath = tmp.path().join("rootfs.tar.zst");
        std::fs::write(&zpath, zst).expect("write");
        b.ok(&["import", zpath.to_str().expect("utf8"), "imp:zst"]);
        assert_eq!(
            inspect(&b, "imp:zst")["RootFS"]["Layers"],
            json!([sha256(&raw)])
        );
    }
    // Bad input: nothing is added.
    let before = b.images_json().len();
    b.fails(
        &["import", "-c", "RUN true", p, "x"],
        125,
        "unknown instruction RUN",
    );
    b.fails(
        &["import", "-c", "EXPOSE web", p, "x"],
        125,
        "is not a port",
    );
    b.fails(&["import", "/nonexistent.tar"], 125, "/nonexistent.tar");
    b.fails(
        &["import", "https://example.com/x.tar"],
        125,
        "URL is not supported",
    );
    assert_eq!(b.images_json().len(), before);

    // save: docker-archive by default, extra arguments are more tags.
    let archive = tmp.path().join("da.tar");
    let a = archive.to_str().expect("utf8");
    b.ok(&["save", "-o", a, "imp:1", "extra:tag"]);
    let m = manifest_json(&archive);
    assert_eq!(m[0]["Config"], json!(format!("{id}.json")));
    assert_eq!(
        m[0]["RepoTags"],
        json!(["localhost/extra:tag", "localhost/imp:1"])
    );
    assert_eq!(
        m[0]["Layers"],
        json!([format!("{}.tar", &sha256(&raw)[7..])])
    );

    let b2 = Barge::new();
    let out = b2.ok(&["load", "-i", a]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Loaded image: localhost/extra:tag",
            "Loaded image: localhost/imp:1"
        ]
    );
    let v2 = inspect(&b2, "imp:1");
    assert_eq!(v2["Id"], json!(id));
    assert_eq!(v2["Config"], v["Config"]);
    assert_eq!(v2["RootFS"], v["RootFS"]);
    b2.ok(&["image", "check"]);

    // Saved again from the loaded copy: byte-identical archive.
    let again = tmp.path().join("again.tar");
    b2.ok(&[
        "save",
        "-o",
        again.to_str().expect("utf8"),
        "imp:1",
        "extra:tag",
    ]);
    assert_eq!(
        std::fs::read(&again).expect("read"),
        std::fs::read(&archive).expect("read")
    );

    // stdout → gzip → stdin; by id: no tags.
    let out = b.run(&["save", &id[..12]]);
    assert!(out.status.success());
    let gz = compress("gzip", &out.stdout).expect("gzip");
    let b3 = Barge::new();
    let loaded = barge_with_input(&b3, &["load"], &gz);
    assert!(loaded.status.success());
    assert_eq!(
        String::from_utf8_lossy(&loaded.stdout).trim(),
        format!("Loaded image: sha256:{id}")
    );

    // -m: several images in one archive.
    let multi = tmp.path().join("multi.tar");
    b.ok(&[
        "save",
        "-m",
        "-o",
        multi.to_str().expect("utf8"),
        "imp:1",
        "imp:gz",
    ]);
    assert_eq!(manifest_json(&multi).as_array().map(Vec::len), Some(2));
    let b4 = Barge::new();
    let out = b4.ok(&["load", "-i", multi.to_str().expect("utf8")]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "Loaded image: localhost/imp:1",
            "Loaded image: localhost/imp:gz"
        ]
    );
    b.fails(
        &[
            "save",
            "-m",
            "--format",
            "oci-archive",
            "-o",
            "/tmp/never.tar",
            "imp:1",
            "imp:gz",
        ],
        125,
        "docker-archive",
    );
}

#[test]
fn hostile_docker_archive_load_leaves_store_unchanged() {
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = small_rootfs(tmp.path());
    b.ok(&["import", rootfs.to_str().expect("utf8"), "keep:1"]);
    let listing_before = b.ok(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]);
    let blobs = || {
        std::fs::read_dir(b.root.path().join("storage/blobs/sha256"))
            .expect("blobs")
            .count()
    };
    let blobs_before = blobs();

    let layer = tar_of(&rootfs.with_file_name("rootfs"), &["etc"]);
    let other = tar_of(&rootfs.with_file_name("rootfs"), &["data"]);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&layer)]},
    }))
    .expect("json");
    let cases: [(&str, &[u8], Value, &str); 4] = [
        (
            "dotdot",
            &layer,
            json!([{"Config": "c.json", "RepoTags": ["h:1"], "Layers": ["../../etc/shadow"]}]),
            "escapes the archive",
        ),
        (
            "missing",
            &layer,
            json!([{"Config": "c.json", "RepoTags": ["h:1"], "Layers": ["nope.tar"]}]),
            "\"nope.tar\" is not in the archive",
        ),
        (
            "mismatch",
            &other,
            json!([{"Config": "c.json", "RepoTags": ["h:1"], "Layers": ["l.tar"]}]),
            "but the config's DiffID is",
        ),
        (
            "bad tag",
            &layer,
            json!([{"Config": "c.json", "RepoTags": ["UPPER:case"], "Layers": ["l.tar"]}]),
            "invalid image name",
        ),
    ];
    for (name, layer_data, manifest, want) in cases {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("l.tar"), layer_data).expect("write");
        std::fs::write(dir.join("c.json"), &config).expect("write");
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec(&manifest).expect("json"),
        )
        .expect("write");
        let archive = tmp.path().join(format!("{name}.tar"));
        std::fs::write(
            &archive,
            tar_of(&dir, &["l.tar", "c.json", "manifest.json"]),
        )
        .expect("write");
        b.fails(&["load", "-i", archive.to_str().expect("utf8")], 125, want);
        assert_eq!(
            b.ok(&["images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"]),
            listing_before,
            "{name}"
        );
        assert_eq!(blobs(), blobs_before, "{name}: blobs changed");
    }
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, tar_of(&rootfs.with_file_name("rootfs"), &["etc"])).expect("write");
    b.fails(
        &["load", "-i", junk.to_str().expect("utf8")],
        125,
        "payload does not match any of the supported image formats",
    );
    let out = b.ok(&["image", "check"]);
    assert!(out.trim().ends_with(" 0 problems found"), "{out}");
}

#[test]
fn podman_loads_our_docker_archive_and_we_load_its() {
    let Some(podman) = Podman::new() else {
        eprintln!("SKIP: podman is not installed");
        return;
    };
    let b = Barge::new();
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = small_rootfs(tmp.path());
    let p = rootfs.to_str().expect("utf8");
    let id = b.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "ENV X=1",
        "-m",
        "from barge",
        p,
        "fromb:1",
    ]);
    let id = id.trim().trim_start_matches("sha256:").to_string();
    let ours = tmp.path().join("ours.tar");
    b.ok(&[
        "save",
        "-o",
        ours.to_str().expect("utf8"),
        "fromb:1",
        "fromb:2",
    ]);

    // barge → podman: same image id, both names, same config and layers.
    let out = podman.ok(&["load", "-i", ours.to_str().expect("utf8")]);
    assert!(
        out.contains("localhost/fromb:1") && out.contains("localhost/fromb:2"),
        "{out}"
    );
    let v: Value =
        serde_json::from_str(&podman.ok(&["image", "inspect", "localhost/fromb:1"])).expect("json");
    let mine = inspect(&b, "fromb:1");
    assert_eq!(v[0]["Id"], json!(id));
    assert_eq!(v[0]["RootFS"], mine["RootFS"]);
    assert_eq!(v[0]["Config"]["Cmd"], json!(["/bin/sh"]));
    assert_eq!(v[0]["Config"]["Env"], json!(["X=1"]));
    // podman shows a loaded image's comment only in its history.
    assert_eq!(v[0]["History"][0]["comment"], json!("from barge"));

    // podman → barge: podman's own import, saved as docker-archive (its default).
    podman.ok(&[
        "import",
        "-q",
        "-c",
        "CMD [\"/bin/true\"]",
        "-c",
        "LABEL by=podman",
        p,
        "localhost/fromp:1",
    ]);
    podman.ok(&["tag", "localhost/fromp:1", "quay.io/x/fromp:2"]);
    let pid = podman.ok(&[
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        "localhost/fromp:1",
    ]);
    let theirs = tmp.path().join("theirs.tar");
    podman.ok(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        theirs.to_str().expect("utf8"),
        "localhost/fromp:1",
        "quay.io/x/fromp:2",
    ]);
    let b2 = Barge::new();
    let out = b2.ok(&["load", "-i", theirs.to_str().expect("utf8")]);
    let mut loaded: Vec<&str> = out.lines().collect();
    loaded.sort_unstable();
    assert_eq!(
        loaded,
        [
            "Loaded image: localhost/fromp:1",
            "Loaded image: quay.io/x/fromp:2"
        ]
    );
    let v = inspect(&b2, "localhost/fromp:1");
    assert_eq!(v["Id"], json!(pid.trim()));
    assert_eq!(v["Config"]["Labels"], json!({"by": "podman"}));
    assert_eq!(
        v["RootFS"]["Layers"],
        json!([sha256(&std::fs::read(&rootfs).expect("read"))])
    );
    b2.ok(&["image", "check"]);
    // podman's multi-image archive and its oci-archive load too.
    let pm = tmp.path().join("pm-multi.tar");
    podman.ok(&[
        "save",
        "-m",
        "-o",
        pm.to_str().expect("utf8"),
        "localhost/fromp:1",
        "localhost/fromb:1",
    ]);
    let b3 = Barge::new();
    let out = b3.ok(&["load", "-i", pm.to_str().expect("utf8")]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(inspect(&b3, "localhost/fromb:1")["Id"], json!(id));
    let po = tmp.path().join("pm-oci.tar");
    podman.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        po.to_str().expect("utf8"),
        "localhost/fromp:1",
    ]);
    let b4 = Barge::new();
    b4.ok(&["load", "-i", po.to_str().expect("utf8")]);
    assert_eq!(b4.images_json()[0]["Id"], json!(pid.trim()));
}

/// A port on loopback where nothing listens (for a mirror that is down).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// registries.conf through `CONTAINERS_REGISTRIES_CONF`, with two private
/// registries: unqualified-search registries (the first lacks the image),
/// a mirror that is down then one that has the image (stored under the
/// requested name), a fallback from a mirror that lacks the image to the
/// location, a location rewrite, a blocked namespace (pull and push), an
/// alias, local lookups of short names, and the errors when every
/// candidate fails or none is defined.
#[test]
fn registries_conf_search_mirrors_blocked_alias() {
    let (Ok(main), Ok(mirror)) = (
        barge_registry::testing::LocalRegistry::start(None),
        barge_registry::testing::LocalRegistry::start(None),
    ) else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let (a, m) = (main.addr(), mirror.addr());
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/rc:1");
    // Seed the registries with a plain store (no registries.conf involved
    // for fully-qualified pushes to loopback).
    let seed = Barge::new();
    seed.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    for dest in [
        format!("{a}/lib/only-main:1"),
        format!("{m}/mirror-of-app/hello:1"),
        format!("{a}/app/main-only:1"),
        format!("{a}/real/thing:2"),
    ] {
        seed.ok(&["push", "rc:1", &dest]);
    }
    let down = closed_port();
    let conf = tmp.path().join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            r#"unqualified-search-registries = ["{m}", "{a}"]
short-name-mode = "permissive"

[[registry]]
prefix = "{a}/app"
location = "{a}/app"
[[registry.mirror]]
location = "127.0.0.1:{down}/nothing"
[[registry.mirror]]
location = "{m}/mirror-of-app"

[[registry]]
prefix = "virtual.example.com/things"
location = "{a}/real"

[[registry]]
location = "{a}/forbidden"
blocked = true

[aliases]
"myalias" = "{a}/app/hello"
"#
        ),
    )
    .expect("write conf");
    let b = Barge::with_registries_conf(&conf);

    // Search: the first registry lacks the image, the second has it.
    let out = b.run(&["pull", "lib/only-main:1"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), id);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Resolving \"lib/only-main\" using unqualified-search registries ({})",
            conf.display()
        )),
        "{err}"
    );
    let t1 = err
        .find(&format!("Trying to pull {m}/lib/only-main:1..."))
        .expect("tried the first search registry");
    let t2 = err
        .find(&format!("Trying to pull {a}/lib/only-main:1..."))
        .expect("tried the second search registry");
    assert!(t1 < t2, "{err}");
    assert_eq!(names(&b.images_json()), [format!("{a}/lib/only-main:1")]);
    // The short name finds the local image (through the search registries).
    let v: Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "lib/only-main:1"])).expect("json");
    assert_eq!(v[0]["Id"], json!(id));
    b.ok(&["tag", "lib/only-main:1", "mine"]);
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", "mine"])).expect("json");
    assert_eq!(v[0]["Id"], json!(id));
    // rmi by the short name untags that name only.
    assert_eq!(
        b.ok(&["rmi", "lib/only-main:1"]).trim(),
        format!("Untagged: {a}/lib/only-main:1")
    );
    b.ok(&["rmi", "mine"]);
    assert!(b.images_json().is_empty());

    // Every candidate fails: each one is listed.
    let out = b.run(&["pull", "nowhere/image"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.contains("Error: 2 errors occurred while pulling:"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            " * initializing source docker://{m}/nowhere/image:latest"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            " * initializing source docker://{a}/nowhere/image:latest"
        )),
        "{err}"
    );

    // Mirrors: the first is down, the second has the image; the location
    // never had to answer. The image is named as requested.
    let want = format!("{a}/app/hello:1");
    let out = b.run(&["pull", &want]);
    assert!(out.status.success());
    assert_eq!(names(&b.images_json()), std::slice::from_ref(&want));
    // Proof that it came from the mirror: the location has no app/hello.
    b.ok(&["rmi", &want]);
    let direct = Barge::new();
    direct.fails(&["pull", &want], 125, "manifest unknown");
    seed.ok(&["push", "rc:1", &want]);
    // The mirrors lack main-only: falls back to the location.
    let out = b.run(&["pull", &format!("{a}/app/main-only:1")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Nowhere: the error names the mirrors and the location.
    let out = b.run(&["pull", &format!("{a}/app/missing:1")]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(err.contains("Mirrors also failed"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{down}/nothing/missing:1")),
        "{err}"
    );
    assert!(
        err.contains(&format!("{m}/mirror-of-app/missing:1")),
        "{err}"
    );
    assert!(err.contains(&format!("{a}/app/missing:1")), "{err}");

    // Location rewrite: the name stays virtual.
    b.ok(&["pull", "-q", "virtual.example.com/things/thing:2"]);
    assert!(names(&b.images_json()).contains(&"virtual.example.com/things/thing:2".to_string()));

    // Alias.
    let out = b.run(&["pull", "myalias:1"]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Resolved \"myalias\" as an alias ({})",
            conf.display()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("Trying to pull {a}/app/hello:1...")),
        "{err}"
    );
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", "myalias:1"])).expect("json");
    assert_eq!(v[0]["Id"], json!(id));

    // Blocked: pull and push refused, naming the prefix and the file.
    let blocked = format!("{a}/forbidden/x:1");
    let msg = format!("registry {a}/forbidden is blocked in {}", conf.display());
    b.fails(&["pull", &blocked], 125, &msg);
    b.fails(&["push", "myalias:1", &blocked], 125, &msg);

    // --registries-conf overrides the variable.
    let other = tmp.path().join("other.conf");
    std::fs::write(&other, "unqualified-search-registries = []\n").expect("write");
    b.fails(
        &["--registries-conf", other.to_str().expect("utf8"), "pull", "lib/only-main:1"],
        125,
        &format!(
            "short-name \"lib/only-main:1\" did not resolve to an alias and no unqualified-search registries are defined in \"{}\"",
            other.display()
        ),
    );
    b.fails(
        &[
            "--registries-conf",
            "/nonexistent/registries.conf",
            "pull",
            "x",
        ],
        125,
        "no such file",
    );
}

/// `insecure = true` lets barge speak plain HTTP to a registry it would
/// otherwise reach over verified HTTPS only. The registry listens on
/// loopback, which barge always allows over HTTP, so it is addressed as
/// `0.0.0.0:<port>`: Linux delivers that to loopback, but it is not a
/// loopback name.
#[test]
fn registries_conf_insecure_registry() {
    let Ok(reg) = barge_registry::testing::LocalRegistry::start(None) else {
        eprintln!("SKIP: no docker-registry (BARGE_DOCKER_REGISTRY or /usr/bin/docker-registry)");
        return;
    };
    let port = reg.addr().rsplit(':').next().expect("port");
    let host = format!("0.0.0.0:{port}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let (archive, id) = build_archive(tmp.path(), "localhost/insecure:1");
    let dest = format!("{host}/plain/http:1");

    let strict = tmp.path().join("strict.conf");
    std::fs::write(&strict, "unqualified-search-registries = []\n").expect("write");
    let b = Barge::with_registries_conf(&strict);
    b.ok(&["load", "-i", archive.to_str().expect("utf8")]);
    // Without insecure: HTTPS only, which the registry does not speak.
    let out = b.run(&["push", "insecure:1", &dest]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    b.ok(&["push", "--tls-verify=false", "insecure:1", &dest]);
    b.fails(&["pull", &dest], 125, &format!("docker://{dest}"));

    let conf = tmp.path().join("insecure.conf");
    std::fs::write(
        &conf,
        format!("unqualified-search-registries = [\"{host}\"]\n\n[[registry]]\nlocation = \"{host}\"\ninsecure = true\n"),
    )
    .expect("write");
    let b = Barge::with_registries_conf(&conf);
    assert_eq!(b.ok(&["pull", "-q", &dest]).trim(), id);
    // A short name through the insecure search registry, and a push.
    assert_eq!(b.ok(&["pull", "-q", "plain/http:1"]).trim(), id);
    b.ok(&["push", &dest, &format!("{host}/plain/again:1")]);
}

/// Bad configurations: malformed TOML names the file and the line;
/// enforcing mode with several search registries cannot prompt; without
/// search registries a short name says so.
#[test]
fn registries_conf_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = tmp.path().join("bad.conf");
    std::fs::write(
        &bad,
        "unqualified-search-registries = [\"a.example\"]\n\n[[registry]\nlocation = \"b.example\"\n",
    )
    .expect("write");
    let b = Barge::with_registries_conf(&bad);
    b.fails(
        &["pull", "busybox"],
        125,
        &format!(
            "loading registries configuration \"{}\": line 3",
            bad.display()
        ),
    );
    b.fails(&["pull", "quay.io/a/b"], 125, "line 3");

    let enforcing = tmp.path().join("enforcing.conf");
    std::fs::write(
        &enforcing,
        "short-name-mode = \"enforcing\"\nunqualified-search-registries = [\"a.example\", \"b.example\"]\n",
    )
    .expect("write");
    Barge::with_registries_conf(&enforcing).fails(
        &["pull", "something"],
        125,
        "short-name resolution enforced but cannot prompt without a TTY",
    );

    let empty = tmp.path().join("empty.conf");
    std::fs::write(&empty, "# nothing\n").expect("write");
    Barge::with_registries_conf(&empty).fails(
        &["pull", "something:1"],
        125,
        &format!(
            "short-name \"something:1\" did not resolve to an alias and no unqualified-search registries are defined in \"{}\"",
            empty.display()
        ),
    );
}
