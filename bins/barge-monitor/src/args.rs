//! Command-line parsing (hand-written: no clap, to keep the binary small).
//! The interface is documented in docs/monitor.md.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Where and how the container's output is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDriver {
    /// Podman's `k8s-file`: `TIME STREAM F|P TEXT` per line.
    K8sFile,
    /// Docker's `json-file`: one JSON object per line.
    JsonFile,
    /// No log.
    None,
}

#[derive(Debug)]
pub struct Options {
    pub id: OsString,
    pub runtime: OsString,
    pub runtime_args: Vec<OsString>,
    pub bundle: OsString,
    pub dir: PathBuf,
    pub log_driver: LogDriver,
    pub log_path: Option<PathBuf>,
    /// 0: unlimited.
    pub log_size_max: u64,
    pub terminal: bool,
    pub stdin: bool,
    pub exit_command: Option<OsString>,
    pub exit_command_args: Vec<OsString>,
}

fn parse_int(v: &OsStr) -> Option<i64> {
    std::str::from_utf8(v.as_bytes()).ok()?.parse().ok()
}

/// The `--sync-fd` value alone, found even when the rest of the command
/// line is invalid (so that the error can be reported on it).
pub fn find_sync_fd(argv: &[OsString]) -> Option<i32> {
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        let a = a.as_bytes();
        if a == b"--sync-fd" {
            return it.next().and_then(|v| parse_int(v)).map(|n| n as i32);
        }
        if let Some(v) = a.strip_prefix(b"--sync-fd=") {
            return parse_int(OsStr::from_bytes(v)).map(|n| n as i32);
        }
    }
    None
}

/// Parse the arguments after the program name. Errors are static messages.
pub fn parse(argv: Vec<OsString>) -> Result<Options, &'static str> {
    let mut id = None;
    let mut runtime = None;
    let mut runtime_args = Vec::new();
    let mut bundle = None;
    let mut dir: Option<PathBuf> = None;
    let mut log_driver = None;
    let mut log_path: Option<PathBuf> = None;
    let mut log_size_max = 0u64;
    let mut terminal = false;
    let mut stdin = false;
    let mut exit_command = None;
    let mut exit_command_args = Vec::new();

    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        // `--name=value` or `--name value`.
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) if bytes.starts_with(b"--") => (
                &bytes[..i],
                Some(OsStr::from_bytes(&bytes[i + 1..]).to_os_string()),
            ),
            _ => (bytes, None),
        };
        match name {
            b"--terminal" | b"-t" => terminal = true,
            b"--stdin" | b"-i" => stdin = true,
            _ => {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().ok_or("an option is missing its value")?,
                };
                match name {
                    b"--id" => id = Some(value),
                    b"--runtime" => runtime = Some(value),
                    b"--runtime-arg" => runtime_args.push(value),
                    b"--bundle" => bundle = Some(value),
                    b"--dir" => dir = Some(PathBuf::from(value)),
                    b"--log-driver" => {
                        log_driver = Some(match value.as_bytes() {
                            b"k8s-file" => LogDriver::K8sFile,
                            b"json-file" => LogDriver::JsonFile,
                            b"none" => LogDriver::None,
                            _ => return Err("--log-driver must be k8s-file, json-file or none"),
                        });
                    }
                    b"--log-path" => log_path = Some(PathBuf::from(value)),
                    b"--log-size-max" => {
                        // Negative means unlimited (as in podman's config).
                        log_size_max = parse_int(&value)
                            .ok_or("--log-size-max must be an integer")?
                            .max(0) as u64;
                    }
                    // Taken by `find_sync_fd` before parsing.
                    b"--sync-fd" => {
                        parse_int(&value).ok_or("--sync-fd must be an integer")?;
                    }
                    b"--exit-command" => exit_command = Some(value),
                    b"--exit-command-arg" => exit_command_args.push(value),
                    _ => return Err("unknown option (see docs/monitor.md)"),
                }
            }
        }
    }

    let id = id.ok_or("--id is required")?;
    let runtime = runtime.ok_or("--runtime is required")?;
    let bundle = bundle.ok_or("--bundle is required")?;
    let dir = dir.ok_or("--dir is required")?;
    if id.is_empty() {
        return Err("--id must not be empty");
    }
    let log_driver = match (log_driver, &log_path) {
        (Some(LogDriver::None), _) | (None, None) => LogDriver::None,
        (Some(_), None) => return Err("--log-path is required for this --log-driver"),
        (Some(d), Some(_)) => d,
        (None, Some(_)) => LogDriver::K8sFile,
    };
    if !exit_command_args.is_empty() && exit_command.is_none() {
        return Err("--exit-command-arg needs --exit-command");
    }
    Ok(Options {
        id,
        runtime,
        runtime_args,
        bundle,
        dir,
        log_driver,
        log_path,
        log_size_max,
        terminal,
        stdin,
        exit_command,
        exit_command_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn full_command_line() {
        let a = parse(v(&[
            "--id",
            "c1",
            "--runtime=/bin/rt",
            "--runtime-arg",
            "--root",
            "--runtime-arg",
            "/run/x",
            "--bundle",
            "/b",
            "--dir",
            "/d",
            "--log-driver",
            "json-file",
            "--log-path",
            "/d/log",
            "--log-size-max",
            "100",
            "--terminal",
            "--stdin",
            "--sync-fd",
            "5",
            "--exit-command",
            "/bin/x",
            "--exit-command-arg",
            "a",
        ]))
        .unwrap();
        assert_eq!(a.id, "c1");
        assert_eq!(a.runtime, "/bin/rt");
        assert_eq!(a.runtime_args, v(&["--root", "/run/x"]));
        assert_eq!(a.log_driver, LogDriver::JsonFile);
        assert_eq!(a.log_size_max, 100);
        assert!(a.terminal && a.stdin);
        assert_eq!(a.exit_command_args, v(&["a"]));
    }

    #[test]
    fn defaults_and_errors() {
        let a = parse(v(&[
            "--id",
            "c",
            "--runtime",
            "r",
            "--bundle",
            "b",
            "--dir",
            "d",
        ]))
        .unwrap();
        assert_eq!(a.log_driver, LogDriver::None);
        assert!(!a.terminal && !a.stdin);
        assert!(parse(v(&["--id", "c"])).is_err());
        assert!(parse(v(&["--bogus", "x"])).is_err());
        assert!(parse(v(&[
            "--id",
            "c",
            "--runtime",
            "r",
            "--bundle",
            "b",
            "--dir",
            "d",
            "--log-driver",
            "k8s-file"
        ]))
        .is_err());
        assert_eq!(find_sync_fd(&v(&["--bogus", "--sync-fd", "7"])), Some(7));
        assert_eq!(find_sync_fd(&v(&["--sync-fd=9"])), Some(9));
    }
}
