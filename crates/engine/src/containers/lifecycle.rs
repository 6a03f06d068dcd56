//! Container lifecycle: start (prepare the rootfs, network and bundle, let
//! the monitor create the container, then `runtime start`), stop, kill,
//! wait, cleanup after exit, remove, pause, exec.
//!
//! Every operation that changes a container's runtime resources holds the
//! container's lock file (`RUNROOT/locks/ID`, flock), so a CLI and the
//! monitor's exit command never clean up the same container at once.

use super::monitor::{self, AttachConn, MonitorSpec};
use super::{alive, now_nanos, spec, ContainerRecord, Engine, MountSpec, NetworkMode, Status};
use crate::db::Table;
use crate::error::EngineError;
use crate::Result;
use rustix::fd::{AsFd as _, OwnedFd};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A held container lock (released on drop).
pub struct ContainerLock {
    _fd: OwnedFd,
}

/// Signal names and numbers (`SIGTERM`, `TERM`, `15`).
pub fn signal_number(s: &str) -> Result<i32> {
    const SIGNALS: &[(&str, i32)] = &[
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("POLL", 29),
        ("PWR", 30),
        ("SYS", 31),
    ];
    let t = s.trim();
    if let Ok(n) = t.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let up = t.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rt) = name.strip_prefix("RTMIN+") {
        if let Ok(n) = rt.parse::<i32>() {
            if n <= 30 {
                return Ok(34 + n);
            }
        }
    }
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .ok_or_else(|| EngineError::Invalid(format!("invalid signal: {s}")))
}

/// How `start` connects the caller to the container.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// Connect to the monitor's attach socket before starting, so no output
    /// is lost; the connection is returned. The caller also takes over the
    /// cleanup at exit ([`Engine::cleanup`] or removal): the monitor runs
    /// its exit command only if the connection is gone by then.
    pub attach: bool,
}

impl Engine {
    /// Takes a container's lock, waiting for other holders.
    pub fn lock(&self, id: &str) -> Result<ContainerLock> {
        let dir = self.paths.runroot.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(EngineError::io(format!("creating {}", dir.display())))?;
        let path = dir.join(id);
        let fd = rustix::fs::open(
            &path,
            rustix::fs::OFlags::CREATE | rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| EngineError::io(format!("opening {}", path.display()))(e.into()))?;
        rustix::fs::flock(&fd, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| EngineError::io(format!("locking {}", path.display()))(e.into()))?;
        Ok(ContainerLock { _fd: fd })
    }

    /// Removes the lock file of a container that no longer exists; call
    /// it holding the lock, after finding the record gone. Safe because
    /// ids are never reused: whoever waits on the unlinked file, or locks
    /// a new one, finds no record either.
    fn forget_lock(&self, id: &str) {
        let _ = std::fs::remove_file(self.paths.runroot.join("locks").join(id));
    }

    /// The runtime binary for a container.
    pub fn runtime_for(&self, rec: &ContainerRecord) -> PathBuf {
        match rec.config.runtime.as_str() {
            "" | "barge-runtime" | "barge" => self.runtime.clone(),
            r if r.contains('/') => PathBuf::from(r),
            r => super::find_binary(r),
        }
    }

    fn runtime_args(&self) -> Vec<String> {
        vec![
            "--root".into(),
            self.paths.runtime_root().display().to_string(),
        ]
    }

    /// A runtime command for `rec`.
    pub fn runtime_cmd(&self, rec: &ContainerRecord) -> Command {
        let mut c = Command::new(self.runtime_for(rec));
        c.args(self.runtime_args());
        c
    }

    pub(crate) fn run_runtime(&self, rec: &ContainerRecord, args: &[&str]) -> Result<()> {
        let out = self
            .runtime_cmd(rec)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(EngineError::io(format!(
                "running {}",
                self.runtime_for(rec).display()
            )))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(EngineError::Runtime {
                id: rec.id.clone(),
                message: runtime_message(&out.stderr),
                exit_code: None,
            })
        }
    }

    /// The runtime's status of the container (`created`, `running`, …;
    /// empty when the runtime does not know it).
    fn runtime_status(&self, rec: &ContainerRecord) -> String {
        let out = self
            .runtime_cmd(rec)
            .args(["state", &rec.id])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .and_then(|v| v.get("status")?.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// Brings `rec` up to date with reality: a container whose process is
    /// gone is marked exited (with the monitor's exit code when there is
    /// one) and cleaned up. Cheap when nothing changed.
    pub fn refresh(&mut self, rec: ContainerRecord) -> Result<ContainerRecord> {
        let running = matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        );
        let created_by_runtime =
            rec.state.prepared && rec.state.status == Status::Created && rec.state.pid > 0;
        if !running && !created_by_runtime {
            return Ok(rec);
        }
        let dir = self.paths.container_run_dir(&rec.id);
        let exited = monitor::read_exit(&dir);
        if exited.is_none() && alive(rec.state.pid, rec.state.pid_start) {
            if rec.state.status == Status::Created && self.runtime_status(&rec) == "running" {
                // A start killed after `runtime start` but before it
                // recorded that: the container runs.
                let pid = rec.state.pid;
                return self.modify(&rec.id, |r| {
                    if r.state.status == Status::Created && r.state.pid == pid {
                        r.state.status = Status::Running;
                        r.state.started_at = now_nanos();
                        r.state.finished_at = 0;
                        r.state.exit_code = 0;
                        r.state.stopped_by_user = false;
                    }
                    Ok(())
                });
            }
            return Ok(rec);
        }
        if exited.is_none() && rec.state.monitor_pid > 0 && alive(rec.state.monitor_pid, 0) {
            // The monitor is writing the exit file right now.
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline && monitor::read_exit(&dir).is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.cleanup(&rec.id)?;
        match self.db.get(Table::Containers, &rec.id)? {
            Some(r) => Ok(r),
            None => Ok(ContainerRecord {
                state: super::State {
                    status: Status::Removing,
                    ..rec.state.clone()
                },
                ..rec
            }),
        }
    }

    /// Releases what a run of the container used (runtime state, rootfs
    /// mount, network) and records its exit. Idempotent; removes the
    /// container if it was created with `--rm`.
    pub fn cleanup(&mut self, id: &str) -> Result<()> {
        let lock = self.lock(id)?;
        let Some(rec) = self.db.get::<ContainerRecord>(Table::Containers, id)? else {
            // Removed meanwhile (e.g. the monitor's exit command after
            // `rm -f`): do not leave a lock file behind.
            self.forget_lock(id);
            return Ok(());
        };
        if !rec.state.prepared {
            return Ok(());
        }
        let running = matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        );
        if running && alive(rec.state.pid, rec.state.pid_start) {
            // Still running: nothing to clean.
            return Ok(());
        }
        let dir = self.paths.container_run_dir(id);
        // The init is gone; its monitor may still be writing the exit file.
        self.wait_exit_file(&rec, Duration::from_secs(5));
        let exit = monitor::read_exit(&dir);
        crate::timing::mark("cleanup: locked");
        self.release(&rec);
        crate::timing::mark("cleanup: released");
        let auto_remove = rec.config.auto_remove;
        let rec = self.modify(id, |r| {
            if matches!(
                r.state.status,
                Status::Running | Status::Paused | Status::Stopping
            ) || (r.state.status == Status::Created && r.state.pid > 0)
            {
                r.state.status = Status::Exited;
                match &exit {
                    Some(e) => {
                        r.state.exit_code = e.exit_code;
                        r.state.finished_at = if e.exited_at > 0 {
                            e.exited_at
                        } else {
                            now_nanos()
                        };
                        r.state.oom_killed = e.oom_killed;
                    }
                    None => {
                        if r.state.finished_at == 0 || r.state.finished_at < r.state.started_at {
                            r.state.exit_code = -1;
                            r.state.finished_at = now_nanos();
                        }
                    }
                }
            }
            r.state.prepared = false;
            r.state.pid = 0;
            r.state.monitor_pid = 0;
            Ok(())
        })?;
        remove_run_dir(&dir);
        // A pod with exit policy `stop` stops once its last member exited.
        self.pod_exit_policy(&rec);
        if auto_remove {
            drop(lock);
            self.remove_record(&rec, true)?;
        }
        Ok(())
    }

    /// Tears down a run's resources, best effort (used by cleanup and by a
    /// failed start).
    fn release(&mut self, rec: &ContainerRecord) {
        self.release_with(rec, |_| {});
    }

    /// [`Self::release`], running `meanwhile` while the runtime deletes
    /// the container (its cgroup removal waits on the kernel).
    fn release_with(&mut self, rec: &ContainerRecord, meanwhile: impl FnOnce(&mut Self)) {
        // Without a recorded pid, a start may have died after spawning the
        // monitor: find it before the run directory goes.
        let orphan_monitor = if rec.state.pid == 0 {
            super::read_opt(&self.paths.container_run_dir(&rec.id).join("monitor.pid"))
                .and_then(|s| s.trim().parse::<i32>().ok())
        } else {
            None
        };
        let child = self
            .runtime_cmd(rec)
            .args(["delete", "--force", &rec.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        crate::timing::mark("runtime delete spawned");
        let net = self.teardown_network(rec);
        crate::timing::mark("network torn down");
        let rootfs = self.paths.container_dir(&rec.id).join("rootfs");
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        // A pod infra's /dev/shm (members that still run keep theirs).
        crate::pods::unmount_shm(&self.paths.container_dir(&rec.id));
        crate::timing::mark("rootfs unmounted");
        meanwhile(self);
        crate::timing::mark("meanwhile done");
        if let Ok(mut c) = child {
            let _ = c.wait();
        }
        net.finish();
        crate::timing::mark("network helper gone");
        if let Some(m) = orphan_monitor {
            self.wait_orphan_monitor(rec, m);
        }
        super::intercept::stop_supervisor(&self.paths.container_run_dir(&rec.id));
        crate::timing::mark("runtime delete");
    }

    /// Waits (up to 10 s) for the monitor `pid` of a start that died
    /// before recording the container's pid: it may still be running
    /// `runtime create`, so a container can appear after the delete above.
    /// Deletes again every half second until the monitor, which exits once
    /// the container is gone, has exited.
    fn wait_orphan_monitor(&self, rec: &ContainerRecord, pid: i32) {
        let ours = || {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == rec.id.as_bytes()))
                && alive(pid, 0)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut next_delete = Instant::now() + Duration::from_millis(500);
        while ours() && Instant::now() < deadline {
            if Instant::now() >= next_delete {
                let _ = self.run_runtime(rec, &["delete", "--force", &rec.id]);
                next_delete = Instant::now() + Duration::from_millis(500);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a created or exited container. With `opts.attach`, returns a
    /// connection to its monitor made before the process started.
    pub fn start(
        &mut self,
        name: &str,
        opts: StartOptions,
    ) -> Result<(ContainerRecord, Option<AttachConn>)> {
        let rec = self.lookup(name)?;
        let rec = self.refresh(rec)?;
        if rec.pod.is_some()
            && !rec.config.infra
            && matches!(rec.state.status, Status::Created | Status::Exited)
        {
            // A pod member needs its pod's infra running (its namespaces).
            if let Err(e) = self.pod_start_infra_for(&rec) {
                if rec.config.auto_remove {
                    let _ = self.remove_record(&rec, true);
                }
                return Err(e);
            }
        }
        let lock = self.lock(&rec.id)?;
        let Some(rec) = self.db.get::<ContainerRecord>(Table::Containers, &rec.id)? else {
            self.forget_lock(&rec.id);
            return Err(EngineError::NoSuchContainer(name.to_string()));
        };
        match rec.state.status {
            Status::Running | Status::Paused | Status::Stopping => {
                return Ok((rec, None));
            }
            Status::Removing => return Err(EngineError::NoSuchContainer(name.to_string())),
            Status::Created | Status::Exited => {}
        }
        if rec.state.prepared {
            // A previous start died half-way: release first.
            self.release(&rec);
        }
        let result = self.start_locked(&rec, opts);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.release(&rec);
                remove_run_dir(&self.paths.container_run_dir(&rec.id));
                let msg = e.to_string();
                let _ = self.modify(&rec.id, |r| {
                    r.state.prepared = false;
                    r.state.pid = 0;
                    r.state.error = msg;
                    Ok(())
                });
                drop(lock);
                if rec.config.auto_remove {
                    let _ = self.remove_record(&rec, true);
                }
                Err(e)
            }
        }
    }

    fn start_locked(
        &mut self,
        rec: &ContainerRecord,
        opts: StartOptions,
    ) -> Result<(ContainerRecord, Option<AttachConn>)> {
        let cdir = self.paths.container_dir(&rec.id);
        let rundir = self.paths.container_run_dir(&rec.id);
        let _ = std::fs::remove_dir_all(&rundir);
        std::fs::create_dir_all(&rundir)
            .map_err(EngineError::io(format!("creating {}", rundir.display())))?;
        self.modify(&rec.id, |r| {
            r.state.prepared = true;
            r.state.error.clear();
            // From here on a container may exist in the runtime: a start
            // killed half-way must not leave it shown as exited.
            if r.state.status == Status::Exited {
                r.state.status = Status::Created;
            }
            Ok(())
        })?;
        let no_image = rec.config.infra && rec.image_id.is_empty();
        let (rootfs, infra_mounts) = if no_image {
            // A pod's infra without an image: a bare root with our pause
            // binary bound in.
            let rootfs = cdir.join("rootfs");
            (rootfs.clone(), crate::pods::infra_rootfs(&rootfs)?)
        } else {
            (self.mount_rootfs(rec)?, Vec::new())
        };
        crate::timing::mark("rootfs mounted");
        if !rec.config.uidmap.is_empty() {
            let containers = self.paths.root.join("containers");
            let volumes = self.paths.volumes_dir();
            let mut dirs = vec![self.paths.root.clone(), containers, cdir.clone()];
            if volumes.exists() {
                dirs.push(volumes);
            }
            // A rootless user's store sits below the user's home, which
            // the container's own root (a subordinate id) must be able to
            // pass through: the user's directories above the store.
            if crate::rootless::is_rootless() {
                use std::os::unix::fs::MetadataExt as _;
                let me = rustix::process::geteuid().as_raw();
                dirs.extend(
                    self.paths
                        .root
                        .ancestors()
                        .skip(1)
                        .take_while(|d| std::fs::metadata(d).is_ok_and(|m| m.uid() == me))
                        .map(Path::to_path_buf),
                );
            }
            let refs: Vec<&Path> = dirs.iter().map(PathBuf::as_path).collect();
            super::intercept::make_traversable(&refs)?;
        }
        let net = self.setup_network(rec)?;
        crate::timing::mark("network planned");
        let files = self.write_etc_files(rec, &rootfs, &net)?;
        let (uid, gid, groups) = resolve_user(&rootfs, &rec.config.user)?;
        let volumes = self.prepare_volumes(rec, &rootfs)?;
        let caps = spec::capabilities(
            rec.config.privileged,
            &rec.config.cap_add,
            &rec.config.cap_drop,
        );
        let seccomp =
            match rec.config.seccomp.as_str() {
                _ if rec.config.privileged => None,
                "unconfined" => None,
                "" => Some(spec::default_seccomp(&caps)),
                path => {
                    let text = std::fs::read_to_string(path)
                        .map_err(EngineError::io(format!("reading seccomp profile {path}")))?;
                    Some(serde_json::from_str(&text).map_err(|e| {
                        EngineError::Invalid(format!("seccomp profile {path}: {e}"))
                    })?)
                }
            };
        let init = if rec.config.init {
            let p = super::find_binary("catatonit");
            if !p.is_file() {
                return Err(EngineError::Invalid(
                    "--init needs catatonit (apt install catatonit)".into(),
                ));
            }
            Some(p)
        } else {
            None
        };
        let mut join = Vec::new();
        if let NetworkMode::Container(other) = rec.network() {
            let o = self.lookup(&other)?;
            let o = self.refresh(o)?;
            if o.state.status != Status::Running {
                return Err(EngineError::Invalid(format!(
                    "cannot join the network namespace of container {}: it is not running",
                    o.name
                )));
            }
            join.push(("network", format!("/proc/{}/ns/net", o.state.pid)));
        }
        join.extend(self.pod_joins(rec)?);
        let inputs = spec::SpecInputs {
            rootfs: &rootfs,
            uid,
            gid,
            additional_gids: groups,
            netns: net.netns.as_deref(),
            join,
            etc_files: files,
            volumes,
            init: init.as_deref(),
            seccomp,
            listener: None,
            cgroups: crate::rootless::uses_cgroups(),
        };
        let listener = if super::intercept::intercepted(&rec.config.intercept).is_empty() {
            None
        } else {
            Some(super::intercept::start_supervisor(&rundir)?)
        };
        let inputs = spec::SpecInputs {
            listener: listener.as_deref(),
            ..inputs
        };
        let mut config = spec::build(rec, &inputs)?;
        // A pod sharing IPC shares /dev/shm too (podman): the infra's tmpfs.
        if let Some(shm) = self.pod_shm(rec)? {
            crate::pods::bind_shm(&mut config, &shm);
        }
        if no_image {
            if let Some(m) = config["mounts"].as_array_mut() {
                m.extend(infra_mounts);
            }
            config["root"]["readonly"] = serde_json::json!(true);
        }
        crate::timing::mark("spec built");
        let config_path = cdir.join("config.json");
        let text = serde_json::to_vec_pretty(&config)
            .map_err(|e| EngineError::Invalid(format!("config.json: {e}")))?;
        std::fs::write(&config_path, text).map_err(EngineError::io(format!(
            "writing {}",
            config_path.display()
        )))?;

        let mut exit_command = vec![
            std::env::current_exe().map_or_else(|_| "barge".into(), |p| p.display().to_string()),
            "--root".into(),
            self.paths.root.display().to_string(),
            "--runroot".into(),
            self.paths.runroot.display().to_string(),
            "container".into(),
            "cleanup".into(),
            rec.id.clone(),
        ];
        if std::env::var_os("BARGE_NO_EXIT_COMMAND").is_some() {
            exit_command.clear();
        }
        let runtime = self.runtime_for(rec);
        let log_path = cdir.join("ctr.log");
        let pending = monitor::spawn_begin(&MonitorSpec {
            id: &rec.id,
            monitor: &self.monitor,
            runtime: &runtime,
            runtime_args: self.runtime_args(),
            bundle: &cdir,
            dir: &rundir,
            log_driver: &rec.config.log_driver,
            log_path: &log_path,
            terminal: rec.config.tty,
            stdin: rec.config.stdin,
            exit_command,
        })?;
        crate::timing::mark("monitor spawned");
        // The veths and ports are set up while the runtime creates the
        // container (it only needs the namespace to exist).
        let plumbed = self.plumb_network(rec, &net);
        crate::timing::mark("network plumbed");
        let started = pending.finish();
        if let Err(e) = plumbed {
            if let Ok(s) = &started {
                let _ = self.modify(&rec.id, |r| {
                    r.state.pid = s.pid;
                    Ok(())
                });
            }
            return Err(e);
        }
        let started = started?;
        crate::timing::mark("monitor: container created");
        let pid_start = super::process_start_time(started.pid).unwrap_or(0);
        self.modify(&rec.id, |r| {
            r.state.pid = started.pid;
            r.state.pid_start = pid_start;
            r.state.monitor_pid = started.monitor_pid;
            Ok(())
        })?;
        let conn = if opts.attach {
            let conn = AttachConn::connect(&rundir)?;
            // Before the process runs: a container that exits at once must
            // not race the monitor into spawning its exit command, which
            // the caller would then wait for on the container's lock.
            let _ = conn.send(monitor::FRAME_CLEANUP, &[]);
            Some(conn)
        } else {
            None
        };
        self.run_runtime(rec, &["start", &rec.id])?;
        crate::timing::mark("runtime start");
        let rec = self.modify(&rec.id, |r| {
            r.state.status = Status::Running;
            r.state.started_at = now_nanos();
            r.state.finished_at = 0;
            r.state.exit_code = 0;
            r.state.stopped_by_user = false;
            r.state.health.clear();
            Ok(())
        })?;
        crate::networks::announce(self, &rec, false);
        Ok((rec, conn))
    }

    fn mount_rootfs(&mut self, rec: &ContainerRecord) -> Result<PathBuf> {
        let cdir = self.paths.container_dir(&rec.id);
        let lowers = barge_image::snapshot(
            &self.store,
            &rec.image_id,
            &barge_image::UnpackOptions::for_current_user(),
        )?;
        let upper = cdir.join("upper");
        let work = cdir.join("work");
        let rootfs = cdir.join("rootfs");
        for d in [&upper, &work, &rootfs] {
            std::fs::create_dir_all(d)
                .map_err(EngineError::io(format!("creating {}", d.display())))?;
        }
        let lower = lowers
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        // redirect_dir and metacopy off: an upper directory written with
        // them cannot be turned into a layer (commit) or listed (diff). In
        // a user namespace, `userxattr` (which implies both) instead.
        let data = format!(
            "lowerdir={lower},upperdir={},workdir={},{}",
            upper.display(),
            work.display(),
            overlay_extra_options()
        );
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        let data = std::ffi::CString::new(data)
            .map_err(|_| EngineError::Invalid("overlay options contain a NUL byte".into()))?;
        rustix::mount::mount(
            "overlay",
            &rootfs,
            "overlay",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .map_err(|e| EngineError::Io {
            context: format!(
                "mounting the overlay root filesystem at {}{}",
                rootfs.display(),
                if crate::rootless::is_rootless() {
                    " (rootless: the kernel must allow overlay mounts in a user namespace, Linux 5.11 or later)"
                } else {
                    ""
                }
            ),
            source: e.into(),
        })?;
        Ok(rootfs)
    }

    fn write_etc_files(
        &self,
        rec: &ContainerRecord,
        rootfs: &Path,
        net: &super::networks::NetSetup,
    ) -> Result<Vec<(&'static str, PathBuf)>> {
        let cdir = self.paths.container_dir(&rec.id);
        let mut files = Vec::new();
        if let NetworkMode::Container(other) = rec.network() {
            // The network's files are those of the container whose network
            // namespace it joins (podman), and a pod member sharing the
            // pod's UTS namespace has the pod's /etc/hostname.
            let odir = self.paths.container_dir(&other);
            let mut names = vec![("/etc/hosts", "hosts"), ("/etc/resolv.conf", "resolv.conf")];
            if self.pod_shares_uts(rec) {
                names.push(("/etc/hostname", "hostname"));
            }
            for (dest, name) in names {
                let p = odir.join(name);
                if p.is_file() {
                    files.push((dest, p));
                }
            }
            return Ok(files);
        }
        let hostname = rec.hostname();
        // /etc/hostname
        let p = cdir.join("hostname");
        std::fs::write(&p, format!("{hostname}\n"))
            .map_err(EngineError::io(format!("writing {}", p.display())))?;
        files.push(("/etc/hostname", p));
        // /etc/hosts: the image's, then ours.
        let mut hosts = read_in_root(rootfs, "etc/hosts").unwrap_or_default();
        if hosts.trim().is_empty() {
            hosts = "127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost localhost.localdomain\n".into();
        } else if !hosts.ends_with('\n') {
            hosts.push('\n');
        }
        for h in &rec.config.add_hosts {
            let (name, ip) = h.split_once(':').unwrap_or((h, ""));
            let _ = writeln!(hosts, "{ip}\t{name}");
        }
        match &net.ip {
            Some(ip) => {
                let _ = writeln!(hosts, "{ip}\t{hostname} {}", rec.name);
            }
            None => {
                let _ = writeln!(hosts, "127.0.1.1\t{hostname} {}", rec.name);
            }
        }
        let base = cdir.join("hosts.base");
        std::fs::write(&base, &hosts)
            .map_err(EngineError::io(format!("writing {}", base.display())))?;
        for (ip, names) in &net.peers {
            let _ = writeln!(hosts, "{ip}\t{names}");
        }
        let p = cdir.join("hosts");
        std::fs::write(&p, hosts).map_err(EngineError::io(format!("writing {}", p.display())))?;
        files.push(("/etc/hosts", p));
        // /etc/resolv.conf
        let mut resolv = String::new();
        if rec.config.dns.is_empty() {
            for ns in &net.nameservers {
                let _ = writeln!(resolv, "nameserver {ns}");
            }
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            for l in host.lines() {
                let t = l.trim();
                if let Some(ns) = t.strip_prefix("nameserver") {
                    if !net.nameservers.is_empty() {
                        continue;
                    }
                    let ns = ns.trim();
                    if ns.starts_with("127.") || ns == "::1" {
                        if matches!(rec.network(), NetworkMode::Host) {
                            let _ = writeln!(resolv, "nameserver {ns}");
                        }
                        continue;
                    }
                    let _ = writeln!(resolv, "nameserver {ns}");
                } else if t.starts_with("search") || t.starts_with("options") {
                    resolv.push_str(t);
                    resolv.push('\n');
                }
            }
        } else {
            for d in &rec.config.dns {
                let _ = writeln!(resolv, "nameserver {d}");
            }
        }
        let p = cdir.join("resolv.conf");
        std::fs::write(&p, resolv).map_err(EngineError::io(format!("writing {}", p.display())))?;
        files.push(("/etc/resolv.conf", p));
        Ok(files)
    }

    fn prepare_volumes(
        &mut self,
        rec: &ContainerRecord,
        rootfs: &Path,
    ) -> Result<Vec<(String, PathBuf, bool)>> {
        let mut out = Vec::new();
        for m in &rec.config.mounts {
            if let MountSpec::Volume {
                name,
                destination,
                readonly,
            } = m
            {
                let vol_name = if name.is_empty() {
                    anonymous_volume_name(&rec.id, destination)
                } else {
                    name.clone()
                };
                let v = self.volume_for_container(&vol_name, name.is_empty())?;
                let data = PathBuf::from(&v.mountpoint);
                crate::volumes::copy_up_once(&data, rootfs, destination)?;
                out.push((destination.clone(), data, *readonly));
            }
        }
        for dest in &rec.config.image_volumes {
            if rec.config.mounts.iter().any(|m| m.destination() == dest) {
                continue;
            }
            let vol_name = anonymous_volume_name(&rec.id, dest);
            let v = self.volume_for_container(&vol_name, true)?;
            let data = PathBuf::from(&v.mountpoint);
            crate::volumes::copy_up_once(&data, rootfs, dest)?;
            out.push((dest.clone(), data, false));
        }
        Ok(out)
    }

    /// Sends a signal to a running container.
    pub fn kill(&mut self, name: &str, signal: &str) -> Result<ContainerRecord> {
        let sig = signal_number(signal)?;
        let rec = self.lookup(name)?;
        let rec = self.refresh(rec)?;
        if !matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        ) {
            return Err(EngineError::InvalidState {
                name: rec.name.clone(),
                state: rec.state.status.as_str().into(),
                action: "kill".into(),
            });
        }
        self.run_runtime(&rec, &["kill", &rec.id, &sig.to_string()])?;
        Ok(rec)
    }

    /// Waits until the container's process is gone (up to `timeout`);
    /// whether it is.
    pub(crate) fn wait_gone(&self, rec: &ContainerRecord, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let pidfd = rustix::process::Pid::from_raw(rec.state.pid).and_then(|p| {
            rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
        });
        let dir = self.paths.container_run_dir(&rec.id);
        loop {
            if !alive(rec.state.pid, rec.state.pid_start) || monitor::read_exit(&dir).is_some() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let step = left.min(Duration::from_millis(100));
            match &pidfd {
                Some(fd) => {
                    let mut fds = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
                    let ts = rustix::event::Timespec {
                        tv_sec: step.as_secs() as i64,
                        tv_nsec: i64::from(step.subsec_nanos()),
                    };
                    let _ = rustix::event::poll(&mut fds, Some(&ts));
                }
                None => std::thread::sleep(step.min(Duration::from_millis(10))),
            }
        }
    }

    /// Waits for the monitor's exit file after the process is gone.
    pub(crate) fn wait_exit_file(&self, rec: &ContainerRecord, timeout: Duration) {
        let dir = self.paths.container_run_dir(&rec.id);
        let deadline = Instant::now() + timeout;
        while monitor::read_exit(&dir).is_none()
            && Instant::now() < deadline
            && rec.state.monitor_pid > 0
            && alive(rec.state.monitor_pid, 0)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout`
    /// seconds (default: its stop timeout). Stopping a stopped container
    /// is not an error (podman).
    pub fn stop(&mut self, name: &str, timeout: Option<u32>) -> Result<ContainerRecord> {
        let rec = self.lookup(name)?;
        let rec = self.refresh(rec)?;
        if !matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        ) {
            return Ok(rec);
        }
        let rec = self.modify(&rec.id, |r| {
            r.state.stopped_by_user = true;
            Ok(())
        })?;
        if rec.state.status == Status::Paused {
            let _ = self.run_runtime(&rec, &["resume", &rec.id]);
        }
        let timeout = timeout.unwrap_or(rec.config.stop_timeout);
        let sig = signal_number(&rec.config.stop_signal).unwrap_or(15);
        if timeout > 0 {
            let _ = self.run_runtime(&rec, &["kill", &rec.id, &sig.to_string()]);
        }
        if !self.wait_gone(&rec, Duration::from_secs(u64::from(timeout))) {
            tracing::info!(id = %rec.id, "timed out after {timeout}s: sending SIGKILL");
            let _ = self.run_runtime(&rec, &["kill", "--all", &rec.id, "9"]);
            self.wait_gone(&rec, Duration::from_secs(10));
        }
        self.wait_exit_file(&rec, Duration::from_secs(2));
        self.cleanup(&rec.id)?;
        Ok(self.db.get(Table::Containers, &rec.id)?.unwrap_or(rec))
    }

    /// Waits for the container to exit; returns its exit code.
    pub fn wait(&mut self, name: &str) -> Result<i32> {
        let rec = self.lookup(name)?;
        let id = rec.id.clone();
        let mut rec = self.refresh(rec)?;
        while matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        ) {
            self.wait_gone(&rec, Duration::from_hours(1));
            self.wait_exit_file(&rec, Duration::from_secs(2));
            rec = match self.db.get(Table::Containers, &id)? {
                Some(r) => self.refresh(r)?,
                None => return Err(EngineError::NoSuchContainer(name.to_string())),
            };
        }
        Ok(rec.state.exit_code)
    }

    /// Freezes a running container.
    pub fn pause(&mut self, name: &str) -> Result<ContainerRecord> {
        let rec = self.refresh(self.lookup(name)?)?;
        if rec.state.status != Status::Running {
            return Err(EngineError::InvalidState {
                name: rec.name.clone(),
                state: rec.state.status.as_str().into(),
                action: "pause".into(),
            });
        }
        self.run_runtime(&rec, &["pause", &rec.id])?;
        self.modify(&rec.id, |r| {
            r.state.status = Status::Paused;
            Ok(())
        })
    }

    /// Thaws a paused container.
    pub fn unpause(&mut self, name: &str) -> Result<ContainerRecord> {
        let rec = self.refresh(self.lookup(name)?)?;
        if rec.state.status != Status::Paused {
            return Err(EngineError::InvalidState {
                name: rec.name.clone(),
                state: rec.state.status.as_str().into(),
                action: "unpause".into(),
            });
        }
        self.run_runtime(&rec, &["resume", &rec.id])?;
        self.modify(&rec.id, |r| {
            r.state.status = Status::Running;
            Ok(())
        })
    }

    /// Removes a container; with `force` a running one is killed first.
    /// The infra container of a pod is refused without `force` (podman's
    /// message); with `force` its whole pod is removed.
    pub fn remove(&mut self, name: &str, force: bool, volumes: bool) -> Result<ContainerRecord> {
        self.remove_impl(name, force, volumes, false)
    }

    /// [`Self::remove`]; `in_pod_removal` when the pod removes its own
    /// containers (the infra last).
    pub(crate) fn remove_impl(
        &mut self,
        name: &str,
        force: bool,
        volumes: bool,
        in_pod_removal: bool,
    ) -> Result<ContainerRecord> {
        let rec = self.lookup(name)?;
        if let (true, false, Some(pod)) = (rec.config.infra, in_pod_removal, &rec.pod) {
            if self
                .db
                .get::<crate::pods::PodRecord>(Table::Pods, pod)?
                .is_some()
            {
                if !force {
                    return Err(EngineError::Invalid(format!(
                        "container {} is the infra container of pod {pod} and cannot be removed without removing the pod",
                        rec.id
                    )));
                }
                let r = self.pod_remove(
                    pod,
                    &crate::pods::PodRemoveOptions {
                        force: true,
                        timeout: None,
                        volumes,
                    },
                )?;
                if let Some(e) = r.errors.into_iter().next() {
                    return Err(e.error);
                }
                return Ok(rec);
            }
        }
        if rec.state.status == Status::Removing && !rec.state.prepared {
            // A removal died half-way: finish it.
            self.remove_record(&rec, volumes)?;
            return Ok(rec);
        }
        let live = matches!(
            rec.state.status,
            Status::Running | Status::Paused | Status::Stopping
        ) && alive(rec.state.pid, rec.state.pid_start);
        if live {
            if !force {
                return Err(EngineError::Invalid(format!(
                    "cannot remove container {} as it is {} - running or paused containers cannot be removed without force",
                    rec.id,
                    rec.state.status.as_str()
                )));
            }
            // Not to be restarted by its restart policy meanwhile.
            self.modify(&rec.id, |r| {
                r.state.stopped_by_user = true;
                Ok(())
            })?;
            let _ = self.run_runtime(&rec, &["kill", "--all", &rec.id, "9"]);
            self.wait_gone(&rec, Duration::from_secs(10));
        }
        self.remove_record(&rec, volumes)?;
        Ok(rec)
    }

    /// Releases everything of a stopped container and deletes its record.
    fn remove_record(&mut self, rec: &ContainerRecord, volumes: bool) -> Result<()> {
        let _lock = self.lock(&rec.id)?;
        // Dependent containers (sharing its network) block removal.
        for other in self.containers()? {
            if other.id != rec.id && other.network() == NetworkMode::Container(rec.id.clone()) {
                return Err(EngineError::Invalid(format!(
                    "container {} has dependent containers which must be removed before it: {}",
                    rec.id, other.id
                )));
            }
        }
        let Some(current) = self.db.get::<ContainerRecord>(Table::Containers, &rec.id)? else {
            self.forget_lock(&rec.id);
            return Ok(());
        };
        self.modify(&rec.id, |r| {
            r.state.status = Status::Removing;
            Ok(())
        })?;
        let cdir = self.paths.container_dir(&rec.id);
        let rundir = self.paths.container_run_dir(&rec.id);
        let remove_files = |_: &mut Self| -> Result<()> {
            let _ =
                rustix::mount::unmount(cdir.join("rootfs"), rustix::mount::UnmountFlags::DETACH);
            crate::pods::unmount_shm(&cdir);
            if cdir.exists() {
                std::fs::remove_dir_all(&cdir)
                    .map_err(EngineError::io(format!("removing {}", cdir.display())))?;
            }
            remove_run_dir(&rundir);
            Ok(())
        };
        let mut removed = Ok(());
        if current.state.prepared {
            self.release_with(&current, |e| removed = remove_files(e));
        } else {
            removed = remove_files(self);
        }
        removed?;
        crate::timing::mark("remove: files removed");
        let id = rec.id.clone();
        self.db.write(|tx| {
            tx.release_addresses(&id, None)?;
            tx.delete(Table::Containers, &id)?;
            Ok::<_, EngineError>(())
        })?;
        // Anonymous volumes go with the container when asked (and always
        // with --rm, as podman does).
        if volumes || rec.config.auto_remove {
            self.remove_anonymous_volumes(&rec.id)?;
        }
        self.forget_lock(&rec.id);
        Ok(())
    }

    /// Exec's a process in a running container through the runtime. With
    /// `detach` the runtime returns at once; otherwise the process's
    /// exit code is returned (stdio inherited from the caller, or a
    /// terminal when `tty`).
    pub fn exec(&mut self, name: &str, opts: &ExecOptions) -> Result<i32> {
        let rec = self.refresh(self.lookup(name)?)?;
        if rec.state.status != Status::Running {
            return Err(EngineError::InvalidState {
                name: rec.name.clone(),
                state: rec.state.status.as_str().into(),
                action: "exec into".into(),
            });
        }
        // 127/126 for a command that cannot run, whatever the runtime (its
        // own exit code for that is 1 or 255 and indistinguishable from
        // the command's).
        if let Some(arg0) = opts.command.first() {
            let env = super::merge_env(&rec.config.env, &opts.env);
            let workdir = if opts.workdir.is_empty() {
                rec.config.workdir.as_str()
            } else {
                opts.workdir.as_str()
            };
            check_exec_command(&rec.id, rec.state.pid, arg0, &env, workdir)?;
        }
        let mut cmd = self.runtime_cmd(&rec);
        cmd.arg("exec");
        if opts.detach {
            cmd.arg("--detach");
        }
        if opts.tty {
            cmd.arg("--tty");
        }
        if !opts.workdir.is_empty() {
            cmd.arg("--cwd").arg(&opts.workdir);
        } else if !rec.config.workdir.is_empty() {
            cmd.arg("--cwd").arg(&rec.config.workdir);
        }
        let user = if opts.user.is_empty() {
            &rec.config.user
        } else {
            &opts.user
        };
        if !user.is_empty() {
            let rootfs = self.paths.container_dir(&rec.id).join("rootfs");
            let (uid, gid, groups) = resolve_user(&rootfs, user)?;
            cmd.arg("--user").arg(format!("{uid}:{gid}"));
            for g in groups {
                cmd.arg("--additional-gids").arg(g.to_string());
            }
        }
        let mut env = rec.config.env.clone();
        env = super::merge_env(&env, &opts.env);
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        for e in &env {
            cmd.arg("--env").arg(e);
        }
        if opts.privileged || rec.config.privileged {
            for c in spec::host_caps() {
                cmd.arg("--cap").arg(c);
            }
        }
        cmd.arg(&rec.id).args(&opts.command);
        if opts.detach {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let out = cmd
                .output()
                .map_err(EngineError::io("running the runtime's exec"))?;
            if !out.status.success() {
                return Err(EngineError::Runtime {
                    id: rec.id.clone(),
                    message: runtime_message(&out.stderr),
                    exit_code: out.status.code(),
                });
            }
            return Ok(0);
        }
        if opts.tty {
            return crate::containers::tty::exec_with_terminal(cmd, opts.interactive);
        }
        if !opts.interactive {
            cmd.stdin(Stdio::null());
        }
        let status = cmd
            .status()
            .map_err(EngineError::io("running the runtime's exec"))?;
        Ok(status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
        }))
    }
}

/// Fails with podman's 127 (not found) or 126 (not executable) error when
/// `arg0` cannot be run in the container of init `pid`: looked up (in the
/// `PATH` of `env` unless it has a slash) inside the container's root as
/// the process sees it, symlinks resolved in that root. Anything unclear
/// (the process is gone, /proc unreadable) is left to the runtime.
fn check_exec_command(id: &str, pid: i32, arg0: &str, env: &[String], workdir: &str) -> Result<()> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let Ok(root) = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Ok(());
    };
    // (exists, is a directory, has an exec bit)
    let probe = |path: &str| -> Option<(bool, bool)> {
        let fd = rustix::fs::openat2(
            &root,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let mode = rustix::fs::FileType::from_raw_mode(st.st_mode);
        Some((
            mode == rustix::fs::FileType::Directory,
            st.st_mode & 0o111 != 0,
        ))
    };
    let not_found = || {
        EngineError::Runtime {
        id: id.to_string(),
        message: format!(
            "exec: \"{arg0}\": executable file not found in $PATH: OCI runtime attempted to invoke a command that was not found"
        ),
        exit_code: Some(127),
    }
    };
    let denied = || EngineError::Runtime {
        id: id.to_string(),
        message: format!("exec: \"{arg0}\": permission denied: OCI permission denied"),
        exit_code: Some(126),
    };
    if arg0.contains('/') {
        let path = if arg0.starts_with('/') || workdir.is_empty() {
            arg0.to_string()
        } else {
            format!("{workdir}/{arg0}")
        };
        return match probe(&path) {
            None => Err(not_found()),
            Some((true, _) | (false, false)) => Err(denied()),
            Some((false, true)) => Ok(()),
        };
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path_var.split(':').filter(|d| d.starts_with('/')) {
        if let Some((false, true)) = probe(&format!("{dir}/{arg0}")) {
            return Ok(());
        }
    }
    Err(not_found())
}

/// Options of [`Engine::exec`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command.
    pub command: Vec<String>,
    /// Extra environment.
    pub env: Vec<String>,
    /// `USER[:GROUP]`.
    pub user: String,
    /// Working directory.
    pub workdir: String,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub interactive: bool,
    /// Do not wait.
    pub detach: bool,
    /// All capabilities.
    pub privileged: bool,
}

use crate::volumes::anonymous_name as anonymous_volume_name;

/// The runtime's error text: its last JSON log message, else its stderr.
pub fn runtime_message(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut msg = String::new();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                msg = m.to_string();
                continue;
            }
        }
        if !line.trim().is_empty() {
            msg = line.trim().to_string();
        }
    }
    msg
}

/// Removes a container's run directory. The monitor may be writing its
/// exit file while the directory is emptied (`rm -f` removes files while
/// the runtime kills the container): try again while new entries keep the
/// directory from going (up to half a second); once it is gone the
/// monitor cannot create anything in it.
fn remove_run_dir(dir: &Path) {
    for _ in 0..100 {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => return,
        }
    }
}

/// Reads a file of the container's root filesystem, never leaving it.
pub fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    use std::io::Read as _;
    let root = rustix::fs::open(
        rootfs,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        root.as_fd(),
        rel,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
        rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Resolves `USER[:GROUP]` (names or numbers) against the container's
/// `/etc/passwd` and `/etc/group`; returns uid, gid and supplementary gids.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<(u32, u32, Vec<u32>)> {
    if spec.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let groups = read_in_root(rootfs, "etc/group").unwrap_or_default();
    let mut uid = None;
    let mut gid = None;
    let mut uname = None;
    for l in passwd.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        if f[0] == user || f[2] == user {
            uid = f[2].parse::<u32>().ok();
            gid = f[3].parse::<u32>().ok();
            uname = Some(f[0].to_string());
            break;
        }
    }
    let uid = match uid {
        Some(u) => u,
        None => user.parse::<u32>().map_err(|_| {
            EngineError::Invalid(format!(
                "unable to find user {user}: no matching entries in passwd file"
            ))
        })?,
    };
    let gid = match group {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        },
        None => gid.unwrap_or(0),
    };
    let mut extra = Vec::new();
    if let Some(name) = uname {
        for l in groups.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !extra.contains(&g) {
                        extra.push(g);
                    }
                }
            }
        }
    }
    Ok((uid, gid, extra))
}

/// The overlay options after the directories: `userxattr` in a user
/// namespace (the `trusted.` xattrs and `redirect_dir`/`metacopy` options
/// need root on the host), else `redirect_dir=off,metacopy=off`.
pub fn overlay_extra_options() -> &'static str {
    if barge_image::in_user_namespace() {
        "userxattr"
    } else {
        "redirect_dir=off,metacopy=off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(signal_number("SIGTERM").unwrap(), 15);
        assert_eq!(signal_number("kill").unwrap(), 9);
        assert_eq!(signal_number("2").unwrap(), 2);
        assert_eq!(signal_number("RTMIN+1").unwrap(), 35);
        assert!(signal_number("SIGBOGUS").is_err());
        assert!(signal_number("0").is_err());
    }

    #[test]
    fn users_resolve_in_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1000::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nweb:x:1000:\nwheel:x:10:web\n",
        )
        .unwrap();
        assert_eq!(
            resolve_user(d.path(), "web").unwrap(),
            (1000, 1000, vec![10])
        );
        assert_eq!(
            resolve_user(d.path(), "1000:wheel").unwrap(),
            (1000, 10, vec![])
        );
        assert_eq!(resolve_user(d.path(), "4242").unwrap(), (4242, 0, vec![]));
        assert!(resolve_user(d.path(), "nobody-here").is_err());
        // A symlinked /etc/passwd cannot lead out of the root.
        std::fs::remove_file(d.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).unwrap();
        assert!(resolve_user(d.path(), "root").is_err());
        assert!(read_in_root(d.path(), "etc/passwd").is_none());
    }
}
