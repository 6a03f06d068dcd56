//! OCI hooks: run a hook with the container state on stdin, with a timeout.

use std::io::{Read, Seek, SeekFrom, Write};
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
    // State in and output out through memfds: a hook that does not read
    // its stdin or writes a lot can never block us (or itself) on a pipe.
    let memfd = |what: &str| -> Result<std::fs::File, RuntimeError> {
        rustix::fs::memfd_create(what, rustix::fs::MemfdFlags::CLOEXEC)
            .map(std::fs::File::from)
            .map_err(|e| RuntimeError::Hook(format!("{name}: memfd: {}", std::io::Error::from(e))))
    };
    let mut input = memfd("hook-state")?;
    input
        .write_all(state)
        .and_then(|()| input.seek(SeekFrom::Start(0)).map(drop))
        .map_err(|e| RuntimeError::Hook(format!("{name}: writing the state: {e}")))?;
    let mut output = memfd("hook-output")?;
    let out_dup = |f: &std::fs::File| {
        f.try_clone()
            .map_err(|e| RuntimeError::Hook(format!("{name}: {e}")))
    };
    cmd.stdin(Stdio::from(input))
        .stdout(Stdio::from(out_dup(&output)?))
        .stderr(Stdio::from(out_dup(&output)?));
    let mut child = cmd
        .spawn()
        .map_err(|e| RuntimeError::Hook(format!("{name}: cannot start: {e}")))?;
    drop(cmd);
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let start = Instant::now();
    let pidfd = rustix::process::Pid::from_raw(child.id() as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(RuntimeError::Hook(format!("{name}: waiting: {e}"))),
        }
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        if left == Some(Duration::ZERO) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RuntimeError::Hook(format!(
                "{name} timed out after {}s",
                timeout.unwrap_or_default().as_secs()
            )));
        }
        let step = left
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1));
        match &pidfd {
            Some(fd) => {
                let mut pfd = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                let ts = rustix::event::Timespec {
                    tv_sec: step.as_secs() as i64,
                    tv_nsec: i64::from(step.subsec_nanos()),
                };
                let _ = rustix::event::poll(&mut pfd, Some(&ts));
            }
            None => std::thread::sleep(step.min(Duration::from_millis(5))),
        }
    };
    if !status.success() {
        let mut text = Vec::new();
        let _ = output.seek(SeekFrom::Start(0));
        let _ = output.read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let tail: String = text
            .trim()
            .chars()
            .rev()
            .take(2000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        return Err(RuntimeError::Hook(format!(
            "{name} failed ({status}): {tail}"
        )));
    }
    Ok(())
}
