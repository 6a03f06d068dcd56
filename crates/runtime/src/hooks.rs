//! OCI hooks: run a hook with the container state on stdin, with a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::RuntimeError;

/// Run each hook of `kind` in order; the first failure stops the rest.
pub fn run_all(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
) -> Result<(), RuntimeError> {
    run_all_via(kind, hooks, state, None)
}

/// Like [`run_all`], executing each hook through the exec trampoline (for
/// hooks whose path resolves inside the container: startContainer).
pub fn run_all_via(
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
    trampoline: Option<&std::os::fd::OwnedFd>,
) -> Result<(), RuntimeError> {
    let state = serde_json::to_vec(state).map_err(|e| RuntimeError::Other(e.to_string()))?;
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        run(kind, i, hook, &state, trampoline)?;
    }
    Ok(())
}

/// Run every hook of `kind`; a failure is a warning and the rest still run
/// (the spec's rule for poststart and poststop).
pub fn run_all_warn(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) {
    let Ok(state) = serde_json::to_vec(state) else {
        return;
    };
    for (i, hook) in hooks.into_iter().flatten().enumerate() {
        if let Err(e) = run(kind, i, hook, &state, None) {
            tracing::warn!(error = %e, "hook failed");
            eprintln!("barge-runtime: warning: {e}");
        }
    }
}

fn run(
    kind: &str,
    index: usize,
    hook: &Hook,
    state: &[u8],
    trampoline: Option<&std::os::fd::OwnedFd>,
) -> Result<(), RuntimeError> {
    use std::os::fd::AsRawFd;
    let path = hook.path();
    let name = format!("{kind} hook #{index} ({})", path.display());
    let tramp_path = trampoline
        .map(|fd| std::path::PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())))
        .filter(|p| p.exists());
    let mut cmd = match &tramp_path {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg0("barge-exec").arg(path);
            c
        }
        None => Command::new(path),
    };
    let args = hook.args().clone().unwrap_or_default();
    match (args.split_first(), &tramp_path) {
        (Some((argv0, rest)), Some(_)) => {
            cmd.arg(argv0).args(rest);
        }
        (Some((argv0, rest)), None) => {
            cmd.arg0(argv0).args(rest);
        }
        (None, Some(_)) => {
            cmd.arg(path);
        }
        (None, None) => {}
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| RuntimeError::Hook(format!("{name}: cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin: EPIPE is not an error.
        let _ = stdin.write_all(state);
    }
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(RuntimeError::Hook(format!("{name}: waiting: {e}"))),
        }
        if let Some(t) = timeout {
            if start.elapsed() >= t {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RuntimeError::Hook(format!(
                    "{name} timed out after {}s",
                    t.as_secs()
                )));
            }
        }
        std::thread::sleep(Duration::from_millis(
            if start.elapsed() < Duration::from_millis(20) {
                1
            } else {
                10
            },
        ));
    };
    if !status.success() {
        let out = child.wait_with_output().ok();
        let stderr = out
            .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_default();
        return Err(RuntimeError::Hook(format!(
            "{name} failed ({status}): {stderr}"
        )));
    }
    Ok(())
}
