//! `run` options: volumes, environment, user, workdir, entrypoint, hostname,
//! add-host, read-only, tmpfs, memory, pids, capabilities, privileged,
//! seccomp, init, log drivers, runtime.

use crate::{need_root, rootless_skips_part, skip_rootless, unique, Env, IMG};
use serde_json::Value;

/// `run --rm ARGS` → (exit code, stdout).
fn run_rm(env: &Env, args: &[&str]) -> (i32, String) {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    let o = env.run(&a);
    (o.code, o.stdout)
}

#[track_caller]
fn run_ok(env: &Env, args: &[&str]) -> String {
    let (code, out) = run_rm(env, args);
    assert_eq!(code, 0, "run {args:?}: {out}");
    out
}

#[test]
fn volumes_bind_named_and_read_only() {
    need_root!();
    let env = Env::new();
    // Writable by the container's root (the user's in a rootless run).
    let host = env.host_dir("host");
    std::fs::write(host.join("in.txt"), "from-host\n").expect("write");
    let bind = format!("{}:/data", host.display());
    let out = run_ok(
        &env,
        &[
            "-v",
            &bind,
            IMG,
            "sh",
            "-c",
            "cat /data/in.txt; echo from-ctr > /data/out.txt",
        ],
    );
    assert_eq!(out, "from-host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap_or_default(),
        "from-ctr\n"
    );
    // :ro is enforced.
    let ro = format!("{}:/data:ro", host.display());
    let (code, _) = run_rm(&env, &["-v", &ro, IMG, "sh", "-c", "echo x > /data/x"]);
    assert_ne!(code, 0);
    assert!(!host.join("x").exists());
    // A named volume outlives its containers.
    let vol = unique("vol");
    env.track_volume(&vol);
    let spec = format!("{vol}:/v");
    run_ok(
        &env,
        &["-v", &spec, IMG, "sh", "-c", "echo persisted > /v/f"],
    );
    assert_eq!(
        run_ok(&env, &["-v", &spec, IMG, "cat", "/v/f"]),
        "persisted\n"
    );
    let spec_ro = format!("{vol}:/v:ro");
    let (code, _) = run_rm(&env, &["-v", &spec_ro, IMG, "sh", "-c", "echo y > /v/f"]);
    assert_ne!(code, 0);
    assert_eq!(
        run_ok(&env, &["-v", &spec, IMG, "cat", "/v/f"]),
        "persisted\n"
    );
    // An anonymous volume goes away with --rm.
    run_ok(&env, &["-v", "/anon", IMG, "sh", "-c", "echo a > /anon/a"]);
}

#[test]
fn env_user_workdir_entrypoint_hostname_add_host() {
    need_root!();
    let env = Env::new();
    // In the test's directory: readable by a rootless user too.
    let f = env.path().join("env-file");
    std::fs::write(&f, "# comment\nFROM_FILE=file-value\n\nBOTH=file\n").expect("write");
    let ef = f.display().to_string();
    let out = run_ok(
        &env,
        &[
            "--env-file",
            &ef,
            "-e",
            "BOTH=flag",
            "--env",
            "A=1",
            IMG,
            "sh",
            "-c",
            "echo $FROM_FILE $BOTH $A",
        ],
    );
    assert_eq!(out, "file-value flag 1\n");
    assert_eq!(
        run_ok(
            &env,
            &["-u", "1000:1001", IMG, "sh", "-c", "echo $(id -u) $(id -g)"]
        ),
        "1000 1001\n"
    );
    assert_eq!(run_ok(&env, &["-w", "/tmp", IMG, "pwd"]), "/tmp\n");
    // A workdir that does not exist is created (podman).
    assert_eq!(run_ok(&env, &["-w", "/new/dir", IMG, "pwd"]), "/new/dir\n");
    assert_eq!(
        run_ok(
            &env,
            &["--entrypoint", "/bin/echo", IMG, "via", "entrypoint"]
        ),
        "via entrypoint\n"
    );
    assert_eq!(
        run_ok(&env, &["--hostname", "myhost", IMG, "hostname"]),
        "myhost\n"
    );
    let hosts = run_ok(
        &env,
        &[
            "--add-host",
            "extra.example:10.1.2.3",
            IMG,
            "cat",
            "/etc/hosts",
        ],
    );
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with("10.1.2.3") && l.contains("extra.example")),
        "{hosts}"
    );
}

#[test]
fn read_only_and_tmpfs() {
    need_root!();
    let env = Env::new();
    let (code, _) = run_rm(&env, &["--read-only", IMG, "touch", "/x"]);
    assert_ne!(code, 0);
    // /tmp-like tmpfs stays writable; --tmpfs adds one.
    let out = run_ok(
        &env,
        &[
            "--read-only",
            "--tmpfs",
            "/scratch:size=1m",
            IMG,
            "sh",
            "-c",
            "touch /scratch/x && grep ' /scratch ' /proc/mounts",
        ],
    );
    assert!(out.contains("tmpfs"), "{out}");
    assert!(out.contains("size=1024k"), "{out}");
}

#[test]
fn memory_limit_oom_kill() {
    need_root!();
    skip_rootless!("memory limits need a cgroup: no cgroup is delegated to a rootless user on this host (cgroup v1)");
    let env = Env::new();
    let name = unique("oom");
    let o = env.run(&[
        "run",
        "--name",
        &name,
        "--memory",
        "32m",
        IMG,
        "barge-check",
        "alloc",
        "256",
    ]);
    assert_eq!(o.code, 137, "{o:#?}");
    assert_eq!(env.fmt(&name, "{{.State.OOMKilled}}"), "true");
    assert_eq!(env.fmt(&name, "{{.State.ExitCode}}"), "137");
    env.ok(&["rm", &name]);
    // Under the limit: fine.
    run_ok(&env, &["--memory", "64m", IMG, "barge-check", "alloc", "8"]);
}

#[test]
fn pids_limit() {
    need_root!();
    skip_rootless!("pids limits need a cgroup: no cgroup is delegated to a rootless user on this host (cgroup v1)");
    let env = Env::new();
    let out = run_ok(
        &env,
        &["--pids-limit", "10", IMG, "barge-check", "fork", "30"],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert!(v["forked"].as_u64().unwrap_or(99) < 10, "{v}");
    assert_eq!(v["errno_name"], "EAGAIN", "{v}");
}

fn caps(env: &Env, flags: &[&str]) -> Vec<String> {
    let mut a = flags.to_vec();
    a.extend_from_slice(&[IMG, "barge-check", "caps"]);
    let out = run_ok(env, &a);
    let v: Value = serde_json::from_str(out.trim()).expect("caps json");
    serde_json::from_value(v["effective"].clone()).expect("effective")
}

#[test]
fn capabilities_and_privileged() {
    need_root!();
    let env = Env::new();
    let default = caps(&env, &[]);
    // podman's default set.
    for c in [
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
    ] {
        assert!(default.iter().any(|x| x == c), "{c} missing: {default:?}");
    }
    for c in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_MKNOD"] {
        assert!(!default.iter().any(|x| x == c), "{c} present: {default:?}");
    }
    let added = caps(&env, &["--cap-add", "NET_ADMIN", "--cap-drop", "CHOWN"]);
    assert!(added.iter().any(|x| x == "CAP_NET_ADMIN"), "{added:?}");
    assert!(!added.iter().any(|x| x == "CAP_CHOWN"), "{added:?}");
    let all = caps(&env, &["--cap-drop", "all"]);
    assert!(all.is_empty(), "{all:?}");
    let privileged = caps(&env, &["--privileged"]);
    assert!(
        privileged.iter().any(|x| x == "CAP_SYS_ADMIN"),
        "{privileged:?}"
    );
    // Effective for root only: a non-root user has none.
    assert!(caps(&env, &["-u", "1000"]).is_empty());
    // --privileged also shows the host's devices and unmasks /proc paths.
    let out = run_ok(&env, &["--privileged", IMG, "sh", "-c", "ls /dev | wc -l"]);
    let n: usize = out.trim().parse().unwrap_or(0);
    assert!(n > 20, "only {n} devices");
}

#[test]
fn seccomp_default_denies_unshare_unconfined_allows() {
    need_root!();
    let env = Env::new();
    // unshare(CLONE_NEWUSER) needs no capability: only the filter denies it.
    let out = run_ok(&env, &[IMG, "barge-check", "syscall", "unshare", "user"]);
    assert!(out.contains("EPERM"), "{out}");
    let out = run_ok(
        &env,
        &[
            "--security-opt",
            "seccomp=unconfined",
            IMG,
            "barge-check",
            "syscall",
            "unshare",
            "user",
        ],
    );
    assert!(out.contains("\"ret\":0"), "{out}");
    // The filter is installed by default and absent when unconfined.
    let nnp = |flags: &[&str]| {
        let mut a = flags.to_vec();
        a.extend_from_slice(&[IMG, "barge-check", "nnp"]);
        let v: Value = serde_json::from_str(run_ok(&env, &a).trim()).expect("nnp json");
        v["Seccomp"].as_i64().unwrap_or(-1)
    };
    assert_eq!(nnp(&[]), 2);
    assert_eq!(nnp(&["--security-opt", "seccomp=unconfined"]), 0);
    // --privileged runs unconfined too (podman).
    assert_eq!(nnp(&["--privileged"]), 0);
}

#[test]
fn init_reaps_and_forwards() {
    need_root!();
    let env = Env::new();
    let out = run_ok(
        &env,
        &[
            "--init",
            IMG,
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
        ],
    );
    let mut lines = out.lines();
    let init = lines.next().unwrap_or_default();
    assert!(init.contains("catatonit") || init.contains("init"), "{out}");
    assert_ne!(
        lines.next(),
        Some("1"),
        "sh is not pid 1 with --init: {out}"
    );
    // Without --init, the command is pid 1.
    assert_eq!(run_ok(&env, &[IMG, "sh", "-c", "echo $$"]), "1\n");
    // With --init a stop (SIGTERM) ends a shell that does not trap it.
    let name = unique("init");
    env.run_d(&["--init", "--name", &name, IMG, "sleep", "1000"]);
    let t0 = std::time::Instant::now();
    env.ok(&["stop", "-t", "5", &name]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        t0.elapsed()
    );
    env.ok(&["rm", &name]);
}

#[test]
fn log_drivers() {
    need_root!();
    let env = Env::new();
    let json = unique("json");
    let none = unique("none");
    env.ok(&[
        "run",
        "--name",
        &json,
        "--log-driver",
        "json-file",
        IMG,
        "sh",
        "-c",
        "echo one; echo two >&2",
    ]);
    let o = env.run(&["logs", &json]);
    assert_eq!(
        (o.stdout.as_str(), o.stderr.as_str()),
        ("one\n", "two\n"),
        "{o:#?}"
    );
    let path = env.fmt(&json, "{{.HostConfig.LogConfig.Path}}");
    let text = std::fs::read_to_string(&path).expect("log file");
    let first: Value =
        serde_json::from_str(text.lines().next().unwrap_or_default()).expect("json-file line");
    assert_eq!(first["log"], "one\n");
    assert_eq!(first["stream"], "stdout");
    assert_eq!(
        env.fmt(&json, "{{.HostConfig.LogConfig.Type}}"),
        "json-file"
    );
    // none: the output still reaches an attached client; logs has nothing.
    let o = env.run(&[
        "run",
        "--name",
        &none,
        "--log-driver",
        "none",
        IMG,
        "echo",
        "shown",
    ]);
    assert_eq!(o.stdout, "shown\n", "{o:#?}");
    let o = env.run(&["logs", &none]);
    assert_eq!(o.stdout, "");
    assert!(o.stderr.contains("none"), "{o:#?}");
    env.ok(&["rm", &json, &none]);
}

#[test]
fn runtime_runc_gives_the_same_results() {
    need_root!();
    if which("runc").is_none() {
        eprintln!("SKIP: runc not installed (scripts/install-deps.sh)");
        return;
    }
    let env = Env::new();
    let (code, out) = run_rm(
        &env,
        &[
            "--runtime",
            "runc",
            IMG,
            "sh",
            "-c",
            "echo via-runc; exit 3",
        ],
    );
    assert_eq!((code, out.as_str()), (3, "via-runc\n"));
    assert_eq!(
        run_rm(&env, &["--runtime", "runc", IMG, "nonexistent"]).0,
        127
    );
    let name = unique("runc");
    env.run_d(&[
        "--runtime",
        "runc",
        "--name",
        &name,
        IMG,
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    assert_eq!(env.ok(&["exec", &name, "echo", "exec-ok"]), "exec-ok\n");
    if !rootless_skips_part("pause/unpause with runc", "the freezer needs a cgroup: no cgroup is delegated to a rootless user on this host (cgroup v1)") {
        env.ok(&["pause", &name]);
        assert_eq!(env.status(&name), "paused");
        env.ok(&["unpause", &name]);
    }
    assert_eq!(env.fmt(&name, "{{.OCIRuntime}}"), "runc");
    env.ok(&["stop", &name]);
    assert_eq!(env.fmt(&name, "{{.State.ExitCode}}"), "0");
    let default = caps(&env, &[]);
    let runc = caps(&env, &["--runtime", "runc"]);
    assert_eq!(default, runc);
    env.ok(&["rm", &name]);
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.exists())
    })
}
