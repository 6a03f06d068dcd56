//! `kube play`, `kube down`, `kube generate`: a multi-container pod with a
//! ConfigMap, an emptyDir, a hostPath and a hostPort served to a host
//! client; the generated YAML played again; bad files rejected with
//! nothing created; a failure half-way rolled back.

use crate::{free_port, need_network, need_root, net_lock, Env, IMG};
use std::io::{Read as _, Write as _};
use std::time::Duration;

/// GET `path` from 127.0.0.1:`port`; retries until the body contains
/// `want` (the pod's containers start concurrently).
fn http_get(port: u16, path: &str, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        match std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        ) {
            Ok(mut s) => {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains(want) {
                    return body;
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no {want:?} from 127.0.0.1:{port}{path}: {last}");
}

fn port_closed(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_err()
}

/// Pod ids: `pod ps -q --no-trunc`, or the engine library while the CLI
/// lacks `pod ps`.
fn pod_ids(env: &Env) -> Vec<String> {
    let o = env.run(&["pod", "ps", "-q", "--no-trunc"]);
    if o.success() {
        return o.stdout.lines().map(str::to_string).collect();
    }
    env.engine()
        .pods()
        .expect("pods")
        .into_iter()
        .map(|p| p.id)
        .collect()
}

/// Nothing exists: no container, pod or volume.
#[track_caller]
fn assert_empty(env: &Env) {
    assert_eq!(env.all_ids(), Vec::<String>::new(), "containers left");
    assert_eq!(pod_ids(env), Vec::<String>::new(), "pods left");
    let vols = env.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.trim(), "", "volumes left");
}

fn write(env: &Env, name: &str, text: &str) -> String {
    let p = env.path().join(name);
    std::fs::write(&p, text).expect("write yaml");
    p.display().to_string()
}

/// `Pod:\nID\nContainer(s):\nIDS…` → (pod id, container ids).
fn played(out: &str) -> (String, Vec<String>) {
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    let pod = lines.iter().position(|l| *l == "Pod:").expect("Pod: line");
    let id = lines[pod + 1].to_string();
    assert_eq!(id.len(), 64, "{out}");
    assert!(
        matches!(lines.get(pod + 2), Some(&"Container:" | &"Containers:")),
        "{out}"
    );
    let ctrs = lines[pod + 3..]
        .iter()
        .take_while(|l| l.len() == 64)
        .map(|l| (*l).to_string())
        .collect();
    (id, ctrs)
}

fn web_yaml(port: u16, host_dir: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  GREETING: hello-from-configmap
  COLOR: blue
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  restartPolicy: Never
  containers:
  - name: httpd
    image: {IMG}
    command: [sh, -c]
    args:
    - echo "$GREETING" > /cache/index.html && cat /host/extra.txt >> /cache/index.html && exec httpd -f -p 80 -h /cache
    env:
    - name: GREETING
      valueFrom:
        configMapKeyRef:
          name: web-config
          key: GREETING
    ports:
    - containerPort: 80
      hostPort: {port}
      hostIP: 127.0.0.1
    volumeMounts:
    - name: cache
      mountPath: /cache
    - name: host
      mountPath: /host
      readOnly: true
    resources:
      limits:
        memory: 64Mi
        cpu: 500m
  - name: writer
    image: {IMG}
    command: [sh, -c, "echo from-writer-$CFG_COLOR > /cache/writer.txt && exec sleep 1000"]
    envFrom:
    - configMapRef:
        name: web-config
      prefix: CFG_
    workingDir: /cache
    volumeMounts:
    - name: cache
      mountPath: /cache
  volumes:
  - name: cache
    emptyDir: {{}}
  - name: host
    hostPath:
      path: {host_dir}
      type: Directory
"#
    )
}

#[test]
fn play_serves_on_host_port_and_down_removes_all() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let host_dir = env.path().join("hostdir");
    std::fs::create_dir(&host_dir).expect("mkdir");
    std::fs::write(host_dir.join("extra.txt"), "from-host-path\n").expect("write");
    let port = free_port();
    let file = write(
        &env,
        "web.yaml",
        &web_yaml(port, &host_dir.display().to_string()),
    );

    let out = env.ok(&["kube", "play", &file]);
    let (pod, ctrs) = played(&out);
    assert!(out.contains("Containers:"), "{out}");
    assert_eq!(ctrs.len(), 2, "{out}");
    assert_eq!(pod_ids(&env), std::slice::from_ref(&pod));

    // Names as podman gives them; configuration from the YAML.
    assert_eq!(env.fmt("web-httpd", "{{.Id}}"), ctrs[0]);
    assert_eq!(env.fmt("web-writer", "{{.Id}}"), ctrs[1]);
    assert_eq!(env.fmt("web-httpd", "{{.Pod}}"), pod);
    assert_eq!(
        env.fmt("web-httpd", "{{.HostConfig.Memory}}"),
        (64 << 20).to_string()
    );
    assert_eq!(
        env.fmt("web-httpd", "{{.HostConfig.NanoCpus}}"),
        "500000000"
    );
    assert_eq!(
        env.fmt("web-httpd", "{{.HostConfig.RestartPolicy.Name}}"),
        "no"
    );
    env.wait_status("web-writer", "running", Duration::from_secs(20));

    // Served from the emptyDir, with the ConfigMap's value and the host
    // path's file; the second container writes into the same emptyDir.
    let body = http_get(port, "/index.html", "from-host-path");
    assert!(body.contains("hello-from-configmap"), "{body}");
    let body = http_get(port, "/writer.txt", "from-writer-blue");
    assert!(body.contains("200 OK"), "{body}");
    let o = env.ok(&["exec", "web-writer", "sh", "-c", "echo $CFG_GREETING; pwd"]);
    assert_eq!(o, "hello-from-configmap\n/cache\n");
    // The hostPath is read-only in the container.
    let o = env.run(&["exec", "web-httpd", "sh", "-c", "echo x > /host/new"]);
    assert_ne!(o.code, 0, "{o:#?}");
    // The emptyDir is one volume the two containers share.
    assert_eq!(env.ok(&["volume", "ls", "-q"]).lines().count(), 1);

    // Playing it again fails: the pod exists.
    env.fails(&["kube", "play", &file], 125, "already exists");

    let out = env.ok(&["kube", "down", &file]);
    assert_eq!(
        out,
        format!("Pods stopped:\n{pod}\nPods removed:\n{pod}\n"),
        "{out}"
    );
    assert_empty(&env);
    assert!(port_closed(port), "port {port} still answers");
    // The host path is left alone.
    assert!(host_dir.join("extra.txt").exists());
    // Down again: the pod is gone.
    env.fails(&["kube", "down", &file], 125, "no such pod");
}

#[test]
fn generate_round_trip() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let port = free_port();
    let yaml = format!(
        r#"apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: rt-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: rt
spec:
  replicas: 1
  selector:
    matchLabels:
      app: rt
  template:
    metadata:
      labels:
        app: rt
    spec:
      hostname: rthost
      containers:
      - name: srv
        image: {IMG}
        command: [sh, -c, "hostname > /data/h.txt && echo $MSG >> /data/h.txt && exec httpd -f -p 8080 -h /data"]
        env:
        - name: MSG
          value: round-trip
        ports:
        - containerPort: 8080
          hostPort: {port}
          hostIP: 127.0.0.1
        volumeMounts:
        - name: data
          mountPath: /data
        resources:
          limits:
            memory: 32Mi
        securityContext:
          allowPrivilegeEscalation: false
          capabilities:
            drop: [MKNOD]
      - name: idle
        image: {IMG}
        args: [sleep, "1000"]
        volumeMounts:
        - name: scratch
          mountPath: /scratch
      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: rt-data
      - name: scratch
        emptyDir: {{}}
"#
    );
    let file = write(&env, "rt.yaml", &yaml);
    env.track_volume("rt-data");
    let out = env.ok(&["kube", "play", &file]);
    assert!(out.starts_with("Volumes:\nrt-data\nPod:\n"), "{out}");
    let body = http_get(port, "/h.txt", "round-trip");
    assert!(body.contains("rthost"), "{body}");

    let gen1 = env.ok(&["kube", "generate", "rt-pod"]);
    assert!(gen1.starts_with("# Save the output"), "{gen1}");
    for want in [
        "kind: Pod",
        "name: rt-pod",
        "hostname: rthost",
        "restartPolicy: Always",
        "claimName: rt-data",
        "emptyDir: {}",
        &format!("hostPort: {port}"),
        "allowPrivilegeEscalation: false",
        "- MKNOD",
        "value: round-trip",
        "memory: '33554432'",
        "name: srv",
        "name: idle",
    ] {
        assert!(
            gen1.contains(want),
            "generated YAML lacks {want:?}:\n{gen1}"
        );
    }
    // Generate writes a file with -f, and also takes the pod's id.
    let gfile = env.path().join("gen.yaml");
    env.ok(&[
        "kube",
        "generate",
        "-f",
        &gfile.display().to_string(),
        &env.fmt("rt-pod-srv", "{{.Pod}}"),
    ]);
    let gen_file = std::fs::read_to_string(&gfile).expect("gen.yaml");
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.contains("creationTimestamp"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&gen_file), strip(&gen1));

    // Down keeps the claim's volume (as podman); play the generated YAML.
    env.ok(&["kube", "down", &file]);
    assert_eq!(env.all_ids(), Vec::<String>::new());
    assert_eq!(env.ok(&["volume", "ls", "-q"]).trim(), "rt-data");
    let out = env.ok(&["kube", "play", &gfile.display().to_string()]);
    let (_, ctrs) = played(&out);
    assert_eq!(ctrs.len(), 2, "{out}");
    // Same data (the claim's volume), same hostname, same port.
    let body = http_get(port, "/h.txt", "round-trip");
    assert!(body.contains("rthost"), "{body}");
    assert_eq!(env.fmt("rt-pod-srv", "{{.HostConfig.Memory}}"), "33554432");
    // And it generates the same YAML again.
    let gen2 = env.ok(&["kube", "generate", "rt-pod"]);
    assert_eq!(strip(&gen2), strip(&gen1));

    // down --force on the original file removes the claim's volume too.
    let out = env.ok(&["kube", "down", "--force", &file]);
    assert!(out.ends_with("Volumes removed:\nrt-data\n"), "{out}");
    assert_empty(&env);
    assert!(port_closed(port));
}

#[test]
fn generate_from_a_container() {
    need_root!();
    need_network!();
    let _g = net_lock();
    let env = Env::new();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let dir = env.path().join("www");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("index.html"), "lone-container\n").expect("write");
    let vol = format!("{}:/www:ro", dir.display());
    env.run_d(&[
        "--name", "lone", "-p", &publish, "-v", &vol, "-e", "X=1", IMG, "httpd", "-f", "-p", "80",
        "-h", "/www",
    ]);
    http_get(port, "/", "lone-container");
    let yaml = env.ok(&["kube", "generate", "lone"]);
    assert!(yaml.contains("name: lone-pod"), "{yaml}");
    assert!(yaml.contains("readOnly: true"), "{yaml}");
    assert!(yaml.contains("type: Directory"), "{yaml}");
    env.ok(&["rm", "-f", "lone"]);
    assert!(port_closed(port));
    let file = write(&env, "lone.yaml", &yaml);
    // podman 4's spelling, without starting.
    let out = env.ok(&["play", "kube", "--start=false", &file]);
    let (first, _) = played(&out);
    assert_eq!(env.status("lone-pod-lone"), "created");
    // --replace tears the pod down first.
    let out = env.ok(&["kube", "play", "--replace", &file]);
    let (second, _) = played(&out);
    assert_ne!(first, second);
    assert_eq!(pod_ids(&env), [second]);
    http_get(port, "/", "lone-container");
    assert_eq!(
        env.ok(&["exec", "lone-pod-lone", "sh", "-c", "echo $X"]),
        "1\n"
    );
    env.ok(&["kube", "down", &file]);
    assert_empty(&env);
}

/// A valid pod, a claim and a ConfigMap ahead of `bad`: anything created
/// before the error is found would be left behind.
fn with_valid_docs(bad: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: badclaim}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: good}}\nspec:\n  containers:\n  - {{name: c, image: {IMG}, args: [sleep, '100']}}\n  volumes: [{{name: v, emptyDir: {{}}}}]\n---\n{bad}"
    )
}

#[test]
fn bad_files_create_nothing() {
    need_root!();
    let env = Env::new();
    let pod = |extra: &str| {
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: c\n    image: {IMG}\n{extra}")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "syntax",
            with_valid_docs("apiVersion: v1\nkind: Pod\nmetadata: {name: [x\n"),
            "invalid YAML",
        ),
        (
            "unknown kind",
            with_valid_docs("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"),
            "document 3 (Service \"s\"): kind: unknown kind \"Service\"",
        ),
        (
            "missing image",
            with_valid_docs(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n  - name: c\n",
            ),
            "spec.containers[0].image: required but missing",
        ),
        (
            "bad port",
            with_valid_docs(&pod("    ports: [{containerPort: 80, hostPort: 99999}]\n")),
            "spec.containers[0].ports[0].hostPort: 99999 is not a valid port",
        ),
        (
            "unsupported field",
            with_valid_docs(&pod("    livenessProbe: {exec: {command: [true]}}\n")),
            "spec.containers[0].livenessProbe: not supported",
        ),
        (
            "replicas",
            with_valid_docs(&format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers: [{{name: c, image: {IMG}}}]\n"
            )),
            "spec.replicas: 2 replicas: only 1 replica is supported",
        ),
        (
            "missing image locally",
            with_valid_docs(&pod("  - {name: d, image: localhost/no-such-image, imagePullPolicy: Never}\n")),
            "spec.containers[1].image",
        ),
        (
            "missing host path",
            with_valid_docs(&pod("  volumes: [{name: h, hostPath: {path: /no/such/dir, type: Directory}}]\n")),
            "spec.volumes[0].hostPath.path: /no/such/dir: no such file or directory",
        ),
    ];
    for (what, yaml, msg) in &cases {
        eprintln!("--- case: {what}");
        let file = write(&env, "bad.yaml", yaml);
        let o = env.fails(&["kube", "play", &file], 125, msg);
        assert!(
            o.stderr.contains(&file),
            "{what}: the file is not named: {o:#?}"
        );
        assert_empty(&env);
    }
    // A file that is not there, and stdin.
    env.fails(&["kube", "play", "/no/such.yaml"], 125, "/no/such.yaml");
    let o = env.run_input(&["kube", "play", "-"], "kind: Pod\n  x: [\n");
    assert_eq!(o.code, 125, "{o:#?}");
    assert!(o.stderr.contains("-: line 2"), "{o:#?}");
    // The name of an existing container.
    env.ok(&["create", "--name", "good", IMG, "true"]);
    let file = write(&env, "bad.yaml", &with_valid_docs(""));
    env.fails(&["kube", "play", &file], 125, "\"good\" already exists");
    env.ok(&["rm", "good"]);
    assert_empty(&env);
}

#[test]
fn failure_half_way_is_rolled_back() {
    need_root!();
    let _g = net_lock();
    let env = Env::new();
    let created_dir = env.path().join("made-by-play");
    // The second pod's container cannot start: its command does not exist.
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: broken}}\nspec:\n  containers:\n  - {{name: c, image: {IMG}, command: [/no/such/command]}}\n  volumes: [{{name: h, hostPath: {{path: {}, type: DirectoryOrCreate}}}}]\n",
        with_valid_docs(""),
        created_dir.display()
    );
    let file = write(&env, "half.yaml", &yaml);
    let o = env.run(&["kube", "play", &file]);
    assert_eq!(o.code, 125, "{o:#?}");
    assert!(o.stderr.contains("/no/such/command"), "{o:#?}");
    assert_empty(&env);
    assert!(!created_dir.exists(), "the created host directory was left");
}
