//! The vault's disk side: one thread owning a SQLite connection that seals, stores, loads,
//! purges and erases vault rows, in the order asked.

use super::VaultError;
use super::session::SessionName;
use crate::audit::keys::{open, seal};
use crate::store::{StoreError, now_unix_ms};
use rusqlite::{Connection, params};
use std::path::Path;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Operations waiting for the disk at most, before callers wait for room.
const QUEUE: usize = 4096;
/// How often the writer deletes expired rows on its own (when it has work to do).
const PURGE_EVERY_MS: i64 = 60_000;

/// Rows of one session: tenant, owner and session id, and placeholder → value.
pub(super) struct SessionRows {
    pub tenant: String,
    pub session: SessionName,
    pub rows: Vec<(String, String)>,
    pub expires_ms: i64,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// What the writer thread does, in arrival order.
pub(super) enum Op {
    Save(SessionRows),
    Load {
        tenant: String,
        session: SessionName,
        reply: Reply<Option<SessionRows>>,
    },
    EraseSession {
        tenant: String,
        session: String,
        reply: Reply<usize>,
    },
    EraseTenant {
        tenant: String,
        reply: Reply<usize>,
    },
    Purge {
        reply: Reply<usize>,
    },
}

/// Sends operations to the writer thread.
#[derive(Clone)]
pub(super) struct Disk {
    tx: mpsc::Sender<Op>,
}

/// Owns the vault's writer thread; `finish` waits for it to write what was sent.
pub struct VaultWriter {
    handle: JoinHandle<()>,
}

impl VaultWriter {
    /// Waits until every operation sent before all vault handles were dropped is done.
    pub fn finish(self) {
        if self.handle.join().is_err() {
            tracing::error!("vault writer panicked");
        }
    }
}

/// Opens the state database and starts the writer; purges expired rows first.
pub(super) fn start(path: &Path, key: [u8; 32]) -> Result<(Disk, VaultWriter), StoreError> {
    let conn = crate::store::open(path, crate::tenancy::STATE_MIGRATIONS)?;
    // Deleted rows are overwritten, not just unlinked, so erased sessions leave no trace.
    conn.pragma_update(None, "secure_delete", true)?;
    purge(&conn)?;
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = std::thread::Builder::new()
        .name("pii-vault".into())
        .spawn(move || serve(&conn, &key, rx))?;
    Ok((Disk { tx }, VaultWriter { handle }))
}

impl Disk {
    /// Queues rows for writing; waits only for room in the queue.
    pub async fn save(&self, rows: SessionRows) -> Result<(), VaultError> {
        self.tx
            .send(Op::Save(rows))
            .await
            .map_err(|_| VaultError::WriterStopped)
    }

    /// Sends an operation that answers, and waits for the answer.
    pub async fn ask<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, VaultError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(op(reply))
            .await
            .map_err(|_| VaultError::WriterStopped)?;
        Ok(answer.await.map_err(|_| VaultError::WriterStopped)??)
    }
}

fn serve(conn: &Connection, key: &[u8; 32], mut rx: mpsc::Receiver<Op>) {
    let mut last_purge = now_unix_ms();
    while let Some(op) = rx.blocking_recv() {
        match op {
            Op::Save(rows) => {
                if let Err(e) = save(conn, key, &rows) {
                    tracing::error!(error = %e, tenant = %rows.tenant, rows = rows.rows.len(),
                        "vault rows not saved; those placeholders will not survive a restart");
                }
            }
            Op::Load {
                tenant,
                session,
                reply,
            } => drop(reply.send(load(conn, key, &tenant, &session))),
            Op::EraseSession {
                tenant,
                session,
                reply,
            } => drop(reply.send(erase(
                conn,
                "DELETE FROM pii_vault WHERE tenant_id = ?1 AND session_id = ?2",
                params![tenant, session],
            ))),
            Op::EraseTenant { tenant, reply } => drop(reply.send(erase(
                conn,
                "DELETE FROM pii_vault WHERE tenant_id = ?1",
                params![tenant],
            ))),
            Op::Purge { reply } => {
                last_purge = now_unix_ms();
                drop(reply.send(purge(conn)));
            }
        }
        if now_unix_ms() - last_purge > PURGE_EVERY_MS {
            last_purge = now_unix_ms();
            if let Err(e) = purge(conn) {
                tracing::warn!(error = %e, "expired vault rows not purged");
            }
        }
    }
}

/// The additional data a row's ciphertext is bound to: tenant, owning key and person,
/// session and placeholder, length-prefixed so no two tuples encode alike. A row moved to
/// another tenant, owner, session or placeholder does not open.
fn aad(tenant: &str, session: &SessionName, placeholder: &str) -> Vec<u8> {
    let mut out = b"airlock pii vault v2".to_vec();
    let owner = &session.owner;
    for part in [
        tenant,
        &owner.key_id,
        &owner.user_id,
        &session.id,
        placeholder,
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

fn save(conn: &Connection, key: &[u8; 32], rows: &SessionRows) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    let owner = &rows.session.owner;
    let now = now_unix_ms();
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO pii_vault
                 (tenant_id, key_id, user_id, session_id, placeholder, sealed, created_ms,
                  expires_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for (placeholder, value) in &rows.rows {
            let sealed = seal(
                key,
                &aad(&rows.tenant, &rows.session, placeholder),
                value.as_bytes(),
            )?;
            insert.execute(params![
                rows.tenant,
                owner.key_id,
                owner.user_id,
                rows.session.id,
                placeholder,
                sealed,
                now,
                rows.expires_ms
            ])?;
        }
    }
    tx.execute(
        "UPDATE pii_vault SET expires_ms = ?5
         WHERE tenant_id = ?1 AND key_id = ?2 AND user_id = ?3 AND session_id = ?4",
        params![
            rows.tenant,
            owner.key_id,
            owner.user_id,
            rows.session.id,
            rows.expires_ms
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// A session's unexpired rows, opened; rows that do not open (altered, moved) are skipped.
fn load(
    conn: &Connection,
    key: &[u8; 32],
    tenant: &str,
    session: &SessionName,
) -> Result<Option<SessionRows>, StoreError> {
    let mut select = conn.prepare_cached(
        "SELECT placeholder, sealed, expires_ms FROM pii_vault
         WHERE tenant_id = ?1 AND key_id = ?2 AND user_id = ?3 AND session_id = ?4
           AND expires_ms > ?5",
    )?;
    let mut rows = Vec::new();
    let mut expires_ms = 0;
    let mut unreadable = 0usize;
    let owner = &session.owner;
    let mut found = select.query(params![
        tenant,
        owner.key_id,
        owner.user_id,
        session.id,
        now_unix_ms()
    ])?;
    while let Some(row) = found.next()? {
        let placeholder: String = row.get(0)?;
        let sealed: Vec<u8> = row.get(1)?;
        expires_ms = expires_ms.max(row.get(2)?);
        let value = open(key, &aad(tenant, session, &placeholder), &sealed)
            .and_then(|plain| String::from_utf8(plain).ok());
        match value {
            Some(value) => rows.push((placeholder, value)),
            None => unreadable += 1,
        }
    }
    if unreadable > 0 {
        tracing::warn!(
            tenant,
            unreadable,
            "vault rows that do not open were skipped"
        );
    }
    Ok((!rows.is_empty()).then(|| SessionRows {
        tenant: tenant.to_owned(),
        session: session.clone(),
        rows,
        expires_ms,
    }))
}

/// Deletes rows (overwriting them, see `secure_delete`) and checkpoints the WAL so the
/// old pages do not linger there either.
fn erase(conn: &Connection, sql: &str, args: impl rusqlite::Params) -> Result<usize, StoreError> {
    let deleted = conn.execute(sql, args)?;
    if deleted > 0 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(deleted)
}

fn purge(conn: &Connection) -> Result<usize, StoreError> {
    erase(
        conn,
        "DELETE FROM pii_vault WHERE expires_ms <= ?1",
        params![now_unix_ms()],
    )
}
