//! `kube generate`: a pod (or containers) as Kubernetes Pod YAML that
//! `kube play` accepts again. Only what differs from the image is written
//! (command, env, working directory, user), as podman does.

use crate::containers::{ContainerRecord, Engine, MountSpec, PortMapping};
use crate::error::EngineError;
use crate::Result;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The comment podman puts first.
fn header() -> String {
    format!(
        "# Save the output of this file and use kubectl create -f to import\n# it into Kubernetes.\n#\n# Created with barge-{}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A DNS label made from `s` (`/srv/data` → `srv-data`).
fn dns_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_end_matches('-').to_string();
    out.truncate(50);
    out.trim_end_matches('-').to_string()
}

/// The pod's volumes, built while its containers' mounts are read: one
/// entry per source (volume name or host path), so containers sharing a
/// volume share one pod volume.
#[derive(Default)]
struct Volumes {
    /// source key → (pod volume name, its definition).
    by_source: BTreeMap<String, (String, Value)>,
    order: Vec<String>,
}

impl Volumes {
    fn add(&mut self, key: String, base: &str, def: Value) -> String {
        if let Some((n, _)) = self.by_source.get(&key) {
            return n.clone();
        }
        let base = if base.is_empty() { "volume" } else { base };
        let mut name = base.to_string();
        let mut i = 1;
        while self.by_source.values().any(|(n, _)| *n == name) {
            name = format!("{base}-{i}");
            i += 1;
        }
        self.by_source.insert(key.clone(), (name.clone(), def));
        self.order.push(key);
        name
    }

    fn to_json(&self) -> Vec<Value> {
        self.order
            .iter()
            .filter_map(|k| self.by_source.get(k))
            .map(|(n, def)| {
                let mut v = def.clone();
                v["name"] = json!(n);
                v
            })
            .collect()
    }
}

fn restart_policy(name: &str) -> &'static str {
    match name {
        "always" | "unless-stopped" => "Always",
        "on-failure" => "OnFailure",
        _ => "Never",
    }
}

impl Engine {
    /// `kube generate NAME...`: YAML for pods (one document each) or for
    /// containers outside pods (one pod `FIRST-pod` holding them).
    pub fn kube_generate(&mut self, names: &[String]) -> Result<String> {
        if names.is_empty() {
            return Err(EngineError::Invalid(
                "kube generate needs a pod or container".into(),
            ));
        }
        let mut docs = Vec::new();
        let mut loose = Vec::new();
        for n in names {
            match self.pod_lookup(n) {
                Ok(pod) => {
                    let members: Vec<ContainerRecord> = self
                        .pod_containers(&pod.id)?
                        .into_iter()
                        .filter(|c| !c.config.infra)
                        .collect();
                    let ports = match &pod.infra_id {
                        Some(i) => self.lookup(i).map(|r| r.config.ports).unwrap_or_default(),
                        None => Vec::new(),
                    };
                    let labels = pod.labels.clone();
                    docs.push(self.pod_document(
                        &pod.name,
                        &labels,
                        &pod.hostname,
                        pod.created,
                        &members,
                        &ports,
                    ));
                }
                Err(EngineError::NoSuchPod(_)) => {
                    let c = self.lookup(n).map_err(|e| match e {
                        EngineError::NoSuchContainer(_) => EngineError::Invalid(format!(
                            "no pod or container with name or ID {n:?} found: no such object"
                        )),
                        e => e,
                    })?;
                    if c.config.infra {
                        return Err(EngineError::Invalid(format!(
                            "{n} is the infra container of a pod: generate the pod"
                        )));
                    }
                    if let Some(p) = &c.pod {
                        let pod = self.pod_lookup(p).map_or_else(|_| p.clone(), |p| p.name);
                        return Err(EngineError::Invalid(format!(
                            "container {} is in pod {pod}: generate the pod instead",
                            c.name
                        )));
                    }
                    loose.push(c);
                }
                Err(e) => return Err(e),
            }
        }
        if !loose.is_empty() {
            let name = format!("{}-pod", loose[0].name);
            let ports: Vec<PortMapping> =
                loose.iter().flat_map(|c| c.config.ports.clone()).collect();
            let hostname = loose[0].config.hostname.clone();
            let created = loose[0].created;
            docs.push(self.pod_document(
                &name,
                &BTreeMap::new(),
                &hostname,
                created,
                &loose,
                &ports,
            ));
        }
        let mut out = header();
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            out.push_str(
                &serde_norway::to_string(d)
                    .map_err(|e| EngineError::Invalid(format!("writing YAML: {e}")))?,
            );
        }
        Ok(out)
    }

    fn pod_document(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
        hostname: &str,
        created: i64,
        members: &[ContainerRecord],
        ports: &[PortMapping],
    ) -> Value {
        let mut labels = labels.clone();
        if labels.is_empty() {
            // podman labels a generated pod with its name.
            labels.insert("app".into(), dns_label(name));
        }
        let mut volumes = Volumes::default();
        let mut containers = Vec::new();
        let prefix = format!("{name}-");
        for (i, c) in members.iter().enumerate() {
            let cname = c.name.strip_prefix(&prefix).unwrap_or(&c.name);
            // Published ports live on the pod (its infra); like podman,
            // they are written on the first container.
            let ports = if i == 0 { ports } else { &[] };
            containers.push(self.container_json(c, &dns_label(cname), ports, &mut volumes));
        }
        let mut spec = Map::new();
        spec.insert("containers".into(), Value::Array(containers));
        if !hostname.is_empty() {
            spec.insert("hostname".into(), json!(hostname));
        }
        let restart = members
            .first()
            .map_or("Never", |c| restart_policy(&c.config.restart.name));
        spec.insert("restartPolicy".into(), json!(restart));
        if let Some(t) = members.first().map(|c| c.config.stop_timeout) {
            if t != 10 {
                spec.insert("terminationGracePeriodSeconds".into(), json!(t));
            }
        }
        let vols = volumes.to_json();
        if !vols.is_empty() {
            spec.insert("volumes".into(), Value::Array(vols));
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "creationTimestamp": crate::containers::query::rfc3339(created),
                "labels": labels,
                "name": name,
            },
            "spec": spec,
        })
    }

    fn container_json(
        &self,
        c: &ContainerRecord,
        name: &str,
        ports: &[PortMapping],
        volumes: &mut Volumes,
    ) -> Value {
        let img = barge_image::Digest::parse(&c.image_id)
            .ok()
            .and_then(|d| crate::containers::image_runtime_config(&self.store, &d).ok())
            .unwrap_or_default();
        let cfg = &c.config;
        let mut o = Map::new();
        o.insert("name".into(), json!(name));
        o.insert("image".into(), json!(c.image_name));
        let image_entrypoint = img.entrypoint.clone().unwrap_or_default();
        let image_cmd = img.cmd.clone().unwrap_or_default();
        if cfg.entrypoint != image_entrypoint {
            o.insert("command".into(), json!(cfg.entrypoint));
            if !cfg.cmd.is_empty() {
                o.insert("args".into(), json!(cfg.cmd));
            }
        } else if cfg.cmd != image_cmd {
            o.insert("args".into(), json!(cfg.cmd));
        }
        let image_env = img.env.clone().unwrap_or_default();
        let env: Vec<Value> = cfg
            .env
            .iter()
            .filter(|e| !image_env.contains(e) && !self.config.env.contains(e))
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                json!({"name": k, "value": v})
            })
            .collect();
        if !env.is_empty() {
            o.insert("env".into(), Value::Array(env));
        }
        if !cfg.workdir.is_empty() && Some(&cfg.workdir) != img.working_dir.as_ref() {
            o.insert("workingDir".into(), json!(cfg.workdir));
        }
        if !ports.is_empty() {
            let ps: Vec<Value> = ports
                .iter()
                .flat_map(|p| {
                    (0..p.range.max(1)).map(move |i| {
                        let mut v = json!({
                            "containerPort": p.container_port + i,
                            "hostPort": p.host_port + i,
                        });
                        if !p.host_ip.is_empty() {
                            v["hostIP"] = json!(p.host_ip);
                        }
                        if p.protocol == "udp" {
                            v["protocol"] = json!("UDP");
                        }
                        v
                    })
                })
                .collect();
            o.insert("ports".into(), Value::Array(ps));
        }
        let mut limits = Map::new();
        if let Some(m) = cfg.memory {
            limits.insert("memory".into(), json!(m.to_string()));
        }
        if let Some(cpus) = cfg.cpus {
            limits.insert(
                "cpu".into(),
                json!(format!("{}m", (cpus * 1000.0).round() as i64)),
            );
        }
        if !limits.is_empty() {
            o.insert("resources".into(), json!({ "limits": limits }));
        }
        let mut sc = Map::new();
        if cfg.privileged {
            sc.insert("privileged".into(), json!(true));
        }
        if cfg.read_only {
            sc.insert("readOnlyRootFilesystem".into(), json!(true));
        }
        if cfg.no_new_privileges {
            sc.insert("allowPrivilegeEscalation".into(), json!(false));
        }
        if !cfg.user.is_empty() && Some(&cfg.user) != img.user.as_ref() {
            let (u, g) = cfg.user.split_once(':').unwrap_or((&cfg.user, ""));
            // Names cannot be written (Kubernetes takes numbers only).
            if let Ok(u) = u.parse::<u32>() {
                sc.insert("runAsUser".into(), json!(u));
            }
            if let Ok(g) = g.parse::<u32>() {
                sc.insert("runAsGroup".into(), json!(g));
            }
        }
        let caps = |l: &[String]| -> Vec<String> {
            l.iter()
                .map(|c| c.trim_start_matches("CAP_").to_string())
                .collect()
        };
        let mut capabilities = Map::new();
        if !cfg.cap_add.is_empty() {
            capabilities.insert("add".into(), json!(caps(&cfg.cap_add)));
        }
        if !cfg.cap_drop.is_empty() {
            capabilities.insert("drop".into(), json!(caps(&cfg.cap_drop)));
        }
        if !capabilities.is_empty() {
            sc.insert("capabilities".into(), Value::Object(capabilities));
        }
        if !sc.is_empty() {
            o.insert("securityContext".into(), Value::Object(sc));
        }
        if cfg.tty {
            o.insert("tty".into(), json!(true));
        }
        if cfg.stdin {
            o.insert("stdin".into(), json!(true));
        }
        let mut mounts = Vec::new();
        for m in &cfg.mounts {
            let (vname, dest, ro) = match m {
                MountSpec::Bind {
                    source,
                    destination,
                    readonly,
                    ..
                } => {
                    let kind = if source.is_dir() { "Directory" } else { "File" };
                    let path = source.display().to_string();
                    let n = volumes.add(
                        format!("bind:{path}"),
                        &format!("{}-host", dns_label(&path)),
                        json!({"hostPath": {"path": path, "type": kind}}),
                    );
                    (n, destination, *readonly)
                }
                MountSpec::Volume {
                    name,
                    destination,
                    readonly,
                } => {
                    let vname = if name.is_empty() {
                        crate::volumes::anonymous_name(&c.id, destination)
                    } else {
                        name.clone()
                    };
                    let anonymous =
                        name.is_empty() || self.volume(&vname).is_ok_and(|v| v.anonymous);
                    let n = if anonymous {
                        volumes.add(format!("vol:{vname}"), "emptydir", json!({"emptyDir": {}}))
                    } else {
                        volumes.add(
                            format!("vol:{vname}"),
                            &format!("{}-pvc", dns_label(&vname)),
                            json!({"persistentVolumeClaim": {"claimName": vname}}),
                        )
                    };
                    (n, destination, *readonly)
                }
                // A tmpfs has no pod-wide equivalent (emptyDir with
                // medium Memory is shared by the containers).
                MountSpec::Tmpfs { .. } => continue,
            };
            let mut mv = json!({"name": vname, "mountPath": dest});
            if ro {
                mv["readOnly"] = json!(true);
            }
            mounts.push(mv);
        }
        if !mounts.is_empty() {
            o.insert("volumeMounts".into(), Value::Array(mounts));
        }
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_from_paths() {
        assert_eq!(dns_label("/srv/Data_1"), "srv-data-1");
        assert_eq!(dns_label("web-pod"), "web-pod");
        assert_eq!(dns_label("/"), "");
    }

    #[test]
    fn volume_names_are_unique_per_source() {
        let mut v = Volumes::default();
        let a = v.add("bind:/a".into(), "x", json!({"emptyDir": {}}));
        let b = v.add("bind:/b".into(), "x", json!({"emptyDir": {}}));
        let a2 = v.add("bind:/a".into(), "x", json!({"emptyDir": {}}));
        assert_eq!((a.as_str(), b.as_str(), a2.as_str()), ("x", "x-1", "x"));
        assert_eq!(v.to_json().len(), 2);
        assert_eq!(v.to_json()[1]["name"], "x-1");
    }
}
