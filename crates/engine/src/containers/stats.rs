//! Resource usage (`stats`): cgroup counters through the runtime's
//! `events --stats ID` (runc's JSON, so any runc-compatible runtime
//! works), network counters from `/proc/PID/net/dev` of the container's
//! init (its network namespace).

use super::{alive, ContainerRecord, Engine, Status};
use crate::error::EngineError;
use crate::Result;
use serde_json::{json, Value};
use std::process::Stdio;

/// One sample of a container's usage.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSample {
    /// Full id.
    pub id: String,
    /// Name.
    pub name: String,
    /// CPU time used (ns).
    pub cpu_nanos: u64,
    /// When sampled (unix ns).
    pub system_nanos: i64,
    /// Started (unix ns).
    pub started_at: i64,
    /// Memory in use (bytes, without inactive page cache).
    pub mem_usage: u64,
    /// Memory limit (bytes; the host's memory without a limit).
    pub mem_limit: u64,
    /// Bytes received, sent (all interfaces but `lo`).
    pub net: (u64, u64),
    /// Bytes read, written.
    pub block: (u64, u64),
    /// Processes.
    pub pids: u64,
}

/// The host's memory (`MemTotal`), bytes.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// Sums `/proc/PID/net/dev` (received, sent bytes), skipping `lo`.
pub fn net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for l in text.lines().skip(2) {
        let Some((iface, rest)) = l.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        rx += f.first().copied().unwrap_or(0);
        tx += f.get(8).copied().unwrap_or(0);
    }
    (rx, tx)
}

/// Reads the counters of runc's `events --stats` JSON (`data` object).
pub fn parse_runtime_stats(v: &Value, host_mem: u64) -> StatsSample {
    let d = v.get("data").unwrap_or(v);
    let u = |p: &str| d.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let usage = u("/memory/usage/usage");
    let inactive = d
        .pointer("/memory/raw/total_inactive_file")
        .or_else(|| d.pointer("/memory/raw/inactive_file"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let mut limit = u("/memory/usage/limit");
    if limit == 0 || (host_mem > 0 && limit >= host_mem) {
        limit = host_mem;
    }
    let mut block = (0, 0);
    if let Some(list) = d
        .pointer("/blkio/ioServiceBytesRecursive")
        .and_then(Value::as_array)
    {
        for e in list {
            let val = e.get("value").and_then(Value::as_u64).unwrap_or(0);
            match e
                .get("op")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase()
                .as_str()
            {
                "read" => block.0 += val,
                "write" => block.1 += val,
                _ => {}
            }
        }
    }
    StatsSample {
        cpu_nanos: u("/cpu/usage/total"),
        mem_usage: usage.saturating_sub(inactive),
        mem_limit: limit,
        block,
        pids: u("/pids/current"),
        ..StatsSample::default()
    }
}

impl Engine {
    /// Samples a container's usage; a container that is not running gets
    /// zeros (as podman shows it).
    pub fn stats_sample(&mut self, rec: &ContainerRecord) -> Result<StatsSample> {
        let now = super::now_nanos();
        let base = StatsSample {
            id: rec.id.clone(),
            name: rec.name.clone(),
            system_nanos: now,
            started_at: rec.state.started_at,
            ..StatsSample::default()
        };
        let running = matches!(rec.state.status, Status::Running | Status::Paused)
            && alive(rec.state.pid, rec.state.pid_start);
        if !running {
            return Ok(base);
        }
        let out = self
            .runtime_cmd(rec)
            .args(["events", "--stats", &rec.id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(EngineError::io(format!(
                "running {}",
                self.runtime_for(rec).display()
            )))?;
        if !out.status.success() {
            // Exited meanwhile: zeros, as for a stopped container.
            if !alive(rec.state.pid, rec.state.pid_start) {
                return Ok(base);
            }
            return Err(EngineError::Runtime {
                id: rec.id.clone(),
                message: super::lifecycle::runtime_message(&out.stderr),
                exit_code: None,
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = text
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| EngineError::Runtime {
                id: rec.id.clone(),
                message: format!("events --stats printed no JSON: {}", text.trim()),
                exit_code: None,
            })?;
        let mut s = parse_runtime_stats(&v, host_memory());
        s.net = std::fs::read_to_string(format!("/proc/{}/net/dev", rec.state.pid))
            .map(|t| net_dev(&t))
            .unwrap_or_default();
        Ok(StatsSample {
            cpu_nanos: s.cpu_nanos,
            mem_usage: s.mem_usage,
            mem_limit: s.mem_limit,
            net: s.net,
            block: s.block,
            pids: s.pids,
            ..base
        })
    }
}

/// Go's `units.HumanSize`: decimal units, 4 significant digits (`393.2kB`).
#[allow(clippy::cast_precision_loss)]
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", sig4(v), UNITS[i])
}

/// Go's `%.4g` for values below 10000.
fn sig4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let digits_before = if v >= 1.0 {
        (v.log10().floor() as i32) + 1
    } else {
        1
    };
    let decimals = usize::try_from((4 - digits_before).max(0)).unwrap_or(0);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    s
}

/// The binary-unit size podman's `MemUsageBytes` shows (`724KiB`).
#[allow(clippy::cast_precision_loss)]
pub fn human_size_binary(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{}{}", sig4(v), UNITS[i])
}

/// A `stats` row with podman's template fields; `prev` is the previous
/// sample of the same container (CPU % over the interval), else CPU % is
/// the average since the start.
#[allow(clippy::cast_precision_loss)]
pub fn stats_row(s: &StatsSample, prev: Option<&StatsSample>, no_trunc: bool) -> Value {
    let uptime = (s.system_nanos - s.started_at).max(1);
    let avg = if s.cpu_nanos == 0 {
        0.0
    } else {
        s.cpu_nanos as f64 / uptime as f64 * 100.0
    };
    let cpu = match prev {
        Some(p) if s.system_nanos > p.system_nanos && s.cpu_nanos >= p.cpu_nanos => {
            (s.cpu_nanos - p.cpu_nanos) as f64 / (s.system_nanos - p.system_nanos) as f64 * 100.0
        }
        _ => avg,
    };
    let mem_perc = if s.mem_limit == 0 {
        0.0
    } else {
        s.mem_usage as f64 / s.mem_limit as f64 * 100.0
    };
    let id = if no_trunc || s.id.len() < 12 {
        s.id.clone()
    } else {
        s.id[..12].to_string()
    };
    let cpu_time = super::health::go_duration(i64::try_from(s.cpu_nanos).unwrap_or(i64::MAX));
    json!({
        "ID": id,
        "Name": s.name,
        "CPUPerc": format!("{cpu:.2}%"),
        "CPU": cpu,
        "AVGCPU": format!("{avg:.2}%"),
        "AvgCPU": avg,
        "MemUsage": format!("{} / {}", human_size(s.mem_usage), human_size(s.mem_limit)),
        "MemUsageBytes": format!("{} / {}", human_size_binary(s.mem_usage), human_size_binary(s.mem_limit)),
        "MemPerc": format!("{mem_perc:.2}%"),
        "NetIO": format!("{} / {}", human_size(s.net.0), human_size(s.net.1)),
        "BlockIO": format!("{} / {}", human_size(s.block.0), human_size(s.block.1)),
        "PIDS": s.pids.to_string(),
        "PIDs": s.pids.to_string(),
        "UpTime": cpu_time,
        "CPUNano": s.cpu_nanos,
        "SystemNano": s.system_nanos,
        "Duration": s.cpu_nanos,
    })
}

/// podman's `stats --format json` object (its field order).
#[derive(Debug, serde::Serialize)]
pub struct StatsJson {
    id: Value,
    name: Value,
    cpu_time: Value,
    cpu_percent: Value,
    avg_cpu: Value,
    mem_usage: Value,
    mem_percent: Value,
    net_io: Value,
    block_io: Value,
    pids: Value,
}

/// podman's `stats --format json` object of a [`stats_row`].
pub fn stats_json(row: &Value) -> StatsJson {
    let f = |k: &str| row.get(k).cloned().unwrap_or(Value::Null);
    StatsJson {
        id: f("ID"),
        name: f("Name"),
        cpu_time: f("UpTime"),
        cpu_percent: f("CPUPerc"),
        avg_cpu: f("AVGCPU"),
        mem_usage: f("MemUsage"),
        mem_percent: f("MemPerc"),
        net_io: f("NetIO"),
        block_io: f("BlockIO"),
        pids: f("PIDS"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(393_216), "393.2kB");
        assert_eq!(human_size(25_280_000_000), "25.28GB");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size_binary(741_376), "724KiB");
    }

    #[test]
    fn runtime_json() {
        let v: Value = serde_json::from_str(
            r#"{"data":{"cpu":{"usage":{"total":15262649}},"memory":{"usage":{"usage":233472,"limit":9223372036854771712},"raw":{"total_inactive_file":4096}},"pids":{"current":3},"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":10},{"major":8,"minor":0,"op":"Write","value":20}]}},"type":"stats"}"#,
        )
        .unwrap();
        let s = parse_runtime_stats(&v, 1 << 30);
        assert_eq!(s.cpu_nanos, 15_262_649);
        assert_eq!(s.mem_usage, 229_376);
        assert_eq!(s.mem_limit, 1 << 30);
        assert_eq!(s.pids, 3);
        assert_eq!(s.block, (10, 20));
        let dev = "Inter-|   Receive\n face |bytes packets\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1296 16 0 0 0 0 0 0 796 10 0 0 0 0 0 0\n";
        assert_eq!(net_dev(dev), (1296, 796));
    }

    #[test]
    fn rows() {
        let s = StatsSample {
            id: "a".repeat(64),
            name: "n".into(),
            cpu_nanos: 2_000_000_000,
            system_nanos: 10_000_000_000,
            started_at: 0,
            mem_usage: 500,
            mem_limit: 1000,
            ..StatsSample::default()
        };
        let r = stats_row(&s, None, false);
        assert_eq!(r["ID"], "aaaaaaaaaaaa");
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemPerc"], "50.00%");
        assert_eq!(r["UpTime"], "2s");
        let later = StatsSample {
            cpu_nanos: 3_000_000_000,
            system_nanos: 12_000_000_000,
            ..s.clone()
        };
        assert_eq!(stats_row(&later, Some(&s), true)["CPUPerc"], "50.00%");
        assert_eq!(stats_json(&r).cpu_percent, "20.00%");
    }
}
