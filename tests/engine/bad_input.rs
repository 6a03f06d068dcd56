//! Bad input gives podman-like errors and exit codes and leaves nothing
//! behind.

use crate::{need_root, unique, Env, IMG};

/// No container records, no container dirs, no mounts, no netns files.
#[track_caller]
fn assert_clean(env: &Env, what: &str) {
    assert!(
        env.all_ids().is_empty(),
        "{what}: ps -a not empty: {:?}",
        env.all_ids()
    );
    let leaks = env.leaks();
    assert!(leaks.is_empty(), "{what}: left behind {leaks:#?}");
}

#[test]
fn bad_input_fails_cleanly() {
    need_root!();
    let env = Env::new();
    let host = tempfile::tempdir().expect("tempdir");
    let hp = host.path().display().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["run".into(), "--bogus".into(), IMG.into(), "true".into()],
            "unknown flag: --bogus",
        ),
        (
            vec![
                "run".into(),
                "-p".into(),
                "99999:80".into(),
                IMG.into(),
                "true".into(),
            ],
            "99999",
        ),
        (
            vec![
                "run".into(),
                "-p".into(),
                "80:http".into(),
                IMG.into(),
                "true".into(),
            ],
            "http",
        ),
        (
            vec![
                "run".into(),
                "-p".into(),
                "1.2.3:80:80".into(),
                IMG.into(),
                "true".into(),
            ],
            "1.2.3",
        ),
        (
            vec![
                "run".into(),
                "--pull".into(),
                "never".into(),
                "localhost/missing-image".into(),
                "true".into(),
            ],
            "missing-image",
        ),
        (
            vec![
                "run".into(),
                "-v".into(),
                ":/x".into(),
                IMG.into(),
                "true".into(),
            ],
            "host directory cannot be empty",
        ),
        (
            vec![
                "run".into(),
                "-v".into(),
                format!("{hp}:relative"),
                IMG.into(),
                "true".into(),
            ],
            "relative",
        ),
        (
            vec![
                "run".into(),
                "-v".into(),
                format!("{hp}:/x:bogus"),
                IMG.into(),
                "true".into(),
            ],
            "bogus",
        ),
        (
            vec![
                "run".into(),
                "-v".into(),
                "/no/such/host/dir:/x".into(),
                IMG.into(),
                "true".into(),
            ],
            "/no/such/host/dir",
        ),
        (
            vec![
                "run".into(),
                "--memory".into(),
                "lots".into(),
                IMG.into(),
                "true".into(),
            ],
            "lots",
        ),
        (
            vec![
                "run".into(),
                "--cap-add".into(),
                "NOT_A_CAP".into(),
                IMG.into(),
                "true".into(),
            ],
            "NOT_A_CAP",
        ),
        (
            vec![
                "run".into(),
                "--add-host".into(),
                "nocolon".into(),
                IMG.into(),
                "true".into(),
            ],
            "nocolon",
        ),
        (
            vec![
                "run".into(),
                "--restart".into(),
                "sometimes".into(),
                IMG.into(),
                "true".into(),
            ],
            "sometimes",
        ),
        (
            vec![
                "run".into(),
                "--network".into(),
                "container:nope".into(),
                IMG.into(),
                "true".into(),
            ],
            "nope",
        ),
        (
            vec![
                "run".into(),
                "--network".into(),
                "no-such-net".into(),
                IMG.into(),
                "true".into(),
            ],
            "no-such-net",
        ),
        (
            vec![
                "run".into(),
                "--stop-signal".into(),
                "SIGNOPE".into(),
                IMG.into(),
                "true".into(),
            ],
            "SIGNOPE",
        ),
        (
            vec![
                "run".into(),
                "--security-opt".into(),
                "bogus".into(),
                IMG.into(),
                "true".into(),
            ],
            "bogus",
        ),
        (
            vec![
                "run".into(),
                "--name".into(),
                "bad name!".into(),
                IMG.into(),
                "true".into(),
            ],
            "bad name!",
        ),
        (
            vec![
                "run".into(),
                "--env-file".into(),
                "/no/such/env".into(),
                IMG.into(),
                "true".into(),
            ],
            "/no/such/env",
        ),
        (
            vec![
                "run".into(),
                "--runtime".into(),
                "/no/such/runtime".into(),
                IMG.into(),
                "true".into(),
            ],
            "/no/such/runtime",
        ),
        (vec!["start".into(), "no-such-ctr".into()], "no-such-ctr"),
        (vec!["stop".into(), "no-such-ctr".into()], "no-such-ctr"),
        (vec!["logs".into(), "no-such-ctr".into()], "no-such-ctr"),
        (
            vec!["exec".into(), "no-such-ctr".into(), "true".into()],
            "no-such-ctr",
        ),
    ];
    for (args, msg) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.fails(&a, 125, msg);
        assert_clean(&env, &args.join(" "));
    }
    // rm of an unknown container: 1 (podman).
    env.fails(&["rm", "no-such-ctr"], 1, "no-such-ctr");
}

#[test]
fn name_in_use_and_stopping_stopped() {
    need_root!();
    let env = Env::new();
    let name = unique("dup");
    let id = env.ok(&["create", "--name", &name, IMG, "true"]);
    let id = id.trim();
    env.fails(
        &["create", "--name", &name, IMG, "true"],
        125,
        "already in use",
    );
    env.fails(
        &["run", "--rm", "--name", &name, IMG, "true"],
        125,
        "already in use",
    );
    assert_eq!(env.all_ids(), [id]);
    // Stopping a created or exited container is not an error and prints
    // the name (podman).
    let o = env.run(&["stop", &name]);
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.stdout.trim(), name);
    env.ok(&["start", "-a", &name]);
    let o = env.run(&["stop", &name]);
    assert!(o.success(), "{o:#?}");
    assert_eq!(o.stdout.trim(), name);
    // Pausing or exec'ing a stopped container is an error.
    env.fails(&["pause", &name], 125, &name);
    env.fails(&["exec", &name, "true"], 125, "running");
    // --replace takes the name over.
    let o = env.ok(&["run", "--replace", "--name", &name, IMG, "echo", "replaced"]);
    assert_eq!(o, "replaced\n");
    assert_eq!(env.all_ids().len(), 1);
    assert_ne!(env.all_ids()[0], id);
    env.ok(&["rm", &name]);
    assert_clean(&env, "after rm");
}

#[test]
fn failed_start_leaves_nothing_running() {
    need_root!();
    let env = Env::new();
    // A command that cannot be found: 127 and the container is not left
    // running or mounted (with --rm: gone).
    assert_eq!(env.run(&["run", "--rm", IMG, "nonexistent"]).code, 127);
    assert_clean(&env, "run --rm nonexistent");
    let name = unique("fail");
    assert_eq!(
        env.run(&["run", "--name", &name, IMG, "nonexistent"]).code,
        127
    );
    let st = env.status(&name);
    assert!(st == "created" || st == "exited", "{st}");
    // -d reports it too.
    let name2 = unique("faild");
    let o = env.run(&["run", "-d", "--name", &name2, IMG, "/etc/passwd"]);
    assert_eq!(o.code, 126, "{o:#?}");
    env.ok(&["rm", &name, &name2]);
    assert_clean(&env, "after rm");
}
