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
                    builder.event_format(RuncJson).with_writer(file).try_init()
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

/// runc's JSON log line: `{"level":"warning","msg":"…","time":"…"}` plus
/// the event's other fields, which is what containerd and conmon parse.
struct RuncJson;

#[derive(Default)]
struct Fields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.into());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}").into());
    }
}

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for RuncJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        let mut obj = fields.0;
        let msg = obj.remove("message").unwrap_or_default();
        obj.insert("level".into(), level.into());
        obj.insert("msg".into(), msg);
        obj.insert("time".into(), barge_runtime::util::rfc3339_now().into());
        writeln!(writer, "{}", serde_json::Value::Object(obj))
    }
}
