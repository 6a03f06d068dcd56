//! Kubernetes YAML → a validated model of what `kube play` will create.
//!
//! Pure: no engine state and no file system. Every error names the field
//! (`spec.containers[0].livenessProbe: not supported`); cross-document
//! references (ConfigMaps) are resolved here too.

use super::yaml::{FieldError, FieldResult, Obj};
use crate::containers::{PortMapping, PullPolicy, RestartPolicy};
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Where a document's problem is: its index (from 1), kind and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocContext {
    /// 1-based document number in the file.
    pub index: usize,
    /// `kind` when known.
    pub kind: String,
    /// `metadata.name` when known.
    pub name: String,
}

/// A parse or validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not YAML.
    Syntax {
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// The parser's message.
        message: String,
    },
    /// A field is wrong.
    Field {
        /// Which document.
        doc: DocContext,
        /// The field and the problem.
        error: FieldError,
    },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Syntax {
                line: Some(l),
                column: Some(c),
                message,
            } => write!(f, "line {l}, column {c}: invalid YAML: {message}"),
            Self::Syntax { message, .. } => write!(f, "invalid YAML: {message}"),
            Self::Field { doc, error } => {
                write!(f, "document {}", doc.index)?;
                match (doc.kind.is_empty(), doc.name.is_empty()) {
                    (false, false) => write!(f, " ({} {:?})", doc.kind, doc.name)?,
                    (false, true) => write!(f, " ({})", doc.kind)?,
                    _ => {}
                }
                if error.path.is_empty() {
                    write!(f, ": {}", error.message)
                } else {
                    write!(f, ": {}: {}", error.path, error.message)
                }
            }
        }
    }
}

/// Everything a file asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeFile {
    /// Pods (a Deployment is one pod named `NAME-pod`).
    pub pods: Vec<KubePod>,
    /// PersistentVolumeClaims: named volumes to create.
    pub claims: Vec<KubeClaim>,
}

/// A PersistentVolumeClaim document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeClaim {
    /// The volume's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// A pod to create.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubePod {
    /// Pod name.
    pub name: String,
    /// `Pod` or `Deployment`.
    pub kind: String,
    /// Pod labels.
    pub labels: BTreeMap<String, String>,
    /// `spec.hostname` (default: the pod's name).
    pub hostname: Option<String>,
    /// `spec.restartPolicy` as the engine's policy.
    pub restart: RestartPolicy,
    /// `spec.terminationGracePeriodSeconds`: stop timeout.
    pub stop_timeout: Option<u32>,
    /// Ports with a `hostPort`: what the pod publishes.
    pub ports: Vec<PortMapping>,
    /// `spec.volumes`.
    pub volumes: Vec<KubeVolume>,
    /// `spec.containers`.
    pub containers: Vec<KubeContainer>,
}

/// A pod volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVolume {
    /// Its name in the pod.
    pub name: String,
    /// What it is.
    pub source: VolumeSource,
}

/// The kinds of volume supported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A host path.
    HostPath {
        /// Absolute host path.
        path: String,
        /// `type`: checked (or created) before anything is made.
        kind: HostPathType,
    },
    /// A fresh volume shared by the pod's containers, removed with it.
    EmptyDir,
    /// A named volume named after the claim.
    Claim {
        /// The claim (= volume) name.
        name: String,
        /// `readOnly`.
        readonly: bool,
    },
}

/// `hostPath.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathType {
    /// Unset: the path must exist.
    Unset,
    /// `DirectoryOrCreate`.
    DirectoryOrCreate,
    /// `Directory`.
    Directory,
    /// `FileOrCreate`.
    FileOrCreate,
    /// `File`.
    File,
    /// `Socket`.
    Socket,
    /// `CharDevice`.
    CharDevice,
    /// `BlockDevice`.
    BlockDevice,
}

impl HostPathType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::Unset,
            "DirectoryOrCreate" => Self::DirectoryOrCreate,
            "Directory" => Self::Directory,
            "FileOrCreate" => Self::FileOrCreate,
            "File" => Self::File,
            "Socket" => Self::Socket,
            "CharDevice" => Self::CharDevice,
            "BlockDevice" => Self::BlockDevice,
            _ => return None,
        })
    }

    /// The Kubernetes name (empty for unset).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unset => "",
            Self::DirectoryOrCreate => "DirectoryOrCreate",
            Self::Directory => "Directory",
            Self::FileOrCreate => "FileOrCreate",
            Self::File => "File",
            Self::Socket => "Socket",
            Self::CharDevice => "CharDevice",
            Self::BlockDevice => "BlockDevice",
        }
    }
}

/// A container of a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KubeContainer {
    /// Its name in the pod (the container is named `POD-NAME`).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// `imagePullPolicy`.
    pub pull: PullPolicy,
    /// `command`: replaces the image's entrypoint.
    pub command: Option<Vec<String>>,
    /// `args`: replaces the image's cmd.
    pub args: Option<Vec<String>>,
    /// `KEY=VALUE`, ConfigMaps resolved (`envFrom` first, `env` after).
    pub env: Vec<String>,
    /// `workingDir`.
    pub workdir: Option<String>,
    /// Declared ports (published ones are also in the pod's list).
    pub ports: Vec<PortMapping>,
    /// `volumeMounts`.
    pub mounts: Vec<KubeMount>,
    /// `resources.limits.memory` in bytes.
    pub memory: Option<i64>,
    /// `resources.limits.cpu` in CPUs.
    pub cpus: Option<f64>,
    /// `securityContext`.
    pub security: Security,
    /// `tty`.
    pub tty: bool,
    /// `stdin`.
    pub stdin: bool,
}

/// A `volumeMounts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeMount {
    /// The pod volume's name.
    pub volume: String,
    /// Absolute path in the container.
    pub path: String,
    /// `readOnly`.
    pub readonly: bool,
}

/// The supported part of a `securityContext`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// `privileged`.
    pub privileged: bool,
    /// `readOnlyRootFilesystem`.
    pub read_only: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    /// `runAsUser`.
    pub run_as_user: Option<u32>,
    /// `runAsGroup`.
    pub run_as_group: Option<u32>,
    /// `capabilities.add` (`CAP_` names).
    pub cap_add: Vec<String>,
    /// `capabilities.drop` (`CAP_` names).
    pub cap_drop: Vec<String>,
}

impl Security {
    /// The `--user` value, if any.
    pub fn user(&self) -> Option<String> {
        match (self.run_as_user, self.run_as_group) {
            (Some(u), Some(g)) => Some(format!("{u}:{g}")),
            (Some(u), None) => Some(u.to_string()),
            // A group alone: root with that group (Kubernetes keeps the
            // image's user; the engine's user string needs one).
            (None, Some(g)) => Some(format!("0:{g}")),
            (None, None) => None,
        }
    }
}

/// The pod name a Deployment's pod gets (as podman).
pub fn deployment_pod_name(name: &str) -> String {
    format!("{name}-pod")
}

/// A name Kubernetes and the engine both accept: a DNS label (lower-case
/// letters, digits, `-`, at most 63).
fn check_dns_label(path: &str, name: &str) -> FieldResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            path,
            format!("invalid name {name:?}: expected lower-case letters, digits and '-' (at most 63, no '-' at either end)"),
        ))
    }
}

/// A DNS subdomain (pod, ConfigMap, claim names): labels joined by dots.
fn check_dns_subdomain(path: &str, name: &str) -> FieldResult<()> {
    if name.len() > 253 || name.split('.').any(|l| check_dns_label(path, l).is_err()) {
        return Err(FieldError::new(
            path,
            format!("invalid name {name:?}: expected lower-case letters, digits, '-' and '.'"),
        ));
    }
    Ok(())
}

/// Parses a Kubernetes memory quantity (`128Mi`, `1G`, `1e6`, `1048576`)
/// into bytes.
pub fn parse_memory(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid quantity {s:?}: expected a number with an optional unit (Ki, Mi, Gi, k, M, G…)"))?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..]
                .parse()
                .map_err(|_| format!("invalid quantity exponent {s:?}"))?;
            10f64.powi(exp)
        }
        other => {
            return Err(format!(
                "invalid quantity {s:?}: unknown unit {other:?} (use Ki, Mi, Gi, Ti, k, M, G, T)"
            ))
        }
    };
    let bytes = (n * mult).ceil();
    if !(1.0..9.0e18).contains(&bytes) {
        return Err(format!("invalid quantity {s:?}: out of range"));
    }
    Ok(bytes as i64)
}

/// Parses a Kubernetes CPU quantity (`500m`, `1`, `1.5`) into CPUs.
pub fn parse_cpu(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (num, div) = match s.strip_suffix('m') {
        Some(n) => (n, 1000.0),
        None => (s, 1.0),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid CPU quantity {s:?}: expected e.g. 500m, 1 or 1.5"))?;
    let cpus = n / div;
    if !cpus.is_finite() || cpus < 0.001 {
        return Err(format!("invalid CPU quantity {s:?}: must be at least 1m"));
    }
    Ok(cpus)
}

/// A ConfigMap's data.
type ConfigMaps = BTreeMap<String, BTreeMap<String, String>>;

/// Parses and validates a multi-document file.
pub fn parse(text: &str) -> Result<KubeFile, ParseError> {
    let mut docs: Vec<Value> = Vec::new();
    for d in serde_norway::Deserializer::from_str(text) {
        use serde::Deserialize as _;
        let v = Value::deserialize(d).map_err(|e| {
            let loc = e.location();
            ParseError::Syntax {
                line: loc.as_ref().map(serde_norway::Location::line),
                column: loc.as_ref().map(serde_norway::Location::column),
                // The location is reported separately.
                message: strip_location(&e.to_string()),
            }
        })?;
        docs.push(v);
    }
    // Pass 1: kinds, names and ConfigMaps (referenced from pods anywhere in
    // the file).
    let mut config_maps = ConfigMaps::new();
    let mut kinds = Vec::new();
    for (i, v) in docs.iter().enumerate() {
        let mut doc = DocContext {
            index: i + 1,
            ..DocContext::default()
        };
        let field = |doc: &DocContext| {
            let doc = doc.clone();
            move |error| ParseError::Field { doc, error }
        };
        if matches!(v, Value::Null) {
            kinds.push((doc, String::new()));
            continue;
        }
        let mut top = Obj::new(v, "").map_err(field(&doc))?;
        let kind = top.required_str("kind").map_err(field(&doc))?;
        doc.kind.clone_from(&kind);
        if let Some(Value::Mapping(m)) = v.get("metadata") {
            if let Some(Value::String(n)) = m.get("name") {
                doc.name.clone_from(n);
            }
        }
        match kind.as_str() {
            "Pod" | "Deployment" | "PersistentVolumeClaim" => {}
            "ConfigMap" => {
                let (name, data) = parse_config_map(v).map_err(field(&doc))?;
                if config_maps.insert(name.clone(), data).is_some() {
                    return Err(field(&doc)(FieldError::new(
                        "metadata.name",
                        format!("ConfigMap {name:?} is defined twice"),
                    )));
                }
            }
            k => {
                return Err(field(&doc)(FieldError::new(
                    "kind",
                    format!(
                        "unknown kind {k:?}: kube play supports Pod, Deployment, ConfigMap and PersistentVolumeClaim"
                    ),
                )))
            }
        }
        kinds.push((doc, kind));
    }
    // Pass 2: pods and claims.
    let mut file = KubeFile::default();
    let mut pod_names = BTreeSet::new();
    let mut claim_names = BTreeSet::new();
    for ((doc, kind), v) in kinds.into_iter().zip(&docs) {
        let field = |error| ParseError::Field {
            doc: doc.clone(),
            error,
        };
        let pod = match kind.as_str() {
            "Pod" => parse_pod(v, &config_maps).map_err(field)?,
            "Deployment" => parse_deployment(v, &config_maps).map_err(field)?,
            "PersistentVolumeClaim" => {
                let c = parse_claim(v).map_err(field)?;
                if !claim_names.insert(c.name.clone()) {
                    return Err(field(FieldError::new(
                        "metadata.name",
                        format!("PersistentVolumeClaim {:?} is defined twice", c.name),
                    )));
                }
                file.claims.push(c);
                continue;
            }
            _ => continue,
        };
        for m in &pod.ports {
            if let Some(other) = file.pods.iter().find(|o| {
                o.ports.iter().any(|x| {
                    x.host_port == m.host_port && x.protocol == m.protocol && x.host_ip == m.host_ip
                })
            }) {
                return Err(field(FieldError::new(
                    "spec.containers",
                    format!(
                        "hostPort {}/{} is also published by pod {:?}",
                        m.host_port, m.protocol, other.name
                    ),
                )));
            }
        }
        if !pod_names.insert(pod.name.clone()) {
            return Err(field(FieldError::new(
                "metadata.name",
                format!("pod {:?} is defined twice", pod.name),
            )));
        }
        file.pods.push(pod);
    }
    Ok(file)
}

/// serde_norway writes " at line L column C" into its messages; the
/// caller reports the location once, first.
fn strip_location(msg: &str) -> String {
    let mut out = msg.to_string();
    while let Some(i) = out.find(" at line ") {
        let rest = &out[i + " at line ".len()..];
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n = digits(rest);
        let Some(after) = rest[n..].strip_prefix(" column ") else {
            break;
        };
        let m = digits(after);
        let end = i + " at line ".len() + n + " column ".len() + m;
        out.replace_range(i..end, "");
    }
    out
}

struct Meta {
    name: String,
    labels: BTreeMap<String, String>,
}

/// `metadata`: name (required), labels; annotations, namespace and
/// creationTimestamp are accepted and ignored.
fn parse_metadata(top: &mut Obj<'_>) -> FieldResult<Meta> {
    let Some(mut m) = top.obj("metadata")? else {
        return Err(FieldError::new("metadata.name", "required but missing"));
    };
    let name = m.required_str("name")?;
    check_dns_subdomain(&m.child("name"), &name)?;
    let labels = m.str_map("labels")?;
    m.str_map("annotations")?;
    m.ignore(&["namespace", "creationTimestamp"]);
    m.finish()?;
    Ok(Meta { name, labels })
}

fn check_api_version(top: &mut Obj<'_>, want: &str) -> FieldResult<()> {
    match top.str("apiVersion")? {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(FieldError::new(
            "apiVersion",
            format!("expected {want:?}, found {v:?}"),
        )),
        None => Err(FieldError::new("apiVersion", "required but missing")),
    }
}

fn parse_config_map(v: &Value) -> FieldResult<(String, BTreeMap<String, String>)> {
    let mut top = Obj::new(v, "")?;
    top.str("kind")?;
    check_api_version(&mut top, "v1")?;
    let meta = parse_metadata(&mut top)?;
    let data = top.str_map("data")?;
    top.ignore(&["immutable"]);
    top.finish()?;
    Ok((meta.name, data))
}

fn parse_claim(v: &Value) -> FieldResult<KubeClaim> {
    let mut top = Obj::new(v, "")?;
    top.str("kind")?;
    check_api_version(&mut top, "v1")?;
    let meta = parse_metadata(&mut top)?;
    crate::containers::validate_name(&meta.name)
        .map_err(|e| FieldError::new("metadata.name", e.to_string()))?;
    // The spec describes storage the local driver does not have: accepted
    // (so files written for a cluster play), not used.
    if let Some(mut spec) = top.obj("spec")? {
        spec.ignore(&["accessModes", "resources", "storageClassName", "volumeMode"]);
        spec.finish()?;
    }
    top.ignore(&["status"]);
    top.finish()?;
    Ok(KubeClaim {
        name: meta.name,
        labels: meta.labels,
    })
}

fn parse_pod(v: &Value, cms: &ConfigMaps) -> FieldResult<KubePod> {
    let mut top = Obj::new(v, "")?;
    top.str("kind")?;
    check_api_version(&mut top, "v1")?;
    let meta = parse_metadata(&mut top)?;
    check_dns_label("metadata.name", &meta.name)?;
    let Some(spec) = top.obj("spec")? else {
        return Err(FieldError::new("spec", "required but missing"));
    };
    let pod = parse_pod_spec(spec, meta.name, meta.labels, "Pod", cms)?;
    top.ignore(&["status"]);
    top.finish()?;
    Ok(pod)
}

fn parse_deployment(v: &Value, cms: &ConfigMaps) -> FieldResult<KubePod> {
    let mut top = Obj::new(v, "")?;
    top.str("kind")?;
    check_api_version(&mut top, "apps/v1")?;
    let meta = parse_metadata(&mut top)?;
    let Some(mut spec) = top.obj("spec")? else {
        return Err(FieldError::new("spec", "required but missing"));
    };
    if let Some(r) = spec.int("replicas")? {
        if r != 1 {
            return Err(FieldError::new(
                spec.child("replicas"),
                format!("{r} replicas: only 1 replica is supported"),
            ));
        }
    }
    // The selector must select the template's labels (Kubernetes checks
    // it); nothing else is done with it.
    let mut selects = BTreeMap::new();
    if let Some(mut sel) = spec.obj("selector")? {
        selects = sel.str_map("matchLabels")?;
        sel.finish()?;
    }
    spec.ignore(&[
        "strategy",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
    ]);
    let Some(mut template) = spec.obj("template")? else {
        return Err(FieldError::new(
            spec.child("template"),
            "required but missing",
        ));
    };
    let mut labels = BTreeMap::new();
    if let Some(mut tm) = template.obj("metadata")? {
        labels = tm.str_map("labels")?;
        tm.str_map("annotations")?;
        tm.ignore(&["name", "creationTimestamp"]);
        tm.finish()?;
    }
    for (k, v) in &selects {
        if labels.get(k) != Some(v) {
            return Err(FieldError::new(
                spec.child("selector.matchLabels"),
                format!("{k}={v} does not match the template's labels"),
            ));
        }
    }
    let Some(pod_spec) = template.obj("spec")? else {
        return Err(FieldError::new(
            template.child("spec"),
            "required but missing",
        ));
    };
    let name = deployment_pod_name(&meta.name);
    check_dns_label("metadata.name", &name)?;
    // The pod carries the deployment's and the template's labels.
    let mut all = meta.labels;
    all.extend(labels);
    let pod = parse_pod_spec(pod_spec, name, all, "Deployment", cms)?;
    template.finish()?;
    spec.finish()?;
    top.ignore(&["status"]);
    top.finish()?;
    Ok(pod)
}

fn parse_pod_spec(
    mut spec: Obj<'_>,
    name: String,
    labels: BTreeMap<String, String>,
    kind: &str,
    cms: &ConfigMaps,
) -> FieldResult<KubePod> {
    let hostname = spec.str("hostname")?;
    if let Some(h) = &hostname {
        check_dns_label(&spec.child("hostname"), h)?;
    }
    let restart = match spec.str("restartPolicy")?.as_deref() {
        None | Some("Always") => RestartPolicy {
            name: "always".into(),
            max_retries: 0,
        },
        Some("OnFailure") => RestartPolicy {
            name: "on-failure".into(),
            max_retries: 0,
        },
        Some("Never") => RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        },
        Some(p) => {
            return Err(FieldError::new(
                spec.child("restartPolicy"),
                format!("invalid restart policy {p:?}: expected Always, OnFailure or Never"),
            ))
        }
    };
    let stop_timeout = match spec.int("terminationGracePeriodSeconds")? {
        None => None,
        Some(t) => Some(u32::try_from(t).map_err(|_| {
            FieldError::new(
                spec.child("terminationGracePeriodSeconds"),
                format!("{t} is not a number of seconds"),
            )
        })?),
    };
    // Pod-level securityContext: defaults for the containers.
    let mut pod_security = Security::default();
    if let Some(mut sc) = spec.obj("securityContext")? {
        pod_security.run_as_user = id_field(&mut sc, "runAsUser")?;
        pod_security.run_as_group = id_field(&mut sc, "runAsGroup")?;
        sc.finish()?;
    }
    let mut volumes: Vec<KubeVolume> = Vec::new();
    for mut vo in spec.objs("volumes")? {
        let vname = vo.required_str("name")?;
        check_dns_label(&vo.child("name"), &vname)?;
        if volumes.iter().any(|v| v.name == vname) {
            return Err(FieldError::new(
                vo.child("name"),
                format!("volume {vname:?} is defined twice"),
            ));
        }
        let sources = ["hostPath", "emptyDir", "persistentVolumeClaim"];
        let given: Vec<&str> = sources.iter().copied().filter(|s| vo.present(s)).collect();
        if given.len() > 1 {
            return Err(FieldError::new(
                &vo.path,
                format!("more than one volume source: {}", given.join(", ")),
            ));
        }
        let source = match given.first().copied() {
            Some("hostPath") => {
                let Some(mut hp) = vo.obj("hostPath")? else {
                    return Err(FieldError::new(
                        vo.child("hostPath.path"),
                        "required but missing",
                    ));
                };
                let path = hp.required_str("path")?;
                if !path.starts_with('/') {
                    return Err(FieldError::new(
                        hp.child("path"),
                        format!("{path:?} is not an absolute path"),
                    ));
                }
                let t = hp.str("type")?.unwrap_or_default();
                let kind = HostPathType::parse(&t).ok_or_else(|| {
                    FieldError::new(hp.child("type"), format!("unknown hostPath type {t:?}"))
                })?;
                hp.finish()?;
                VolumeSource::HostPath { path, kind }
            }
            Some("emptyDir") => {
                // `emptyDir: {}`, or `emptyDir:` (null). medium (Memory: a
                // tmpfs the containers share) and sizeLimit are rejected.
                if let Some(ed) = vo.obj("emptyDir")? {
                    ed.finish()?;
                }
                VolumeSource::EmptyDir
            }
            Some(_) => {
                let Some(mut pvc) = vo.obj("persistentVolumeClaim")? else {
                    return Err(FieldError::new(
                        vo.child("persistentVolumeClaim.claimName"),
                        "required but missing",
                    ));
                };
                let claim = pvc.required_str("claimName")?;
                crate::containers::validate_name(&claim)
                    .map_err(|e| FieldError::new(pvc.child("claimName"), e.to_string()))?;
                let readonly = pvc.bool("readOnly")?.unwrap_or(false);
                pvc.finish()?;
                VolumeSource::Claim {
                    name: claim,
                    readonly,
                }
            }
            None => {
                // An unsupported source (configMap, secret…) is named here.
                vo.finish()?;
                return Err(FieldError::new(
                    &vo.path,
                    "no volume source: expected hostPath, emptyDir or persistentVolumeClaim",
                ));
            }
        };
        vo.finish()?;
        volumes.push(KubeVolume {
            name: vname,
            source,
        });
    }
    let containers_path = spec.child("containers");
    let mut containers = Vec::new();
    let items = spec.objs("containers")?;
    if items.is_empty() {
        return Err(FieldError::new(
            containers_path,
            "at least one container is required",
        ));
    }
    let mut ports = Vec::new();
    for c in items {
        let c = parse_container(c, &volumes, &pod_security, cms)?;
        if containers.iter().any(|o: &KubeContainer| o.name == c.name) {
            return Err(FieldError::new(
                containers_path,
                format!("container {:?} is defined twice", c.name),
            ));
        }
        for p in &c.ports {
            if p.host_port == 0 {
                continue;
            }
            if ports.iter().any(|o: &PortMapping| {
                o.host_port == p.host_port && o.protocol == p.protocol && o.host_ip == p.host_ip
            }) {
                return Err(FieldError::new(
                    &containers_path,
                    format!("hostPort {}/{} is published twice", p.host_port, p.protocol),
                ));
            }
            ports.push(p.clone());
        }
        containers.push(c);
    }
    spec.finish()?;
    Ok(KubePod {
        name,
        kind: kind.to_string(),
        labels,
        hostname,
        restart,
        stop_timeout,
        ports,
        volumes,
        containers,
    })
}

fn port_field(p: &mut Obj<'_>, key: &'static str, zero_ok: bool) -> FieldResult<u16> {
    let path = p.child(key);
    match p.int(key)? {
        None | Some(0) if zero_ok => Ok(0),
        None => Err(FieldError::new(path, "required but missing")),
        Some(n) => u16::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| FieldError::new(path, format!("{n} is not a valid port (1-65535)"))),
    }
}

fn id_field(o: &mut Obj<'_>, key: &'static str) -> FieldResult<Option<u32>> {
    match o.int(key)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| FieldError::new(o.child(key), format!("{n} is not a valid id"))),
    }
}

fn parse_container(
    mut c: Obj<'_>,
    volumes: &[KubeVolume],
    pod_security: &Security,
    cms: &ConfigMaps,
) -> FieldResult<KubeContainer> {
    let name = c.required_str("name")?;
    check_dns_label(&c.child("name"), &name)?;
    let image = match c.str("image")? {
        Some(i) if !i.trim().is_empty() => i,
        _ => {
            return Err(FieldError::new(
                c.child("image"),
                "required but missing: every container needs an image",
            ))
        }
    };
    let pull = match c.str("imagePullPolicy")?.as_deref() {
        None | Some("IfNotPresent") => PullPolicy::Missing,
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some(p) => {
            return Err(FieldError::new(
                c.child("imagePullPolicy"),
                format!("invalid pull policy {p:?}: expected Always, IfNotPresent or Never"),
            ))
        }
    };
    let command = c.str_list("command")?;
    let args = c.str_list("args")?;
    let workdir = c.str("workingDir")?;
    if let Some(w) = &workdir {
        if !w.starts_with('/') {
            return Err(FieldError::new(
                c.child("workingDir"),
                format!("{w:?} is not an absolute path"),
            ));
        }
    }

    // envFrom first, env after (env wins).
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(x, _)| *x != k);
        env.push((k, v));
    };
    for mut ef in c.objs("envFrom")? {
        let prefix = ef.str("prefix")?.unwrap_or_default();
        let Some(mut r) = ef.obj("configMapRef")? else {
            ef.finish()?;
            return Err(FieldError::new(
                &ef.path,
                "expected configMapRef (secretRef is not supported)",
            ));
        };
        let cm = r.required_str("name")?;
        let optional = r.bool("optional")?.unwrap_or(false);
        match cms.get(&cm) {
            Some(data) => {
                for (k, v) in data {
                    set(format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional => {}
            None => {
                return Err(FieldError::new(
                    r.child("name"),
                    format!("no ConfigMap {cm:?} in the file"),
                ))
            }
        }
        r.finish()?;
        ef.finish()?;
    }
    for mut e in c.objs("env")? {
        let k = e.required_str("name")?;
        if k.contains('=') {
            return Err(FieldError::new(
                e.child("name"),
                format!("invalid variable name {k:?}"),
            ));
        }
        let value = e.str("value")?;
        if let Some(mut vf) = e.obj("valueFrom")? {
            if value.is_some() {
                return Err(FieldError::new(
                    &vf.path,
                    "value and valueFrom cannot both be set",
                ));
            }
            let Some(mut r) = vf.obj("configMapKeyRef")? else {
                vf.finish()?;
                return Err(FieldError::new(
                    &vf.path,
                    "expected configMapKeyRef (secretKeyRef, fieldRef and resourceFieldRef are not supported)",
                ));
            };
            let cm = r.required_str("name")?;
            let key = r.required_str("key")?;
            let optional = r.bool("optional")?.unwrap_or(false);
            r.finish()?;
            match cms.get(&cm).map(|d| d.get(&key)) {
                Some(Some(v)) => set(k, v.clone()),
                _ if optional => {}
                Some(None) => {
                    return Err(FieldError::new(
                        r.child("key"),
                        format!("ConfigMap {cm:?} has no key {key:?}"),
                    ))
                }
                None => {
                    return Err(FieldError::new(
                        r.child("name"),
                        format!("no ConfigMap {cm:?} in the file"),
                    ))
                }
            }
            vf.finish()?;
        } else {
            set(k, value.unwrap_or_default());
        }
        e.finish()?;
    }
    let env = env.into_iter().map(|(k, v)| format!("{k}={v}")).collect();

    let mut ports = Vec::new();
    for mut p in c.objs("ports")? {
        let container_port = port_field(&mut p, "containerPort", false)?;
        let host_port = port_field(&mut p, "hostPort", true)?;
        let host_ip = p.str("hostIP")?.unwrap_or_default();
        if !host_ip.is_empty() && host_ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(FieldError::new(
                p.child("hostIP"),
                format!("{host_ip:?} is not an IPv4 address"),
            ));
        }
        let protocol = match p.str("protocol")?.as_deref() {
            None | Some("TCP") => "tcp",
            Some("UDP") => "udp",
            Some(x) => {
                return Err(FieldError::new(
                    p.child("protocol"),
                    format!("unsupported protocol {x:?}: expected TCP or UDP"),
                ))
            }
        };
        p.str("name")?;
        p.finish()?;
        ports.push(PortMapping {
            host_ip,
            host_port,
            container_port,
            protocol: protocol.to_string(),
            range: 1,
        });
    }

    let mut mounts = Vec::new();
    for mut m in c.objs("volumeMounts")? {
        let volume = m.required_str("name")?;
        let Some(v) = volumes.iter().find(|v| v.name == volume) else {
            return Err(FieldError::new(
                m.child("name"),
                format!("no volume {volume:?} in spec.volumes"),
            ));
        };
        let path = m.required_str("mountPath")?;
        if !path.starts_with('/') {
            return Err(FieldError::new(
                m.child("mountPath"),
                format!("{path:?} is not an absolute path"),
            ));
        }
        if mounts.iter().any(|x: &KubeMount| x.path == path) {
            return Err(FieldError::new(
                m.child("mountPath"),
                format!("{path} is mounted twice"),
            ));
        }
        let readonly = m.bool("readOnly")?.unwrap_or(false)
            || matches!(v.source, VolumeSource::Claim { readonly: true, .. });
        m.finish()?;
        mounts.push(KubeMount {
            volume,
            path,
            readonly,
        });
    }

    let (mut memory, mut cpus) = (None, None);
    if let Some(mut r) = c.obj("resources")? {
        if let Some(mut l) = r.obj("limits")? {
            if let Some(m) = l.quantity("memory")? {
                memory = Some(parse_memory(&m).map_err(|e| FieldError::new(l.child("memory"), e))?);
            }
            if let Some(m) = l.quantity("cpu")? {
                cpus = Some(parse_cpu(&m).map_err(|e| FieldError::new(l.child("cpu"), e))?);
            }
            l.finish()?;
        }
        // Requests only matter to a scheduler: checked, not used.
        if let Some(mut q) = r.obj("requests")? {
            if let Some(m) = q.quantity("memory")? {
                parse_memory(&m).map_err(|e| FieldError::new(q.child("memory"), e))?;
            }
            if let Some(m) = q.quantity("cpu")? {
                parse_cpu(&m).map_err(|e| FieldError::new(q.child("cpu"), e))?;
            }
            q.finish()?;
        }
        r.finish()?;
    }

    let mut security = pod_security.clone();
    if let Some(mut sc) = c.obj("securityContext")? {
        security.privileged = sc.bool("privileged")?.unwrap_or(false);
        security.read_only = sc.bool("readOnlyRootFilesystem")?.unwrap_or(false);
        security.no_new_privileges = sc.bool("allowPrivilegeEscalation")? == Some(false);
        if let Some(u) = id_field(&mut sc, "runAsUser")? {
            security.run_as_user = Some(u);
        }
        if let Some(g) = id_field(&mut sc, "runAsGroup")? {
            security.run_as_group = Some(g);
        }
        if let Some(mut caps) = sc.obj("capabilities")? {
            for (key, out) in [
                ("add", &mut security.cap_add),
                ("drop", &mut security.cap_drop),
            ] {
                let path = caps.child(key);
                for (i, cap) in caps.str_list(key)?.unwrap_or_default().iter().enumerate() {
                    out.push(
                        crate::containers::spec::cap_name(cap)
                            .map_err(|e| FieldError::new(format!("{path}[{i}]"), e.to_string()))?,
                    );
                }
            }
            caps.finish()?;
        }
        sc.finish()?;
    }
    let tty = c.bool("tty")?.unwrap_or(false);
    let stdin = c.bool("stdin")?.unwrap_or(false);
    c.ignore(&["terminationMessagePath", "terminationMessagePolicy"]);
    c.finish()?;
    Ok(KubeContainer {
        name,
        image,
        pull,
        command,
        args,
        env,
        workdir,
        ports,
        mounts,
        memory,
        cpus,
        security,
        tty,
        stdin,
    })
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
data:
  GREETING: hello
  MODE: fast
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data-claim
  labels: {app: web}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
  annotations:
    note: ignored
spec:
  hostname: webhost
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 3
  containers:
  - name: httpd
    image: localhost/busybox
    command: [httpd]
    args: [-f, -p, 80]
    workingDir: /www
    env:
    - name: A
      value: "1"
    - name: G
      valueFrom:
        configMapKeyRef: {name: cfg, key: GREETING}
    envFrom:
    - configMapRef: {name: cfg}
      prefix: CM_
    ports:
    - containerPort: 80
      hostPort: 8080
      hostIP: 127.0.0.1
    - containerPort: 53
      protocol: UDP
    volumeMounts:
    - {name: cache, mountPath: /cache}
    - {name: host, mountPath: /host, readOnly: true}
    - {name: data, mountPath: /data}
    resources:
      limits: {memory: 64Mi, cpu: 500m}
      requests: {memory: 32Mi, cpu: "0.1"}
    securityContext:
      allowPrivilegeEscalation: false
      runAsUser: 1000
      capabilities: {add: [NET_ADMIN], drop: [CAP_CHOWN]}
  - name: side
    image: localhost/busybox
  volumes:
  - name: cache
    emptyDir: {}
  - name: host
    hostPath: {path: /tmp, type: Directory}
  - name: data
    persistentVolumeClaim: {claimName: data-claim}
"#;

    #[test]
    fn full_file() {
        let f = parse(FULL).unwrap();
        assert_eq!(f.claims.len(), 1);
        assert_eq!(f.claims[0].name, "data-claim");
        assert_eq!(f.pods.len(), 1);
        let p = &f.pods[0];
        assert_eq!(p.name, "web");
        assert_eq!(p.hostname.as_deref(), Some("webhost"));
        assert_eq!(p.restart.name, "on-failure");
        assert_eq!(p.stop_timeout, Some(3));
        assert_eq!(p.labels["app"], "web");
        assert_eq!(p.ports.len(), 1);
        assert_eq!(p.ports[0].host_port, 8080);
        assert_eq!(p.ports[0].host_ip, "127.0.0.1");
        let c = &p.containers[0];
        assert_eq!(c.command.as_deref().unwrap(), ["httpd"]);
        assert_eq!(c.args.as_deref().unwrap(), ["-f", "-p", "80"]);
        assert_eq!(
            c.env,
            ["CM_GREETING=hello", "CM_MODE=fast", "A=1", "G=hello"]
        );
        assert_eq!(c.memory, Some(64 << 20));
        assert_eq!(c.cpus, Some(0.5));
        assert_eq!(c.ports[1].protocol, "udp");
        assert!(c.mounts[1].readonly);
        assert!(c.security.no_new_privileges);
        assert_eq!(c.security.user().unwrap(), "1000");
        assert_eq!(c.security.cap_add, ["CAP_NET_ADMIN"]);
        assert_eq!(c.security.cap_drop, ["CAP_CHOWN"]);
        assert_eq!(p.volumes[0].source, VolumeSource::EmptyDir);
        assert_eq!(
            p.volumes[2].source,
            VolumeSource::Claim {
                name: "data-claim".into(),
                readonly: false
            }
        );
        assert_eq!(p.containers[1].command, None);
    }

    fn err(yaml: &str) -> String {
        parse(yaml).unwrap_err().to_string()
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: img\n";

    #[test]
    fn errors_name_the_field() {
        let e = err(&format!(
            "{POD}    livenessProbe: {{exec: {{command: [true]}}}}\n"
        ));
        assert_eq!(
            e,
            "document 1 (Pod \"p\"): spec.containers[0].livenessProbe: not supported"
        );
        let e = err("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
        assert!(e.contains("kind: unknown kind \"Service\""), "{e}");
        let e = err(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n",
        );
        assert!(
            e.contains("spec.containers[0].image: required but missing"),
            "{e}"
        );
        let e = err(&format!("{POD}    ports: [{{containerPort: 70000}}]\n"));
        assert!(
            e.contains("spec.containers[0].ports[0].containerPort: 70000 is not a valid port"),
            "{e}"
        );
        let e = err(&format!(
            "{POD}    ports: [{{containerPort: 80, hostPort: -1}}]\n"
        ));
        assert!(e.contains("hostPort: -1 is not a valid port"), "{e}");
        let e = err(&format!(
            "{POD}    ports: [{{containerPort: 80, protocol: SCTP}}]\n"
        ));
        assert!(e.contains("ports[0].protocol: unsupported protocol"), "{e}");
        let e = err(&format!("{POD}    ports: [{{containerPort: http}}]\n"));
        assert!(e.contains("containerPort: expected an integer"), "{e}");
        let e = err(&format!("{POD}  initContainers: []\n"));
        assert!(e.contains("spec.initContainers: not supported"), "{e}");
        let e = err(&format!(
            "{POD}  volumes: [{{name: v, configMap: {{name: x}}}}]\n"
        ));
        assert!(
            e.contains("spec.volumes[0].configMap: not supported"),
            "{e}"
        );
        let e = err(&format!(
            "{POD}    volumeMounts: [{{name: nope, mountPath: /x}}]\n"
        ));
        assert!(
            e.contains("volumeMounts[0].name: no volume \"nope\""),
            "{e}"
        );
        let e = err(&format!(
            "{POD}    env: [{{name: X, valueFrom: {{configMapKeyRef: {{name: m, key: k}}}}}}]\n"
        ));
        assert!(
            e.contains("configMapKeyRef.name: no ConfigMap \"m\""),
            "{e}"
        );
        let e = err(&format!(
            "{POD}    env: [{{name: X, valueFrom: {{secretKeyRef: {{name: m, key: k}}}}}}]\n"
        ));
        assert!(e.contains("valueFrom.secretKeyRef: not supported"), "{e}");
        let e = err(&format!(
            "{POD}    resources: {{limits: {{memory: 12Q}}}}\n"
        ));
        assert!(
            e.contains("resources.limits.memory: invalid quantity"),
            "{e}"
        );
        let e = err(&format!("{POD}  restartPolicy: Sometimes\n"));
        assert!(
            e.contains("spec.restartPolicy: invalid restart policy"),
            "{e}"
        );
        let e = err(&format!("{POD}  - name: c\n    image: img\n"));
        assert!(e.contains("container \"c\" is defined twice"), "{e}");
        let e = err(&format!("{POD}---\n{POD}"));
        assert!(
            e.contains("document 2 (Pod \"p\"): metadata.name: pod \"p\" is defined twice"),
            "{e}"
        );
        let e = err("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n");
        assert!(e.contains("metadata.name: invalid name"), "{e}");
        let e = err("hello\n");
        assert!(
            e.contains("document 1: expected a mapping, found a string"),
            "{e}"
        );
        let e = err("apiVersion: v1\nmetadata: {name: x}\n");
        assert!(e.contains("kind: required but missing"), "{e}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse(&format!("{POD}---\napiVersion: v1\nkind: Pod\n  bad: [\n")).unwrap_err();
        match &e {
            ParseError::Syntax { line, .. } => assert_eq!(*line, Some(11), "{e}"),
            other @ ParseError::Field { .. } => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("line 11, column"), "{e}");
        assert!(!e.to_string().contains(" at line"), "{e}");
        assert_eq!(
            strip_location("did not find x at line 16 column 1, while parsing"),
            "did not find x, while parsing"
        );
    }

    #[test]
    fn deployments() {
        let d = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {tier: f}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: c, image: i}]\n";
        let f = parse(d).unwrap();
        assert_eq!(f.pods[0].name, "web-pod");
        assert_eq!(f.pods[0].kind, "Deployment");
        assert_eq!(f.pods[0].labels.len(), 2);
        let e = err(&d.replace("replicas: 1", "replicas: 3"));
        assert!(
            e.contains("spec.replicas: 3 replicas: only 1 replica is supported"),
            "{e}"
        );
        let e = err(&d.replace("{app: web}}\n  template", "{app: other}}\n  template"));
        assert!(e.contains("spec.selector.matchLabels"), "{e}");
        let e = err(&d.replace("apps/v1", "v1"));
        assert!(e.contains("apiVersion: expected \"apps/v1\""), "{e}");
        let e = err(&d.replace(
            "containers: [{name: c, image: i}]",
            "containers: [{name: c, image: i, stdinOnce: true}]",
        ));
        assert!(
            e.contains("spec.template.spec.containers[0].stdinOnce: not supported"),
            "{e}"
        );
    }

    #[test]
    fn env_order_and_optional_refs() {
        let y = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: m}}\ndata: {{A: from-map, B: b}}\n---\n{POD}    envFrom: [{{configMapRef: {{name: m}}}}, {{configMapRef: {{name: gone, optional: true}}}}]\n    env:\n    - {{name: A, value: explicit}}\n    - {{name: C, valueFrom: {{configMapKeyRef: {{name: m, key: nokey, optional: true}}}}}}\n"
        );
        let f = parse(&y).unwrap();
        assert_eq!(f.pods[0].containers[0].env, ["B=b", "A=explicit"]);
        let e = err(&y.replace("nokey, optional: true", "nokey"));
        assert!(
            e.contains("configMapKeyRef.key: ConfigMap \"m\" has no key \"nokey\""),
            "{e}"
        );
    }

    #[test]
    fn ports_published_once() {
        let y = format!("{POD}    ports: [{{containerPort: 80, hostPort: 8080}}]\n");
        let two = format!("{y}---\n{}", y.replace("name: p}", "name: q}"));
        let e = err(&two);
        assert!(
            e.contains("hostPort 8080/tcp is also published by pod \"p\""),
            "{e}"
        );
        let e = err(&format!(
            "{POD}    ports: [{{containerPort: 80, hostPort: 8080}}, {{containerPort: 81, hostPort: 8080}}]\n"
        ));
        assert!(e.contains("hostPort 8080/tcp is published twice"), "{e}");
    }

    #[test]
    fn volumes() {
        let e = err(&format!(
            "{POD}  volumes: [{{name: v, emptyDir: {{}}, hostPath: {{path: /x}}}}]\n"
        ));
        assert!(e.contains("more than one volume source"), "{e}");
        let e = err(&format!(
            "{POD}  volumes: [{{name: v, hostPath: {{path: rel}}}}]\n"
        ));
        assert!(
            e.contains("spec.volumes[0].hostPath.path: \"rel\" is not an absolute path"),
            "{e}"
        );
        let e = err(&format!(
            "{POD}  volumes: [{{name: v, emptyDir: {{medium: Memory}}}}]\n"
        ));
        assert!(
            e.contains("spec.volumes[0].emptyDir.medium: not supported"),
            "{e}"
        );
        let f = parse(&format!("{POD}  volumes:\n  - name: v\n    emptyDir:\n")).unwrap();
        assert_eq!(f.pods[0].volumes[0].source, VolumeSource::EmptyDir);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_memory("128Mi"), Ok(128 << 20));
        assert_eq!(parse_memory("1G"), Ok(1_000_000_000));
        assert_eq!(parse_memory("1e6"), Ok(1_000_000));
        assert_eq!(parse_memory("1.5Ki"), Ok(1536));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert!(parse_memory("-1").is_err());
        assert!(parse_memory("0").is_err());
        assert!(parse_memory("1Q").is_err());
        assert_eq!(parse_cpu("250m"), Ok(0.25));
        assert_eq!(parse_cpu("2"), Ok(2.0));
        assert!(parse_cpu("0").is_err());
        assert!(parse_cpu("x").is_err());
    }
}
