//! Lifecycle: run -d, logs, exec/run/attach on a pty, stop, rm -f, wait,
//! pause, rename, top, restart, create + start -a, prune, exit codes.

use crate::pty::Pty;
use crate::{need_network, need_root, rootless, unique, Env, IMG};
use std::time::{Duration, Instant};

const LOOP: &str = "while :; do sleep 0.1; done";

#[test]
fn run_d_then_logs_follow_tail_since_timestamps() {
    need_root!();
    let env = Env::new();
    let name = unique("logs");
    env.run_d(&[
        "--name",
        &name,
        IMG,
        "sh",
        "-c",
        "for i in 1 2 3 4 5; do echo line$i; sleep 0.2; done; echo oops >&2; sleep 0.3; echo done",
    ]);
    // Follow until the container exits: everything, in order.
    let t0 = Instant::now();
    let o = env.run(&["logs", "-f", &name]);
    assert!(o.success(), "{o:#?}");
    assert!(
        t0.elapsed() > Duration::from_millis(500),
        "-f did not follow"
    );
    assert_eq!(o.stdout, "line1\nline2\nline3\nline4\nline5\ndone\n");
    assert_eq!(o.stderr, "oops\n");
    assert_eq!(env.status(&name), "exited");

    // --tail counts lines of both streams, like podman.
    let o = env.run(&["logs", "--tail", "2", &name]);
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("done\n", "oops\n"));
    let o = env.run(&["logs", "--tail", "0", &name]);
    assert_eq!(o.stdout, "");

    // -t: RFC 3339 timestamp, a space, the line.
    let o = env.run(&["logs", "-t", &name]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{o:#?}");
    let mut stamps = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let (stamp, text) = l.split_once(' ').expect("timestamp");
        assert!(
            stamp.len() >= 20 && stamp.as_bytes()[4] == b'-' && stamp.contains('T'),
            "bad timestamp {stamp:?}"
        );
        if i < 5 {
            assert_eq!(text, format!("line{}", i + 1));
        }
        stamps.push(stamp.to_string());
    }
    // --since the 4th line's timestamp: lines 4, 5 and the rest.
    let o = env.run(&["logs", "--since", &stamps[3], &name]);
    assert_eq!(o.stdout, "line4\nline5\ndone\n", "{o:#?}");
    // --since in the future: nothing; a duration covering everything: all.
    let o = env.run(&["logs", "--since", "2999-01-01T00:00:00Z", &name]);
    assert_eq!(o.stdout, "");
    let o = env.run(&["logs", "--since", "10m", &name]);
    assert_eq!(o.stdout.lines().count(), 6);
    env.ok(&["rm", &name]);
}

#[test]
fn exec_it_through_a_pty() {
    need_root!();
    let env = Env::new();
    let name = unique("exec");
    env.run_d(&["--name", &name, IMG, "sh", "-c", LOOP]);
    let mut t = Pty::spawn(env.cmd(&["exec", "-it", &name, "sh"]));
    t.send(b"tty; echo RES-$((6*7))\n");
    t.expect("RES-42", Duration::from_secs(20));
    assert!(t.output().contains("/dev/pts/"), "{:?}", t.output());
    // Line discipline in the container: ^C does not kill the exec'd shell,
    // stty reports a terminal.
    t.send(b"stty size; echo SZ-done\n");
    t.expect("SZ-done", Duration::from_secs(10));
    t.send(b"exit 7\n");
    assert_eq!(t.wait(Duration::from_secs(20)), Some(7), "{:?}", t.output());
    // Without -t: no terminal inside.
    let o = env.run(&["exec", &name, "sh", "-c", "tty; exit 0"]);
    assert!(o.stdout.contains("not a tty"), "{o:#?}");
    // exec's own exit codes.
    assert_eq!(env.run(&["exec", &name, "sh", "-c", "exit 9"]).code, 9);
    assert_eq!(env.run(&["exec", &name, "nonexistent"]).code, 127);
    assert_eq!(env.run(&["exec", &name, "/etc/passwd"]).code, 126);
    env.ok(&["rm", "-f", &name]);
}

#[test]
fn run_it_through_a_pty() {
    need_root!();
    let env = Env::new();
    let name = unique("runit");
    let mut t = Pty::spawn(env.cmd(&["run", "-it", "--name", &name, IMG, "sh"]));
    t.send(b"tty; echo RES-$((6*7))\n");
    t.expect("RES-42", Duration::from_secs(30));
    assert!(t.output().contains("/dev/pts/0"), "{:?}", t.output());
    t.send(b"exit 4\n");
    assert_eq!(t.wait(Duration::from_secs(20)), Some(4), "{:?}", t.output());
    assert_eq!(env.status(&name), "exited");
    assert_eq!(env.fmt(&name, "{{.State.ExitCode}}"), "4");
    env.ok(&["rm", &name]);
}

#[test]
fn attach_and_detach_keys_through_a_pty() {
    need_root!();
    let env = Env::new();
    let name = unique("attach");
    env.run_d(&["-it", "--name", &name, IMG, "sh"]);
    let mut t = Pty::spawn(env.cmd(&["attach", &name]));
    // Give the attach a moment to connect before typing.
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"echo ATT-$((2+3))\n");
    t.expect("ATT-5", Duration::from_secs(20));
    t.send(b"\x10\x11"); // ctrl-p ctrl-q
    assert_eq!(t.wait(Duration::from_secs(10)), Some(0), "{:?}", t.output());
    assert_eq!(env.status(&name), "running");
    // Custom detach keys, then typing `exit 6` ends the container and
    // attach returns its code.
    let mut t = Pty::spawn(env.cmd(&["attach", "--detach-keys", "ctrl-x", &name]));
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"echo AGAIN-$((3+3))\n");
    t.expect("AGAIN-6", Duration::from_secs(20));
    t.send(b"\x18");
    assert_eq!(t.wait(Duration::from_secs(10)), Some(0), "{:?}", t.output());
    let mut t = Pty::spawn(env.cmd(&["attach", &name]));
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"exit 6\n");
    assert_eq!(t.wait(Duration::from_secs(20)), Some(6), "{:?}", t.output());
    assert_eq!(env.status(&name), "exited");
    // Attaching to a stopped container is an error.
    env.fails(&["attach", &name], 125, "running");
    env.ok(&["rm", &name]);
}

#[test]
fn stop_honours_signal_and_timeout() {
    need_root!();
    let env = Env::new();
    let trap = unique("trap");
    let ignore = unique("ignore");
    let usr1 = unique("usr1");
    env.run_d(&[
        "--name",
        &trap,
        IMG,
        "sh",
        "-c",
        &format!("trap 'exit 0' TERM; {LOOP}"),
    ]);
    env.run_d(&[
        "--name",
        &ignore,
        IMG,
        "sh",
        "-c",
        &format!("trap '' TERM; {LOOP}"),
    ]);
    env.run_d(&[
        "--name",
        &usr1,
        "--stop-signal",
        "SIGUSR1",
        IMG,
        "sh",
        "-c",
        &format!("trap 'exit 5' USR1; trap '' TERM; {LOOP}"),
    ]);
    assert_eq!(env.fmt(&usr1, "{{.Config.StopSignal}}"), "SIGUSR1");
    // Trapping SIGTERM: exits 0 quickly.
    let t0 = Instant::now();
    let o = env.run(&["stop", &trap]);
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.stdout.trim(), trap);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(
        env.fmt(&trap, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    // Ignoring it: SIGKILL after -t 2, exit 137.
    let t0 = Instant::now();
    env.ok(&["stop", "-t", "2", &ignore]);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "stop -t 2 took {took:?}"
    );
    assert_eq!(
        env.fmt(&ignore, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    // --stop-signal SIGUSR1.
    let t0 = Instant::now();
    env.ok(&["stop", "-t", "5", &usr1]);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(env.fmt(&usr1, "{{.State.ExitCode}}"), "5");
    // Stopping a stopped container: not an error, prints the name (podman).
    let o = env.run(&["stop", &trap]);
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.stdout.trim(), trap);
    env.ok(&["rm", &trap, &ignore, &usr1]);
}

#[test]
fn rm_f_of_a_running_container() {
    need_root!();
    let env = Env::new();
    let name = unique("rmf");
    let id = env.run_d(&[
        "--name",
        &name,
        IMG,
        "sh",
        "-c",
        &format!("trap '' TERM; {LOOP}"),
    ]);
    // Without -f: refused, exit 2 as podman ("container is running").
    let o = env.run(&["rm", &name]);
    assert_ne!(o.code, 0, "{o:#?}");
    assert!(o.stderr.contains("running"), "{o:#?}");
    let t0 = Instant::now();
    let o = env.run(&["rm", "-f", &name]);
    assert!(o.success(), "{o:#?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(env.all_ids().is_empty());
    assert!(!env.root.join("containers").join(&id).exists());
    // rm -f of an unknown name: not an error (podman).
    env.ok(&["rm", "-f", "no-such-container"]);
}

#[test]
fn wait_pause_unpause_rename_top_restart() {
    need_root!();
    let env = Env::new();
    let name = unique("misc");
    let id = env.run_d(&["--name", &name, IMG, "sh", "-c", LOOP]);
    // top: the shell and its sleep.
    let o = env.ok(&["top", &name]);
    let mut lines = o.lines();
    let head = lines.next().unwrap_or_default();
    assert!(head.contains("PID") && head.contains("COMMAND"), "{o}");
    assert!(o.contains("sh -c"), "{o}");
    // pause/unpause; rootless (no cgroup here): refused, naming why.
    if rootless().is_some() {
        env.fails(&["pause", &name], 125, "has no cgroup");
        assert_eq!(env.status(&name), "running");
        crate::report_skip("pause/unpause: the freezer needs a cgroup: no cgroup is delegated to a rootless user on this host (cgroup v1)");
    } else {
        env.ok(&["pause", &name]);
        assert_eq!(env.status(&name), "paused");
        let ps = env.ok(&[
            "ps",
            "--format",
            "{{.Status}}",
            "--filter",
            &format!("name={name}"),
        ]);
        assert_eq!(ps.trim(), "Paused");
        env.ok(&["unpause", &name]);
        assert_eq!(env.status(&name), "running");
    }
    // rename.
    let new = unique("renamed");
    env.ok(&["rename", &name, &new]);
    assert_eq!(env.fmt(&id, "{{.Name}}"), new);
    env.fails(&["inspect", "--type", "container", &name], 125, &name);
    // restart: a new process, still running.
    let pid1 = env.fmt(&new, "{{.State.Pid}}");
    let o = env.ok(&["restart", "-t", "0", &new]);
    assert_eq!(o.trim(), new);
    let pid2 = env.fmt(&new, "{{.State.Pid}}");
    assert_eq!(env.status(&new), "running");
    assert_ne!(pid1, pid2);
    // wait prints the exit code once the container stops.
    let waiter = std::thread::scope(|s| {
        let h = s.spawn(|| env.run(&["wait", &new]));
        std::thread::sleep(Duration::from_millis(500));
        env.ok(&["kill", "-s", "TERM", &new]);
        // TERM to a shell pid 1 without a trap is ignored: KILL it.
        env.ok(&["kill", &new]);
        h.join().expect("wait thread")
    });
    assert!(waiter.success(), "{waiter:#?}");
    assert_eq!(waiter.stdout.trim(), "137");
    // wait on an exited container returns at once.
    assert_eq!(env.ok(&["wait", &new]).trim(), "137");
    env.ok(&["rm", &new]);
}

#[test]
fn create_then_start_attached_and_prune() {
    need_root!();
    let env = Env::new();
    let name = unique("create");
    let id = env.ok(&[
        "create",
        "--name",
        &name,
        IMG,
        "sh",
        "-c",
        "echo from-create; exit 3",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert_eq!(env.status(&name), "created");
    let ps = env.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert_eq!(ps.trim(), format!("{name} Created"));
    let o = env.run(&["start", "-a", &name]);
    assert_eq!(o.code, 3, "{o:#?}");
    assert_eq!(o.stdout, "from-create\n");
    assert_eq!(env.status(&name), "exited");
    // start again (detached) reruns it.
    let o = env.ok(&["start", &name]);
    assert_eq!(o.trim(), name);
    assert_eq!(env.ok(&["wait", &name]).trim(), "3");
    assert_eq!(env.ok(&["logs", &name]), "from-create\nfrom-create\n");

    // prune removes created and exited containers, not running ones.
    let running = unique("running");
    let created = unique("created");
    env.run_d(&["--name", &running, IMG, "sh", "-c", LOOP]);
    env.ok(&["create", "--name", &created, IMG, "true"]);
    let o = env.ok(&["container", "prune", "-f"]);
    assert!(o.contains(id), "{o}");
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(left.trim(), running);
    env.ok(&["rm", "-f", &running]);
}

#[test]
fn exit_codes() {
    need_root!();
    let env = Env::new();
    // The container's own code.
    assert_eq!(env.run(&["run", "--rm", IMG, "sh", "-c", "exit 3"]).code, 3);
    assert_eq!(env.run(&["run", "--rm", IMG, "true"]).code, 0);
    // A child killed by a signal: 128+N through the shell (pid 1 itself
    // cannot be SIGKILLed from inside its namespace).
    assert_eq!(
        env.run(&[
            "run",
            "--rm",
            IMG,
            "sh",
            "-c",
            "sh -c 'kill -9 $$'; exit $?"
        ])
        .code,
        137
    );
    // 126: not executable; 127: not found.
    let o = env.run(&["run", "--rm", IMG, "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o:#?}");
    assert!(o.stderr.contains("Error: "), "{o:#?}");
    let o = env.run(&["run", "--rm", IMG, "nonexistent"]);
    assert_eq!(o.code, 127, "{o:#?}");
    assert!(o.stderr.contains("nonexistent"), "{o:#?}");
    // 125: a bad flag, an engine error.
    env.fails(&["run", "--no-such-flag", IMG, "true"], 125, "unknown flag");
    env.fails(
        &[
            "run",
            "--rm",
            "--pull",
            "never",
            "localhost/no-such-image",
            "true",
        ],
        125,
        "no-such-image",
    );
    assert!(env.all_ids().is_empty(), "{:?}", env.all_ids());
}

/// Regression: a fast container's output reached no attach client when the
/// monitor forwarded it before accepting the client (`barge run` printed
/// nothing, exit 0, about one run in ten under load).
#[test]
fn attached_output_is_never_lost() {
    need_root!();
    let env = Env::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..5 {
                        let o = env.run(&["run", "--rm", IMG, "barge-check", "caps"]);
                        assert!(o.success(), "{o:#?}");
                        assert!(o.stdout.contains("CAP_CHOWN"), "output lost: {o:#?}");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("runner");
        }
    });
}

/// Regression: the old veth outlived `stop` (the kernel destroys a network
/// namespace asynchronously), so a restart right away failed with "veth
/// name already in use".
#[test]
fn restart_right_away_reuses_the_network() {
    need_root!();
    need_network!();
    let env = Env::new();
    let name = unique("restart");
    // The bridge explicitly: a rootless user's default is pasta.
    env.run_d(&[
        "--name",
        &name,
        "--network",
        "bridge",
        IMG,
        "sh",
        "-c",
        LOOP,
    ]);
    for _ in 0..5 {
        env.ok(&["restart", "-t", "0", &name]);
        assert_eq!(env.status(&name), "running");
    }
    let ip = env.fmt(&name, "{{.NetworkSettings.IPAddress}}");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    env.ok(&["rm", "-f", &name]);
}
