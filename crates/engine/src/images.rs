//! Image operations: each takes an options struct and returns a report.

use crate::{EngineError, Result};
use barge_image::oci_layout::{self, ImportOptions, Platform as LayoutPlatform};
use barge_image::store::ImageRecord;
pub use barge_image::Store;
use barge_image::{Digest, StoreError, UnpackOptions};
pub use barge_registry::config::CONF_ENV as REGISTRIES_CONF_ENV;
pub use barge_registry::Credentials;
use barge_registry::{
    auth, BlobRequest, Client, ClientOptions, ImageManifest, Platform, Reference, RegistryConfig,
};
pub use barge_registry::{ConfigPaths, RegistriesConf};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Largest config blob read (image configs are small).
const MAX_CONFIG: u64 = 8 << 20;

fn rdigest(d: &Digest) -> Result<barge_registry::Digest> {
    barge_registry::Digest::parse(&d.to_string())
        .map_err(|e| EngineError::Invalid(format!("digest {d}: {e}")))
}

fn idigest(d: &barge_registry::Digest) -> Result<Digest> {
    Digest::parse(d.as_str()).map_err(|e| EngineError::Invalid(format!("digest {d}: {e:?}")))
}

fn strip_transport(s: &str) -> &str {
    s.strip_prefix("docker://").unwrap_or(s)
}

/// Normalises a name the way podman does for local names: a name without
/// a registry gets `localhost/`, a name without tag or digest `:latest`.
pub fn normalize_local_name(name: &str) -> Result<String> {
    let name = strip_transport(name);
    let first = name.split('/').next().unwrap_or("");
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let full = if has_registry {
        name.to_string()
    } else {
        format!("localhost/{name}")
    };
    let r = Reference::parse(&full).map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(reference_string(&r))
}

fn reference_string(r: &Reference) -> String {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => format!("{}@{d}", r.name()),
        (Some(t), None) => format!("{}:{t}", r.name()),
        (None, None) => format!("{}:latest", r.name()),
    }
}

/// Finds an image by id, id prefix, digest or name. A short name is tried
/// as given, then as podman does with registries.conf (read from the
/// default places, only when needed): its alias, under `localhost/`, under
/// each unqualified-search registry; and last under `docker.io`.
pub fn resolve(store: &Store, reference: &str) -> Result<ImageRecord> {
    resolve_named(store, reference, None).map(|(i, _)| i)
}

/// [`resolve`] with this registries configuration.
pub fn resolve_with(store: &Store, reference: &str, conf: &RegistriesConf) -> Result<ImageRecord> {
    resolve_named(store, reference, Some(conf)).map(|(i, _)| i)
}

/// Resolves, also returning the name that matched (`None` when found by
/// id or digest).
fn resolve_named(
    store: &Store,
    reference: &str,
    conf: Option<&RegistriesConf>,
) -> Result<(ImageRecord, Option<String>)> {
    let reference = strip_transport(reference);
    let lookup = |c: &str| -> Result<Option<ImageRecord>> {
        match store.resolve(c) {
            Ok(i) => Ok(Some(i)),
            Err(StoreError::ImageNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    };
    if let Some(i) = lookup(reference)? {
        let named = i.names.iter().any(|n| n == reference);
        return Ok((i, named.then(|| reference.to_string())));
    }
    let parsed = Reference::parse(reference).ok();
    let mut candidates = Vec::new();
    if barge_registry::config::is_short_name(reference) && parsed.is_some() {
        let loaded;
        let conf = if let Some(c) = conf {
            c
        } else {
            loaded = RegistriesConf::load_default()?;
            &loaded
        };
        candidates.extend(
            conf.local_candidates(reference)
                .iter()
                .map(reference_string),
        );
    } else if let Ok(n) = normalize_local_name(reference) {
        candidates.push(n);
    }
    if let Some(r) = &parsed {
        candidates.push(reference_string(r));
    }
    for c in &candidates {
        if let Some(i) = lookup(c)? {
            return Ok((i, Some(c.clone())));
        }
    }
    Err(EngineError::ImageNotKnown(reference.to_string()))
}

/// The name to show for an image found by `given`: the given name in its
/// normalized form when the image has it, else the image's first name, else
/// what was given (an id).
pub fn display_name(image: &ImageRecord, given: &str) -> String {
    let given = strip_transport(given);
    let mut candidates = vec![given.to_string()];
    if let Ok(n) = normalize_local_name(given) {
        candidates.push(n);
    }
    if let Ok(r) = Reference::parse(given) {
        candidates.push(reference_string(&r));
    }
    for c in candidates.iter().rev() {
        if image.names.contains(c) {
            return c.clone();
        }
    }
    image
        .names
        .first()
        .cloned()
        .unwrap_or_else(|| given.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `1.23 MB`-style sizes: decimal units, three significant digits (as
/// podman prints them).
#[allow(clippy::cast_precision_loss)]
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        return format!("{n} B");
    }
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut num = format!("{v:.decimals$}");
    if num.contains('.') {
        num = num.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{num} {}", UNITS[u])
}

/// The full name a pull of `reference` gives (`busybox` becomes
/// `docker.io/library/busybox:latest`).
pub fn pull_name(reference: &str) -> Result<String> {
    let r = Reference::parse(strip_transport(reference))
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    Ok(reference_string(&r))
}

/// `5 minutes ago`-style ages.
pub fn human_age(secs: u64) -> String {
    let age = now().saturating_sub(secs);
    let (n, unit) = match age {
        0..=59 => {
            return if age < 2 {
                "Less than a second ago".into()
            } else {
                format!("{age} seconds ago")
            }
        }
        60..=3599 => (age / 60, "minute"),
        3600..=86_399 => (age / 3600, "hour"),
        86_400..=2_591_999 => (age / 86_400, "day"),
        2_592_000..=31_535_999 => (age / 2_592_000, "month"),
        _ => (age / 31_536_000, "year"),
    };
    if n == 1 {
        format!("{} {unit} ago", if unit == "hour" { "An" } else { "A" })
    } else {
        format!("{n} {unit}s ago")
    }
}

/// Seconds since the epoch as `2026-11-30 22:55:00 +0000 UTC`.
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000 UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.123Z`) to epoch seconds.
#[allow(clippy::many_single_char_names)]
fn parse_rfc3339(s: &str) -> Option<u64> {
    if s.len() < 19 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut t = days * 86_400 + hh * 3600 + mm * 60 + ss;
    // Offset suffix (`Z`, `+hh:mm`, `-hh:mm`) after optional fractions.
    let tail = s[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    if let Some(off) = tail.strip_prefix('+').or_else(|| tail.strip_prefix('-')) {
        let oh = off.get(0..2)?.parse::<i64>().ok()?;
        let om = off.get(3..5)?.parse::<i64>().ok()?;
        let sign = if tail.starts_with('+') { 1 } else { -1 };
        t -= sign * (oh * 3600 + om * 60);
    }
    u64::try_from(t).ok()
}

fn read_config(store: &Store, img: &ImageRecord) -> Result<Value> {
    let data = store.read_blob(&img.id, MAX_CONFIG)?;
    serde_json::from_slice(&data)
        .map_err(|e| EngineError::Invalid(format!("image {}: invalid config: {e}", img.id)))
}

fn image_size(store: &Store, img: &ImageRecord) -> u64 {
    img.layers
        .iter()
        .chain(std::iter::once(&img.id))
        .chain(std::iter::once(&img.manifest))
        .map(|d| store.blob_size(d).unwrap_or(0))
        .sum()
}

fn image_created(config: &Value, img: &ImageRecord) -> u64 {
    config
        .get("created")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
        .unwrap_or(img.created)
}

/// Splits `registry/repo:tag` (or `@digest`) into repository and tag.
pub fn split_name(name: &str) -> (String, String) {
    if let Some((repo, d)) = name.split_once('@') {
        return (repo.to_string(), d.to_string());
    }
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (name[..i].to_string(), name[i + 1..].to_string()),
        _ => (name.to_string(), "latest".to_string()),
    }
}

// ------------------------------------------------------------------ list

/// Options of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// Also intermediate images (barge has none yet; all images are listed).
    pub all: bool,
}

/// One image in [`list`]'s report (the fields of podman's `images --format json`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageSummary {
    /// Full image id (config digest hex).
    pub id: String,
    /// Parent image id (always empty).
    pub parent_id: String,
    /// `repo:tag` names.
    pub repo_tags: Vec<String>,
    /// `repo@manifest-digest` names.
    pub repo_digests: Vec<String>,
    /// Creation time (seconds since the epoch).
    pub created: u64,
    /// Creation time as text.
    pub created_at: String,
    /// Size in bytes (compressed blobs).
    pub size: u64,
    /// Shared size (unknown: 0).
    pub shared_size: u64,
    /// Virtual size (same as `size`).
    pub virtual_size: u64,
    /// Labels from the config.
    pub labels: serde_json::Map<String, Value>,
    /// Number of containers using it (none yet).
    pub containers: u64,
    /// Names.
    pub names: Vec<String>,
    /// Manifest digest.
    pub digest: String,
    /// Whether it has no name.
    pub dangling: bool,
}

/// The report of [`list`].
#[derive(Debug, Clone, Default)]
pub struct ListReport {
    /// Images, newest first.
    pub images: Vec<ImageSummary>,
}

impl ImageSummary {
    /// Rows for `images` templates: one per name (`<none>` when untagged),
    /// with the fields `Repository`, `Tag`, `ID`, `Digest`, `Created`,
    /// `CreatedAt`, `CreatedSince`, `Size`, `Names`, `Dangling`.
    pub fn rows(&self) -> Vec<Value> {
        let mut tags: Vec<(String, String)> = self.names.iter().map(|n| split_name(n)).collect();
        if tags.is_empty() {
            tags.push(("<none>".into(), "<none>".into()));
        }
        tags.into_iter()
            .map(|(repo, tag)| {
                json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": self.id.chars().take(12).collect::<String>(),
                    "Id": self.id,
                    "Digest": self.digest,
                    "Created": human_age(self.created),
                    "CreatedSince": human_age(self.created),
                    "CreatedAt": self.created_at,
                    "CreatedTime": self.created,
                    "Size": human_size(self.size),
                    "VirtualSize": human_size(self.virtual_size),
                    "Names": self.names,
                    "Labels": self.labels,
                    "Dangling": self.dangling,
                    "Containers": self.containers,
                })
            })
            .collect()
    }
}

/// Lists the images in the store.
pub fn list(store: &Store, _opts: &ListOptions) -> Result<ListReport> {
    let mut images = Vec::new();
    for img in store.images()? {
        let config = read_config(store, &img).unwrap_or(Value::Null);
        let created = image_created(&config, &img);
        let size = image_size(store, &img);
        let labels = config
            .pointer("/config/Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        images.push(ImageSummary {
            id: img.id.hex().to_string(),
            parent_id: String::new(),
            repo_tags: img.names.clone(),
            repo_digests: img
                .names
                .iter()
                .map(|n| format!("{}@{}", split_name(n).0, img.manifest))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            created,
            created_at: format_time(created),
            size,
            shared_size: 0,
            virtual_size: size,
            labels,
            containers: 0,
            dangling: img.names.is_empty(),
            names: img.names,
            digest: img.manifest.to_string(),
        });
    }
    images.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(ListReport { images })
}

// ---------------------------------------------------------- tag / untag

/// Gives image `source` each of `names` (normalised: `foo` becomes
/// `localhost/foo:latest`). Returns the full names.
pub fn tag(store: &Store, source: &str, names: &[String]) -> Result<Vec<String>> {
    let img = resolve(store, source)?;
    let mut out = Vec::new();
    for n in names {
        let full = normalize_local_name(n)?;
        store.tag(&img.id.to_string(), &full)?;
        out.push(full);
    }
    Ok(out)
}

/// Removes `names` from image `image` (all its names when `names` is
/// empty). Returns the names removed.
pub fn untag(store: &Store, image: &str, names: &[String]) -> Result<Vec<String>> {
    let img = resolve(store, image)?;
    let mut removed = Vec::new();
    if names.is_empty() {
        for n in &img.names {
            store.untag(n)?;
            removed.push(n.clone());
        }
        return Ok(removed);
    }
    for n in names {
        let full = normalize_local_name(n)?;
        let found = [n.clone(), full]
            .into_iter()
            .find(|c| img.names.contains(c))
            .ok_or_else(|| EngineError::Invalid(format!("{n}: tag not known")))?;
        store.untag(&found)?;
        removed.push(found);
    }
    Ok(removed)
}

// ---------------------------------------------------------------- remove

/// Options of [`remove`].
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    /// Remove images with several names even when named by id.
    pub force: bool,
}

/// The report of [`remove`]: what was untagged and deleted, and the error
/// of each reference that failed.
#[derive(Debug, Default)]
pub struct RemoveReport {
    /// Names removed.
    pub untagged: Vec<String>,
    /// Image ids deleted.
    pub deleted: Vec<String>,
    /// References that failed, with their errors.
    pub errors: Vec<(String, EngineError)>,
}

fn remove_one(
    store: &Store,
    reference: &str,
    force: bool,
    report: &mut RemoveReport,
) -> Result<()> {
    let (img, matched) = resolve_named(store, reference, None)?;
    let by_name = matched.filter(|m| img.names.contains(m));
    if let Some(name) = by_name.filter(|_| img.names.len() > 1) {
        store.untag(&name)?;
        report.untagged.push(name);
        return Ok(());
    }
    if img.names.len() > 1 && !force {
        return Err(EngineError::Invalid(format!(
            "unable to delete image {:?} by ID with more than one tag ({:?}): please force removal",
            img.id.hex(),
            img.names
        )));
    }
    let rec = store.remove_image(&img.id.to_string())?;
    report.untagged.extend(rec.names);
    report.deleted.push(rec.id.hex().to_string());
    Ok(())
}

/// Removes images (`rmi`): a name of an image with other names only
/// untags; otherwise the image goes, and its blobs and layers with it.
pub fn remove(store: &Store, references: &[String], opts: &RemoveOptions) -> Result<RemoveReport> {
    let mut report = RemoveReport::default();
    for r in references {
        if let Err(e) = remove_one(store, r, opts.force, &mut report) {
            report.errors.push((r.clone(), e));
        }
    }
    if !report.deleted.is_empty() {
        store.gc()?;
    }
    Ok(report)
}

// ----------------------------------------------------------------- prune

/// Options of [`prune`].
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Remove every image not used by a container, not only unnamed ones.
    pub all: bool,
}

/// The report of [`prune`].
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Image ids removed.
    pub removed: Vec<String>,
    /// Bytes freed (blobs and layers removed by the gc).
    pub blobs_removed: usize,
}

/// Removes unnamed images (all images with `all`), then unreferenced blobs.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    for img in store.images()? {
        if opts.all || img.names.is_empty() {
            let rec = store.remove_image(&img.id.to_string())?;
            report.removed.push(rec.id.hex().to_string());
        }
    }
    let gc = store.gc()?;
    report.blobs_removed = gc.blobs.len();
    Ok(report)
}

// --------------------------------------------------------------- inspect

/// Podman-style `image inspect` data for one image.
pub fn inspect(store: &Store, reference: &str) -> Result<Value> {
    let img = resolve(store, reference)?;
    let config = read_config(store, &img)?;
    let created = image_created(&config, &img);
    let size = image_size(store, &img);
    let manifest: Value =
        serde_json::from_slice(&store.read_blob(&img.manifest, MAX_CONFIG)?).unwrap_or(Value::Null);
    Ok(json!({
        "Id": img.id.hex(),
        "Digest": img.manifest.to_string(),
        "RepoTags": img.names,
        "RepoDigests": img.names.iter().map(|n| format!("{}@{}", split_name(n).0, img.manifest)).collect::<BTreeSet<_>>(),
        "Parent": "",
        // Like podman: the config's comment, else the first history entry's.
        "Comment": config.get("comment").or_else(|| config.pointer("/history/0/comment")).cloned().unwrap_or(json!("")),
        "Created": config.get("created").cloned().unwrap_or_else(|| json!(format_time(created))),
        "Config": config.get("config").cloned().unwrap_or(json!({})),
        "Version": "",
        "Author": config.get("author").cloned().unwrap_or(json!("")),
        "Architecture": config.get("architecture").cloned().unwrap_or(json!("")),
        "Os": config.get("os").cloned().unwrap_or(json!("")),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": img.diff_ids.iter().rev().map(|d| store.layer_path(d).display().to_string()).collect::<Vec<_>>().join(":"),
            },
        },
        "RootFS": {
            "Type": "layers",
            "Layers": img.diff_ids.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
        "Labels": config.pointer("/config/Labels").cloned().unwrap_or(Value::Null),
        "Annotations": manifest.get("annotations").cloned().unwrap_or(json!({})),
        "ManifestType": img.manifest_media_type,
        "User": config.pointer("/config/User").cloned().unwrap_or(json!("")),
        "History": config.get("history").cloned().unwrap_or(json!([])),
        "NamesHistory": img.names,
    }))
}

// --------------------------------------------------------------- history

/// One row of [`history`], top (newest) first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// The image id for the top entry, `<missing>` for the others.
    pub id: String,
    /// Creation time (seconds since the epoch; 0 when unknown).
    pub created: u64,
    /// The command that created it.
    pub created_by: String,
    /// Size of its layer (0 for empty layers).
    pub size: u64,
    /// Comment.
    pub comment: String,
}

impl HistoryEntry {
    /// A template row: `ID`, `Created`, `CreatedAt`, `CreatedBy`, `Size`, `Comment`.
    pub fn row(&self) -> Value {
        json!({
            "ID": self.id.chars().take(12).collect::<String>(),
            "Id": self.id,
            "Created": if self.created == 0 { String::new() } else { human_age(self.created) },
            "CreatedAt": if self.created == 0 { String::new() } else { format_time(self.created) },
            "CreatedBy": self.created_by,
            "Size": human_size(self.size),
            "Comment": self.comment,
        })
    }
}

/// The image's history from its config (one entry per layer when the config
/// has none).
pub fn history(store: &Store, reference: &str) -> Result<Vec<HistoryEntry>> {
    let img = resolve(store, reference)?;
    let config = read_config(store, &img)?;
    let mut sizes = img.layers.iter().map(|d| store.blob_size(d).unwrap_or(0));
    let mut out = Vec::new();
    match config.get("history").and_then(Value::as_array) {
        Some(h) if !h.is_empty() => {
            for e in h {
                let empty = e
                    .get("empty_layer")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                out.push(HistoryEntry {
                    id: "<missing>".into(),
                    created: e
                        .get("created")
                        .and_then(Value::as_str)
                        .and_then(parse_rfc3339)
                        .unwrap_or(0),
                    created_by: s("created_by"),
                    size: if empty { 0 } else { sizes.next().unwrap_or(0) },
                    comment: s("comment"),
                });
            }
        }
        _ => {
            let created = image_created(&config, &img);
            for size in sizes {
                out.push(HistoryEntry {
                    id: "<missing>".into(),
                    created,
                    created_by: String::new(),
                    size,
                    comment: String::new(),
                });
            }
        }
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = img.id.hex().to_string();
    }
    Ok(out)
}

// ------------------------------------------------------------ save / load

/// Archive formats of [`save`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveFormat {
    /// An OCI layout tarball.
    OciArchive,
    /// An OCI layout directory.
    OciDir,
    /// `docker save` format (podman's default).
    #[default]
    DockerArchive,
    /// Docker-style directory (not supported yet).
    DockerDir,
}

impl std::str::FromStr for SaveFormat {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "oci-archive" => Ok(Self::OciArchive),
            "oci-dir" => Ok(Self::OciDir),
            "docker-archive" => Ok(Self::DockerArchive),
            "docker-dir" => Ok(Self::DockerDir),
            _ => Err(EngineError::Invalid(format!(
                "unknown format {s:?}: valid formats are oci-archive, oci-dir, docker-archive, docker-dir"
            ))),
        }
    }
}

/// Options of [`save`].
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// The image.
    pub image: String,
    /// Where to write.
    pub output: PathBuf,
    /// The format.
    pub format: SaveFormat,
    /// docker-archive: more tags for the image, or more images with
    /// `multi_image` (see [`crate::archive::save_to`]).
    pub more: Vec<String>,
    /// docker-archive: `more` names images, not tags.
    pub multi_image: bool,
}

/// The report of [`save`].
#[derive(Debug, Clone)]
pub struct SaveReport {
    /// The image id.
    pub id: String,
    /// The manifest digest.
    pub manifest: String,
    /// The name recorded in the archive, if any.
    pub ref_name: Option<String>,
}

/// Writes an image to an archive (docker-archive, oci-archive) or an OCI
/// layout directory.
pub fn save(store: &Store, opts: &SaveOptions) -> Result<SaveReport> {
    match opts.format {
        SaveFormat::OciArchive | SaveFormat::DockerArchive => {
            crate::archive::save_file(store, opts, &opts.output)
        }
        SaveFormat::OciDir => {
            if !opts.more.is_empty() {
                return Err(EngineError::Invalid(
                    "additional tags or images are supported only by the docker-archive format"
                        .into(),
                ));
            }
            let img = resolve(store, &opts.image)?;
            let ref_name = save_name(&img, &opts.image);
            oci_layout::export(
                store,
                &img.id.to_string(),
                &opts.output,
                ref_name.as_deref(),
            )?;
            Ok(SaveReport {
                id: img.id.hex().to_string(),
                manifest: img.manifest.to_string(),
                ref_name,
            })
        }
        SaveFormat::DockerDir => Err(EngineError::NotSupported(
            "saving in docker-dir format".into(),
        )),
    }
}

/// The name recorded in an archive of `img` saved as `image`: the name
/// used, else the image's first name.
fn save_name(img: &ImageRecord, image: &str) -> Option<String> {
    img.names
        .iter()
        .find(|n| **n == image || normalize_local_name(image).ok().as_deref() == Some(n))
        .or_else(|| img.names.first())
        .cloned()
}

/// Streams an image as an OCI archive into `out` (e.g. stdout).
pub fn save_archive_to(store: &Store, image: &str, out: &mut dyn Write) -> Result<SaveReport> {
    let img = resolve(store, image)?;
    let ref_name = save_name(&img, image);
    oci_layout::export_tar(store, &img.id.to_string(), out, ref_name.as_deref())?;
    Ok(SaveReport {
        id: img.id.hex().to_string(),
        manifest: img.manifest.to_string(),
        ref_name,
    })
}

/// Options of [`load`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// An OCI archive (tarball) or OCI layout directory.
    pub input: PathBuf,
}

/// The report of [`load`].
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The (first) image's id (hex).
    pub id: String,
    /// The (first) image's names, from the archive's
    /// `org.opencontainers.image.ref.name` or docker `RepoTags`.
    pub names: Vec<String>,
    /// Every loaded image (a docker-archive may hold several).
    pub images: Vec<LoadedImage>,
}

/// One image [`load`] loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id (hex).
    pub id: String,
    /// The names it got.
    pub names: Vec<String>,
}

fn layout_platform() -> LayoutPlatform {
    let h = Platform::host();
    LayoutPlatform {
        architecture: h.architecture,
        os: h.os,
        variant: h.variant,
        os_version: None,
    }
}

/// The `org.opencontainers.image.ref.name` annotations of a layout's index.
fn ref_names(input: &Path) -> Result<Vec<String>> {
    let data = if input.is_dir() {
        fs::read(input.join("index.json")).ok()
    } else {
        let f = fs::File::open(input)
            .map_err(EngineError::io(format!("opening {}", input.display())))?;
        let mut found = None;
        if let Ok(entries) = tar::Archive::new(f).entries() {
            for e in entries.flatten() {
                let is_index = e
                    .path()
                    .is_ok_and(|p| p.to_string_lossy().trim_start_matches("./") == "index.json");
                if is_index && e.size() <= MAX_CONFIG {
                    let mut buf = Vec::new();
                    let mut e = e;
                    if e.read_to_end(&mut buf).is_ok() {
                        found = Some(buf);
                    }
                    break;
                }
            }
        }
        found
    };
    let Some(data) = data else {
        return Ok(Vec::new());
    };
    let index: Value = serde_json::from_slice(&data).unwrap_or(Value::Null);
    Ok(index
        .get("manifests")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.pointer("/annotations/org.opencontainers.image.ref.name"))
        .filter_map(Value::as_str)
        // A bare tag (the OCI convention) is no image name.
        .filter(|n| n.contains('/') || n.contains(':') && !n.starts_with(':'))
        .filter_map(|n| normalize_local_name(n).ok())
        .collect())
}

/// Loads a docker-archive or OCI archive (plain, gzip or zstd tarball)
/// or an OCI layout directory into the store.
pub fn load(store: &Store, opts: &LoadOptions) -> Result<LoadReport> {
    if !opts.input.exists() {
        return Err(EngineError::Invalid(format!(
            "{}: no such file or directory",
            opts.input.display()
        )));
    }
    if opts.input.is_dir() {
        return load_oci(store, &opts.input);
    }
    crate::archive::load_file(store, &opts.input, |plain| load_oci(store, plain))
}

/// Loads an OCI layout (directory or plain tarball).
fn load_oci(store: &Store, input: &Path) -> Result<LoadReport> {
    let names = ref_names(input)?;
    let iopts = ImportOptions {
        platform: layout_platform(),
        names: names.clone(),
        ..ImportOptions::default()
    };
    let rep = oci_layout::import(store, input, &iopts).map_err(|e| match e {
        barge_image::LayoutError::NotALayout { path, reason } => EngineError::Invalid(format!(
            "payload does not match any of the supported image formats: {}: {reason}",
            path.display()
        )),
        e => e.into(),
    })?;
    let id = rep.image.id.hex().to_string();
    Ok(LoadReport {
        images: vec![LoadedImage {
            id: id.clone(),
            names: names.clone(),
        }],
        id,
        names,
    })
}

// ----------------------------------------------------------- registries

/// Progress of a pull or push, for the CLI to show.
#[derive(Debug, Clone)]
pub enum Progress {
    /// How a short name was resolved (podman's `Resolved "x" as an alias
    /// (file)` / `Resolving "x" using unqualified-search registries (file)`).
    Resolved {
        /// The description.
        description: String,
    },
    /// A pull candidate is tried (`Trying to pull REFERENCE...`).
    Trying {
        /// The fully-qualified reference.
        reference: String,
    },
    /// The source answered with a manifest; copying starts (`Getting image
    /// source signatures`).
    Copying,
    /// A blob transfer starts (`size` bytes).
    Start {
        /// Blob digest.
        digest: String,
        /// Its size.
        size: u64,
    },
    /// Bytes transferred so far.
    Bytes {
        /// Blob digest.
        digest: String,
        /// Done.
        done: u64,
        /// Total.
        total: u64,
    },
    /// A blob is done (`skipped`: it was there already).
    Done {
        /// Blob digest.
        digest: String,
        /// Whether nothing had to be transferred.
        skipped: bool,
    },
    /// The config blob is done.
    Config {
        /// Its digest.
        digest: String,
    },
    /// Writing the manifest.
    Manifest,
    /// Storing signatures (always none: for podman-like output).
    Signatures,
}

/// A progress callback (called from download threads).
pub type ProgressFn<'a> = &'a (dyn Fn(&Progress) + Sync);

fn no_progress(_: &Progress) {}

/// Registry access settings shared by pull, push, login.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Verify TLS certificates.
    pub tls_verify: bool,
    /// Use this auth file only (default: the usual candidates).
    pub auth_file: Option<PathBuf>,
    /// Credentials to use instead of the auth file's.
    pub credentials: Option<Credentials>,
    /// The registries.conf files to read (default: where podman looks,
    /// [`ConfigPaths::discover`]).
    pub registries_conf: Option<ConfigPaths>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        Self {
            tls_verify: true,
            auth_file: None,
            credentials: None,
            registries_conf: None,
        }
    }
}

/// Loads the registries configuration `opts` names.
pub fn registries_conf(opts: &RegistryOptions) -> Result<RegistriesConf> {
    Ok(match &opts.registries_conf {
        Some(p) => RegistriesConf::load(p)?,
        None => RegistriesConf::load_default()?,
    })
}

/// A client for `registry`; `insecure` (from registries.conf) allows plain
/// HTTP and unverified TLS there, as `--tls-verify=false` does.
fn client(opts: &RegistryOptions, registry: &str, insecure: bool) -> Client {
    let tls_verify = opts.tls_verify && !insecure;
    let mut co = ClientOptions {
        tls_verify: opts.tls_verify,
        ..ClientOptions::default()
    };
    if let Some(a) = &opts.auth_file {
        co = co.auth_file(a);
    }
    if opts.credentials.is_some() || !tls_verify {
        co = co.registry(
            registry,
            RegistryConfig {
                tls_verify,
                insecure: !tls_verify,
                credentials: opts.credentials.clone(),
            },
        );
    }
    Client::new(co)
}

/// Options of [`pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The image reference (`docker://` prefix allowed).
    pub reference: String,
    /// `os/arch[/variant]` (default: the host's).
    pub platform: Option<String>,
    /// Registry settings.
    pub registry: RegistryOptions,
    /// Parallel layer downloads.
    pub jobs: usize,
    /// Whether the caller could ask the user (only changes the wording of
    /// the enforcing short-name-mode error: barge never prompts).
    pub interactive: bool,
}

/// The report of [`pull`].
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The image id (hex).
    pub id: String,
    /// The full name given to the image.
    pub name: String,
    /// The manifest digest.
    pub manifest: String,
    /// Blobs downloaded.
    pub downloaded: Vec<String>,
    /// Blobs that were in the store already.
    pub skipped: Vec<String>,
    /// Where it came from: `name`, or the mirror or rewritten location
    /// (registries.conf) that served it.
    pub source: String,
    /// Candidates that failed before the one that worked (unqualified-search
    /// registries), with their errors.
    pub failed: Vec<(String, String)>,
}

/// Pulls an image from a registry into the store.
///
/// A short name is resolved with registries.conf (alias, else each
/// unqualified-search registry in turn until one has it); each candidate
/// is fetched from its mirrors in order, then from its location, falling
/// back on any error; the image is named after the candidate, not the
/// mirror. Blocked registries are refused.
pub fn pull(store: &Store, opts: &PullOptions, progress: Option<ProgressFn>) -> Result<PullReport> {
    let progress = progress.unwrap_or(&no_progress);
    let input = strip_transport(&opts.reference);
    Reference::parse(input).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let platform = match &opts.platform {
        Some(p) => Platform::parse(p).ok_or_else(|| {
            EngineError::Invalid(format!("invalid platform {p:?}: want os/arch[/variant]"))
        })?,
        None => Platform::host(),
    };
    let conf = registries_conf(&opts.registry)?;
    let resolution = conf.resolve_pull(input, opts.interactive)?;
    if let Some(d) = &resolution.description {
        progress(&Progress::Resolved {
            description: d.clone(),
        });
    }
    let mut errors: Vec<(String, EngineError)> = Vec::new();
    for cand in &resolution.candidates {
        let name = reference_string(cand);
        progress(&Progress::Trying {
            reference: name.clone(),
        });
        match pull_candidate(store, opts, &conf, cand, &platform, progress) {
            Ok(mut report) => {
                report.failed = errors
                    .into_iter()
                    .map(|(n, e)| (n, e.to_string()))
                    .collect();
                return Ok(report);
            }
            Err(e) => errors.push((name, e)),
        }
    }
    if errors.len() == 1 {
        return Err(errors.remove(0).1);
    }
    let mut msg = format!("{} errors occurred while pulling:", errors.len());
    for (_, e) in &errors {
        msg.push_str("\n * ");
        msg.push_str(&e.to_string());
    }
    Err(EngineError::PullFailed(msg))
}

/// Pulls one fully-qualified candidate: mirrors first, then the location.
fn pull_candidate(
    store: &Store,
    opts: &PullOptions,
    conf: &RegistriesConf,
    cand: &Reference,
    platform: &Platform,
    progress: ProgressFn,
) -> Result<PullReport> {
    let name = reference_string(cand);
    let endpoints = conf
        .pull_endpoints(cand)
        .map_err(EngineError::registry(format!(
            "initializing source docker://{name}"
        )))?;
    let mut failures = Vec::new();
    for ep in &endpoints {
        let c = client(&opts.registry, &ep.reference.registry, ep.insecure);
        match pull_from(
            store,
            &c,
            &ep.reference,
            &name,
            platform,
            opts.jobs,
            progress,
        ) {
            Ok(r) => return Ok(r),
            Err(e) => failures.push(e),
        }
    }
    let Some(primary) = failures.pop() else {
        return Err(EngineError::Invalid(format!(
            "{name}: nowhere to pull from"
        )));
    };
    if failures.is_empty() {
        return Err(primary);
    }
    let mirrors = failures
        .iter()
        .map(|e| format!("[{e}]"))
        .collect::<Vec<_>>()
        .join("\n");
    Err(EngineError::PullFailed(format!(
        "initializing source docker://{name}: (Mirrors also failed: {mirrors}): {primary}"
    )))
}

/// Pulls `r` (a physical reference) with `c`, naming the image `name`.
fn pull_from(
    store: &Store,
    c: &Client,
    r: &Reference,
    name: &str,
    platform: &Platform,
    jobs: usize,
    progress: ProgressFn,
) -> Result<PullReport> {
    let name = name.to_string();
    let source = reference_string(r);
    let ctx = format!("initializing source docker://{source}");
    let pm = c
        .get_manifest_for_platform(r, platform)
        .map_err(EngineError::registry(ctx))?;
    progress(&Progress::Copying);
    let m = pm.manifest;
    let manifest: ImageManifest = serde_json::from_slice(&m.bytes)
        .map_err(|e| EngineError::Invalid(format!("{name}: invalid image manifest: {e}")))?;
    let _lock = store.lock_shared()?;
    let ctx = format!("copying image docker://{source}");
    let mut report = PullReport {
        id: manifest.config.digest.hex().to_string(),
        name: name.clone(),
        manifest: m.digest.to_string(),
        downloaded: Vec::new(),
        skipped: Vec::new(),
        source,
        failed: Vec::new(),
    };
    // The config first: its DiffIDs let layers unpack while they download.
    let cd = idigest(&manifest.config.digest)?;
    if !store.has_blob(&cd) {
        let mut w = store.blob_writer(Some(cd.clone()))?;
        c.get_blob(
            r,
            &manifest.config.digest,
            Some(manifest.config.size),
            &mut w,
        )
        .map_err(EngineError::registry(ctx.clone()))?;
        w.commit()?;
    }
    let diff_ids = config_diff_ids(store, &cd, manifest.layers.len());
    let unpack_opts = UnpackOptions::for_current_user();
    let mut wanted = Vec::new();
    // Per wanted blob: the layer to unpack from the download, if any.
    let mut stream_to: Vec<Option<(Digest, String)>> = Vec::new();
    for (n, l) in manifest.layers.iter().enumerate() {
        let d = idigest(&l.digest)?;
        if store.has_blob(&d) {
            progress(&Progress::Done {
                digest: l.digest.to_string(),
                skipped: true,
            });
            report.skipped.push(l.digest.to_string());
        } else if !wanted.iter().any(|b: &BlobRequest| b.digest == l.digest) {
            wanted.push(BlobRequest {
                digest: l.digest.clone(),
                size: l.size,
            });
            stream_to.push(
                diff_ids
                    .as_ref()
                    .map(|ids| ids[n].clone())
                    .filter(|id| !store.has_layer(id))
                    .map(|id| (id, l.media_type.clone())),
            );
        }
    }
    for b in &wanted {
        progress(&Progress::Start {
            digest: b.digest.to_string(),
            size: b.size,
        });
    }
    download_layers(
        store,
        c,
        r,
        &wanted,
        &stream_to,
        jobs.max(1),
        &unpack_opts,
        progress,
        &ctx,
    )?;
    for b in &wanted {
        report.downloaded.push(b.digest.to_string());
    }
    progress(&Progress::Config {
        digest: manifest.config.digest.to_string(),
    });
    progress(&Progress::Manifest);
    let md = idigest(&m.digest)?;
    store.put_blob_bytes(&m.bytes, Some(&md))?;
    let desc = oci_layout::Descriptor {
        media_type: m.media_type.clone(),
        digest: md,
        size: m.bytes.len() as u64,
        platform: None,
        annotations: std::collections::BTreeMap::new(),
    };
    // Layers already unpacked above are skipped here; this unpacks those
    // whose blob was in the store already but not their layer.
    let (img, _) = barge_image::commit_image(
        store,
        &desc,
        std::slice::from_ref(&name),
        Some(&unpack_opts),
    )?;
    progress(&Progress::Signatures);
    report.id = img.id.hex().to_string();
    // Leftovers of an earlier, killed pull (unlocked temp files older than
    // the store's grace period) go now rather than waiting for gc.
    let _ = store.clean_temp();
    Ok(report)
}

/// The DiffIDs of the config blob `config`, if it lists exactly `layers`
/// valid ones (otherwise layers are unpacked only by `commit_image`, which
/// reports the problem).
fn config_diff_ids(store: &Store, config: &Digest, layers: usize) -> Option<Vec<Digest>> {
    let data = store.read_blob(config, MAX_CONFIG).ok()?;
    let v: Value = serde_json::from_slice(&data).ok()?;
    let ids = v.get("rootfs")?.get("diff_ids")?.as_array()?;
    if ids.len() != layers {
        return None;
    }
    ids.iter()
        .map(|d| d.as_str().and_then(|s| Digest::parse(s).ok()))
        .collect()
}

/// Downloads `wanted` into the store with `jobs` threads. A blob with a
/// DiffID in `stream_to` is unpacked by a thread of its own while it
/// downloads (the layer is renamed into place only after the blob was
/// verified and committed and the DiffID matched). Every blob is committed
/// as soon as it is complete. On failure the root cause is returned: a
/// failed download (its digest, size or transport) over the unpack error it
/// caused, an unpack error of a verified blob, or a store error.
#[allow(clippy::too_many_arguments)]
fn download_layers(
    store: &Store,
    c: &Client,
    r: &Reference,
    wanted: &[BlobRequest],
    stream_to: &[Option<(Digest, String)>],
    jobs: usize,
    unpack_opts: &UnpackOptions,
    progress: ProgressFn,
    ctx: &str,
) -> Result<()> {
    use crate::layer_stream;
    use std::sync::Mutex;
    // Errors that are root causes (unpack or commit), in arrival order.
    let failures: Mutex<Vec<StoreError>> = Mutex::new(Vec::new());
    let fail = |e: StoreError| {
        failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(e);
    };
    let pulled = std::thread::scope(|s| {
        c.pull_blobs_each(
            r,
            wanted,
            jobs,
            |d| {
                let i = wanted.iter().position(|b| &b.digest == d).unwrap_or(0);
                let exp = idigest(d).map_err(|e| std::io::Error::other(e.to_string()))?;
                let w = store
                    .blob_writer(Some(exp.clone()))
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let Some((diff_id, media_type)) = stream_to.get(i).cloned().flatten() else {
                    return Ok(layer_stream::blob_only(w));
                };
                let (sink, mut reader) = layer_stream::tee(w);
                let fail = &fail;
                s.spawn(move || {
                    let res = store.unpack_layer_from(
                        &mut reader,
                        &exp,
                        Some(&media_type),
                        Some(&diff_id),
                        unpack_opts,
                    );
                    // On failure, read on to the end of the download: if
                    // the blob turns out bad (digest, size, transport), that
                    // is the root cause and the download reports it;
                    // otherwise the layer's content is at fault.
                    if let Err(e) = res {
                        let drained = std::io::copy(&mut reader, &mut std::io::sink());
                        if drained.is_ok() && !reader.aborted {
                            fail(e);
                        }
                    }
                });
                Ok(sink)
            },
            |d, done, total| {
                progress(&Progress::Bytes {
                    digest: d.to_string(),
                    done,
                    total,
                });
            },
            |i, sink| {
                sink.finish().map_err(|e| {
                    let msg = e.to_string();
                    fail(e);
                    std::io::Error::other(msg)
                })?;
                if let Some(b) = wanted.get(i) {
                    progress(&Progress::Done {
                        digest: b.digest.to_string(),
                        skipped: false,
                    });
                }
                Ok(())
            },
        )
        .map_err(EngineError::registry(ctx.to_string()))
        // The scope joins the unpack threads before returning.
    });
    let mut failures = failures
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !failures.is_empty() {
        return Err(failures.remove(0).into());
    }
    pulled
}

/// Reports bytes read as [`Progress::Bytes`].
struct ProgressReader<'a, R> {
    inner: R,
    digest: String,
    done: u64,
    total: u64,
    progress: ProgressFn<'a>,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(&Progress::Bytes {
            digest: self.digest.clone(),
            done: self.done,
            total: self.total,
        });
        Ok(n)
    }
}

/// Options of [`push`].
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// The local image.
    pub source: String,
    /// Where to push (default: `source` as a registry reference).
    pub destination: Option<String>,
    /// Registry settings.
    pub registry: RegistryOptions,
}

/// The report of [`push`].
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The destination reference.
    pub destination: String,
    /// The manifest digest pushed.
    pub digest: String,
    /// Blobs uploaded (or mounted).
    pub uploaded: Vec<String>,
    /// Blobs the registry had.
    pub existed: Vec<String>,
}

/// Pushes a local image to a registry.
pub fn push(store: &Store, opts: &PushOptions, progress: Option<ProgressFn>) -> Result<PushReport> {
    let progress = progress.unwrap_or(&no_progress);
    let (img, matched) = resolve_named(store, &opts.source, None)?;
    let dest = if let Some(d) = &opts.destination {
        strip_transport(d).to_string()
    } else {
        let s = strip_transport(&opts.source);
        matched
            .filter(|m| img.names.contains(m))
            .or_else(|| {
                img.names
                    .iter()
                    .find(|n| {
                        *n == s || normalize_local_name(s).ok().as_deref() == Some(n.as_str())
                    })
                    .cloned()
            })
            .unwrap_or_else(|| s.to_string())
    };
    let r = Reference::parse(&dest).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let dest_name = reference_string(&r);
    let ctx = format!("trying to reuse blob or push to docker://{dest_name}");
    // Pushes are not redirected (as in podman), but blocked and insecure apply.
    let insecure = registries_conf(&opts.registry)?
        .access(&dest_name)
        .map_err(EngineError::registry(ctx.clone()))?;
    let c = client(&opts.registry, &r.registry, insecure);
    let _lock = store.lock_shared()?;
    let mut report = PushReport {
        destination: dest_name.clone(),
        digest: String::new(),
        uploaded: Vec::new(),
        existed: Vec::new(),
    };
    for d in img.layers.iter().chain(std::iter::once(&img.id)) {
        let size = store.blob_size(d)?;
        progress(&Progress::Start {
            digest: d.to_string(),
            size,
        });
        let mut reader = ProgressReader {
            inner: store.open_blob(d)?,
            digest: d.to_string(),
            done: 0,
            total: size,
            progress,
        };
        let out = c
            .push_blob(&r, &rdigest(d)?, size, &mut reader, None)
            .map_err(EngineError::registry(ctx.clone()))?;
        let skipped = out == barge_registry::PushOutcome::Existed;
        if skipped {
            report.existed.push(d.to_string());
        } else {
            report.uploaded.push(d.to_string());
        }
        if *d == img.id {
            progress(&Progress::Config {
                digest: d.to_string(),
            });
        } else {
            progress(&Progress::Done {
                digest: d.to_string(),
                skipped,
            });
        }
    }
    progress(&Progress::Manifest);
    let bytes = store.read_blob(&img.manifest, MAX_CONFIG)?;
    let media_type = if img.manifest_media_type.is_empty() {
        oci_layout::MEDIA_TYPE_MANIFEST.to_string()
    } else {
        img.manifest_media_type.clone()
    };
    let digest = c
        .push_manifest(&r, &media_type, &bytes)
        .map_err(EngineError::registry(format!(
            "writing manifest to docker://{dest_name}"
        )))?;
    progress(&Progress::Signatures);
    report.digest = digest.to_string();
    Ok(report)
}

/// Options of [`login`].
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Registry host (a full reference is cut to its registry).
    pub registry: String,
    /// The credentials.
    pub credentials: Credentials,
    /// Registry settings (the auth file written is `auth_file` or the default).
    pub registry_options: RegistryOptions,
}

fn registry_host(s: &str) -> String {
    let s = strip_transport(s)
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_string()
}

fn auth_file(opts: &RegistryOptions) -> Result<PathBuf> {
    opts.auth_file
        .clone()
        .or_else(auth::default_auth_file)
        .ok_or_else(|| EngineError::Invalid("no auth file location: set REGISTRY_AUTH_FILE".into()))
}

/// Checks credentials against a registry and stores them. Returns the auth
/// file written.
pub fn login(opts: &LoginOptions) -> Result<PathBuf> {
    let host = registry_host(&opts.registry);
    let file = auth_file(&opts.registry_options)?;
    let insecure = registries_conf(&opts.registry_options)?
        .access(&host)
        .map_err(EngineError::registry(format!("logging into {host:?}")))?;
    let c = client(&opts.registry_options, &host, insecure);
    c.login(&host, &opts.credentials, &file)
        .map_err(EngineError::registry(format!("logging into {host:?}")))?;
    Ok(file)
}

/// Removes a registry's stored credentials.
pub fn logout(registry: &str, opts: &RegistryOptions) -> Result<()> {
    let host = registry_host(registry);
    let file = auth_file(opts)?;
    let c = client(opts, &host, false);
    let had = c
        .logout(&host, &file)
        .map_err(EngineError::registry(format!("logging out of {host:?}")))?;
    if had {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!("not logged into {host}")))
    }
}

// ----------------------------------------------------------------- check

/// The report of [`check`].
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Blobs that verified.
    pub ok: usize,
    /// Problems found, one line each.
    pub problems: Vec<String>,
    /// Stale temp entries and unreferenced data removed (`repair`).
    pub repaired: Vec<String>,
}

/// Verifies every blob of the store; with `repair`, removes damaged images'
/// unreferenced data with a gc.
pub fn check(store: &Store, repair: bool) -> Result<CheckReport> {
    let rep = store.check()?;
    let mut out = CheckReport {
        ok: rep.ok,
        ..CheckReport::default()
    };
    for (d, actual) in &rep.corrupt {
        out.problems
            .push(format!("blob {d} is corrupt (content hashes to {actual})"));
    }
    for d in &rep.missing {
        out.problems.push(format!("blob {d} is missing"));
    }
    for p in &rep.partial {
        out.problems
            .push(format!("partial download {} left behind", p.display()));
    }
    for p in &rep.stray {
        out.problems.push(format!("stray entry {}", p.display()));
    }
    if repair {
        let gc = store.gc()?;
        out.repaired
            .extend(gc.temp.iter().map(|p| p.display().to_string()));
        out.repaired
            .extend(gc.blobs.iter().map(ToString::to_string));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_names() {
        assert_eq!(
            normalize_local_name("foo").expect("n"),
            "localhost/foo:latest"
        );
        assert_eq!(normalize_local_name("foo:1").expect("n"), "localhost/foo:1");
        assert_eq!(
            normalize_local_name("127.0.0.1:5000/a/b").expect("n"),
            "127.0.0.1:5000/a/b:latest"
        );
        assert_eq!(
            normalize_local_name("quay.io/x/y:z").expect("n"),
            "quay.io/x/y:z"
        );
    }

    #[test]
    fn names_split() {
        assert_eq!(
            split_name("localhost:5000/a:v1"),
            ("localhost:5000/a".into(), "v1".into())
        );
        assert_eq!(
            split_name("localhost:5000/a"),
            ("localhost:5000/a".into(), "latest".into())
        );
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-03-01T01:02:03.5Z"), Some(1_709_254_923));
        assert_eq!(
            parse_rfc3339("2024-03-01T02:02:03+01:00"),
            Some(1_709_254_923)
        );
        assert_eq!(format_time(1_709_254_923), "2024-03-01 01:02:03 +0000 UTC");
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.5 MB");
        assert_eq!(human_size(2_000), "2 kB");
        assert_eq!(human_size(3_543_808), "3.54 MB");
        assert_eq!(human_size(123_456_789), "123 MB");
        assert_eq!(
            pull_name("busybox").expect("name"),
            "docker.io/library/busybox:latest"
        );
    }
}
