//! Reading the outbox as a change feed.
//!
//! Rows are ordered by (txid, seq). On PostgreSQL `txid` is the writing transaction's id and
//! only rows of transactions older than every transaction still running
//! (`pg_snapshot_xmin`) are served: a transaction that took a lower `seq` but commits later
//! can then never be skipped by a cursor that already moved past it. SQLite has one writer,
//! so commit order is `seq` order and `txid` stays 0.
use std::fmt;

use sqlx::{Row, any::AnyRow};

use super::{
    Backend, Store, now,
    scope::{Mode, push_scope},
    sql::Q,
};
use crate::{
    auth::Caller,
    error::{CoreError, Result},
    record::{Kind, ScopeClass},
};

/// Position in the feed; opaque to clients as "txid.seq".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub txid: i64,
    pub seq: i64,
}

impl Cursor {
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Ok(Self::default());
        }
        let bad = || CoreError::invalid("cursor", "is not a cursor this feed issued");
        let (t, q) = s.split_once('.').ok_or_else(bad)?;
        Ok(Self { txid: t.parse().map_err(|_| bad())?, seq: q.parse().map_err(|_| bad())? })
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.txid, self.seq)
    }
}

/// A record created (`outbox.op`).
pub const OP_CREATE: i64 = 1;
/// A record changed.
pub const OP_UPDATE: i64 = 2;
/// A persona merged into the persona the change's `persona_id` names.
pub const OP_MERGE: i64 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub cursor: Cursor,
    pub kind: String,
    pub id: String,
    /// [`OP_CREATE`], [`OP_UPDATE`] or [`OP_MERGE`].
    pub op: i64,
    pub version: i64,
    pub ente: String,
    pub ufficio: String,
    pub persona_id: String,
    pub cartella_id: String,
    pub occurred_at: String,
}

/// ` AND kind IN (…)` when `kinds` is not empty.
fn push_kinds(q: &mut Q, kinds: &[Kind]) {
    if kinds.is_empty() {
        return;
    }
    q.push(" AND kind IN (");
    for (i, k) in kinds.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind_text(k.name());
    }
    q.push(")");
}

/// `SELECT … FROM outbox WHERE` changes after `cursor` that the feed may serve (on
/// PostgreSQL only those of transactions older than every one still running). Callers add
/// their own conditions and the order.
pub(super) fn select_after(backend: Backend, cursor: Cursor) -> Q {
    let mut q = Q::new(
        "SELECT seq, txid, kind, record_id, op, version, ente, ufficio, persona_id, cartella_id, occurred_at FROM outbox WHERE (txid > ",
    );
    q.bind_int(cursor.txid).push(" OR (txid = ").bind_int(cursor.txid).push(" AND seq > ").bind_int(cursor.seq).push("))");
    if backend == Backend::Postgres {
        q.push(" AND txid < CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS TEXT) AS BIGINT)");
    }
    q
}

/// A row of [`select_after`].
pub(super) fn change(r: &AnyRow) -> Result<Change> {
    Ok(Change {
        cursor: Cursor { txid: r.try_get("txid")?, seq: r.try_get("seq")? },
        kind: r.try_get("kind")?,
        id: r.try_get("record_id")?,
        op: r.try_get("op")?,
        version: r.try_get("version")?,
        ente: r.try_get("ente")?,
        ufficio: r.try_get("ufficio")?,
        persona_id: r.try_get::<Option<String>, _>("persona_id")?.unwrap_or_default(),
        cartella_id: r.try_get::<Option<String>, _>("cartella_id")?.unwrap_or_default(),
        occurred_at: r.try_get("occurred_at")?,
    })
}

impl Store {
    /// Up to `limit` changes after `cursor` that the caller may see.
    pub async fn changes_after(&self, caller: &Caller, cursor: Cursor, kinds: &[Kind], limit: u32) -> Result<Vec<Change>> {
        if !caller.can_read() {
            return Err(CoreError::Denied("the caller's roles do not allow reading the change feed"));
        }
        let (_, today) = now();
        let today_s = crate::domain::codes::format_date(today);
        let mut q = select_after(self.backend, cursor);
        // A persona's changes follow the persona's own scope (everyone who sees the anagrafica
        // hears of its updates); everything else the cartella's. A merged persona no longer
        // exists: its merge is seen by those who see the survivor its `persona_id` names (for
        // every other persona change `persona_id` is the record itself).
        q.push(" AND ((kind <> 'persona' AND ");
        push_scope(&mut q, caller, ScopeClass::Cartella, Mode::Read, &today_s);
        q.push(") OR (kind = 'persona' AND COALESCE(persona_id, record_id) IN (SELECT id FROM persona WHERE ");
        push_scope(&mut q, caller, ScopeClass::Persona, Mode::Read, &today_s);
        q.push(")))");
        push_kinds(&mut q, kinds);
        q.push(" ORDER BY txid, seq LIMIT ").bind_int(i64::from(limit.max(1)));
        q.fetch_all(&self.pool).await?.iter().map(change).collect()
    }
}

impl Store {
    /// Whether the outbox holds changes of the ente's `kinds` after `cursor`, counting those
    /// not yet servable (on PostgreSQL a change becomes servable once every transaction
    /// older than it has ended, anywhere on the server). Lets a one-shot consumer wait for
    /// changes already committed instead of stopping early.
    pub async fn changes_pending(&self, ente: &str, cursor: Cursor, kinds: &[Kind]) -> Result<bool> {
        let mut q = Q::new("SELECT COUNT(*) AS n FROM outbox WHERE (txid > ");
        q.bind_int(cursor.txid).push(" OR (txid = ").bind_int(cursor.txid).push(" AND seq > ").bind_int(cursor.seq).push("))");
        q.push(" AND ente = ").bind_text(ente);
        push_kinds(&mut q, kinds);
        let n: i64 = q.fetch_optional(&self.pool).await?.map_or(Ok(0), |r| r.try_get("n"))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip() {
        let c = Cursor { txid: 812, seq: 4 };
        assert_eq!(Cursor::parse(&c.to_string()).expect("parses"), c);
        assert_eq!(Cursor::parse("").expect("empty is start"), Cursor::default());
        assert!(Cursor::parse("12").is_err());
        assert!(Cursor::parse("a.b").is_err());
    }
}
