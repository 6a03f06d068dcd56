//! Named volumes: directories under `ROOT/volumes/NAME/_data`, recorded in
//! the state database; copied up from the image on first use.

use crate::containers::{now_nanos, validate_name, Engine};
use crate::db::{Inserted, Table};
use crate::error::EngineError;
use crate::Result;
use rustix::fd::{AsFd as _, AsRawFd as _};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// A volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// Name.
    pub name: String,
    /// Driver (`local`).
    pub driver: String,
    /// Host directory holding the data.
    pub mountpoint: String,
    /// Created (unix nanoseconds).
    pub created: i64,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Created for one container without a name (`-v /dst`, image VOLUME).
    #[serde(default)]
    pub anonymous: bool,
}

/// Options of [`Engine::volume_create`].
#[derive(Debug, Clone, Default)]
pub struct VolumeCreateOptions {
    /// Name (default: random).
    pub name: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
    /// Succeed if it exists.
    pub ignore_existing: bool,
}

impl Engine {
    /// Creates a volume.
    pub fn volume_create(&mut self, opts: VolumeCreateOptions) -> Result<VolumeRecord> {
        self.volume_create_inner(opts, false)
    }

    fn volume_create_inner(
        &mut self,
        opts: VolumeCreateOptions,
        anonymous: bool,
    ) -> Result<VolumeRecord> {
        let name = match opts.name {
            Some(n) => {
                validate_name(&n)?;
                n
            }
            None => crate::containers::random_id(),
        };
        if let Some(d) = opts
            .options
            .keys()
            .find(|k| !["o", "type", "device"].contains(&k.as_str()))
        {
            return Err(EngineError::Invalid(format!("invalid volume option {d:?}")));
        }
        if !opts.options.is_empty() {
            return Err(EngineError::NotSupported("volume driver options".into()));
        }
        let dir = self.paths.volumes_dir().join(&name);
        let data = dir.join("_data");
        let rec = VolumeRecord {
            name: name.clone(),
            driver: "local".into(),
            mountpoint: data.display().to_string(),
            created: now_nanos(),
            labels: opts.labels,
            options: opts.options,
            anonymous,
        };
        let r = self
            .db
            .write(|tx| tx.insert(Table::Volumes, &name, None, &rec))?;
        if r == Inserted::Conflict {
            if opts.ignore_existing {
                return self.volume(&name);
            }
            return Err(EngineError::Invalid(format!(
                "volume with name {name} already exists: volume already exists"
            )));
        }
        if let Err(e) = std::fs::create_dir_all(&data) {
            let _ = self.db.write(|tx| tx.delete(Table::Volumes, &name));
            return Err(EngineError::io(format!("creating {}", data.display()))(e));
        }
        Ok(rec)
    }

    /// A volume by name.
    pub fn volume(&self, name: &str) -> Result<VolumeRecord> {
        self.db.get(Table::Volumes, name)?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "no volume with name {name:?} found: no such volume"
            ))
        })
    }

    /// Every volume.
    pub fn volumes(&self) -> Result<Vec<VolumeRecord>> {
        Ok(self.db.all(Table::Volumes)?)
    }

    /// The volume a container mounts, created on first use.
    pub(crate) fn volume_for_container(
        &mut self,
        name: &str,
        anonymous: bool,
    ) -> Result<VolumeRecord> {
        match self.db.get::<VolumeRecord>(Table::Volumes, name)? {
            Some(v) => Ok(v),
            None => self.volume_create_inner(
                VolumeCreateOptions {
                    name: Some(name.to_string()),
                    ignore_existing: true,
                    ..VolumeCreateOptions::default()
                },
                anonymous,
            ),
        }
    }

    /// Names of the containers using a volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        let mut users = Vec::new();
        for c in self.containers()? {
            let uses = c.config.mounts.iter().any(
                |m| matches!(m, crate::containers::MountSpec::Volume { name: n, .. } if n == name),
            ) || c
                .config
                .image_volumes
                .iter()
                .chain(c.config.mounts.iter().filter_map(|m| match m {
                    crate::containers::MountSpec::Volume {
                        name: n,
                        destination,
                        ..
                    } if n.is_empty() => Some(destination),
                    _ => None,
                }))
                .any(|d| anonymous_name(&c.id, d) == name);
            if uses {
                users.push(c.name.clone());
            }
        }
        Ok(users)
    }

    /// Removes a volume; `force` removes the containers using it first.
    pub fn volume_remove(&mut self, name: &str, force: bool) -> Result<()> {
        let v = self.volume(name)?;
        let users = self.volume_users(name)?;
        if !users.is_empty() {
            if !force {
                return Err(EngineError::Invalid(format!(
                    "volume {name} is being used by the following container(s): {}: volume is being used",
                    users.join(", ")
                )));
            }
            for u in users {
                self.remove(&u, true, false)?;
            }
        }
        let dir = Path::new(&v.mountpoint).parent().map(Path::to_path_buf);
        self.db.write(|tx| tx.delete(Table::Volumes, name))?;
        if let Some(dir) = dir {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(EngineError::io(format!("removing {}", dir.display())))?;
            }
        }
        Ok(())
    }

    /// Removes every volume no container uses; returns their names.
    pub fn volume_prune(&mut self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for v in self.volumes()? {
            if self.volume_users(&v.name)?.is_empty() {
                self.volume_remove(&v.name, false)?;
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// Removes the anonymous volumes created for container `id`.
    pub(crate) fn remove_anonymous_volumes(&mut self, id: &str) -> Result<()> {
        for v in self.volumes()? {
            if v.anonymous && self.volume_users(&v.name)?.is_empty() {
                let _ = id;
                self.volume_remove(&v.name, false)?;
            }
        }
        Ok(())
    }
}

impl Engine {
    /// Volumes matching podman's `volume ls --filter` keys `name`
    /// (substring), `label`, `driver` and `dangling` (no container uses
    /// it), sorted by name.
    pub fn volume_list(&self, filters: &[String]) -> Result<Vec<VolumeRecord>> {
        let filters =
            crate::networks::parse_filters(filters, &["name", "label", "driver", "dangling"])?;
        let mut out = Vec::new();
        for v in self.volumes()? {
            let mut ok = true;
            for (k, vals) in &filters {
                ok &= match k.as_str() {
                    "name" => vals.iter().any(|x| v.name.contains(x.as_str())),
                    "driver" => vals.iter().any(|x| &v.driver == x),
                    "label" => vals
                        .iter()
                        .all(|x| crate::networks::label_matches(&v.labels, x)),
                    _ => {
                        let dangling = self.volume_users(&v.name)?.is_empty();
                        vals.iter().any(|x| (x == "true" || x == "1") == dangling)
                    }
                };
            }
            if ok {
                out.push(v);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// podman's `volume inspect` / `volume ls --format json` object.
    pub fn volume_json(&self, v: &VolumeRecord) -> Result<serde_json::Value> {
        let running = self
            .volume_users(&v.name)?
            .iter()
            .filter_map(|n| self.lookup(n).ok())
            .filter(|c| {
                matches!(
                    c.state.status,
                    crate::containers::Status::Running | crate::containers::Status::Paused
                )
            })
            .count();
        let copied = Path::new(&v.mountpoint)
            .parent()
            .is_some_and(|p| p.join(".copied").exists());
        Ok(serde_json::json!({
            "Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint,
            "CreatedAt": crate::containers::query::rfc3339(v.created),
            "Labels": v.labels, "Scope": "local", "Options": v.options,
            "MountCount": running, "NeedsCopyUp": !copied, "NeedsChown": !copied,
        }))
    }
}

/// The name of the anonymous volume of container `id` at `dest`.
pub fn anonymous_name(id: &str, dest: &str) -> String {
    barge_image::Digest::of(format!("{id}{dest}").as_bytes())
        .hex()
        .to_string()
}

/// Copies the image's content at `dest` into an empty volume, once (a
/// volume that has data, or was copied before, is left alone).
pub fn copy_up_once(data: &Path, rootfs: &Path, dest: &str) -> Result<()> {
    let marker = data.parent().map(|p| p.join(".copied"));
    if marker.as_ref().is_some_and(|m| m.exists()) {
        return Ok(());
    }
    let empty = std::fs::read_dir(data)
        .map_err(EngineError::io(format!("reading {}", data.display())))?
        .next()
        .is_none();
    if empty {
        // Resolve the destination inside the root so symlinks in the image
        // cannot point the copy at host files.
        let root = rustix::fs::open(
            rootfs,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| EngineError::io(format!("opening {}", rootfs.display()))(e.into()))?;
        let rel = dest.trim_start_matches('/');
        if let Ok(src) = rustix::fs::openat2(
            root.as_fd(),
            if rel.is_empty() { "." } else { rel },
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
            rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
        ) {
            let from = format!("/proc/self/fd/{}/.", src.as_raw_fd());
            let has_content = std::fs::read_dir(&from).is_ok_and(|mut d| d.next().is_some());
            if has_content {
                let status = std::process::Command::new("cp")
                    .arg("-a")
                    .arg(&from)
                    .arg(data)
                    .status()
                    .map_err(EngineError::io("running cp"))?;
                if !status.success() {
                    return Err(EngineError::Invalid(format!(
                        "copying {dest} of the image into volume {}: cp failed",
                        data.display()
                    )));
                }
            }
        }
    }
    if let Some(m) = marker {
        std::fs::write(&m, b"").map_err(EngineError::io(format!("writing {}", m.display())))?;
    }
    Ok(())
}
