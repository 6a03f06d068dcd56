//! Building images: one new layer on top of an image (or on nothing), with
//! config changes in Dockerfile syntax. The step behind `barge import`
//! (rootfs tarball → one-layer image) and `barge commit` (container diff →
//! new image).
//!
//! [`commit_image`] streams the layer (plain, gzip or zstd; stored
//! uncompressed, so its blob digest is its DiffID, as podman does), writes
//! the new config (base config + changes, `created`, `author`, a history
//! entry, the DiffID appended to `rootfs.diff_ids`) and an OCI manifest,
//! unpacks the layer and records the image. A failure removes every blob
//! and layer it added, so the store is as before.

use std::io::{self, BufRead, BufReader, Read};
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use crate::digest::Digest;
use crate::layer::{Compression, LayerError, UnpackOptions};
use crate::oci_layout::{
    self, Descriptor, ImageManifest, LayoutError, Platform, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
};
use crate::store::{ImageRecord, Store, StoreError, MAX_METADATA_SIZE};

/// OCI uncompressed layer media type.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Errors of building images.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// A `--change` instruction is invalid.
    #[error("invalid change {change:?}: {reason}")]
    InvalidChange {
        /// The instruction as given.
        change: String,
        /// What is wrong.
        reason: String,
    },
    /// The layer stream could not be read.
    #[error("reading layer: {0}")]
    Layer(#[source] LayerError),
    /// The base image config is not valid JSON.
    #[error("image config {digest}: {source}")]
    Config {
        /// The config digest.
        digest: Digest,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recording the image failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

/// Options of [`commit_image`].
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Dockerfile instructions applied to the config: `CMD`, `ENTRYPOINT`,
    /// `ENV`, `WORKDIR`, `LABEL`, `USER`, `EXPOSE`, `VOLUME`, `STOPSIGNAL`,
    /// `ONBUILD`; `INSTR args` or `INSTR=args`; JSON or shell form.
    pub changes: Vec<String>,
    /// The history entry's comment (`--message`).
    pub message: Option<String>,
    /// The config's `author` and the history entry's.
    pub author: Option<String>,
    /// The history entry's `created_by`; default for an image without a
    /// base: `/bin/sh -c #(nop) ADD file:<diffid hex> in /` (as podman
    /// import writes), with a base: empty.
    pub created_by: Option<String>,
    /// Names for the new image (taken from other images that have them).
    pub names: Vec<String>,
    /// Platform of an image without a base (default: this host's).
    pub platform: Option<Platform>,
    /// Creation time (default: now).
    pub created: Option<SystemTime>,
    /// How to unpack the new layer (default: for the current user).
    pub unpack: Option<UnpackOptions>,
}

/// What [`commit_image`] made.
#[derive(Debug, Clone)]
pub struct CommitReport {
    /// The new image as recorded.
    pub image: ImageRecord,
    /// The new layer's DiffID (also its blob digest).
    pub diff_id: Digest,
    /// The new layer's size in bytes (uncompressed).
    pub layer_size: u64,
}

/// This host's platform in OCI terms (GOARCH names).
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        a => a,
    };
    Platform {
        architecture: arch.into(),
        os: "linux".into(),
        variant: None,
        os_version: None,
    }
}

/// RFC 3339 UTC with nanoseconds, as Go's `time.RFC3339Nano` writes it.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut s = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = d.subsec_nanos();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

// ------------------------------------------------------------- changes

fn bad(change: &str, reason: impl Into<String>) -> CommitError {
    CommitError::InvalidChange {
        change: change.to_string(),
        reason: reason.into(),
    }
}

/// Split like a Dockerfile does for `ENV`/`LABEL` pairs: whitespace
/// separates words; `"…"` (with `\` escapes) and `'…'` quote; a `\`
/// outside quotes escapes the next character.
fn words(change: &str, s: &str) -> Result<Vec<String>, CommitError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(bad(change, "unterminated double quote")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(n @ ('"' | '\\')) => cur.push(n),
                            Some(n) => {
                                cur.push('\\');
                                cur.push(n);
                            }
                            None => return Err(bad(change, "unterminated double quote")),
                        },
                        Some(n) => cur.push(n),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        None => return Err(bad(change, "unterminated single quote")),
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `KEY=VALUE …` pairs, or the legacy `KEY VALUE WITH SPACES` form.
fn pairs(change: &str, args: &str) -> Result<Vec<(String, String)>, CommitError> {
    let first = args.split_whitespace().next().unwrap_or("");
    if first.is_empty() {
        return Err(bad(change, "missing arguments"));
    }
    if !first.contains('=') {
        let key = first.to_string();
        let value = args[first.len()..].trim();
        if value.is_empty() {
            return Err(bad(change, format!("{key} needs a value")));
        }
        let value = words(change, value)?.join(" ");
        return Ok(vec![(key, value)]);
    }
    words(change, args)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(bad(change, format!("{w:?} is not KEY=VALUE"))),
        })
        .collect()
}

/// A JSON string array (exec form), if `args` is one.
fn json_form(change: &str, args: &str) -> Result<Option<Vec<String>>, CommitError> {
    if !args.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<String>>(args) {
        Ok(v) => Ok(Some(v)),
        // Docker treats a non-JSON `[…` as shell form; so do we, unless it
        // is clearly meant as JSON but malformed.
        Err(e) if args.ends_with(']') && args.contains('"') => {
            Err(bad(change, format!("invalid JSON array: {e}")))
        }
        Err(_) => Ok(None),
    }
}

fn config_obj(config: &mut Value) -> &mut Map<String, Value> {
    if !config.get("config").is_some_and(Value::is_object) {
        config["config"] = json!({});
    }
    match config.get_mut("config") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("config was just made an object"),
    }
}

fn map_entry<'a>(cfg: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !cfg.get(key).is_some_and(Value::is_object) {
        cfg.insert(key.into(), json!({}));
    }
    match cfg.get_mut(key) {
        Some(Value::Object(m)) => m,
        _ => unreachable!("entry was just made an object"),
    }
}

/// Apply one Dockerfile-style instruction to an image config (the whole
/// config document; the runtime part is its `config` object).
pub fn apply_change(config: &mut Value, change: &str) -> Result<(), CommitError> {
    let trimmed = change.trim();
    let split = trimmed
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(trimmed.len());
    let instr = trimmed[..split].to_ascii_uppercase();
    let mut args = &trimmed[split..];
    if let Some(rest) = args.strip_prefix('=') {
        args = rest;
    }
    let args = args.trim();
    if instr.is_empty() {
        return Err(bad(change, "empty instruction"));
    }
    if args.is_empty() {
        return Err(bad(change, format!("{instr} needs an argument")));
    }
    let cfg = config_obj(config);
    match instr.as_str() {
        "CMD" | "ENTRYPOINT" => {
            let argv = json_form(change, args)?
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), args.into()]);
            let key = if instr == "CMD" { "Cmd" } else { "Entrypoint" };
            cfg.insert(key.into(), json!(argv));
        }
        "ENV" => {
            let mut env: Vec<String> = cfg
                .get("Env")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            for (k, v) in pairs(change, args)? {
                let prefix = format!("{k}=");
                env.retain(|e| !e.starts_with(&prefix) && e != &k);
                env.push(format!("{k}={v}"));
            }
            cfg.insert("Env".into(), json!(env));
        }
        "LABEL" => {
            let pairs = pairs(change, args)?;
            let labels = map_entry(cfg, "Labels");
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "WORKDIR" => {
            cfg.insert("WorkingDir".into(), json!(args));
        }
        "USER" => {
            cfg.insert("User".into(), json!(args));
        }
        "STOPSIGNAL" => {
            if args.split_whitespace().count() != 1 {
                return Err(bad(change, "STOPSIGNAL takes one signal"));
            }
            cfg.insert("StopSignal".into(), json!(args));
        }
        "EXPOSE" => {
            let mut ports = Vec::new();
            for p in args.split_whitespace() {
                let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                let valid_num = |n: &str| n.parse::<u16>().is_ok_and(|n| n > 0);
                let range_ok = match num.split_once('-') {
                    Some((a, b)) => valid_num(a) && valid_num(b),
                    None => valid_num(num),
                };
                if !range_ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                    return Err(bad(
                        change,
                        format!("{p:?} is not a port (NUMBER[/tcp|udp|sctp])"),
                    ));
                }
                ports.push(format!("{num}/{proto}"));
            }
            let exposed = map_entry(cfg, "ExposedPorts");
            for p in ports {
                exposed.insert(p, json!({}));
            }
        }
        "VOLUME" => {
            let vols = match json_form(change, args)? {
                Some(v) => v,
                None => args.split_whitespace().map(str::to_string).collect(),
            };
            if vols.iter().any(String::is_empty) {
                return Err(bad(change, "empty volume path"));
            }
            let volumes = map_entry(cfg, "Volumes");
            for v in vols {
                volumes.insert(v, json!({}));
            }
        }
        "ONBUILD" => {
            let mut list = cfg
                .get("OnBuild")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.push(json!(args));
            cfg.insert("OnBuild".into(), Value::Array(list));
        }
        other => {
            return Err(bad(
                change,
                format!("unknown instruction {other}: valid are CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR"),
            ))
        }
    }
    Ok(())
}

/// Check every change parses (without a config to apply them to).
pub fn validate_changes(changes: &[String]) -> Result<(), CommitError> {
    let mut scratch = json!({});
    for c in changes {
        apply_change(&mut scratch, c)?;
    }
    Ok(())
}

// -------------------------------------------------------------- commit

fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".into()
        }
        "application/vnd.docker.image.rootfs.diff.tar" => MEDIA_TYPE_LAYER_TAR.into(),
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".into()
        }
        m => m.into(),
    }
}

/// Blobs added by a commit, removed again unless it succeeds.
struct Added<'a> {
    store: &'a Store,
    blobs: Vec<Digest>,
    done: bool,
}

impl Drop for Added<'_> {
    fn drop(&mut self) {
        if !self.done {
            for d in &self.blobs {
                let _ = self.store.remove_blob(d);
            }
        }
    }
}

impl Added<'_> {
    fn put(&mut self, data: &[u8]) -> Result<Descriptor, StoreError> {
        let (digest, new) = self.store.put_blob_bytes(data, None)?;
        if new {
            self.blobs.push(digest.clone());
        }
        Ok(Descriptor {
            media_type: String::new(),
            digest,
            size: data.len() as u64,
            platform: None,
            annotations: std::collections::BTreeMap::new(),
        })
    }
}

/// Decompress `reader` (plain tar, gzip or zstd, detected from magic
/// bytes) into a store blob; returns its digest (= DiffID), size and
/// whether it is new.
fn put_layer(store: &Store, reader: impl Read) -> Result<(Digest, u64, bool), CommitError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let stream_err = |compression| {
        move |source| {
            CommitError::Layer(LayerError::Stream {
                compression,
                source,
            })
        }
    };
    let magic = buffered.fill_buf().map_err(stream_err("unknown"))?;
    let compression = Compression::detect(magic).map_err(CommitError::Layer)?;
    let mut stream: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(buffered).map_err(stream_err("zstd"))?,
        ),
    };
    let name = match compression {
        Compression::None => "tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    };
    let mut w = store.blob_writer(None)?;
    io::copy(&mut stream, &mut w).map_err(stream_err(name))?;
    let size = w.written();
    let (digest, new) = w.commit()?;
    Ok((digest, size, new))
}

/// Add the layer tar `layer` on top of image `base` (a name, id or
/// digest; `None` for an image of this one layer), apply `opts` and record
/// the new image (see the module docs). The tar is unpacked with the safe
/// unpacker, so a hostile tarball fails here naming the entry.
pub fn commit_image(
    store: &Store,
    base: Option<&str>,
    layer: impl Read,
    opts: &CommitOptions,
) -> Result<CommitReport, CommitError> {
    validate_changes(&opts.changes)?;
    let _lock = store.lock_shared()?;
    let base = base.map(|b| store.resolve(b)).transpose()?;
    let (mut config, mut manifest_layers) = if let Some(img) = &base {
        {
            let data = store.read_blob(&img.id, MAX_METADATA_SIZE)?;
            let config: Value =
                serde_json::from_slice(&data).map_err(|source| CommitError::Config {
                    digest: img.id.clone(),
                    source,
                })?;
            let mdata = store.read_blob(&img.manifest, MAX_METADATA_SIZE)?;
            let manifest: ImageManifest =
                serde_json::from_slice(&mdata).map_err(|source| CommitError::Config {
                    digest: img.manifest.clone(),
                    source,
                })?;
            let layers: Vec<Descriptor> = manifest
                .layers
                .into_iter()
                .map(|mut l| {
                    l.media_type = oci_layer_type(&l.media_type);
                    l
                })
                .collect();
            (config, layers)
        }
    } else {
        {
            let p = opts.platform.clone().unwrap_or_else(host_platform);
            let mut c = json!({
                "architecture": p.architecture,
                "os": p.os,
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": []},
            });
            if let Some(v) = p.variant {
                c["variant"] = json!(v);
            }
            (c, Vec::new())
        }
    };
    if !config.is_object() {
        config = json!({});
    }

    let mut added = Added {
        store,
        blobs: Vec::new(),
        done: false,
    };
    let (diff_id, layer_size, new) = put_layer(store, layer)?;
    if new {
        added.blobs.push(diff_id.clone());
    }

    let created = rfc3339(opts.created.unwrap_or_else(SystemTime::now));
    for c in &opts.changes {
        apply_change(&mut config, c)?;
    }
    config["created"] = json!(created);
    if let Some(a) = &opts.author {
        config["author"] = json!(a);
    }
    let mut diff_ids: Vec<Value> = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(diff_id.to_string()));
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let created_by = opts.created_by.clone().unwrap_or_else(|| {
        if base.is_none() {
            format!("/bin/sh -c #(nop) ADD file:{} in /", diff_id.hex())
        } else {
            String::new()
        }
    });
    let mut entry = json!({"created": created, "created_by": created_by});
    if let Some(a) = &opts.author {
        entry["author"] = json!(a);
    }
    if let Some(m) = &opts.message {
        entry["comment"] = json!(m);
    }
    let mut history = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    history.push(entry);
    config["history"] = Value::Array(history);

    let cdata = serde_json::to_vec(&config).map_err(|source| CommitError::Config {
        digest: diff_id.clone(),
        source,
    })?;
    let mut cdesc = added.put(&cdata)?;
    cdesc.media_type = MEDIA_TYPE_CONFIG.into();
    manifest_layers.push(Descriptor {
        media_type: MEDIA_TYPE_LAYER_TAR.into(),
        digest: diff_id.clone(),
        size: layer_size,
        platform: None,
        annotations: std::collections::BTreeMap::new(),
    });
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.into()),
        config: cdesc,
        layers: manifest_layers,
        annotations: std::collections::BTreeMap::new(),
    };
    let mdata = serde_json::to_vec(&manifest).map_err(|source| CommitError::Config {
        digest: diff_id.clone(),
        source,
    })?;
    let mut mdesc = added.put(&mdata)?;
    mdesc.media_type = MEDIA_TYPE_MANIFEST.into();
    let unpack = opts
        .unpack
        .clone()
        .unwrap_or_else(UnpackOptions::for_current_user);
    let (image, _) = oci_layout::commit_image(store, &mdesc, &opts.names, Some(&unpack))?;
    added.done = true;
    Ok(CommitReport {
        image,
        diff_id,
        layer_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut c = json!({});
        for ch in changes {
            apply_change(&mut c, ch).unwrap();
        }
        c["config"].clone()
    }

    #[test]
    fn dockerfile_changes() {
        let c = applied(&[
            "CMD [\"/bin/sh\", \"-c\", \"echo hi\"]",
            "ENTRYPOINT /bin/foo bar",
            "ENV A=1 B=\"two words\" C='x y'",
            "ENV D dee value",
            "env A=replaced",
            "LABEL a=b \"c d\"=\"e f\"",
            "WORKDIR=/w",
            "USER 1000:1000",
            "EXPOSE 80 443/udp 1000-1002/tcp",
            "VOLUME [\"/data\", \"/x\"]",
            "VOLUME /v1 /v2",
            "STOPSIGNAL SIGKILL",
            "ONBUILD RUN true",
        ]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/foo bar"]));
        assert_eq!(
            c["Env"],
            json!(["B=two words", "C=x y", "D=dee value", "A=replaced"])
        );
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e f"}));
        assert_eq!(c["WorkingDir"], json!("/w"));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "443/udp": {}, "1000-1002/tcp": {}})
        );
        assert_eq!(
            c["Volumes"],
            json!({"/data": {}, "/x": {}, "/v1": {}, "/v2": {}})
        );
        assert_eq!(c["StopSignal"], json!("SIGKILL"));
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
    }

    #[test]
    fn bad_changes() {
        for (ch, want) in [
            ("FROM busybox", "unknown instruction FROM"),
            ("CMD", "CMD needs an argument"),
            ("EXPOSE http", "is not a port"),
            ("EXPOSE 80/foo", "is not a port"),
            ("ENV A=\"open", "unterminated double quote"),
            ("ENV =x", "is not KEY=VALUE"),
            ("CMD [\"a\", ]", "invalid JSON array"),
            ("STOPSIGNAL A B", "one signal"),
        ] {
            let err = apply_change(&mut json!({}), ch).unwrap_err().to_string();
            assert!(err.contains(want), "{ch}: {err}");
        }
        // Not JSON: shell form, like Docker.
        assert_eq!(
            applied(&["CMD [ -f /x ] && echo y"])["Cmd"],
            json!(["/bin/sh", "-c", "[ -f /x ] && echo y"])
        );
    }

    #[test]
    fn rfc3339_format() {
        use std::time::Duration;
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000005Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_hours(264_384);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
