//! `ps` formats and filters, `inspect` fields.

use crate::{need_root, network_skips_part, unique, Env, IMG};
use serde_json::Value;

#[test]
fn ps_formats_and_filters() {
    need_root!();
    let env = Env::new();
    let up = unique("up");
    let down = unique("down");
    let up_id = env.run_d(&[
        "--name",
        &up,
        IMG,
        "sh",
        "-c",
        "while :; do sleep 0.1; done",
    ]);
    let down_id = env.run_d(&["--name", &down, IMG, "sh", "-c", "exit 2"]);
    assert_eq!(env.ok(&["wait", &down]).trim(), "2");

    // Default: running only; -a: both, newest first.
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]).trim(), up);
    let all = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        all.lines().collect::<Vec<_>>(),
        [down.as_str(), up.as_str()]
    );
    // -q: short ids; --no-trunc: full.
    let q = env.ok(&["ps", "-q"]);
    assert_eq!(q.trim(), &up_id[..12]);
    let q = env.ok(&["ps", "-a", "-q", "--no-trunc"]);
    assert_eq!(
        q.lines().collect::<Vec<_>>(),
        [down_id.as_str(), up_id.as_str()]
    );
    // table: a header, then rows; columns aligned.
    let t = env.ok(&["ps", "-a", "--format", "table {{.ID}}\t{{.Status}}"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3, "{t}");
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("STATUS"),
        "{t}"
    );
    assert!(
        lines[1].starts_with(&down_id[..12]) && lines[1].contains("Exited (2)"),
        "{t}"
    );
    assert!(
        lines[2].starts_with(&up_id[..12]) && lines[2].contains("Up "),
        "{t}"
    );
    let col = lines[0].find("STATUS").unwrap_or(0);
    assert_eq!(lines[1].find("Exited"), Some(col), "{t}");
    // The default table.
    let d = env.ok(&["ps", "-a"]);
    let head = d.lines().next().unwrap_or_default();
    for h in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(head.contains(h), "{d}");
    }
    assert!(d.contains(IMG), "{d}");
    // {{json .}}: one object per line.
    let j = env.ok(&["ps", "--format", "{{json .}}"]);
    let row: Value = serde_json::from_str(j.trim()).expect("json row");
    assert_eq!(row["State"], "running");
    assert!(row["Names"].to_string().contains(&up), "{row}");
    // --format json: an array of podman-shaped rows.
    let j = env.ok(&["ps", "-a", "--format", "json"]);
    let rows: Vec<Value> = serde_json::from_str(&j).expect("json array");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Id"], down_id);
    assert_eq!(rows[0]["Names"], serde_json::json!([down]));
    assert_eq!(rows[0]["ExitCode"], 2);
    assert_eq!(rows[0]["Exited"], true);
    assert_eq!(rows[1]["State"], "running");
    assert!(rows[1]["Pid"].as_i64().unwrap_or(0) > 0);
    // Filters.
    let f = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f.trim(), down);
    let f = env.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=running",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f.trim(), up);
    let f = env.ok(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={up}"),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(f.trim(), up);
    let f = env.ok(&["ps", "-a", "--filter", "exited=2", "-q"]);
    assert_eq!(f.trim(), &down_id[..12]);
    let f = env.ok(&["ps", "-a", "--filter", "name=nothing-like-this", "-q"]);
    assert_eq!(f, "");
    env.fails(&["ps", "--filter", "status=bogus"], 125, "bogus");
    env.fails(&["ps", "--filter", "nonsense"], 125, "nonsense");
    env.ok(&["rm", "-f", &up, &down]);
}

#[test]
fn inspect_fields() {
    need_root!();
    let env = Env::new();
    let name = unique("insp");
    let host = tempfile::tempdir().expect("tempdir");
    let bind = format!("{}:/data:ro", host.path().display());
    let id = env.run_d(&[
        "--name",
        &name,
        "-e",
        "FOO=bar",
        "--memory",
        "64m",
        "-v",
        &bind,
        // A rootless user's default is pasta: the bridge has the address.
        "--network",
        "bridge",
        IMG,
        "sh",
        "-c",
        "while :; do sleep 0.1; done",
    ]);
    let v = env.inspect(&name);
    assert_eq!(v["Id"], id);
    assert_eq!(v["Name"], name);
    assert_eq!(v["State"]["Status"], "running");
    assert_eq!(v["State"]["Running"], true);
    let pid = v["State"]["Pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{v}");
    // The pid is the container's init on the host.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(comm.starts_with("sh\0-c"), "{comm:?}");
    let env_list: Vec<String> = serde_json::from_value(v["Config"]["Env"].clone()).expect("Env");
    assert!(env_list.iter().any(|e| e == "FOO=bar"), "{env_list:?}");
    assert_eq!(
        v["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "while :; do sleep 0.1; done"])
    );
    assert_eq!(v["HostConfig"]["Memory"], 64 * 1024 * 1024);
    let ip = v["NetworkSettings"]["IPAddress"].as_str().unwrap_or("");
    let networked = !network_skips_part("IPAddress");
    if networked {
        assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{v}");
    }
    let mounts = v["Mounts"].as_array().expect("Mounts");
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Destination"], "/data");
    assert_eq!(mounts[0]["Source"], host.path().display().to_string());
    assert_eq!(mounts[0]["RW"], false);
    // --format.
    assert_eq!(env.fmt(&name, "{{.State.Status}}"), "running");
    assert_eq!(env.fmt(&name, "{{.HostConfig.Memory}}"), "67108864");
    if networked {
        assert_eq!(env.fmt(&name, "{{.NetworkSettings.IPAddress}}"), ip);
    }
    // Short id works too.
    assert_eq!(env.fmt(&id[..12], "{{.Name}}"), name);
    env.ok(&["kill", &name]);
    assert_eq!(env.ok(&["wait", &name]).trim(), "137");
    let v = env.inspect(&name);
    assert_eq!(v["State"]["Status"], "exited");
    assert_eq!(v["State"]["ExitCode"], 137);
    assert_eq!(v["State"]["Pid"], 0);
    // An unknown name: podman's message and 125.
    env.fails(&["inspect", "no-such-thing"], 125, "no such object");
    env.ok(&["rm", &name]);
}
