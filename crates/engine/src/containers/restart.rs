//! Restart policies (`--restart always|on-failure[:N]|unless-stopped`).
//!
//! Applied after the cleanup of an exit, by the monitor's exit command
//! (`barge container cleanup ID`) or by a foreground `run`/`start -a`
//! that cleans up itself; whichever comes second finds the container
//! running again and does nothing. The container is started
//! again unless the user stopped it (`stop`, `rm -f`), or, for
//! `on-failure`, it exited 0 or has been restarted N times already (N = 0:
//! no limit). Each policy restart bumps `RestartCount`; a start by the user
//! resets it (as podman does). There is no delay between restarts.
//! `unless-stopped` behaves as `always` (they differ only at boot, where
//! barge restarts nothing: there is no daemon).

use super::lifecycle::StartOptions;
use super::{ContainerRecord, Engine, Status};
use crate::db::Table;
use crate::error::EngineError;
use crate::Result;
use serde::{Deserialize, Serialize};

/// Which run the policy last started (`ROOT/containers/ID/restart.json`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Marker {
    started_at: i64,
}

/// Whether `rec` (just exited, with `count` policy restarts so far) is to
/// be started again.
pub fn should_restart(rec: &ContainerRecord, count: u32) -> bool {
    if rec.state.status != Status::Exited || rec.config.auto_remove || rec.state.stopped_by_user {
        return false;
    }
    let p = &rec.config.restart;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => rec.state.exit_code != 0 && (p.max_retries == 0 || count < p.max_retries),
        _ => false,
    }
}

impl Engine {
    /// Applies the container's restart policy after an exit; whether it
    /// was started again.
    pub fn restart_after_exit(&mut self, name: &str) -> Result<bool> {
        let rec = match self.lookup(name) {
            Ok(r) => r,
            Err(EngineError::NoSuchContainer(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        if rec.config.restart.name.is_empty() || rec.config.restart.name == "no" {
            return Ok(false);
        }
        let path = self.paths.container_dir(&rec.id).join("restart.json");
        let marker: Marker = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        // The run that ended was started by the policy only if the marker
        // says so; a user's start resets the count.
        let count = if marker.started_at == rec.state.started_at {
            rec.state.restart_count
        } else {
            0
        };
        let restart = {
            let _lock = self.lock(&rec.id)?;
            let Some(cur) = self.db.get::<ContainerRecord>(Table::Containers, &rec.id)? else {
                return Ok(false);
            };
            if cur.state.status != Status::Exited {
                // Started again meanwhile (by the user, or by the other
                // cleanup of the same exit): nothing to do.
                return Ok(false);
            }
            let restart = should_restart(&cur, count);
            let new_count = if restart { count + 1 } else { count };
            if new_count != cur.state.restart_count {
                self.modify(&rec.id, |r| {
                    r.state.restart_count = new_count;
                    Ok(())
                })?;
            }
            restart
        };
        if !restart {
            return Ok(false);
        }
        tracing::info!(id = %rec.id, policy = %rec.config.restart.name, "restarting");
        let (started, _) = self.start(&rec.id, StartOptions::default())?;
        let data = serde_json::to_vec(&Marker {
            started_at: started.state.started_at,
        })
        .map_err(|e| EngineError::Invalid(format!("restart marker: {e}")))?;
        std::fs::write(&path, data)
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containers::{ContainerConfig, RestartPolicy, State};

    fn rec(policy: &str, code: i32, by_user: bool) -> ContainerRecord {
        ContainerRecord {
            id: "0".repeat(64),
            name: "n".into(),
            image_id: String::new(),
            image_name: String::new(),
            created: 0,
            config: ContainerConfig {
                restart: RestartPolicy::parse(policy).unwrap(),
                ..ContainerConfig::default()
            },
            state: State {
                status: Status::Exited,
                exit_code: code,
                stopped_by_user: by_user,
                ..State::default()
            },
            pod: None,
        }
    }

    #[test]
    fn policies() {
        assert!(should_restart(&rec("always", 0, false), 7));
        assert!(!should_restart(&rec("always", 0, true), 0));
        assert!(should_restart(&rec("unless-stopped", 1, false), 0));
        assert!(should_restart(&rec("on-failure:2", 1, false), 1));
        assert!(!should_restart(&rec("on-failure:2", 1, false), 2));
        assert!(!should_restart(&rec("on-failure:2", 0, false), 0));
        assert!(should_restart(&rec("on-failure", 3, false), 100));
        assert!(!should_restart(&rec("no", 1, false), 0));
    }
}
