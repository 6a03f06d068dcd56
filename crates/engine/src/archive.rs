//! Image archives and image construction: `save` as docker-archive (and
//! the streaming form of every archive format), `load` of docker-archive
//! or OCI archives (plain, gzip or zstd), and `import` of a rootfs tarball
//! as a one-layer image.

use crate::images::{
    normalize_local_name, resolve, LoadReport, LoadedImage, SaveFormat, SaveOptions, SaveReport,
};
use crate::{EngineError, Result};
use barge_image::commit::{self, CommitOptions};
use barge_image::docker_archive::{self, ArchiveFile, ArchiveKind, ExportImage};
use barge_image::oci_layout::{self, Platform};
use barge_image::store::ImageRecord;
use barge_image::{Store, UnpackOptions};
use std::io::{Read, Write};
use std::path::Path;

/// The name `reference` gave `img`, if it named it (not an id or digest).
fn name_used(img: &ImageRecord, reference: &str) -> Option<String> {
    let norm = normalize_local_name(reference).ok();
    img.names
        .iter()
        .find(|n| n.as_str() == reference || norm.as_deref() == Some(n.as_str()))
        .cloned()
}

/// Writes `opts.image` (and, for docker-archive, `opts.more`) to `out` as
/// an `oci-archive` or `docker-archive` (`opts.output` is not used).
///
/// docker-archive follows podman: without `multi_image`, the extra
/// arguments are additional `RepoTags` of the one image (normalized like
/// local names); with it, they are further images, each recorded with
/// the name it was given by. An image given by id gets no tag.
pub fn save_to(store: &Store, opts: &SaveOptions, out: &mut dyn Write) -> Result<SaveReport> {
    let img = resolve(store, &opts.image)?;
    match opts.format {
        SaveFormat::OciArchive => {
            if !opts.more.is_empty() {
                return Err(EngineError::Invalid(
                    "additional tags or images are supported only by the docker-archive format"
                        .into(),
                ));
            }
            let ref_name = name_used(&img, &opts.image).or_else(|| img.names.first().cloned());
            oci_layout::export_tar(store, &img.id.to_string(), out, ref_name.as_deref())?;
            Ok(SaveReport {
                id: img.id.hex().to_string(),
                manifest: img.manifest.to_string(),
                ref_name,
            })
        }
        SaveFormat::DockerArchive => {
            let mut images = Vec::new();
            if opts.multi_image {
                for r in std::iter::once(&opts.image).chain(&opts.more) {
                    let rec = resolve(store, r)?;
                    images.push(ExportImage {
                        reference: rec.id.to_string(),
                        tags: name_used(&rec, r).into_iter().collect(),
                    });
                }
            } else {
                let mut tags = Vec::new();
                for t in &opts.more {
                    let n = normalize_local_name(t)?;
                    if n.contains('@') {
                        return Err(EngineError::Invalid(format!(
                            "{t}: a digest cannot be a tag in a docker-archive"
                        )));
                    }
                    if !tags.contains(&n) {
                        tags.push(n);
                    }
                }
                if let Some(n) = name_used(&img, &opts.image) {
                    if !tags.contains(&n) {
                        tags.push(n);
                    }
                }
                images.push(ExportImage {
                    reference: img.id.to_string(),
                    tags,
                });
            }
            let ref_name = images.first().and_then(|i| i.tags.first().cloned());
            docker_archive::export(store, &images, out)?;
            Ok(SaveReport {
                id: img.id.hex().to_string(),
                manifest: img.manifest.to_string(),
                ref_name,
            })
        }
        SaveFormat::OciDir | SaveFormat::DockerDir => Err(EngineError::Invalid(
            "directory formats cannot be written to a stream".into(),
        )),
    }
}

/// Writes an archive to `path` through a temp file beside it, renamed
/// into place only when complete.
pub fn save_file(store: &Store, opts: &SaveOptions, path: &Path) -> Result<SaveReport> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name()
            .map_or_else(|| "archive".into(), |f| f.to_string_lossy().into_owned())
    ));
    let f = std::fs::File::create(&tmp)
        .map_err(EngineError::io(format!("creating {}", tmp.display())))?;
    let mut w = std::io::BufWriter::new(f);
    let res = save_to(store, opts, &mut w).and_then(|rep| {
        w.flush()
            .and_then(|()| w.get_ref().sync_all())
            .map_err(EngineError::io(format!("writing {}", tmp.display())))?;
        Ok(rep)
    });
    drop(w);
    match res {
        Ok(rep) => {
            std::fs::rename(&tmp, path)
                .map_err(EngineError::io(format!("writing {}", path.display())))?;
            Ok(rep)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Loads an archive file: docker-archive or OCI archive, plain, gzip or
/// zstd. `load_oci` handles an OCI archive (given the plain tar).
pub(crate) fn load_file(
    store: &Store,
    input: &Path,
    load_oci: impl FnOnce(&Path) -> Result<LoadReport>,
) -> Result<LoadReport> {
    let file = ArchiveFile::open(store, input).map_err(|e| match e {
        docker_archive::ArchiveError::NotAnArchive { path, reason } => {
            EngineError::Invalid(format!(
                "payload does not match any of the supported image formats (oci-archive, docker-archive): {}: {reason}",
                path.display()
            ))
        }
        e => e.into(),
    })?;
    match file.kind() {
        ArchiveKind::OciArchive => load_oci(file.path()),
        ArchiveKind::DockerArchive => {
            let opts = docker_archive::ImportOptions {
                normalize_name: |n| normalize_local_name(n).map_err(|e| e.to_string()),
                unpack: UnpackOptions::for_current_user(),
            };
            let rep = docker_archive::import(store, file.path(), &opts)?;
            let images: Vec<LoadedImage> = rep
                .images
                .into_iter()
                .map(|i| LoadedImage {
                    id: i.image.id.hex().to_string(),
                    names: i.names,
                })
                .collect();
            let first = images.first().cloned().unwrap_or(LoadedImage {
                id: String::new(),
                names: Vec::new(),
            });
            Ok(LoadReport {
                id: first.id,
                names: first.names,
                images,
            })
        }
    }
}

/// Loads an archive read from `input` (e.g. stdin): it is spooled into a
/// flocked temp file in the store first (archives are read more than
/// once), which is removed afterwards.
pub fn load_stream(store: &Store, mut input: impl Read) -> Result<LoadReport> {
    let mut tmp = docker_archive::StoreTempFile::new(store, "load")?;
    let path = tmp.path().to_path_buf();
    std::io::copy(&mut input, tmp.file())
        .and_then(|_| tmp.file().sync_all())
        .map_err(EngineError::io(format!(
            "spooling the archive to {}",
            path.display()
        )))?;
    crate::images::load(store, &crate::images::LoadOptions { input: path })
}

// ------------------------------------------------------------------ import

/// Options of [`import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Name for the new image (`localhost/` is added to short names).
    pub reference: Option<String>,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// The history comment (`--message`).
    pub message: Option<String>,
    /// Architecture (default: this host's).
    pub arch: Option<String>,
    /// OS (default: linux).
    pub os: Option<String>,
    /// Architecture variant.
    pub variant: Option<String>,
}

/// The report of [`import`].
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The new image id (hex).
    pub id: String,
    /// The name it got.
    pub name: Option<String>,
}

/// Creates a one-layer image from a rootfs tarball (plain, gzip or zstd),
/// as `podman import` does.
pub fn import(store: &Store, tarball: impl Read, opts: &ImportOptions) -> Result<ImportReport> {
    let name = opts
        .reference
        .as_deref()
        .map(normalize_local_name)
        .transpose()?;
    let mut platform: Platform = commit::host_platform();
    if let Some(a) = &opts.arch {
        platform.architecture.clone_from(a);
    }
    if let Some(o) = &opts.os {
        platform.os.clone_from(o);
    }
    platform.variant.clone_from(&opts.variant);
    let copts = CommitOptions {
        changes: opts.changes.clone(),
        message: opts.message.clone(),
        names: name.iter().cloned().collect(),
        platform: Some(platform),
        ..CommitOptions::default()
    };
    let rep = commit::commit_image(store, None, tarball, &copts)?;
    Ok(ImportReport {
        id: rep.image.id.hex().to_string(),
        name,
    })
}
