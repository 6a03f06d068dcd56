//! Read-side container operations: `ps` rows, `inspect`, `logs`, `top`,
//! `port`, and `rename`.

use super::{ContainerRecord, Engine, NetworkMode, Status};
use crate::error::EngineError;
use crate::images::{human_age, human_size};
use crate::Result;
use serde_json::{json, Value};
use std::io::{BufRead as _, Seek as _};
use std::time::Duration;

/// RFC 3339 with nanoseconds in UTC.
pub fn rfc3339(nanos: i64) -> String {
    if nanos <= 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = nanos.div_euclid(1_000_000_000);
    let ns = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ns:09}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

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

/// Parses RFC 3339 timestamps as the monitor writes them (UTC) into unix
/// nanoseconds; also accepts `+00:00` offsets.
#[allow(clippy::many_single_char_names)] // y, m, d, h: the calendar fields
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)?,
        n(14..16)?,
        n(17..19)?,
    );
    let mut frac = 0i64;
    let mut i = 19;
    if b.get(19) == Some(&b'.') {
        i = 20;
        let mut digits = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            if digits < 9 {
                frac = frac * 10 + i64::from(b[i] - b'0');
                digits += 1;
            }
            i += 1;
        }
        for _ in digits..9 {
            frac *= 10;
        }
    }
    let mut offset = 0i64;
    match b.get(i) {
        Some(b'Z') => {}
        Some(sign @ (b'+' | b'-')) => {
            let oh = s.get(i + 1..i + 3)?.parse::<i64>().ok()?;
            let om = s.get(i + 4..i + 6)?.parse::<i64>().ok()?;
            offset = (oh * 3600 + om * 60) * if *sign == b'+' { 1 } else { -1 };
        }
        _ => return None,
    }
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Saturate: a time past 2262 (`--since 2999-01-01T00:00:00Z`) must
    // not wrap around into the past.
    Some(
        (days * 86_400 + h * 3600 + mi * 60 + se - offset)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac),
    )
}

/// podman's STATUS column.
pub fn status_text(rec: &ContainerRecord) -> String {
    let ago = |t: i64| human_age((t.max(0) / 1_000_000_000) as u64);
    match rec.state.status {
        Status::Created => "Created".into(),
        Status::Running | Status::Stopping => {
            let up = format!("Up {}", ago(rec.state.started_at));
            match &rec.config.health_cmd {
                Some(_) => super::health::status_suffix(rec, up),
                None => up,
            }
        }
        Status::Paused => "Paused".into(),
        Status::Exited => format!(
            "Exited ({}) {}",
            rec.state.exit_code,
            ago(rec.state.finished_at)
        ),
        Status::Removing => "Removing".into(),
    }
}

fn ports_text(rec: &ContainerRecord) -> String {
    rec.config
        .ports
        .iter()
        .map(|p| {
            let ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &p.host_ip
            };
            format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `ps` row, with podman's field names (for `--format`).
pub fn ps_row(rec: &ContainerRecord) -> Value {
    let command = rec.config.command.join(" ");
    json!({
        "ID": rec.id,
        "Id": rec.id,
        "Names": [rec.name],
        "Image": rec.image_name,
        "ImageID": rec.image_id.trim_start_matches("sha256:"),
        "Command": rec.config.command,
        "CommandText": command,
        "Created": rec.created / 1_000_000_000,
        "CreatedAt": rfc3339(rec.created),
        "CreatedHuman": human_age((rec.created.max(0) / 1_000_000_000) as u64),
        "State": rec.state.status.as_str(),
        "Status": status_text(rec),
        "Exited": rec.state.status == Status::Exited,
        "ExitCode": rec.state.exit_code,
        "ExitedAt": rec.state.finished_at / 1_000_000_000,
        "StartedAt": rec.state.started_at / 1_000_000_000,
        "Pid": rec.state.pid,
        "Labels": rec.config.labels,
        "Ports": rec.config.ports.iter().map(|p| json!({
            "host_ip": p.host_ip, "host_port": p.host_port,
            "container_port": p.container_port, "protocol": p.protocol, "range": 1,
        })).collect::<Vec<_>>(),
        "PortsText": ports_text(rec),
        "Networks": match rec.network() { NetworkMode::Bridge(n) => n, _ => Vec::new() },
        "Mounts": rec.config.mounts.iter().map(|m| m.destination().to_string()).collect::<Vec<_>>(),
        "Pod": rec.pod.clone().unwrap_or_default(),
        "AutoRemove": rec.config.auto_remove,
        "IsInfra": rec.config.infra,
    })
}

/// Options of [`Engine::ps`].
#[derive(Debug, Clone, Default)]
pub struct PsOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Filters `key=value` (id, name, status, label, exited, ancestor).
    pub filters: Vec<String>,
    /// Only the newest.
    pub latest: bool,
    /// Only the newest N.
    pub last: Option<usize>,
}

fn matches_filter(rec: &ContainerRecord, filter: &str) -> Result<bool> {
    let (k, v) = filter.split_once('=').ok_or_else(|| {
        EngineError::Invalid(format!("invalid filter {filter:?}: expected KEY=VALUE"))
    })?;
    Ok(match k {
        "id" => rec.id.starts_with(v),
        "name" => rec.name.contains(v),
        "status" => {
            let known = [
                "created", "running", "paused", "exited", "stopping", "removing", "unknown",
            ];
            if !known.contains(&v) {
                return Err(EngineError::Invalid(format!("invalid status filter {v:?}")));
            }
            rec.state.status.as_str() == v
        }
        "label" => match v.split_once('=') {
            Some((lk, lv)) => rec.config.labels.get(lk).is_some_and(|x| x == lv),
            None => rec.config.labels.contains_key(v),
        },
        "exited" => rec.state.status == Status::Exited && rec.state.exit_code.to_string() == v,
        "ancestor" => rec.image_name.contains(v) || rec.image_id.contains(v),
        "pod" => rec.pod.as_deref().is_some_and(|p| p.starts_with(v)),
        "network" => matches!(rec.network(), NetworkMode::Bridge(n) if n.iter().any(|x| x == v)),
        k => return Err(EngineError::Invalid(format!("invalid filter {k:?}"))),
    })
}

impl Engine {
    /// The containers `ps` shows, newest first, refreshed.
    pub fn ps(&mut self, opts: &PsOptions) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        // `pod=` takes a pod's name as well as its id (prefix).
        let filters: Vec<String> = opts
            .filters
            .iter()
            .map(|f| match f.split_once('=') {
                Some(("pod", v)) => self
                    .pod_lookup(v)
                    .map_or_else(|_| f.clone(), |p| format!("pod={}", p.id)),
                _ => f.clone(),
            })
            .collect();
        for rec in self.containers()? {
            let rec = self.refresh(rec)?;
            if rec.state.status == Status::Removing && !opts.all {
                continue;
            }
            if !opts.all
                && opts.filters.is_empty()
                && !opts.latest
                && opts.last.is_none()
                && !matches!(
                    rec.state.status,
                    Status::Running | Status::Paused | Status::Stopping
                )
            {
                continue;
            }
            let mut ok = true;
            for f in &filters {
                ok &= matches_filter(&rec, f)?;
            }
            if ok {
                out.push(rec);
            }
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.created));
        if opts.latest {
            out.truncate(1);
        }
        if let Some(n) = opts.last {
            out.truncate(n);
        }
        Ok(out)
    }

    /// podman-style `inspect` JSON of a container.
    pub fn inspect(&mut self, name: &str) -> Result<Value> {
        let rec = self.refresh(self.lookup(name)?)?;
        let cdir = self.paths.container_dir(&rec.id);
        let st = &rec.state;
        let mut networks = serde_json::Map::new();
        for (n, a) in &st.networks {
            networks.insert(
                n.clone(),
                json!({"IPAddress": a.ip, "IPPrefixLen": a.prefix_len, "Gateway": a.gateway,
                       "MacAddress": a.mac, "NetworkID": n}),
            );
        }
        let first = st.networks.values().next();
        let mut ports = serde_json::Map::new();
        for p in &rec.config.ports {
            ports.insert(
                format!("{}/{}", p.container_port, p.protocol),
                json!([{"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}]),
            );
        }
        let mounts: Vec<Value> = rec
            .config
            .mounts
            .iter()
            .map(|m| match m {
                super::MountSpec::Bind {
                    source,
                    destination,
                    readonly,
                    options,
                } => json!({
                    "Type": "bind", "Source": source, "Destination": destination,
                    "RW": !readonly, "Options": options, "Propagation": "rprivate"}),
                super::MountSpec::Volume {
                    name,
                    destination,
                    readonly,
                } => json!({
                    "Type": "volume", "Name": name, "Destination": destination, "RW": !readonly,
                    "Source": self.paths.volumes_dir().join(name).join("_data")}),
                super::MountSpec::Tmpfs {
                    destination,
                    options,
                } => json!({
                    "Type": "tmpfs", "Destination": destination, "Options": options, "RW": true}),
            })
            .collect();
        let mut ports_cfg = serde_json::Map::new();
        for p in &rec.config.ports {
            ports_cfg.insert(
                format!("{}/{}", p.container_port, p.protocol),
                json!([{"HostIp": p.host_ip, "HostPort": p.host_port.to_string()}]),
            );
        }
        Ok(json!({
            "Id": rec.id,
            "Created": rfc3339(rec.created),
            "Path": rec.config.command.first(),
            "Args": rec.config.command.get(1..).unwrap_or(&[]),
            "State": {
                "Status": st.status.as_str(),
                "Running": matches!(st.status, Status::Running | Status::Stopping),
                "Paused": st.status == Status::Paused,
                "Restarting": false,
                "OOMKilled": st.oom_killed,
                "Dead": false,
                "Pid": st.pid,
                "ConmonPid": st.monitor_pid,
                "ExitCode": st.exit_code,
                "Error": st.error,
                "StartedAt": rfc3339(st.started_at),
                "FinishedAt": rfc3339(st.finished_at),
                "Health": super::health::inspect_value(&cdir, &rec),
            },
            "Image": rec.image_id.trim_start_matches("sha256:"),
            "ImageName": rec.image_name,
            "Rootfs": "",
            "Pod": rec.pod.clone().unwrap_or_default(),
            "ResolvConfPath": cdir.join("resolv.conf"),
            "HostnamePath": cdir.join("hostname"),
            "HostsPath": cdir.join("hosts"),
            "LogPath": cdir.join("ctr.log"),
            "Name": rec.name,
            "RestartCount": st.restart_count,
            "Driver": "overlay",
            "MountLabel": "",
            "ProcessLabel": "",
            "OCIRuntime": if rec.config.runtime.is_empty() { "barge-runtime" } else { rec.config.runtime.as_str() },
            "Mounts": mounts,
            "GraphDriver": {"Name": "overlay", "Data": {
                "UpperDir": cdir.join("upper"), "WorkDir": cdir.join("work"),
                "MergedDir": cdir.join("rootfs")}},
            "NetworkSettings": {
                "IPAddress": first.map(|a| a.ip.clone()).unwrap_or_default(),
                "IPPrefixLen": first.map_or(0, |a| a.prefix_len),
                "Gateway": first.map(|a| a.gateway.clone()).unwrap_or_default(),
                "MacAddress": first.map(|a| a.mac.clone()).unwrap_or_default(),
                "Ports": ports,
                "Networks": networks,
                "SandboxKey": match rec.network() {
                    m if m.owns_netns() => self.paths.netns_dir().join(&rec.id).display().to_string(),
                    _ => String::new() },
            },
            "Config": {
                "Hostname": rec.hostname(),
                "User": rec.config.user,
                "Env": rec.config.env,
                "Cmd": rec.config.cmd,
                "Entrypoint": rec.config.entrypoint.join(" "),
                "Image": rec.image_name,
                "WorkingDir": if rec.config.workdir.is_empty() { "/" } else { rec.config.workdir.as_str() },
                "Labels": rec.config.labels,
                "StopSignal": rec.config.stop_signal,
                "StopTimeout": rec.config.stop_timeout,
                "Tty": rec.config.tty,
                "OpenStdin": rec.config.stdin,
                "Annotations": {},
                "CreateCommand": [],
                "Healthcheck": super::health::config_value(&rec),
            },
            "HostConfig": {
                "NetworkMode": rec.network().display(),
                "PortBindings": ports_cfg,
                "AutoRemove": rec.config.auto_remove,
                "Privileged": rec.config.privileged,
                "ReadonlyRootfs": rec.config.read_only,
                "CapAdd": rec.config.cap_add,
                "CapDrop": rec.config.cap_drop,
                "Memory": rec.config.memory.unwrap_or(0),
                "NanoCpus": rec.config.cpus.map_or(0, |c| (c * 1e9) as i64),
                "PidsLimit": rec.config.pids_limit.unwrap_or(0),
                "Ulimits": rec.config.ulimits.iter().map(|u| json!({"Name": format!("RLIMIT_{}", u.name.to_ascii_uppercase()), "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
                "RestartPolicy": {"Name": rec.config.restart.name, "MaximumRetryCount": rec.config.restart.max_retries},
                "LogConfig": {"Type": rec.config.log_driver, "Path": cdir.join("ctr.log")},
                "Dns": rec.config.dns,
                "ExtraHosts": rec.config.add_hosts,
                "Init": rec.config.init,
                "Runtime": if rec.config.runtime.is_empty() { "barge-runtime" } else { rec.config.runtime.as_str() },
                "SecurityOpt": Vec::<String>::new(),
            },
            "SizeRootFs": 0,
            "SizeRw": dir_size(&cdir.join("upper")),
            "SizeRwHuman": human_size(dir_size(&cdir.join("upper"))),
        }))
    }

    /// Renames a container.
    pub fn rename(&mut self, name: &str, new_name: &str) -> Result<()> {
        super::validate_name(new_name)?;
        let rec = self.lookup(name)?;
        let id = rec.id.clone();
        let new = new_name.to_string();
        let r = self.db.write(|tx| {
            let mut r: ContainerRecord = tx
                .get(crate::db::Table::Containers, &id)?
                .ok_or_else(|| EngineError::NoSuchContainer(id.clone()))?;
            // Pods and containers share names.
            if tx.id_by_name(crate::db::Table::Pods, &new)?.is_some() {
                return Ok(crate::db::Inserted::Conflict);
            }
            r.name.clone_from(&new);
            Ok::<_, EngineError>(tx.update(crate::db::Table::Containers, &id, Some(&new), &r)?)
        })?;
        if r == crate::db::Inserted::Conflict {
            return Err(EngineError::NameInUse(new_name.to_string()));
        }
        Ok(())
    }

    /// The processes of a running container (`ps -ef`-like rows from
    /// /proc): PID, PPID, USER(uid), ELAPSED-less COMMAND.
    pub fn top(&mut self, name: &str) -> Result<Vec<(i32, i32, u32, String)>> {
        let rec = self.refresh(self.lookup(name)?)?;
        if !matches!(rec.state.status, Status::Running | Status::Paused) {
            return Err(EngineError::InvalidState {
                name: rec.name.clone(),
                state: rec.state.status.as_str().into(),
                action: "get top of".into(),
            });
        }
        let out = self
            .runtime_cmd(&rec)
            .args(["ps", "--format", "json", &rec.id])
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(EngineError::io("running the runtime's ps"))?;
        let pids: Vec<i32> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut rows = Vec::new();
        for pid in pids {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                continue;
            };
            let field = |k: &str| {
                stat.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
                    .unwrap_or_default()
            };
            let ppid: i32 = field("PPid:").parse().unwrap_or(0);
            let uid: u32 = field("Uid:").parse().unwrap_or(0);
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    c.split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            rows.push((pid, ppid, uid, cmd));
        }
        Ok(rows)
    }
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if let Ok(m) = e.path().symlink_metadata() {
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total += m.len();
                }
            }
        }
    }
    total
}

/// Options of [`Engine::logs`].
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Keep following until the container exits.
    pub follow: bool,
    /// Only entries at or after this time (unix nanoseconds).
    pub since: Option<i64>,
    /// Only entries before this time.
    pub until: Option<i64>,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
}

/// Parses `--since`/`--until`: RFC 3339, unix seconds, or a duration ago
/// (`10m`, `1h30m`, `5s`).
pub fn parse_time(s: &str) -> Result<i64> {
    if let Some(t) = parse_rfc3339(s) {
        return Ok(t);
    }
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num
            .parse()
            .map_err(|_| EngineError::Invalid(format!("invalid time {s:?}")))?;
        num.clear();
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(EngineError::Invalid(format!("invalid time {s:?}"))),
        };
    }
    if !num.is_empty() || total == 0.0 {
        return Err(EngineError::Invalid(format!(
            "invalid time {s:?}: expected RFC 3339, unix seconds or a duration like 10m"
        )));
    }
    Ok(super::now_nanos() - (total * 1e9) as i64)
}

/// One parsed log line.
struct LogLine<'a> {
    time: i64,
    stamp: &'a str,
    stderr: bool,
    partial: bool,
    text: &'a str,
}

fn parse_log_line(line: &str) -> Option<LogLine<'_>> {
    if line.starts_with('{') {
        return None;
    }
    let mut it = line.splitn(4, ' ');
    let stamp = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let text = it.next().unwrap_or("");
    Some(LogLine {
        time: parse_rfc3339(stamp)?,
        stamp,
        stderr: stream == "stderr",
        partial: tag == "P",
        text,
    })
}

fn parse_json_line(line: &str) -> Option<(i64, String, bool, String)> {
    let v: Value = serde_json::from_str(line).ok()?;
    let stamp = v.get("time")?.as_str()?.to_string();
    let text = v.get("log")?.as_str()?.to_string();
    Some((
        parse_rfc3339(&stamp)?,
        stamp,
        v.get("stream")? == "stderr",
        text,
    ))
}

impl Engine {
    /// Writes a container's log to `out`/`err` (both streams separated like
    /// podman: stderr lines go to `err`).
    pub fn logs(
        &mut self,
        name: &str,
        opts: &LogsOptions,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> Result<()> {
        let rec = self.lookup(name)?;
        let path = self.paths.container_dir(&rec.id).join("ctr.log");
        if rec.config.log_driver == "none" {
            return Err(EngineError::Invalid(format!(
                "container {} uses the \"none\" log driver: there are no logs",
                rec.name
            )));
        }
        let json = rec.config.log_driver == "json-file";
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(EngineError::io(format!("reading {}", path.display()))(e)),
        };
        let mut pending = String::new();
        let mut emit = |line: &str, out: &mut dyn std::io::Write, err: &mut dyn std::io::Write| {
            let (time, stamp, is_err, text, partial) = if json {
                let Some((t, s, e, text)) = parse_json_line(line) else {
                    return;
                };
                let partial = !text.ends_with('\n');
                (t, s, e, text.trim_end_matches('\n').to_string(), partial)
            } else {
                let Some(l) = parse_log_line(line) else {
                    return;
                };
                (
                    l.time,
                    l.stamp.to_string(),
                    l.stderr,
                    l.text.to_string(),
                    l.partial,
                )
            };
            if opts.since.is_some_and(|s| time < s) || opts.until.is_some_and(|u| time > u) {
                return;
            }
            let w: &mut dyn std::io::Write = if is_err { err } else { out };
            if opts.timestamps && pending.is_empty() {
                let _ = write!(w, "{stamp} ");
            }
            if partial {
                pending.push_str(&text);
                let _ = w.write_all(text.as_bytes());
            } else {
                pending.clear();
                let _ = writeln!(w, "{text}");
            }
            let _ = w.flush();
        };
        let mut lines: Vec<String> = Vec::new();
        if let Some(f) = file.as_mut() {
            let reader = std::io::BufReader::new(&mut *f);
            for l in reader.lines() {
                lines.push(l.map_err(EngineError::io(format!("reading {}", path.display())))?);
            }
        }
        let skip = opts.tail.map_or(0, |t| lines.len().saturating_sub(t));
        for l in &lines[skip..] {
            emit(l, out, err);
        }
        if !opts.follow {
            return Ok(());
        }
        let mut pos = file
            .as_mut()
            .and_then(|f| f.stream_position().ok())
            .unwrap_or(0);
        let mut partial_line = String::new();
        loop {
            let current = self.lookup(name).ok();
            let done = match current {
                Some(r) => {
                    let r = self.refresh(r)?;
                    !matches!(
                        r.state.status,
                        Status::Running | Status::Paused | Status::Stopping
                    )
                }
                None => true,
            };
            if file.is_none() {
                file = std::fs::File::open(&path).ok();
            }
            if let Some(f) = file.as_mut() {
                let len = f.metadata().map_or(0, |m| m.len());
                if len < pos {
                    pos = 0; // truncated (log size limit)
                }
                if len > pos {
                    let _ = f.seek(std::io::SeekFrom::Start(pos));
                    let mut buf = String::new();
                    let _ = std::io::Read::read_to_string(&mut f.take(len - pos), &mut buf);
                    pos = len;
                    partial_line.push_str(&buf);
                    while let Some(i) = partial_line.find('\n') {
                        let l: String = partial_line.drain(..=i).collect();
                        emit(l.trim_end_matches('\n'), out, err);
                    }
                }
            }
            if done {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A whole log line (partial records joined) of one container.
struct LogEntry {
    time: i64,
    stamp: String,
    stderr: bool,
    text: String,
}

/// Joins log records into whole lines; `carry` holds a line whose end has
/// not been read yet.
fn log_entries<'a>(
    json: bool,
    lines: impl Iterator<Item = &'a str>,
    carry: &mut Option<LogEntry>,
) -> Vec<LogEntry> {
    let mut out = Vec::new();
    for line in lines {
        let (time, stamp, stderr, text, partial) = if json {
            let Some((t, s, e, text)) = parse_json_line(line) else {
                continue;
            };
            let partial = !text.ends_with('\n');
            (t, s, e, text.trim_end_matches('\n').to_string(), partial)
        } else {
            let Some(l) = parse_log_line(line) else {
                continue;
            };
            (
                l.time,
                l.stamp.to_string(),
                l.stderr,
                l.text.to_string(),
                l.partial,
            )
        };
        let entry = match carry.take() {
            Some(mut c) => {
                c.text.push_str(&text);
                c
            }
            None => LogEntry {
                time,
                stamp,
                stderr,
                text,
            },
        };
        if partial {
            *carry = Some(entry);
        } else {
            out.push(entry);
        }
    }
    out
}

impl Engine {
    /// The logs of several containers, `targets` = `(prefix, name or id)`:
    /// each line is written as `PREFIX [TIMESTAMP ]TEXT` to `out` (stdout
    /// lines) or `err` (stderr lines), all containers merged in time order;
    /// `--tail` applies to each container. With `follow`, new lines are
    /// written as they come until none of the containers runs.
    pub fn logs_many(
        &mut self,
        targets: &[(String, String)],
        opts: &LogsOptions,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> Result<()> {
        struct Source {
            prefix: String,
            id: String,
            path: std::path::PathBuf,
            json: bool,
            pos: u64,
            rest: String,
            carry: Option<LogEntry>,
        }
        let mut sources = Vec::new();
        let mut all: Vec<(usize, LogEntry)> = Vec::new();
        for (prefix, name) in targets {
            let rec = self.lookup(name)?;
            let path = self.paths.container_dir(&rec.id).join("ctr.log");
            let json = rec.config.log_driver == "json-file";
            let data = match std::fs::read(&path) {
                Ok(d) => d,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(EngineError::io(format!("reading {}", path.display()))(e)),
            };
            let text = String::from_utf8_lossy(&data);
            // Only whole records now; a trailing incomplete one is read on.
            let (whole, rest) = match text.rfind('\n') {
                Some(i) => (&text[..=i], &text[i + 1..]),
                None => ("", &*text),
            };
            let mut carry = None;
            let mut entries = log_entries(json, whole.lines(), &mut carry);
            if let Some(t) = opts.tail {
                let skip = entries.len().saturating_sub(t);
                entries.drain(..skip);
            }
            let idx = sources.len();
            all.extend(entries.into_iter().map(|e| (idx, e)));
            sources.push(Source {
                prefix: prefix.clone(),
                id: rec.id.clone(),
                path,
                json,
                pos: whole.len() as u64,
                rest: rest.to_string(),
                carry,
            });
        }
        all.sort_by_key(|(_, e)| e.time);
        let emit = |src: &Source,
                    e: &LogEntry,
                    out: &mut dyn std::io::Write,
                    err: &mut dyn std::io::Write| {
            if opts.since.is_some_and(|s| e.time < s) || opts.until.is_some_and(|u| e.time > u) {
                return;
            }
            let w: &mut dyn std::io::Write = if e.stderr { err } else { out };
            let _ = if opts.timestamps {
                writeln!(w, "{} {} {}", src.prefix, e.stamp, e.text)
            } else {
                writeln!(w, "{} {}", src.prefix, e.text)
            };
            let _ = w.flush();
        };
        for (i, e) in &all {
            emit(&sources[*i], e, out, err);
        }
        if !opts.follow {
            return Ok(());
        }
        loop {
            let mut running = false;
            for src in &mut sources {
                if let Ok(r) = self.lookup(&src.id) {
                    let r = self.refresh(r)?;
                    running |= matches!(
                        r.state.status,
                        Status::Running | Status::Paused | Status::Stopping
                    );
                }
                let Ok(mut f) = std::fs::File::open(&src.path) else {
                    continue;
                };
                let len = f.metadata().map_or(0, |m| m.len());
                if len < src.pos {
                    src.pos = 0; // truncated (log size limit)
                    src.rest.clear();
                }
                if len > src.pos {
                    let _ = f.seek(std::io::SeekFrom::Start(src.pos));
                    let mut buf = String::new();
                    let _ = std::io::Read::read_to_string(&mut f.take(len - src.pos), &mut buf);
                    src.pos = len;
                    src.rest.push_str(&buf);
                    if let Some(i) = src.rest.rfind('\n') {
                        let whole: String = src.rest.drain(..=i).collect();
                        let mut carry = src.carry.take();
                        let entries = log_entries(src.json, whole.lines(), &mut carry);
                        src.carry = carry;
                        for e in &entries {
                            emit(src, e, out, err);
                        }
                    }
                }
            }
            if !running {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

trait TakeExt {
    fn take(&mut self, n: u64) -> std::io::Take<&mut std::fs::File>;
}

impl TakeExt for std::fs::File {
    fn take(&mut self, n: u64) -> std::io::Take<&mut std::fs::File> {
        std::io::Read::take(self, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_round_trip() {
        let t = 1_764_554_584_123_456_789;
        let s = rfc3339(t);
        assert_eq!(s, "2025-12-01T02:03:04.123456789Z");
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(
            parse_rfc3339("2025-12-01T02:03:04.123456789+00:00"),
            Some(t)
        );
        assert_eq!(
            parse_rfc3339("2025-12-01T03:03:04+01:00"),
            Some(t - 123_456_789)
        );
        assert!(parse_time("10m").is_ok());
        assert_eq!(parse_rfc3339("2999-01-01T00:00:00Z"), Some(i64::MAX));
        assert!(parse_time("bogus").is_err());
    }

    #[test]
    fn k8s_lines_parse() {
        let l = parse_log_line("2025-12-01T01:23:04.1Z stderr P part").unwrap();
        assert!(l.stderr && l.partial);
        assert_eq!(l.text, "part");
        assert!(parse_log_line("garbage").is_none());
    }
}
