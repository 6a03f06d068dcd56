//! Tests against real, private instances of Debian's `docker-registry` on
//! loopback (started once per test process), plus a tiny fake registry for
//! the misbehaviours a real one never shows.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use barge_registry::manifest::{self, Descriptor, ImageIndex, ImageManifest, Platform};
use barge_registry::testing::LocalRegistry;
use barge_registry::{
    auth, BlobRequest, Client, ClientOptions, Credentials, Digest, PushOutcome, Reference,
    RegistryError,
};

const USER: &str = "tester";
const PASS: &str = "s3cret-pass";

fn plain() -> &'static LocalRegistry {
    static R: OnceLock<LocalRegistry> = OnceLock::new();
    R.get_or_init(|| {
        LocalRegistry::start(None)
            .expect("start docker-registry (install it with scripts/install-deps.sh or apt-get install docker-registry)")
    })
}

fn authed() -> &'static LocalRegistry {
    static R: OnceLock<LocalRegistry> = OnceLock::new();
    R.get_or_init(|| {
        let hash = bcrypt::hash(PASS, 4).unwrap();
        LocalRegistry::start(Some(&format!("{USER}:{hash}\n")))
            .expect("start docker-registry with htpasswd")
    })
}

/// A client that reads credentials only from `auth_file` (never the host's).
fn client_with(auth_file: PathBuf) -> Client {
    let mut opts = ClientOptions::default().auth_file(&auth_file);
    opts.retry_delay = std::time::Duration::from_millis(20);
    Client::new(opts)
}

fn client() -> (Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (client_with(dir.path().join("auth.json")), dir)
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
        | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

struct Pushed {
    manifest: Vec<u8>,
    digest: Digest,
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
}

fn push_blob(c: &Client, target: &Reference, data: &[u8]) -> Descriptor {
    let digest = Digest::of(data);
    c.push_blob(target, &digest, data.len() as u64, &mut &data[..], None)
        .unwrap();
    Descriptor {
        media_type: manifest::OCI_LAYER_TAR.into(),
        digest,
        size: data.len() as u64,
        platform: None,
        annotations: None,
    }
}

fn push_image(c: &Client, target: &Reference, arch: &str, layer_sizes: &[usize]) -> Pushed {
    let layers: Vec<Vec<u8>> = layer_sizes
        .iter()
        .enumerate()
        .map(|(i, n)| random_bytes(*n, i as u64 + 7))
        .collect();
    push_layers(c, target, arch, layers, manifest::OCI_LAYER_TAR)
}

fn push_layers(
    c: &Client,
    target: &Reference,
    arch: &str,
    layers: Vec<Vec<u8>>,
    media_type: &str,
) -> Pushed {
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| Descriptor {
            media_type: media_type.to_string(),
            ..push_blob(c, target, l)
        })
        .collect();
    let diff_ids: Vec<String> = descs.iter().map(|d| d.digest.to_string()).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut cdesc = push_blob(c, target, &config);
    cdesc.media_type = manifest::OCI_CONFIG.into();
    let m = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config: cdesc,
        layers: descs,
    };
    let bytes = serde_json::to_vec(&m).unwrap();
    let digest = c
        .push_manifest(target, manifest::OCI_MANIFEST, &bytes)
        .unwrap();
    assert_eq!(digest, Digest::of(&bytes));
    Pushed {
        manifest: bytes,
        digest,
        config,
        layers,
    }
}

fn pull_and_check(c: &Client, target: &Reference, p: &Pushed) {
    let got = c.get_manifest(target, manifest::DEFAULT_ACCEPT).unwrap();
    assert_eq!(got.media_type, manifest::OCI_MANIFEST);
    assert_eq!(got.digest, p.digest);
    assert_eq!(got.bytes, p.manifest);
    let m: ImageManifest = serde_json::from_slice(&got.bytes).unwrap();
    let mut cfg = Vec::new();
    c.get_blob(target, &m.config.digest, Some(m.config.size), &mut cfg)
        .unwrap();
    assert_eq!(cfg, p.config);
    assert_eq!(m.layers.len(), p.layers.len());
    for (d, want) in m.layers.iter().zip(&p.layers) {
        let mut out = Vec::new();
        let n = c
            .get_blob(target, &d.digest, Some(d.size), &mut out)
            .unwrap();
        assert_eq!(n, want.len() as u64);
        assert_eq!(&out, want);
    }
}

#[test]
fn push_then_pull_by_tag_and_by_digest() {
    let (c, _d) = client();
    let tagged = r(&format!("{}/barge/multi:1", plain().addr()));
    let p = push_image(&c, &tagged, "amd64", &[1000, 300_000, 1_200_000]);
    pull_and_check(&c, &tagged, &p);
    let pinned = tagged.with_digest(p.digest.clone());
    pull_and_check(&c, &pinned, &p);
    // Platform-aware fetch of a plain manifest gives it back unchanged.
    let pm = c
        .get_manifest_for_platform(&tagged, &Platform::default())
        .unwrap();
    assert!(pm.index.is_none());
    assert_eq!(pm.manifest.digest, p.digest);
    // Existing blobs are not uploaded again; another repository mounts them.
    let l0 = &p.layers[0];
    assert_eq!(
        c.push_blob(
            &tagged,
            &Digest::of(l0),
            l0.len() as u64,
            &mut &l0[..],
            None
        )
        .unwrap(),
        PushOutcome::Existed
    );
    let other = r(&format!("{}/barge/other:1", plain().addr()));
    assert_eq!(
        c.push_blob(
            &other,
            &Digest::of(l0),
            l0.len() as u64,
            &mut &l0[..],
            Some(&tagged)
        )
        .unwrap(),
        PushOutcome::Mounted
    );
    assert_eq!(
        c.blob_exists(&other, &Digest::of(l0)).unwrap(),
        Some(l0.len() as u64)
    );
    // HEAD gives the digest without the body.
    let (mt, d, size) = c
        .head_manifest(&tagged, manifest::DEFAULT_ACCEPT)
        .unwrap()
        .unwrap();
    assert_eq!(
        (mt.as_str(), d.as_ref(), size),
        (
            manifest::OCI_MANIFEST,
            Some(&p.digest),
            p.manifest.len() as u64
        )
    );
    assert!(c
        .head_manifest(&tagged.with_tag("absent"), manifest::DEFAULT_ACCEPT)
        .unwrap()
        .is_none());
    // Docker schema 2 manifests go through with their media type.
    let mut docker: serde_json::Value = serde_json::from_slice(&p.manifest).unwrap();
    docker["mediaType"] = manifest::DOCKER_MANIFEST.into();
    docker["config"]["mediaType"] = manifest::DOCKER_CONFIG.into();
    let docker = serde_json::to_vec(&docker).unwrap();
    let dref = tagged.with_tag("docker");
    let dd = c
        .push_manifest(&dref, manifest::DOCKER_MANIFEST, &docker)
        .unwrap();
    let got = c.get_manifest(&dref, manifest::DEFAULT_ACCEPT).unwrap();
    assert_eq!(
        (got.media_type.as_str(), &got.digest, &got.bytes),
        (manifest::DOCKER_MANIFEST, &dd, &docker)
    );
    // Pinning the wrong digest on push is refused before sending.
    let wrong = tagged.with_digest(Digest::of(b"nope"));
    assert!(matches!(
        c.push_manifest(&wrong, manifest::OCI_MANIFEST, &p.manifest),
        Err(RegistryError::DigestMismatch { .. })
    ));
}

#[test]
fn index_selects_the_platform() {
    let (c, _d) = client();
    let base = format!("{}/barge/multiarch", plain().addr());
    let amd = push_image(&c, &r(&format!("{base}:amd64")), "amd64", &[2000, 3000]);
    let arm = push_image(&c, &r(&format!("{base}:arm64")), "arm64", &[4000]);
    let entry = |p: &Pushed, arch: &str, variant: Option<&str>| Descriptor {
        media_type: manifest::OCI_MANIFEST.into(),
        digest: p.digest.clone(),
        size: p.manifest.len() as u64,
        platform: Some(Platform::new("linux", arch, variant)),
        annotations: None,
    };
    for (tag, media_type) in [
        ("oci", manifest::OCI_INDEX),
        ("docker", manifest::DOCKER_MANIFEST_LIST),
    ] {
        let idx = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type.into()),
            manifests: vec![entry(&arm, "arm64", Some("v8")), entry(&amd, "amd64", None)],
        };
        let bytes = serde_json::to_vec(&idx).unwrap();
        let target = r(&format!("{base}:{tag}"));
        let idx_digest = c.push_manifest(&target, media_type, &bytes).unwrap();

        let got = c.get_manifest(&target, manifest::DEFAULT_ACCEPT).unwrap();
        assert_eq!(got.media_type, media_type);
        assert_eq!(got.digest, idx_digest);

        let pm = c
            .get_manifest_for_platform(&target, &Platform::default())
            .unwrap();
        assert_eq!(pm.manifest.digest, amd.digest);
        assert_eq!(pm.index.as_ref().map(|i| &i.digest), Some(&idx_digest));
        let pm = c
            .get_manifest_for_platform(&target, &Platform::new("linux", "arm64", None))
            .unwrap();
        assert_eq!(pm.manifest.digest, arm.digest);
        pull_and_check(&c, &target.with_digest(arm.digest.clone()), &arm);

        let err = c
            .get_manifest_for_platform(&target, &Platform::new("linux", "s390x", None))
            .unwrap_err();
        let msg = err.to_string();
        println!("reported: {msg}");
        assert!(
            matches!(err, RegistryError::NoMatchingPlatform { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("linux/s390x")
                && msg.contains("linux/arm64/v8")
                && msg.contains("linux/amd64"),
            "{msg}"
        );
    }
}

#[test]
fn missing_and_wrong_blobs_are_named() {
    let (c, _d) = client();
    let target = r(&format!("{}/barge/blobs:1", plain().addr()));
    let data = random_bytes(50_000, 3);
    push_blob(&c, &target, &data);
    // Asking for the pushed content under another digest: the registry has
    // nothing there.
    let other = Digest::of(b"not pushed");
    let mut out = Vec::new();
    let err = c.get_blob(&target, &other, None, &mut out).unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let msg = err.to_string();
    println!("reported: {msg}");
    assert!(
        msg.contains(other.as_str()) && msg.contains("barge/blobs") && msg.contains("404"),
        "{msg}"
    );
    assert!(msg.contains("BLOB_UNKNOWN"), "{msg}");
    assert_eq!(c.blob_exists(&target, &other).unwrap(), None);
    // The right digest but a wrong announced size.
    let mut out = Vec::new();
    let err = c
        .get_blob(&target, &Digest::of(&data), Some(10), &mut out)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { expected: 10, .. }),
        "{err}"
    );
    // Missing manifest.
    let err = c
        .get_manifest(
            &r(&format!("{}/barge/blobs:nope", plain().addr())),
            manifest::DEFAULT_ACCEPT,
        )
        .unwrap_err();
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(err.to_string().contains("MANIFEST_UNKNOWN"), "{err}");
    // Uploading bytes under a digest they do not have is refused.
    let bad = Digest::of(b"something else");
    let err = c
        .push_blob(&target, &bad, data.len() as u64, &mut &data[..], None)
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert!(err.to_string().contains("DIGEST_INVALID"), "{err}");
}

/// A fake registry on loopback that answers each HTTP request with
/// `respond(lowercased request head, request_number)`; non-HTTP input (a TLS
/// probe) gets the connection closed.
fn fake_registry(respond: impl Fn(&str, usize) -> Vec<u8> + Send + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut n = 0;
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            let mut ok = true;
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        ok = false;
                        break;
                    }
                    Ok(k) => req.extend_from_slice(&buf[..k]),
                }
                // Plain-text methods only (GET, HEAD); a TLS probe is dropped.
                if !(req.starts_with(b"G") || req.starts_with(b"H")) {
                    ok = false;
                    break;
                }
            }
            if !ok {
                continue;
            }
            let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
            let resp = respond(&text, n);
            n += 1;
            let _ = s.write_all(&resp);
        }
    });
    addr
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

#[test]
fn content_that_does_not_match_its_digest_is_rejected() {
    let addr = fake_registry(|line, _| {
        if line.contains("/manifests/") && line.contains("huge") {
            http(
                "200 OK",
                &format!("Content-Type: {}\r\n", manifest::OCI_MANIFEST),
                &vec![b' '; 5 << 20],
            )
        } else if line.contains("/manifests/") {
            http(
                "200 OK",
                &format!("Content-Type: {}\r\n", manifest::OCI_MANIFEST),
                b"{\"schemaVersion\":2}",
            )
        } else if line.starts_with("get /v2/") && line.contains("/blobs/") {
            http("200 OK", "", b"evil content")
        } else {
            http("200 OK", "", b"{}")
        }
    });
    let (c, _d) = client();
    let want = Digest::of(b"good content");
    let target = r(&format!("{addr}/x/y:1"));
    let mut out = Vec::new();
    let err = c.get_blob(&target, &want, Some(12), &mut out).unwrap_err();
    let msg = err.to_string();
    println!("reported: {msg}");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{msg}");
    assert!(
        msg.contains(want.as_str()) && msg.contains(Digest::of(b"evil content").as_str()),
        "{msg}"
    );
    assert!(msg.contains(&addr) && msg.contains("x/y"), "{msg}");

    let err = c
        .get_manifest(&target.with_digest(want.clone()), manifest::DEFAULT_ACCEPT)
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = c
        .get_manifest(&target.with_tag("huge"), manifest::DEFAULT_ACCEPT)
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestTooLarge { .. }),
        "{err}"
    );
}

#[test]
fn transient_errors_are_retried() {
    let body = b"retried content".to_vec();
    let want = Digest::of(&body);
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls2 = calls.clone();
    let addr = fake_registry(move |line, _| {
        if line.contains("/blobs/") {
            match calls2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => http("503 Service Unavailable", "", b""),
                1 => http("429 Too Many Requests", "", b""),
                _ => http("200 OK", "", &body),
            }
        } else {
            http("200 OK", "", b"{}")
        }
    });
    let (c, _d) = client();
    let mut out = Vec::new();
    c.get_blob(&r(&format!("{addr}/x/y:1")), &want, None, &mut out)
        .unwrap();
    assert_eq!(out, b"retried content");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn basic_auth_registry() {
    let reg = authed();
    let dir = tempfile::tempdir().unwrap();
    let auth_file = dir.path().join("containers/auth.json");
    let target = r(&format!("{}/barge/secret:1", reg.addr()));
    let data = random_bytes(10_000, 11);
    let digest = Digest::of(&data);

    let anon = client_with(auth_file.clone());
    let err = anon
        .push_blob(&target, &digest, data.len() as u64, &mut &data[..], None)
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    let msg = err.to_string();
    println!("reported: {msg}");
    assert!(
        msg.contains("401") && msg.contains("no credentials") && msg.contains(reg.addr()),
        "{msg}"
    );

    // Wrong password: login fails and nothing is stored.
    let err = anon
        .login(reg.addr(), &Credentials::new(USER, "wrong"), &auth_file)
        .unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!auth_file.exists());

    anon.login(reg.addr(), &Credentials::new(USER, PASS), &auth_file)
        .unwrap();
    let json = std::fs::read_to_string(&auth_file).unwrap();
    assert!(json.contains(reg.addr()), "{json}");

    let c = client_with(auth_file.clone());
    let p = push_image(&c, &target, "amd64", &[5000, 6000, 7000]);
    pull_and_check(&c, &target, &p);

    // Rejected stored credentials give a different message.
    auth::store(&auth_file, reg.addr(), &Credentials::new(USER, "stale")).unwrap();
    let c = client_with(auth_file.clone());
    let err = c
        .get_manifest(&target, manifest::DEFAULT_ACCEPT)
        .unwrap_err();
    assert!(err.to_string().contains("rejected"), "{err}");

    assert!(c.logout(reg.addr(), &auth_file).unwrap());
    assert_eq!(
        auth::lookup_in(&auth_file, reg.addr(), "barge/secret").unwrap(),
        None
    );
}

#[test]
fn parallel_pull_reports_progress() {
    let (c, _d) = client();
    let target = r(&format!("{}/barge/big:1", plain().addr()));
    const MB: usize = 1 << 20;
    let blobs: Vec<Vec<u8>> = [5, 8, 11, 14, 17, 20]
        .iter()
        .enumerate()
        .map(|(i, m)| random_bytes(m * MB + i * 1234, 100 + i as u64))
        .collect();
    let reqs: Vec<BlobRequest> = blobs
        .iter()
        .map(|b| {
            let d = push_blob(&c, &target, b);
            BlobRequest {
                digest: d.digest,
                size: d.size,
            }
        })
        .collect();
    let seen: Mutex<HashMap<Digest, Vec<(u64, u64)>>> = Mutex::new(HashMap::new());
    let active = std::sync::atomic::AtomicUsize::new(0);
    let max_active = std::sync::atomic::AtomicUsize::new(0);
    let outs = c
        .pull_blobs(
            &target,
            &reqs,
            3,
            |_| Ok(Vec::new()),
            |d, done, total| {
                let mut s = seen.lock().unwrap();
                let e = s.entry(d.clone()).or_default();
                if e.is_empty() {
                    let now = active.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    max_active.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                }
                if done == total {
                    active.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                }
                e.push((done, total));
            },
        )
        .unwrap();
    assert_eq!(outs.len(), blobs.len());
    for (out, want) in outs.iter().zip(&blobs) {
        assert!(out == want, "blob content differs");
    }
    let seen = seen.into_inner().unwrap();
    for req in &reqs {
        let events = &seen[&req.digest];
        assert!(events.len() > 2, "few progress events for {}", req.digest);
        assert!(
            events.windows(2).all(|w| w[0].0 <= w[1].0),
            "progress not monotonic"
        );
        assert!(events.iter().all(|(_, t)| *t == req.size));
        assert_eq!(events.last().unwrap().0, req.size);
    }
    assert!(
        max_active.load(std::sync::atomic::Ordering::SeqCst) > 1,
        "downloads did not overlap"
    );

    // A failure names the missing blob.
    let mut bad = reqs.clone();
    let missing = Digest::of(b"missing layer");
    bad.push(BlobRequest {
        digest: missing.clone(),
        size: 13,
    });
    let err = c
        .pull_blobs(&target, &bad[4..], 2, |_| Ok(Vec::new()), |_, _, _| {})
        .unwrap_err();
    assert!(err.to_string().contains(missing.as_str()), "{err}");
}

#[test]
fn skopeo_interop() {
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED skopeo_interop: skopeo is not installed");
        return;
    }
    let (c, _d) = client();
    let addr = plain().addr();
    let target = r(&format!("{addr}/interop/a:1"));
    // gzip layers, so that skopeo keeps them as they are (it compresses
    // uncompressed ones).
    let layers = [3000, 40_000, 500_000]
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&random_bytes(*n, 50 + i as u64)).unwrap();
            gz.finish().unwrap()
        })
        .collect();
    let p = push_layers(&c, &target, "amd64", layers, manifest::OCI_LAYER_GZIP);
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("skopeo")
            .arg("--insecure-policy")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // skopeo pulls what we pushed.
    run(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{addr}/interop/a:1"),
        &format!("oci:{}:1", layout.display()),
    ]);
    for l in &p.layers {
        let path = layout.join("blobs/sha256").join(Digest::of(l).hex());
        assert_eq!(&std::fs::read(&path).unwrap(), l);
    }
    // We pull what skopeo pushed.
    run(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:1", layout.display()),
        &format!("docker://{addr}/interop/b:2"),
    ]);
    let back = r(&format!("{addr}/interop/b:2"));
    let got = c.get_manifest(&back, manifest::DEFAULT_ACCEPT).unwrap();
    let m: ImageManifest = serde_json::from_slice(&got.bytes).unwrap();
    assert_eq!(m.layers.len(), 3);
    for (d, want) in m.layers.iter().zip(&p.layers) {
        let mut out = Vec::new();
        c.get_blob(&back, &d.digest, Some(d.size), &mut out)
            .unwrap();
        assert_eq!(&out, want);
    }
}

#[test]
fn bearer_token_flow() {
    let realm: std::sync::Arc<Mutex<String>> = std::sync::Arc::default();
    let realm2 = realm.clone();
    let token_requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let token_requests2 = token_requests.clone();
    let addr = fake_registry(move |req, _| {
        let line = req.lines().next().unwrap_or("");
        if line.starts_with("get /token") {
            token_requests2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if line.contains("service=fake") && line.contains("scope=repository%3ax%2fy%3apull") {
                http(
                    "200 OK",
                    "Content-Type: application/json\r\n",
                    br#"{"token":"tok-1"}"#,
                )
            } else {
                http("400 Bad Request", "", b"")
            }
        } else if req.contains("authorization: bearer tok-1") {
            http("200 OK", "", b"guarded")
        } else {
            let realm = realm2.lock().unwrap().clone();
            http(
                "401 Unauthorized",
                &format!("WWW-Authenticate: Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:x/y:pull\"\r\n"),
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
        }
    });
    *realm.lock().unwrap() = format!("http://{addr}/token");
    let (c, _d) = client();
    let target = r(&format!("{addr}/x/y:1"));
    for _ in 0..2 {
        let mut out = Vec::new();
        c.get_blob(&target, &Digest::of(b"guarded"), Some(7), &mut out)
            .unwrap();
        assert_eq!(out, b"guarded");
    }
    assert_eq!(
        token_requests.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "token not reused"
    );
}

#[test]
fn broken_download_resumes_with_range() {
    let body = random_bytes(300_000, 21);
    let want = Digest::of(&body);
    let body2 = body.clone();
    let addr = fake_registry(move |req, _| {
        if !req.contains("/blobs/") {
            return http("200 OK", "", b"{}");
        }
        let start = req
            .lines()
            .find_map(|l| l.strip_prefix("range: bytes="))
            .and_then(|r| r.trim().trim_end_matches('-').parse::<usize>().ok());
        match start {
            // Announce everything, send a third, hang up.
            None => {
                let mut v = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body2.len()
                )
                .into_bytes();
                v.extend_from_slice(&body2[..100_000]);
                v
            }
            Some(s) => {
                let rest = &body2[s..];
                http(
                    "206 Partial Content",
                    &format!(
                        "Content-Range: bytes {s}-{}/{}\r\n",
                        body2.len() - 1,
                        body2.len()
                    ),
                    rest,
                )
            }
        }
    });
    let (c, _d) = client();
    let mut out = Vec::new();
    let mut events = Vec::new();
    c.get_blob_with_progress(
        &r(&format!("{addr}/x/y:1")),
        &want,
        Some(body.len() as u64),
        &mut out,
        &mut |d, t| events.push((d, t)),
    )
    .unwrap();
    assert!(out == body, "resumed content differs");
    assert!(events.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(
        events.last().copied(),
        Some((body.len() as u64, body.len() as u64))
    );
}
