//! The engine's state: one SQLite database (WAL mode) shared by every
//! `barge` process. Writers take `BEGIN IMMEDIATE` transactions and wait up
//! to [`BUSY_TIMEOUT`] for each other, so concurrent CLI calls are safe.
//!
//! Records are stored as a few indexed columns plus the whole record as
//! JSON, so adding a field never needs a schema migration.

use crate::error::EngineError;
use rusqlite::{params, Connection, OptionalExtension as _, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a writer waits for another one before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS addresses (
    network   TEXT NOT NULL,
    address   TEXT NOT NULL,
    container TEXT NOT NULL,
    PRIMARY KEY (network, address)
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pods (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    data TEXT NOT NULL
);
";

/// Errors of the state database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A stored record does not parse.
    #[error("state database {path}: corrupt record {key}: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// The record's key.
        key: String,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// The database file could not be created or made private.
    #[error("state database {path}: {source}")]
    Io {
        /// The database file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// Creates `path` mode 0600 when missing (SQLite gives its `-wal` and
/// `-shm` files the same mode), or takes group and other permissions
/// from a file of ours that has them (and from its `-wal`/`-shm`): the
/// records hold the containers' configurations, environment included.
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let me = rustix::process::geteuid().as_raw();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let Ok(m) = std::fs::metadata(&p) else {
            continue;
        };
        let mode = m.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 && m.uid() == me {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7700))?;
        }
    }
    Ok(())
}

impl From<DbError> for EngineError {
    fn from(e: DbError) -> Self {
        Self::Db(Box::new(e))
    }
}

/// An open state database.
pub struct Db {
    conn: Connection,
    path: PathBuf,
}

/// The tables holding JSON records keyed by a primary key.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    /// Containers (key: id; also unique by name).
    Containers,
    /// Networks (key: name).
    Networks,
    /// Volumes (key: name).
    Volumes,
    /// Pods (key: id; also unique by name).
    Pods,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Containers => "containers",
            Self::Networks => "networks",
            Self::Volumes => "volumes",
            Self::Pods => "pods",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Containers | Self::Pods => "id",
            Self::Networks | Self::Volumes => "name",
        }
    }
}

/// Outcome of an insert into a table with unique names.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The record was stored.
    Yes,
    /// The key or name is taken.
    Conflict,
}

impl Db {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let err = |source| DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        private_file(path).map_err(|e| DbError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
        // WAL lets readers run beside one writer; NORMAL sync is durable
        // across process crashes (the only failures the state must survive
        // consistently; a power loss may lose the last transactions).
        // Switching to WAL needs the database to itself and does not wait
        // on the busy handler: when many CLIs open a new database at once,
        // retry until one of them has switched it (the mode is persistent).
        let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
        loop {
            let mode: Result<String, _> = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0));
            if mode.as_deref().is_ok_and(|m| m.eq_ignore_ascii_case("wal")) {
                break;
            }
            match conn.pragma_update(None, "journal_mode", "WAL") {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => return Err(err(e)),
            }
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        // Every CLI call is a short-lived connection: by default the last
        // one to close checkpoints the WAL into the database and fsyncs it
        // (several ms, far more while other processes write to the disk).
        // Leave that to SQLite's automatic checkpoints (every 1000 pages);
        // the WAL is as durable as before (synchronous=NORMAL).
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        |source| DbError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` in an immediate (write-locked) transaction: other writers
    /// wait until it commits. `f`'s error rolls the transaction back.
    pub fn write<T, E: From<DbError>>(
        &mut self,
        f: impl FnOnce(&Tx<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let path = self.path.clone();
        let err = move |source| DbError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let out = f(&Tx {
            tx: &tx,
            path: &self.path,
        })?;
        tx.commit().map_err(&err)?;
        Ok(out)
    }

    /// Reads one record.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, DbError> {
        get(&self.conn, &self.path, table, key)
    }

    /// Reads every record of a table.
    pub fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, DbError> {
        all(&self.conn, &self.path, table)
    }

    /// Looks up a container or pod by exact name; returns its id.
    pub fn id_by_name(&self, table: Table, name: &str) -> Result<Option<String>, DbError> {
        let sql = format!("SELECT id FROM {} WHERE name = ?1", table.name());
        self.conn
            .query_row(&sql, params![name], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Ids of a table starting with `prefix`.
    pub fn ids_with_prefix(&self, table: Table, prefix: &str) -> Result<Vec<String>, DbError> {
        let sql = format!(
            "SELECT {k} FROM {t} WHERE substr({k}, 1, ?2) = ?1",
            k = table.key(),
            t = table.name()
        );
        let mut st = self.conn.prepare(&sql).map_err(self.err())?;
        let rows = st
            .query_map(params![prefix, prefix.len() as i64], |r| r.get(0))
            .map_err(self.err())?;
        rows.collect::<Result<Vec<String>, _>>().map_err(self.err())
    }

    /// A container's addresses: (network, address).
    pub fn addresses_of(&self, container: &str) -> Result<Vec<(String, String)>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT network, address FROM addresses WHERE container = ?1")
            .map_err(self.err())?;
        let rows = st
            .query_map(params![container], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Addresses taken on a network.
    pub fn addresses(&self, network: &str) -> Result<Vec<(String, String)>, DbError> {
        let mut st = self
            .conn
            .prepare("SELECT address, container FROM addresses WHERE network = ?1")
            .map_err(self.err())?;
        let rows = st
            .query_map(params![network], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }
}

fn get<T: DeserializeOwned>(
    conn: &Connection,
    path: &Path,
    table: Table,
    key: &str,
) -> Result<Option<T>, DbError> {
    let sql = format!(
        "SELECT data FROM {} WHERE {} = ?1",
        table.name(),
        table.key()
    );
    let data: Option<String> = conn
        .query_row(&sql, params![key], |r| r.get(0))
        .optional()
        .map_err(|source| DbError::Sqlite {
            path: path.to_path_buf(),
            source,
        })?;
    data.map(|d| {
        serde_json::from_str(&d).map_err(|source| DbError::Corrupt {
            path: path.to_path_buf(),
            key: key.to_string(),
            source,
        })
    })
    .transpose()
}

fn all<T: DeserializeOwned>(
    conn: &Connection,
    path: &Path,
    table: Table,
) -> Result<Vec<T>, DbError> {
    let err = |source| DbError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let sql = format!(
        "SELECT {}, data FROM {} ORDER BY rowid",
        table.key(),
        table.name()
    );
    let mut st = conn.prepare(&sql).map_err(err)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(err)?;
    let mut out = Vec::new();
    for row in rows {
        let (key, data) = row.map_err(err)?;
        out.push(
            serde_json::from_str(&data).map_err(|source| DbError::Corrupt {
                path: path.to_path_buf(),
                key,
                source,
            })?,
        );
    }
    Ok(out)
}

/// A write transaction (see [`Db::write`]).
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
}

impl Tx<'_> {
    fn err(&self) -> impl Fn(rusqlite::Error) -> DbError + '_ {
        |source| DbError::Sqlite {
            path: self.path.to_path_buf(),
            source,
        }
    }

    /// Reads one record inside the transaction.
    pub fn get<T: DeserializeOwned>(&self, table: Table, key: &str) -> Result<Option<T>, DbError> {
        get(self.tx, self.path, table, key)
    }

    /// Looks up a container or pod by exact name inside the transaction.
    pub fn id_by_name(&self, table: Table, name: &str) -> Result<Option<String>, DbError> {
        let sql = format!("SELECT id FROM {} WHERE name = ?1", table.name());
        self.tx
            .query_row(&sql, params![name], |r| r.get(0))
            .optional()
            .map_err(self.err())
    }

    /// Reads every record of a table inside the transaction.
    pub fn all<T: DeserializeOwned>(&self, table: Table) -> Result<Vec<T>, DbError> {
        all(self.tx, self.path, table)
    }

    /// Inserts a record; `name` is required for tables with unique names.
    pub fn insert<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        name: Option<&str>,
        value: &T,
    ) -> Result<Inserted, DbError> {
        let data = serde_json::to_string(value).map_err(|source| DbError::Corrupt {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            source,
        })?;
        let res = match name {
            Some(n) => self.tx.execute(
                &format!(
                    "INSERT INTO {} ({}, name, data) VALUES (?1, ?2, ?3)",
                    table.name(),
                    table.key()
                ),
                params![key, n, data],
            ),
            None => self.tx.execute(
                &format!(
                    "INSERT INTO {} ({}, data) VALUES (?1, ?2)",
                    table.name(),
                    table.key()
                ),
                params![key, data],
            ),
        };
        match res {
            Ok(_) => Ok(Inserted::Yes),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(Inserted::Conflict)
            }
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Replaces a record (and its name, for tables with names).
    pub fn update<T: Serialize>(
        &self,
        table: Table,
        key: &str,
        name: Option<&str>,
        value: &T,
    ) -> Result<Inserted, DbError> {
        let data = serde_json::to_string(value).map_err(|source| DbError::Corrupt {
            path: self.path.to_path_buf(),
            key: key.to_string(),
            source,
        })?;
        let res = match name {
            Some(n) => self.tx.execute(
                &format!(
                    "UPDATE {} SET name = ?2, data = ?3 WHERE {} = ?1",
                    table.name(),
                    table.key()
                ),
                params![key, n, data],
            ),
            None => self.tx.execute(
                &format!(
                    "UPDATE {} SET data = ?2 WHERE {} = ?1",
                    table.name(),
                    table.key()
                ),
                params![key, data],
            ),
        };
        match res {
            Ok(_) => Ok(Inserted::Yes),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(Inserted::Conflict)
            }
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Deletes a record; whether it existed.
    pub fn delete(&self, table: Table, key: &str) -> Result<bool, DbError> {
        let n = self
            .tx
            .execute(
                &format!("DELETE FROM {} WHERE {} = ?1", table.name(), table.key()),
                params![key],
            )
            .map_err(self.err())?;
        Ok(n > 0)
    }

    /// Reserves `address` on `network` for `container`; false if taken.
    pub fn reserve_address(
        &self,
        network: &str,
        address: &str,
        container: &str,
    ) -> Result<bool, DbError> {
        let res = self.tx.execute(
            "INSERT INTO addresses (network, address, container) VALUES (?1, ?2, ?3)",
            params![network, address, container],
        );
        match res {
            Ok(_) => Ok(true),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Ok(false)
            }
            Err(e) => Err(self.err()(e)),
        }
    }

    /// Addresses taken on a network, inside the transaction.
    pub fn addresses(&self, network: &str) -> Result<Vec<String>, DbError> {
        let mut st = self
            .tx
            .prepare("SELECT address FROM addresses WHERE network = ?1")
            .map_err(self.err())?;
        let rows = st
            .query_map(params![network], |r| r.get(0))
            .map_err(self.err())?;
        rows.collect::<Result<Vec<String>, _>>().map_err(self.err())
    }

    /// Frees every address of a container (on all networks, or one).
    pub fn release_addresses(&self, container: &str, network: Option<&str>) -> Result<(), DbError> {
        match network {
            Some(n) => self.tx.execute(
                "DELETE FROM addresses WHERE container = ?1 AND network = ?2",
                params![container, n],
            ),
            None => self.tx.execute(
                "DELETE FROM addresses WHERE container = ?1",
                params![container],
            ),
        }
        .map_err(self.err())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Rec {
        id: String,
        n: u32,
    }

    #[test]
    fn insert_conflict_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("s.db")).unwrap();
        let a = Rec {
            id: "aaa".into(),
            n: 1,
        };
        let r = db
            .write(|tx| tx.insert(Table::Containers, "aaa", Some("one"), &a))
            .unwrap();
        assert_eq!(r, Inserted::Yes);
        let r = db
            .write(|tx| tx.insert(Table::Containers, "bbb", Some("one"), &a))
            .unwrap();
        assert_eq!(r, Inserted::Conflict, "names are unique");
        assert_eq!(
            db.id_by_name(Table::Containers, "one").unwrap().unwrap(),
            "aaa"
        );
        assert_eq!(
            db.ids_with_prefix(Table::Containers, "aa").unwrap(),
            ["aaa"]
        );
        let b = Rec {
            id: "aaa".into(),
            n: 2,
        };
        db.write(|tx| tx.update(Table::Containers, "aaa", Some("two"), &b))
            .unwrap();
        assert_eq!(db.get::<Rec>(Table::Containers, "aaa").unwrap().unwrap(), b);
        assert!(db.id_by_name(Table::Containers, "one").unwrap().is_none());
        assert!(db.write(|tx| tx.delete(Table::Containers, "aaa")).unwrap());
        assert!(db.all::<Rec>(Table::Containers).unwrap().is_empty());
    }

    #[test]
    fn failed_transaction_rolls_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("s.db")).unwrap();
        let r: Result<(), EngineError> = db.write(|tx| {
            tx.reserve_address("net", "10.0.0.2", "c1")?;
            Err(EngineError::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert!(db.addresses("net").unwrap().is_empty());
        db.write(|tx| {
            assert!(tx.reserve_address("net", "10.0.0.2", "c1")?);
            assert!(!tx.reserve_address("net", "10.0.0.2", "c2")?);
            Ok::<_, DbError>(())
        })
        .unwrap();
    }

    #[test]
    fn database_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let path = dir.path().join("s.db");
        let mut db = Db::open(&path).unwrap();
        let a = Rec {
            id: "aaa".into(),
            n: 1,
        };
        db.write(|tx| tx.insert(Table::Containers, "aaa", Some("one"), &a))
            .unwrap();
        drop(db);
        assert_eq!(mode(&path), 0o600);
        // One of ours readable by all (as barge made them before).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Db::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }
}
