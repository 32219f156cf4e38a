//! [`SqliteStore`]: the [`RunStore`] of one process (`--store sqlite:PATH`), in one `SQLite` file.
//!
//! One table, `incidents`, keyed by the incident key, with the state, the owner, when it last
//! changed, the pending approval's id (unique when set) and the whole [`IncidentRecord`] as
//! JSON. The file is created with mode 0600, opened in WAL mode with a busy timeout, and every
//! transition runs in a `BEGIN IMMEDIATE` transaction, so it is atomic even when two processes
//! share the file. `PRAGMA user_version` holds the schema version; a file of an unknown version
//! is refused, never rewritten.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use sre_core::{Answer, ParkedRun};

use super::store::{
    ApprovalView, Claimed, DecideError, Incident, IncidentRecord, IncidentState, RunStore,
    StoreError,
};

/// The schema version this build reads and writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's lock before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE incidents (
    key         TEXT PRIMARY KEY NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'parked', 'closed')),
    owner       TEXT NOT NULL,
    updated_ms  INTEGER NOT NULL,
    approval_id TEXT,
    record      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX incidents_approval ON incidents (approval_id) WHERE approval_id IS NOT NULL;
CREATE INDEX incidents_state ON incidents (state, updated_ms);
";

/// The [`RunStore`] of a single process: one `SQLite` file (or an in-memory database for tests).
///
/// ```no_run
/// # async fn example() -> Result<(), sre_tools::serve::StoreError> {
/// use sre_tools::serve::{RunStore, SqliteStore};
///
/// let store = SqliteStore::open("/var/lib/sre-agent/runs.db")?;
/// let pending = store.approvals(sre_core::park::now_unix_ms()).await?;
/// println!("{} approvals", pending.len());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// Where it lives, for messages (`:memory:` for an in-memory database).
    place: Arc<str>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.place)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it with mode 0600 when missing) the store at `path`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] naming the path when the file cannot be created or opened, is
    /// not an `SQLite` database, belongs to something else, or has a schema version this build
    /// does not know.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let place = path.display().to_string();
        create_private(path).map_err(|e| {
            StoreError::Backend(format!("sqlite {place}: cannot create the file: {e}"))
        })?;
        let conn = Connection::open(path).map_err(|e| backend(&place, "cannot open", &e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| backend(&place, "cannot set the busy timeout", &e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| {
                backend(
                    &place,
                    "cannot switch to WAL mode (is it an SQLite file?)",
                    &e,
                )
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "sqlite {place}: the journal mode stayed {mode:?}; WAL is needed (is the file on a network filesystem?)"
            )));
        }
        Self::init(conn, place)
    }

    /// A store in memory, gone when the last clone is dropped (for tests and one-shot runs).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when `SQLite` cannot allocate the database.
    pub fn in_memory() -> Result<Self, StoreError> {
        let place = ":memory:".to_owned();
        let conn =
            Connection::open_in_memory().map_err(|e| backend(&place, "cannot create", &e))?;
        Self::init(conn, place)
    }

    fn init(mut conn: Connection, place: String) -> Result<Self, StoreError> {
        migrate(&mut conn, &place)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            place: place.into(),
        })
    }

    /// Runs `f` on the connection on the blocking pool.
    async fn call<T, E>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let place = Arc::clone(&self.place);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| {
                StoreError::Backend(format!(
                    "sqlite {place}: the connection is unusable (a previous call panicked)"
                ))
            })?;
            f(&mut guard, &place)
        })
        .await
        .map_err(|e| {
            E::from(StoreError::Backend(format!(
                "sqlite {}: the blocking task failed: {e}",
                self.place
            )))
        })?
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

fn backend(place: &str, what: &str, e: &rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite {place}: {what}: {e}"))
}

/// Creates the schema in an empty database, accepts one of this version, refuses anything else.
fn migrate(conn: &mut Connection, place: &str) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| backend(place, "cannot read the schema (is it an SQLite file?)", &e))?;
    let version: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| backend(place, "cannot read the schema version", &e))?;
    match version {
        0 => {
            let tables: i64 = tx
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| backend(place, "cannot list the tables", &e))?;
            if tables > 0 {
                return Err(StoreError::Backend(format!(
                    "sqlite {place}: the database has {tables} table(s) but no sre-agent schema version; \
                     it is not an sre-agent run store (use a new file)"
                )));
            }
            tx.execute_batch(SCHEMA)
                .map_err(|e| backend(place, "cannot create the schema", &e))?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(|e| backend(place, "cannot set the schema version", &e))?;
            tx.commit()
                .map_err(|e| backend(place, "cannot commit the schema", &e))
        }
        SCHEMA_VERSION => Ok(()),
        other => Err(StoreError::Backend(format!(
            "sqlite {place}: schema version {other} is unknown to this sre-agent (it knows version {SCHEMA_VERSION}); \
             a newer sre-agent wrote it — run that version, or point --store at a new file"
        ))),
    }
}

fn ms_to_sql(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

fn state_str(state: IncidentState) -> &'static str {
    match state {
        IncidentState::Running => "running",
        IncidentState::Parked => "parked",
        IncidentState::Closed => "closed",
    }
}

/// Writes `record` (insert or replace) inside `tx`.
fn write(
    tx: &rusqlite::Transaction<'_>,
    place: &str,
    record: &IncidentRecord,
) -> Result<(), StoreError> {
    let json = transition::encode(record)?;
    let key = &record.incident.key;
    let approval = transition::approval_id(record);
    tx.execute(
        "INSERT INTO incidents (key, state, owner, updated_ms, approval_id, record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET state = excluded.state, owner = excluded.owner,
           updated_ms = excluded.updated_ms, approval_id = excluded.approval_id, record = excluded.record",
        params![
            key,
            state_str(record.state),
            record.owner,
            ms_to_sql(record.updated_ms),
            approval,
            json
        ],
    )
    .map_err(|e| match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Backend(format!(
                "sqlite {place}: approval {} of incident {key:?} is already stored under another incident",
                approval.unwrap_or_default()
            ))
        }
        _ => backend(place, &format!("cannot write incident {key:?}"), &e),
    })?;
    Ok(())
}

fn begin<'c>(
    conn: &'c mut Connection,
    place: &str,
) -> Result<rusqlite::Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| backend(place, "cannot begin a transaction", &e))
}

fn commit(tx: rusqlite::Transaction<'_>, place: &str) -> Result<(), StoreError> {
    tx.commit().map_err(|e| backend(place, "cannot commit", &e))
}

fn read(
    tx: &rusqlite::Transaction<'_>,
    place: &str,
    key: &str,
) -> Result<Option<IncidentRecord>, StoreError> {
    let json: Option<String> = tx
        .query_row("SELECT record FROM incidents WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| backend(place, &format!("cannot read incident {key:?}"), &e))?;
    json.map(|j| transition::parse(key, &j)).transpose()
}

/// Every (key, record JSON) in `state`, oldest change first.
fn rows_in(
    conn: &Connection,
    place: &str,
    state: IncidentState,
) -> Result<Vec<(String, String)>, StoreError> {
    let what = format!("cannot list {} incidents", state_str(state));
    let mut stmt = conn
        .prepare_cached(
            "SELECT key, record FROM incidents WHERE state = ?1 ORDER BY updated_ms, key",
        )
        .map_err(|e| backend(place, &what, &e))?;
    let rows = stmt
        .query_map([state_str(state)], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(|e| backend(place, &what, &e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| backend(place, &what, &e))
}

/// Loads `key`, applies `change`, writes it back, all in one immediate transaction.
fn update(
    conn: &mut Connection,
    place: &str,
    key: &str,
    change: impl FnOnce(&mut IncidentRecord) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let tx = begin(conn, place)?;
    let mut record = read(&tx, place, key)?.ok_or_else(|| StoreError::NotFound(key.to_owned()))?;
    change(&mut record)?;
    write(&tx, place, &record)?;
    commit(tx, place)
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn open(
        &self,
        incident: &Incident,
        owner: &str,
        now_ms: u64,
        cooldown: Duration,
    ) -> Result<bool, StoreError> {
        let record = transition::fresh(incident, owner, now_ms);
        let cutoff = ms_to_sql(now_ms.saturating_sub(transition::millis(cooldown)));
        self.call(move |conn, place| {
            let tx = begin(conn, place)?;
            // Closed records past the cooldown no longer hold anything back: drop them.
            tx.execute(
                "DELETE FROM incidents WHERE state = 'closed' AND updated_ms <= ?1",
                [cutoff],
            )
            .map_err(|e| backend(place, "cannot prune closed incidents", &e))?;
            let held: Option<String> = tx
                .query_row(
                    "SELECT state FROM incidents WHERE key = ?1",
                    [&record.incident.key],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| {
                    backend(
                        place,
                        &format!("cannot read incident {:?}", record.incident.key),
                        &e,
                    )
                })?;
            if held.is_some() {
                return Ok(false);
            }
            write(&tx, place, &record)?;
            commit(tx, place)?;
            Ok(true)
        })
        .await
    }

    async fn park(&self, key: &str, owner: &str, run: &ParkedRun) -> Result<(), StoreError> {
        let (key, owner, run) = (key.to_owned(), owner.to_owned(), run.clone());
        let now = sre_core::park::now_unix_ms();
        self.call(move |conn, place| {
            update(conn, place, &key, |r| transition::park(r, &owner, run, now))
        })
        .await
    }

    async fn close(&self, key: &str, owner: &str, outcome: &str) -> Result<(), StoreError> {
        let (key, owner, outcome) = (key.to_owned(), owner.to_owned(), outcome.to_owned());
        let now = sre_core::park::now_unix_ms();
        self.call(move |conn, place| {
            update(conn, place, &key, |r| {
                transition::close(r, &owner, &outcome, now)
            })
        })
        .await
    }

    async fn release(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let owner = owner.to_owned();
        self.call(move |conn, place| {
            let tx = begin(conn, place)?;
            let keys = {
                let mut stmt = tx
                    .prepare(
                        "DELETE FROM incidents WHERE state = 'running' AND owner <> ?1 RETURNING key",
                    )
                    .map_err(|e| backend(place, "cannot release running incidents", &e))?;
                let rows = stmt
                    .query_map([&owner], |r| r.get::<_, String>(0))
                    .map_err(|e| backend(place, "cannot release running incidents", &e))?;
                rows.collect::<Result<Vec<_>, _>>()
                    .map_err(|e| backend(place, "cannot release running incidents", &e))?
            };
            commit(tx, place)?;
            let mut keys = keys;
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn approvals(&self, now_ms: u64) -> Result<Vec<ApprovalView>, StoreError> {
        self.call(move |conn, place| {
            let mut views = Vec::new();
            for (key, json) in rows_in(conn, place, IncidentState::Parked)? {
                let record = transition::parse(&key, &json)?;
                views.extend(ApprovalView::of(&record, now_ms));
            }
            transition::sort_views(&mut views);
            Ok(views)
        })
        .await
    }

    async fn decide(
        &self,
        id: &str,
        action: Option<&str>,
        answer: &Answer,
    ) -> Result<ApprovalView, DecideError> {
        let (id, action, answer) = (id.to_owned(), action.map(str::to_owned), answer.clone());
        let now = sre_core::park::now_unix_ms();
        self.call(move |conn, place| {
            let tx = begin(conn, place)?;
            let row: Option<(String, String)> = tx
                .query_row(
                    "SELECT key, record FROM incidents WHERE approval_id = ?1",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| backend(place, &format!("cannot look up approval {id:?}"), &e))?;
            let Some((key, json)) = row else {
                return Err(DecideError::NotFound(id));
            };
            let mut record = transition::parse(&key, &json)?;
            let view = transition::decide(&mut record, &id, action.as_deref(), &answer, now)?;
            write(&tx, place, &record)?;
            commit(tx, place)?;
            Ok(view)
        })
        .await
    }

    async fn claim(&self, owner: &str, now_ms: u64) -> Result<Option<Claimed>, StoreError> {
        let owner = owner.to_owned();
        self.call(move |conn, place| {
            let tx = begin(conn, place)?;
            let mut corrupt = None;
            for (key, json) in rows_in(&tx, place, IncidentState::Parked)? {
                let mut record = match transition::parse(&key, &json) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(store = %place, incident = %key, error = %e, "skipping a corrupt parked run");
                        corrupt.get_or_insert(e);
                        continue;
                    }
                };
                if let Some(claimed) = transition::claim(&mut record, &owner, now_ms) {
                    write(&tx, place, &record)?;
                    commit(tx, place)?;
                    return Ok(Some(claimed));
                }
            }
            corrupt.map_or(Ok(None), Err)
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<IncidentRecord>, StoreError> {
        let key = key.to_owned();
        self.call(move |conn, place| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(|e| backend(place, "cannot begin a transaction", &e))?;
            read(&tx, place, &key)
        })
        .await
    }
}

// Public types are Send + Sync: `serve` shares them across tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
};

/// The transitions of the record life cycle as pure functions over an [`IncidentRecord`],
/// shared by both stores so they cannot disagree; each store only adds its own atomicity.
pub(super) mod transition {
    use std::time::Duration;

    use sre_core::{Answer, ParkedRun};

    use crate::serve::store::{
        ApprovalView, Claimed, DecideError, Incident, IncidentRecord, IncidentState, StoreError,
        ready,
    };

    /// `d` in whole milliseconds (saturating).
    pub(in crate::serve) fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// A new running record of `incident` for `owner`.
    pub(in crate::serve) fn fresh(incident: &Incident, owner: &str, now_ms: u64) -> IncidentRecord {
        IncidentRecord {
            incident: incident.clone(),
            state: IncidentState::Running,
            owner: owner.to_owned(),
            updated_ms: now_ms,
            run: None,
            answer: None,
            outcome: None,
        }
    }

    /// True when a record in `state`, changed at `updated_ms`, no longer holds its key at
    /// `now_ms`: closed at least `cooldown` ago.
    pub(in crate::serve) fn reopenable(
        state: IncidentState,
        updated_ms: u64,
        now_ms: u64,
        cooldown: Duration,
    ) -> bool {
        state == IncidentState::Closed && now_ms.saturating_sub(updated_ms) >= millis(cooldown)
    }

    /// The record stored under `key`, from its JSON.
    pub(in crate::serve) fn parse(key: &str, json: &str) -> Result<IncidentRecord, StoreError> {
        let record: IncidentRecord =
            serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
                key: key.to_owned(),
                message: format!("its JSON does not parse as an incident record: {e}"),
            })?;
        if record.incident.key != key {
            return Err(StoreError::Corrupt {
                key: key.to_owned(),
                message: format!("it holds incident {:?} instead", record.incident.key),
            });
        }
        Ok(record)
    }

    /// The JSON stored for `record`.
    pub(in crate::serve) fn encode(record: &IncidentRecord) -> Result<String, StoreError> {
        serde_json::to_string(record).map_err(|e| {
            StoreError::Backend(format!(
                "cannot encode incident {:?}: {e}",
                record.incident.key
            ))
        })
    }

    /// The id of the approval the record's run waits (or waited) for.
    pub(in crate::serve) fn approval_id(record: &IncidentRecord) -> Option<&str> {
        record
            .run
            .as_ref()
            .and_then(|r| r.approval.as_ref())
            .map(|a| a.id.as_str())
    }

    /// Parks `run`: only the owner of a running record may.
    pub(in crate::serve) fn park(
        record: &mut IncidentRecord,
        owner: &str,
        run: ParkedRun,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        if record.state != IncidentState::Running || record.owner != owner {
            return Err(StoreError::Conflict(record.incident.key.clone()));
        }
        record.state = IncidentState::Parked;
        record.run = Some(run);
        record.answer = None;
        record.updated_ms = now_ms;
        Ok(())
    }

    /// Closes the record: a running one by its owner, or a parked one (cancelled) by anyone.
    pub(in crate::serve) fn close(
        record: &mut IncidentRecord,
        owner: &str,
        outcome: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let allowed = match record.state {
            IncidentState::Running => record.owner == owner,
            IncidentState::Parked => true,
            IncidentState::Closed => false,
        };
        if !allowed {
            return Err(StoreError::Conflict(record.incident.key.clone()));
        }
        record.state = IncidentState::Closed;
        owner.clone_into(&mut record.owner);
        record.outcome = Some(outcome.to_owned());
        record.updated_ms = now_ms;
        Ok(())
    }

    /// Takes a ready parked record for `owner`.
    pub(in crate::serve) fn claim(
        record: &mut IncidentRecord,
        owner: &str,
        now_ms: u64,
    ) -> Option<Claimed> {
        if !ready(record, now_ms) {
            return None;
        }
        let run = record.run.clone()?;
        record.state = IncidentState::Running;
        owner.clone_into(&mut record.owner);
        record.updated_ms = now_ms;
        Some(Claimed {
            incident: record.incident.clone(),
            run,
            answer: record.answer.clone(),
        })
    }

    /// Records `answer` on approval `id` of `record`, or says why not (nothing changed then).
    pub(in crate::serve) fn decide(
        record: &mut IncidentRecord,
        id: &str,
        action: Option<&str>,
        answer: &Answer,
        now_ms: u64,
    ) -> Result<ApprovalView, DecideError> {
        let at = answer.decided_at_ms;
        let not_found = || DecideError::NotFound(id.to_owned());
        let Some(pending) = record
            .run
            .as_ref()
            .and_then(|r| r.approval.as_ref())
            .filter(|p| p.id == id)
            .cloned()
        else {
            return Err(not_found());
        };
        let view = |r: &IncidentRecord| ApprovalView::of(r, at).ok_or_else(not_found);
        if record.answer.is_some() {
            return Err(DecideError::AlreadyDecided(Box::new(view(record)?)));
        }
        if pending.expired_at(at) {
            return Err(DecideError::Expired(Box::new(view(record)?)));
        }
        if record.state != IncidentState::Parked {
            // The run went on without a decision (it was parked by a shutdown, or cancelled).
            return Err(not_found());
        }
        if let Some(named) = action
            && named != pending.action
        {
            return Err(DecideError::OtherAction {
                id: id.to_owned(),
                action: pending.action,
                named: named.to_owned(),
            });
        }
        record.answer = Some(answer.clone());
        record.updated_ms = record.updated_ms.max(now_ms);
        view(record)
    }

    /// The order both stores list approvals in: oldest request first.
    pub(in crate::serve) fn sort_views(views: &mut [ApprovalView]) {
        views.sort_by(|a, b| {
            (a.requested_at.as_str(), a.id.as_str()).cmp(&(b.requested_at.as_str(), b.id.as_str()))
        });
    }
}
