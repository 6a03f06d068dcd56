//! `kube play` and `kube down`: validate and plan everything, then act;
//! a failure half-way removes what this play created.

use super::parse::{parse, HostPathType, KubeContainer, KubeFile, KubePod, VolumeSource};
use super::KubeError;
use crate::containers::{ContainerConfig, CreateOptions, Engine, MountSpec, PullPolicy};
use crate::db::Table;
use crate::error::EngineError;
use crate::images;
use crate::pods::{PodCreateOptions, PodRemoveOptions};
use crate::Result;
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

/// Options of [`Engine::kube_play`].
#[derive(Debug, Clone, Default)]
pub struct PlayOptions {
    /// The file's name, for messages (`-` for stdin).
    pub file: String,
    /// Its contents.
    pub yaml: String,
    /// Start the pods (podman's `--start`, default true).
    pub start: bool,
}

/// A pod `kube play` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayedPod {
    /// Pod id.
    pub id: String,
    /// Pod name.
    pub name: String,
    /// Its containers' ids (the infra container not included).
    pub containers: Vec<String>,
}

/// What `kube play` made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlayReport {
    /// Volumes created for PersistentVolumeClaim documents.
    pub volumes: Vec<String>,
    /// Pods created.
    pub pods: Vec<PlayedPod>,
}

/// What `kube down` did.
#[derive(Debug, Default)]
pub struct DownReport {
    /// Pods stopped (ids).
    pub stopped: Vec<String>,
    /// Pods removed (ids).
    pub removed: Vec<String>,
    /// Volumes removed (`--force`: the claims' volumes).
    pub volumes: Vec<String>,
    /// What failed (a pod named in the file that does not exist…).
    pub errors: Vec<EngineError>,
}

/// The container name `kube play` gives a pod's container (as podman).
pub fn container_name(pod: &str, container: &str) -> String {
    format!("{pod}-{container}")
}

/// What the plan found about a host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostPathAction {
    Exists,
    CreateDir,
    CreateFile,
}

/// The checked plan: what to create, resolved against the engine.
#[derive(Debug, Default)]
struct Plan {
    /// Host paths to create (`DirectoryOrCreate`, `FileOrCreate`).
    host_paths: Vec<(PathBuf, HostPathAction)>,
    /// Claim volumes that do not exist yet (documents and pod references).
    new_volumes: Vec<(String, BTreeMap<String, String>, bool)>,
}

/// What was made so far, to undo on failure.
#[derive(Debug, Default)]
struct Undo {
    host_paths: Vec<(PathBuf, HostPathAction)>,
    volumes: Vec<String>,
    pods: Vec<String>,
}

impl Engine {
    /// Whether a container or pod (one name space) is called `name`.
    fn kube_name_taken(&self, name: &str) -> Result<bool> {
        Ok(self.db.id_by_name(Table::Containers, name)?.is_some()
            || self.db.id_by_name(Table::Pods, name)?.is_some())
    }

    /// Checks the parsed file against the engine's state: every name free,
    /// every image present (pulled if the policy says so), host paths of
    /// the right type. Nothing is created but pulled images.
    fn kube_plan(
        &mut self,
        file: &KubeFile,
        fname: &str,
        pull: &mut dyn FnMut(&barge_image::Store, &str) -> Result<()>,
    ) -> Result<Plan> {
        let at = |pod: &KubePod, path: String, msg: String| {
            EngineError::Invalid(format!(
                "{fname}: {} {:?}: {path}: {msg}",
                pod.kind, pod.name
            ))
        };
        let spec_prefix = |pod: &KubePod| {
            if pod.kind == "Deployment" {
                "spec.template.spec"
            } else {
                "spec"
            }
        };
        let mut plan = Plan::default();
        for pod in &file.pods {
            if self.kube_name_taken(&pod.name)? {
                return Err(EngineError::Invalid(format!(
                    "{fname}: {} {:?}: a pod or container named {:?} already exists: remove it first (kube down, or kube play --replace)",
                    pod.kind, pod.name, pod.name
                )));
            }
            for c in &pod.containers {
                let n = container_name(&pod.name, &c.name);
                if self.kube_name_taken(&n)? {
                    return Err(EngineError::Invalid(format!(
                        "{fname}: {} {:?}: the container name {n:?} is already in use",
                        pod.kind, pod.name
                    )));
                }
            }
        }
        // Images: pulled now (per imagePullPolicy), so that a missing one
        // fails before anything exists.
        for pod in &file.pods {
            for (i, c) in pod.containers.iter().enumerate() {
                let path = format!("{}.containers[{i}].image", spec_prefix(pod));
                let found = images::resolve(&self.store, &c.image);
                let r = match (found, c.pull) {
                    (Ok(_), PullPolicy::Missing | PullPolicy::Never) => Ok(()),
                    (Err(e), PullPolicy::Never) => Err(e),
                    (Err(e), PullPolicy::Missing) if !e.is_not_found() => Err(e),
                    _ => pull(&self.store, &c.image)
                        .and_then(|()| images::resolve(&self.store, &c.image).map(|_| ())),
                };
                r.map_err(|e| at(pod, path, e.to_string()))?;
            }
        }
        for pod in &file.pods {
            for (i, v) in pod.volumes.iter().enumerate() {
                let VolumeSource::HostPath { path, kind } = &v.source else {
                    continue;
                };
                let fpath = format!("{}.volumes[{i}].hostPath.path", spec_prefix(pod));
                let action = check_host_path(Path::new(path), *kind)
                    .map_err(|m| at(pod, fpath, format!("{path}: {m}")))?;
                if action != HostPathAction::Exists
                    && !plan.host_paths.iter().any(|(p, _)| p == Path::new(path))
                {
                    plan.host_paths.push((PathBuf::from(path), action));
                }
            }
        }
        let mut want: Vec<(String, BTreeMap<String, String>)> = file
            .claims
            .iter()
            .map(|c| (c.name.clone(), c.labels.clone()))
            .collect();
        for pod in &file.pods {
            for v in &pod.volumes {
                if let VolumeSource::Claim { name, .. } = &v.source {
                    if !want.iter().any(|(n, _)| n == name) {
                        want.push((name.clone(), BTreeMap::new()));
                    }
                }
            }
        }
        for (name, labels) in want {
            if self
                .db
                .get::<crate::volumes::VolumeRecord>(Table::Volumes, &name)?
                .is_none()
            {
                let from_doc = file.claims.iter().any(|c| c.name == name);
                plan.new_volumes.push((name, labels, from_doc));
            }
        }
        Ok(plan)
    }

    /// `kube play`: creates the file's claims' volumes, its pods and their
    /// containers, and starts them. Nothing is created when the file or
    /// the plan is invalid; a failure half-way removes what was made.
    pub fn kube_play(
        &mut self,
        opts: &PlayOptions,
        pull: &mut dyn FnMut(&barge_image::Store, &str) -> Result<()>,
    ) -> Result<PlayReport> {
        let file = parse(&opts.yaml).map_err(|error| KubeError::Parse {
            file: opts.file.clone(),
            error,
        })?;
        let plan = self.kube_plan(&file, &opts.file, pull)?;
        let mut undo = Undo::default();
        match self.kube_apply(&file, &plan, opts.start, &mut undo) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.kube_undo(undo);
                Err(e)
            }
        }
    }

    fn kube_apply(
        &mut self,
        file: &KubeFile,
        plan: &Plan,
        start: bool,
        undo: &mut Undo,
    ) -> Result<PlayReport> {
        let mut report = PlayReport::default();
        for (p, action) in &plan.host_paths {
            let r = match action {
                HostPathAction::CreateDir => std::fs::create_dir_all(p),
                HostPathAction::CreateFile => std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                    .map(drop),
                HostPathAction::Exists => Ok(()),
            };
            r.map_err(EngineError::io(format!("creating {}", p.display())))?;
            undo.host_paths.push((p.clone(), *action));
        }
        for (name, labels, from_doc) in &plan.new_volumes {
            let v = self.volume_create(crate::volumes::VolumeCreateOptions {
                name: Some(name.clone()),
                labels: labels.clone(),
                ..Default::default()
            })?;
            undo.volumes.push(v.name.clone());
            if *from_doc {
                report.volumes.push(v.name);
            }
        }
        for pod in &file.pods {
            let rec = self.pod_create(
                PodCreateOptions {
                    name: Some(pod.name.clone()),
                    hostname: pod.hostname.clone(),
                    labels: pod.labels.clone(),
                    ports: pod.ports.clone(),
                    ..PodCreateOptions::default()
                },
                |_, image| {
                    Err(EngineError::Invalid(format!(
                        "kube play does not pull the infra image {image}"
                    )))
                },
            )?;
            undo.pods.push(rec.id.clone());
            // emptyDir: a volume of its own, shared by the pod's containers
            // and removed with them (anonymous).
            let mut volume_names = BTreeMap::new();
            for v in &pod.volumes {
                if v.source == VolumeSource::EmptyDir {
                    let name = crate::containers::random_id();
                    self.volume_for_container(&name, true)?;
                    undo.volumes.push(name.clone());
                    volume_names.insert(v.name.clone(), name);
                }
            }
            let mut ids = Vec::new();
            for c in &pod.containers {
                let opts = create_options(pod, c, &rec.id, &volume_names)?;
                let crec = self.create(opts, |_, image| {
                    Err(EngineError::Invalid(format!("image {image} vanished")))
                })?;
                ids.push(crec.id);
            }
            if start {
                let r = self.pod_start(&rec.id)?;
                if let Some(e) = r.errors.into_iter().next() {
                    return Err(EngineError::Invalid(format!(
                        "starting container {} of pod {}: {}",
                        e.name, pod.name, e.error
                    )));
                }
            }
            report.pods.push(PlayedPod {
                id: rec.id,
                name: pod.name.clone(),
                containers: ids,
            });
        }
        Ok(report)
    }

    /// Removes what a failed play made (best effort; errors are logged).
    fn kube_undo(&mut self, undo: Undo) {
        for p in undo.pods.iter().rev() {
            let r = self.pod_remove(
                p,
                &PodRemoveOptions {
                    force: true,
                    timeout: Some(0),
                    volumes: true,
                },
            );
            if let Err(e) = r {
                tracing::warn!("kube play: removing pod {p} after a failure: {e}");
            }
        }
        for v in undo.volumes.iter().rev() {
            if self
                .db
                .get::<crate::volumes::VolumeRecord>(Table::Volumes, v)
                .ok()
                .flatten()
                .is_some()
            {
                if let Err(e) = self.volume_remove(v, true) {
                    tracing::warn!("kube play: removing volume {v} after a failure: {e}");
                }
            }
        }
        for (p, action) in undo.host_paths.iter().rev() {
            // Only what is still as we made it: an empty directory or file.
            let r = match action {
                HostPathAction::CreateDir => std::fs::remove_dir(p),
                HostPathAction::CreateFile if std::fs::metadata(p).is_ok_and(|m| m.len() == 0) => {
                    std::fs::remove_file(p)
                }
                _ => Ok(()),
            };
            if let Err(e) = r {
                tracing::warn!("kube play: removing {} after a failure: {e}", p.display());
            }
        }
    }

    /// `kube down`: stops and removes the pods the file names (their
    /// emptyDir volumes go with them); with `force`, the volumes of its
    /// PersistentVolumeClaims too. Missing pods are reported in
    /// `errors`, the others are still removed.
    pub fn kube_down(&mut self, fname: &str, yaml: &str, force: bool) -> Result<DownReport> {
        let file = parse(yaml).map_err(|error| KubeError::Parse {
            file: fname.to_string(),
            error,
        })?;
        let mut report = DownReport::default();
        let mut found = Vec::new();
        let mut empty_dirs = Vec::new();
        for pod in &file.pods {
            match self.pod_lookup(&pod.name) {
                Ok(p) => {
                    empty_dirs.extend(self.kube_empty_dirs(pod, &p.id)?);
                    found.push(p);
                }
                Err(e) => report.errors.push(e),
            }
        }
        for p in &found {
            match self.pod_stop(&p.id, None) {
                Ok(r) if r.errors.is_empty() => report.stopped.push(p.id.clone()),
                Ok(r) => report.errors.extend(r.errors.into_iter().map(|e| e.error)),
                Err(e) => report.errors.push(e),
            }
        }
        for p in &found {
            let r = self.pod_remove(
                &p.id,
                &PodRemoveOptions {
                    force: true,
                    timeout: None,
                    volumes: true,
                },
            );
            match r {
                Ok(r) if r.errors.is_empty() => report.removed.push(p.id.clone()),
                Ok(r) => report.errors.extend(r.errors.into_iter().map(|e| e.error)),
                Err(e) => report.errors.push(e),
            }
        }
        // The emptyDirs normally go with the pod (anonymous volumes); one
        // that lost its mark (re-created at a start after a racing `rm -v`
        // removed it) is removed here once unused.
        for v in empty_dirs {
            if self
                .db
                .get::<crate::volumes::VolumeRecord>(Table::Volumes, &v)?
                .is_some()
                && self.volume_users(&v)?.is_empty()
            {
                if let Err(e) = self.volume_remove(&v, false) {
                    report.errors.push(e);
                }
            }
        }
        if force {
            for c in &file.claims {
                match self.volume_remove(&c.name, false) {
                    Ok(()) => report.volumes.push(c.name.clone()),
                    Err(e) => report.errors.push(e),
                }
            }
        }
        Ok(report)
    }
}

impl Engine {
    /// The volumes behind a played pod's emptyDirs: the members' volume
    /// mounts at the paths where the file mounts an emptyDir.
    fn kube_empty_dirs(&self, pod: &KubePod, pod_id: &str) -> Result<Vec<String>> {
        let members = self.pod_containers(pod_id)?;
        let mut out = Vec::new();
        for c in &pod.containers {
            let Some(rec) = members
                .iter()
                .find(|r| r.name == container_name(&pod.name, &c.name))
            else {
                continue;
            };
            for m in &c.mounts {
                let empty = pod
                    .volumes
                    .iter()
                    .any(|v| v.name == m.volume && v.source == VolumeSource::EmptyDir);
                if !empty {
                    continue;
                }
                for spec in &rec.config.mounts {
                    if let MountSpec::Volume {
                        name, destination, ..
                    } = spec
                    {
                        if *destination == m.path && !name.is_empty() && !out.contains(name) {
                            out.push(name.clone());
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Checks a host path against its `type`; says whether to create it.
fn check_host_path(p: &Path, kind: HostPathType) -> std::result::Result<HostPathAction, String> {
    let meta = std::fs::metadata(p);
    let exists = meta.is_ok();
    let ft = meta.as_ref().ok().map(std::fs::Metadata::file_type);
    let is = |f: &dyn Fn(&std::fs::FileType) -> bool| ft.as_ref().is_some_and(f);
    let bad = |what: &str| Err(format!("not a {what}"));
    match kind {
        HostPathType::DirectoryOrCreate if !exists => Ok(HostPathAction::CreateDir),
        HostPathType::FileOrCreate if !exists => match p.parent() {
            Some(d) if d.is_dir() => Ok(HostPathAction::CreateFile),
            _ => Err("its parent directory does not exist".into()),
        },
        _ if !exists => Err("no such file or directory".into()),
        HostPathType::Unset => Ok(HostPathAction::Exists),
        HostPathType::Directory | HostPathType::DirectoryOrCreate => {
            if is(&std::fs::FileType::is_dir) {
                Ok(HostPathAction::Exists)
            } else {
                bad("directory")
            }
        }
        HostPathType::File | HostPathType::FileOrCreate => {
            if is(&std::fs::FileType::is_file) {
                Ok(HostPathAction::Exists)
            } else {
                bad("regular file")
            }
        }
        HostPathType::Socket => {
            if is(&std::fs::FileType::is_socket) {
                Ok(HostPathAction::Exists)
            } else {
                bad("socket")
            }
        }
        HostPathType::CharDevice => {
            if is(&std::fs::FileType::is_char_device) {
                Ok(HostPathAction::Exists)
            } else {
                bad("character device")
            }
        }
        HostPathType::BlockDevice => {
            if is(&std::fs::FileType::is_block_device) {
                Ok(HostPathAction::Exists)
            } else {
                bad("block device")
            }
        }
    }
}

/// The engine's create options for a pod's container.
fn create_options(
    pod: &KubePod,
    c: &KubeContainer,
    pod_id: &str,
    empty_dirs: &BTreeMap<String, String>,
) -> Result<CreateOptions> {
    let mut mounts = Vec::new();
    for m in &c.mounts {
        let Some(v) = pod.volumes.iter().find(|v| v.name == m.volume) else {
            continue; // checked by the parser
        };
        mounts.push(match &v.source {
            VolumeSource::HostPath { path, .. } => MountSpec::Bind {
                source: PathBuf::from(path),
                destination: m.path.clone(),
                readonly: m.readonly,
                options: Vec::new(),
            },
            VolumeSource::EmptyDir => MountSpec::Volume {
                name: empty_dirs.get(&v.name).cloned().unwrap_or_default(),
                destination: m.path.clone(),
                readonly: m.readonly,
            },
            VolumeSource::Claim { name, .. } => MountSpec::Volume {
                name: name.clone(),
                destination: m.path.clone(),
                readonly: m.readonly,
            },
        });
    }
    let entrypoint = match &c.command {
        Some(cmd) => Some(
            serde_json::to_string(cmd)
                .map_err(|e| EngineError::Invalid(format!("command of {}: {e}", c.name)))?,
        ),
        None => None,
    };
    let config = ContainerConfig {
        env: c.env.clone(),
        workdir: c.workdir.clone().unwrap_or_default(),
        user: c.security.user().unwrap_or_default(),
        tty: c.tty,
        stdin: c.stdin,
        stop_timeout: pod.stop_timeout.unwrap_or(10),
        mounts,
        cap_add: c.security.cap_add.clone(),
        cap_drop: c.security.cap_drop.clone(),
        privileged: c.security.privileged,
        read_only: c.security.read_only,
        no_new_privileges: c.security.no_new_privileges,
        memory: c.memory,
        cpus: c.cpus,
        restart: pod.restart.clone(),
        ..ContainerConfig::default()
    };
    Ok(CreateOptions {
        image: c.image.clone(),
        name: Some(container_name(&pod.name, &c.name)),
        command: c.args.clone().unwrap_or_default(),
        entrypoint,
        config,
        pull: PullPolicy::Missing,
        pod: Some(pod_id.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, "x").unwrap();
        let missing = d.path().join("m");
        assert_eq!(
            check_host_path(d.path(), HostPathType::Directory),
            Ok(HostPathAction::Exists)
        );
        assert!(check_host_path(&f, HostPathType::Directory).is_err());
        assert!(check_host_path(&missing, HostPathType::Unset).is_err());
        assert!(check_host_path(&missing, HostPathType::File).is_err());
        assert_eq!(
            check_host_path(&missing, HostPathType::DirectoryOrCreate),
            Ok(HostPathAction::CreateDir)
        );
        assert_eq!(
            check_host_path(&missing, HostPathType::FileOrCreate),
            Ok(HostPathAction::CreateFile)
        );
        assert!(check_host_path(&missing.join("x"), HostPathType::FileOrCreate).is_err());
        assert!(check_host_path(&f, HostPathType::Socket).is_err());
    }

    #[test]
    fn container_options() {
        let f = parse(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  restartPolicy: Never\n  containers:\n  - name: c\n    image: img\n    command: [sh, -c]\n    args: [echo hi]\n    volumeMounts: [{name: e, mountPath: /e}, {name: h, mountPath: /h, readOnly: true}]\n  volumes: [{name: e, emptyDir: {}}, {name: h, hostPath: {path: /tmp}}]\n",
        )
        .unwrap();
        let pod = &f.pods[0];
        let dirs = BTreeMap::from([("e".to_string(), "vol1".to_string())]);
        let o = create_options(pod, &pod.containers[0], "podid", &dirs).unwrap();
        assert_eq!(o.name.as_deref(), Some("p-c"));
        assert_eq!(o.entrypoint.as_deref(), Some(r#"["sh","-c"]"#));
        assert_eq!(o.command, ["echo hi"]);
        assert_eq!(o.pod.as_deref(), Some("podid"));
        assert_eq!(o.config.restart.name, "no");
        assert_eq!(o.config.stop_timeout, 10);
        assert!(matches!(&o.config.mounts[0], MountSpec::Volume { name, .. } if name == "vol1"));
        assert!(matches!(
            &o.config.mounts[1],
            MountSpec::Bind { readonly: true, .. }
        ));
    }
}
