//! Small helpers: time stamps, /proc parsing, signal names, PATH lookup.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::RuntimeError;

/// RFC 3339 time stamp in UTC with nanoseconds, like Go's `time.RFC3339Nano`.
pub fn rfc3339_now() -> String {
    rfc3339(SystemTime::now())
}

/// Format a `SystemTime` as RFC 3339 UTC.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Fields of `/proc/PID/stat` we need: state letter and start time (clock
/// ticks since boot), which tells a live process from a reused pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    pub start_time: u64,
}

/// Read `/proc/PID/stat`; `None` if the process does not exist.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name may contain spaces and parentheses: skip past the
    // last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    // Field 22 overall (starttime) is index 19 after the state (field 3).
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        start_time,
    })
}

/// The processes of a container without a cgroup (a rootless one where
/// none is delegated): its init, when still the process that started at
/// `start_time`, the init's descendants and, when the init is pid 1 of a
/// pid namespace, every process of that namespace (orphans are
/// re-parented to the init; a process that left for a namespace of its
/// own is still a descendant). Sorted.
pub fn process_tree(init: i32, start_time: u64) -> Vec<i32> {
    if !process_alive(init, start_time) {
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return vec![init];
    };
    let all: Vec<(i32, ProcStat)> = rd
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, proc_stat(pid)?)))
        .collect();
    let ns = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns(init).filter(|_| heads_pid_namespace(init));
    let mut out = vec![init];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        for (pid, st) in &all {
            if st.ppid == parent && !out.contains(pid) {
                out.push(*pid);
            }
        }
        i += 1;
    }
    if let Some(init_ns) = init_ns {
        for (pid, _) in &all {
            if !out.contains(pid) && ns(*pid).as_ref() == Some(&init_ns) {
                out.push(*pid);
            }
        }
    }
    out.sort_unstable();
    out
}

/// Whether `pid` is pid 1 of a pid namespace below ours (the last
/// `NSpid:` entry of its status).
fn heads_pid_namespace(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let ids: Vec<String> = s
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))?
                .split_whitespace()
                .map(str::to_string)
                .collect();
            Some(ids.len() > 1 && ids.last().is_some_and(|l| l == "1"))
        })
        .unwrap_or(false)
}

/// Whether `pid` is alive (not a zombie) and still the process that started
/// at `start_time`.
pub fn process_alive(pid: i32, start_time: u64) -> bool {
    match proc_stat(pid) {
        Some(st) => st.start_time == start_time && st.state != 'Z' && st.state != 'X',
        None => false,
    }
}

/// Parse a signal given as a name (`KILL`, `SIGKILL`) or a number.
pub fn parse_signal(s: &str) -> Result<i32, RuntimeError> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        return Err(RuntimeError::Signal(s.to_string()));
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" | "CLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        other => {
            if let Some(off) = other.strip_prefix("RTMIN") {
                let base = libc::SIGRTMIN();
                let off: i32 = if off.is_empty() {
                    0
                } else {
                    off.trim_start_matches('+')
                        .parse()
                        .map_err(|_| RuntimeError::Signal(s.to_string()))?
                };
                base + off
            } else {
                return Err(RuntimeError::Signal(s.to_string()));
            }
        }
    };
    Ok(n)
}

/// The value of `key` in a `KEY=VALUE` environment list.
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|e| e.split_once('=').and_then(|(k, v)| (k == key).then_some(v)))
}

/// Resolve the executable like `execvp`, inside the current root (the init
/// calls this after pivot_root). Errors use runc's wording, which podman
/// maps to exit codes 127 (not found) and 126 (permission denied).
pub fn lookup_executable(arg0: &str, env: &[String], cwd: &Path) -> Result<PathBuf, String> {
    let is_exec = |p: &Path| -> Result<(), String> {
        let meta = std::fs::metadata(p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "exec: {:?}: stat {}: no such file or directory",
                    arg0,
                    p.display()
                )
            } else {
                format!("exec: {arg0:?}: {e}")
            }
        })?;
        if meta.is_dir() {
            return Err(format!("exec: {arg0:?}: is a directory: permission denied"));
        }
        rustix::fs::access(p, rustix::fs::Access::EXEC_OK)
            .map_err(|_| format!("exec: {arg0:?}: permission denied"))
    };
    if arg0.contains('/') {
        let p = if Path::new(arg0).is_absolute() {
            PathBuf::from(arg0)
        } else {
            cwd.join(arg0)
        };
        is_exec(&p)?;
        return Ok(p);
    }
    let path = env_get(env, "PATH")
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        match is_exec(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.contains("permission denied") && candidate.exists() => denied = Some(e),
            Err(_) => {}
        }
    }
    Err(denied.unwrap_or_else(|| format!("exec: {arg0:?}: executable file not found in $PATH")))
}

/// Write a file atomically (temp file + rename) with mode 0600.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), RuntimeError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| RuntimeError::io(format!("writing {}", tmp.display()), e))?;
    f.write_all(data)
        .map_err(|e| RuntimeError::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        RuntimeError::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        let t = UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 5);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn stat_parsing_handles_odd_names() {
        let text =
            "123 (a) b) (c) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 100";
        let st = parse_stat(text).unwrap();
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 1);
        assert_eq!(st.start_time, 4242);
    }

    #[test]
    fn process_tree_has_the_descendants() {
        // A child and a grandchild of a shell; the test process is no
        // descendant of it.
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sh -c 'sleep 30; true' & wait"])
            .spawn()
            .unwrap();
        let pid = sh.id() as i32;
        let start = proc_stat(pid).unwrap().start_time;
        let mut tree = Vec::new();
        for _ in 0..200 {
            tree = process_tree(pid, start);
            if tree.len() >= 4 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let me = std::process::id() as i32;
        for p in &tree {
            if *p != pid {
                let _ = rustix::process::kill_process(
                    rustix::process::Pid::from_raw(*p).unwrap(),
                    rustix::process::Signal::KILL,
                );
            }
        }
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(tree.len() >= 4, "{tree:?}");
        assert!(tree.contains(&pid) && !tree.contains(&me), "{tree:?}");
        // A pid that is not the process started then: nothing.
        assert!(process_tree(pid, start + 1).is_empty());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn self_process_is_alive() {
        let pid = std::process::id() as i32;
        let st = proc_stat(pid).unwrap();
        assert!(process_alive(pid, st.start_time));
        assert!(!process_alive(pid, st.start_time + 1));
    }

    #[test]
    fn lookup() {
        let env = vec!["PATH=/nonexistent:/bin".to_string()];
        assert!(lookup_executable("sh", &env, Path::new("/")).is_ok());
        let err = lookup_executable("no-such-binary-xyz", &env, Path::new("/")).unwrap_err();
        assert!(err.contains("executable file not found in $PATH"), "{err}");
    }
}
