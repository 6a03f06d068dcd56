//! Health checks (`--health-cmd` and friends, `healthcheck run`).
//!
//! There is no daemon: a check runs when `barge healthcheck run CTR` is
//! called (podman runs that command from a systemd timer every
//! `--health-interval`; with barge, use a timer or cron). A check execs
//! the command in the container through the runtime, with a timeout, and
//! records the result in `ROOT/containers/ID/healthcheck.json` (status,
//! failing streak, the last 5 results) and the status in the record's
//! `state.health`, which `ps` shows as `Up 5 seconds (healthy)`.
//!
//! Status rules (podman's): a passing check makes the container
//! `healthy` and resets the failing streak; a failing one adds to the
//! streak, except during the start period after the container started,
//! and makes it `unhealthy` once the streak reaches the retries. Until
//! then it stays as it was (`starting` after a start).

use super::lifecycle::resolve_user;
use super::{now_nanos, ContainerRecord, Engine, Status};
use crate::error::EngineError;
use crate::Result;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The results kept in the log.
const MAX_LOG: usize = 5;
/// Output kept per result (podman's limit).
const MAX_OUTPUT: usize = 500;

/// `--health-interval`, `--health-timeout`, `--health-start-period`,
/// `--health-retries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSettings {
    /// Between checks (informational: checks run on `healthcheck run`).
    pub interval_ns: i64,
    /// A check running longer fails.
    pub timeout_ns: i64,
    /// Failures in this time after a start do not count.
    pub start_period_ns: i64,
    /// Consecutive failures that make the container unhealthy.
    pub retries: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            interval_ns: 30_000_000_000,
            timeout_ns: 30_000_000_000,
            start_period_ns: 0,
            retries: 3,
        }
    }
}

/// Parses a Go-style duration (`30s`, `1m30s`, `500ms`, `1h`; a bare
/// number is seconds); `disable` is 0.
pub fn parse_duration(s: &str) -> Result<i64> {
    let bad = || EngineError::Invalid(format!("invalid duration {s:?}: expected e.g. 30s, 1m30s"));
    let t = s.trim();
    if t == "disable" {
        return Ok(0);
    }
    if let Ok(n) = t.parse::<u64>() {
        return i64::try_from(n.saturating_mul(1_000_000_000)).map_err(|_| bad());
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Ok(total as i64)
}

/// Go's `time.Duration.String()` (`1m30s`, `500ms`, `43.94555ms`).
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let frac = |v: u64, div: u64| -> String {
        let whole = v / div;
        let mut f = format!("{:0width$}", v % div, width = div.to_string().len() - 1);
        while f.ends_with('0') {
            f.pop();
        }
        if f.is_empty() {
            whole.to_string()
        } else {
            format!("{whole}.{f}")
        }
    };
    let s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        let h = u / 3_600_000_000_000;
        let m = (u / 60_000_000_000) % 60;
        let secs = frac(u % 60_000_000_000, 1_000_000_000);
        if h > 0 {
            format!("{h}h{m}m{secs}s")
        } else if m > 0 {
            format!("{m}m{secs}s")
        } else {
            format!("{secs}s")
        }
    };
    if neg {
        format!("-{s}")
    } else {
        s
    }
}

/// One check's result, podman's names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthLogEntry {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// The command's exit code.
    pub exit_code: i32,
    /// Its output (stdout and stderr), at most 500 bytes.
    pub output: String,
}

/// The health state kept in `healthcheck.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthState {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<HealthLogEntry>,
    /// The container start this state belongs to (a new start resets it).
    #[serde(rename = "bargeStartedAt")]
    pub started_at: i64,
}

/// The outcome of [`Engine::healthcheck_run`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Whether this check passed.
    pub passed: bool,
    /// The container's health status after it.
    pub status: String,
}

fn state_path(engine: &Engine, id: &str) -> std::path::PathBuf {
    engine.paths.container_dir(id).join("healthcheck.json")
}

/// The health state of the container's current run (`starting` with no
/// results after a new start).
pub fn current(container_dir: &Path, rec: &ContainerRecord) -> HealthState {
    let st: Option<HealthState> = std::fs::read(container_dir.join("healthcheck.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match st {
        Some(s) if s.started_at == rec.state.started_at => s,
        _ => HealthState {
            status: "starting".into(),
            started_at: rec.state.started_at,
            ..HealthState::default()
        },
    }
}

/// `State.Health` of `inspect` (null without a health check).
pub fn inspect_value(container_dir: &Path, rec: &ContainerRecord) -> Value {
    if !has_check(rec) {
        return Value::Null;
    }
    let s = current(container_dir, rec);
    json!({"Status": s.status, "FailingStreak": s.failing_streak, "Log": s.log})
}

/// `Up 5 seconds` → `Up 5 seconds (healthy)` for a running container with
/// a health check (`starting` until a check ran in this run).
pub fn status_suffix(rec: &ContainerRecord, text: String) -> String {
    if has_check(rec) && matches!(rec.state.status, Status::Running) {
        let st = if rec.state.health.is_empty() {
            "starting"
        } else {
            rec.state.health.as_str()
        };
        format!("{text} ({st})")
    } else {
        text
    }
}

/// `Config.Healthcheck` of `inspect` (null without a health check).
pub fn config_value(rec: &ContainerRecord) -> Value {
    if !has_check(rec) {
        return Value::Null;
    }
    let s = rec.config.health.clone().unwrap_or_default();
    let test = health_argv(rec.config.health_cmd.as_deref().unwrap_or_default()).map_or(
        Value::Null,
        |argv| match argv.as_slice() {
            [sh, c, cmd] if sh == "/bin/sh" && c == "-c" => json!(["CMD-SHELL", cmd]),
            _ => json!(std::iter::once("CMD".to_string())
                .chain(argv)
                .collect::<Vec<_>>()),
        },
    );
    json!({"Test": test, "Interval": s.interval_ns, "Timeout": s.timeout_ns,
           "StartPeriod": s.start_period_ns, "Retries": s.retries})
}

/// Whether a health check is configured.
pub fn has_check(rec: &ContainerRecord) -> bool {
    rec.config
        .health_cmd
        .as_deref()
        .is_some_and(|c| !c.trim().is_empty() && !c.trim().eq_ignore_ascii_case("none"))
}

/// The argv of a `--health-cmd`: a JSON array (`["CMD", …]`,
/// `["CMD-SHELL", "…"]` or a plain argv) or a shell command.
pub fn health_argv(cmd: &str) -> Result<Vec<String>> {
    let t = cmd.trim();
    if t.starts_with('[') {
        let v: Vec<String> = serde_json::from_str(t)
            .map_err(|e| EngineError::Invalid(format!("invalid --health-cmd {cmd:?}: {e}")))?;
        return Ok(match v.first().map(String::as_str) {
            Some("CMD") => v[1..].to_vec(),
            Some("CMD-SHELL") => {
                vec!["/bin/sh".into(), "-c".into(), v[1..].join(" ")]
            }
            Some("NONE") | None => Vec::new(),
            Some(_) => v,
        });
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), t.to_string()])
}

impl Engine {
    /// Runs the container's health check once and records the result.
    pub fn healthcheck_run(&mut self, name: &str) -> Result<HealthReport> {
        let rec = self.refresh(self.lookup(name)?)?;
        if !has_check(&rec) {
            return Err(EngineError::Invalid(format!(
                "container {} has no defined healthcheck",
                rec.id
            )));
        }
        if rec.state.status != Status::Running {
            return Err(EngineError::Invalid(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let argv = health_argv(rec.config.health_cmd.as_deref().unwrap_or_default())?;
        if argv.is_empty() {
            return Err(EngineError::Invalid(format!(
                "container {} has no defined healthcheck",
                rec.id
            )));
        }
        let settings = rec.config.health.clone().unwrap_or_default();
        let start = now_nanos();
        let (code, output) = self.exec_captured(&rec, &argv, settings.timeout_ns)?;
        let end = now_nanos();
        let _lock = self.lock(&rec.id)?;
        let dir = self.paths.container_dir(&rec.id);
        let mut st = current(&dir, &rec);
        let passed = code == 0;
        if passed {
            st.status = "healthy".into();
            st.failing_streak = 0;
        } else {
            let in_start_period = settings.start_period_ns > 0
                && start - rec.state.started_at < settings.start_period_ns;
            if !in_start_period {
                st.failing_streak += 1;
                if st.failing_streak >= settings.retries.max(1) {
                    st.status = "unhealthy".into();
                }
            }
        }
        let mut out = output;
        if out.len() > MAX_OUTPUT {
            let mut cut = MAX_OUTPUT;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        st.log.push(HealthLogEntry {
            start: super::query::rfc3339(start),
            end: super::query::rfc3339(end),
            exit_code: code,
            output: out,
        });
        if st.log.len() > MAX_LOG {
            let extra = st.log.len() - MAX_LOG;
            st.log.drain(..extra);
        }
        let path = state_path(self, &rec.id);
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec(&st)
            .map_err(|e| EngineError::Invalid(format!("health state: {e}")))?;
        std::fs::write(&tmp, data)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
        let status = st.status.clone();
        self.modify(&rec.id, |r| {
            r.state.health.clone_from(&status);
            Ok(())
        })?;
        Ok(HealthReport { passed, status })
    }

    /// Execs `argv` in a running container through the runtime, with its
    /// environment, working directory and user; returns the exit code
    /// (1 on timeout, after killing the process) and the combined output.
    fn exec_captured(
        &self,
        rec: &ContainerRecord,
        argv: &[String],
        timeout_ns: i64,
    ) -> Result<(i32, String)> {
        let rundir = self.paths.container_run_dir(&rec.id);
        let pid_file = rundir.join(format!("health-{}.pid", std::process::id()));
        let mut cmd = self.runtime_cmd(rec);
        cmd.arg("exec").arg("--pid-file").arg(&pid_file);
        if !rec.config.workdir.is_empty() {
            cmd.arg("--cwd").arg(&rec.config.workdir);
        }
        if !rec.config.user.is_empty() {
            let rootfs = self.paths.container_dir(&rec.id).join("rootfs");
            let (uid, gid, groups) = resolve_user(&rootfs, &rec.config.user)?;
            cmd.arg("--user").arg(format!("{uid}:{gid}"));
            for g in groups {
                cmd.arg("--additional-gids").arg(g.to_string());
            }
        }
        for e in &rec.config.env {
            cmd.arg("--env").arg(e);
        }
        cmd.arg(&rec.id).args(argv);
        let (mut reader, writer) = std::io::pipe().map_err(EngineError::io("creating a pipe"))?;
        let w2 = writer
            .try_clone()
            .map_err(EngineError::io("creating a pipe"))?;
        cmd.stdin(Stdio::null()).stdout(writer).stderr(w2);
        let mut child = cmd.spawn().map_err(EngineError::io(format!(
            "running {}",
            self.runtime_for(rec).display()
        )))?;
        drop(cmd);
        let collector = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut reader).take(64 << 10).read_to_end(&mut buf);
            // Drain the rest so the command never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            buf
        });
        let timeout = if timeout_ns > 0 {
            Duration::from_nanos(timeout_ns.unsigned_abs())
        } else {
            Duration::from_secs(u64::MAX / 4)
        };
        let deadline = Instant::now() + timeout;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) => {}
                Err(_) => break None,
            }
            if Instant::now() >= deadline {
                timed_out = true;
                if let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                    .and_then(rustix::process::Pid::from_raw)
                {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                let _ = child.kill();
                break child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = std::fs::remove_file(&pid_file);
        let out = collector.join().unwrap_or_default();
        let mut text = String::from_utf8_lossy(&out).into_owned();
        if timed_out {
            text = format!(
                "Health check exceeded timeout of {}",
                go_duration(timeout_ns)
            );
            return Ok((1, text));
        }
        let code = status.and_then(|s| s.code()).unwrap_or(1);
        Ok((code, text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("2").unwrap(), 2_000_000_000);
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5q").is_err());
        assert_eq!(go_duration(43_945_550), "43.94555ms");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
    }

    #[test]
    fn argv_forms() {
        assert_eq!(health_argv("true").unwrap(), ["/bin/sh", "-c", "true"]);
        assert_eq!(health_argv(r#"["CMD","ls","/"]"#).unwrap(), ["ls", "/"]);
        assert_eq!(
            health_argv(r#"["CMD-SHELL","exit 1"]"#).unwrap(),
            ["/bin/sh", "-c", "exit 1"]
        );
        assert!(health_argv("[bad").is_err());
    }
}
