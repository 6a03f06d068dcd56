//! Logging to stderr or `--log`, in text or runc's JSON line format
//! (`{"level":"error","msg":"…","time":"…"}`), which podman and conmon read.

use std::io::Write;

use crate::cli::Cli;

/// Install the tracing subscriber for --debug/--log.
pub fn init(cli: &Cli) {
    let level = if cli.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    let result = match &cli.log {
        Some(path) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            Ok(file) => {
                let file = std::sync::Mutex::new(file);
                if cli.log_format == "json" {
                    builder.json().with_writer(file).try_init()
                } else {
                    builder.with_ansi(false).with_writer(file).try_init()
                }
            }
            Err(_) => builder.with_writer(std::io::stderr).try_init(),
        },
        None => builder.with_writer(std::io::stderr).try_init(),
    };
    let _ = result;
}

/// Report a fatal error: on stderr, and in the log file in its format.
pub fn error(cli: &Cli, msg: &str) {
    let _ = writeln!(std::io::stderr(), "barge-runtime: {msg}");
    if let Some(path) = &cli.log {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let time = barge_runtime::util::rfc3339_now();
            let line = if cli.log_format == "json" {
                serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
            } else {
                format!("time=\"{time}\" level=error msg={msg:?}")
            };
            let _ = writeln!(f, "{line}");
        }
    }
}
