//! The delivery engine's tables: per adapter, how far the outbox has been planned
//! (`delivery_cursor`) and one job per change the adapter follows (`delivery`).
//!
//! Planning turns outbox rows after the adapter's cursor into jobs and moves the cursor in
//! one transaction; on PostgreSQL the cursor row is taken `FOR UPDATE SKIP LOCKED`, so with
//! several workers one plans while the others go on claiming. Claiming takes, in commit
//! order, jobs that are due and are the oldest open job of their subject, marks them in
//! flight under the worker's claim until a lease ends (`FOR UPDATE SKIP LOCKED` again), so
//! workers never hold two jobs of one subject at once and a killed worker's jobs come back
//! when its lease ends. Finishing is fenced by the claim: a worker whose lease ended and
//! whose job was claimed again cannot overwrite the newer claim's result. Dead letters do
//! not block anything: only pending and in-flight jobs hold their subject back.
use std::fmt;

use adapter_contract::Change;
use sqlx::{Row, any::AnyRow};

use super::{Backend, Store, feed::Cursor, now, sql::Q};
use crate::{
    auth::{Caller, Role},
    error::{CoreError, Result},
    record::Val,
};

/// Where a delivery job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Inflight,
    Delivered,
    Dead,
    Discarded,
}

impl JobState {
    pub const ALL: [JobState; 5] = [Self::Pending, Self::Inflight, Self::Delivered, Self::Dead, Self::Discarded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Inflight => "inflight",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Discarded => "discarded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery job: one change for one adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub adapter: String,
    pub generation: i64,
    pub subject: String,
    pub change: Change,
    pub state: JobState,
    pub attempts: i64,
    /// Milliseconds since the epoch: when a pending job is due.
    pub due_at: i64,
    pub lease_until: Option<i64>,
    pub delivered_keys: Vec<String>,
    pub last_error_code: String,
    pub last_error: String,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub discard_reason: String,
    /// The adapter's coalescing key ("" when it delivers every change on its own).
    pub ckey: String,
    /// While claimed: the newest queued job of the subject and key at claim time, delivered
    /// with this one when it is delivered.
    pub cover_upto: Option<i64>,
    /// Delivered by that job, which read the state this change made.
    pub covered_by: Option<i64>,
}

/// How a worker finishes a claimed job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finish {
    Delivered {
        keys: Vec<String>,
    },
    /// Due again at `due_at` (ms).
    Retry {
        due_at: i64,
        code: String,
        message: String,
        keys: Vec<String>,
    },
    /// Parked as a dead letter.
    Dead {
        code: String,
        message: String,
        keys: Vec<String>,
    },
}

/// Counts and age of one adapter's jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterStats {
    pub adapter: String,
    pub pending: i64,
    pub inflight: i64,
    pub dead: i64,
    pub delivered: i64,
    pub discarded: i64,
    /// The change instant (RFC 3339) of the oldest pending or in-flight job.
    pub oldest_open: Option<String>,
    pub cursor: Cursor,
    pub generation: i64,
    pub healthy: Option<bool>,
    pub health_detail: String,
    pub checked_at: Option<i64>,
}

/// Filters of [`Store::delivery_list`].
#[derive(Clone, Debug, Default)]
pub struct JobFilter {
    pub adapter: String,
    pub state: Option<JobState>,
    pub subject: String,
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

const JOB_COLS: &str = "id, adapter, generation, subject, txid, seq, kind, record_id, op, version, ente, ufficio, persona_id, cartella_id, occurred_at, state, attempts, due_at, lease_until, delivered_keys, last_error_code, last_error, created_at, finished_at, discard_reason, ckey, cover_upto, covered_by";

/// Keys are joined by newlines: an idempotency key never holds one (adapters build them
/// from ids, codes and hashes).
fn join_keys(keys: &[String]) -> String {
    keys.join("\n")
}

fn split_keys(s: &str) -> Vec<String> {
    s.split('\n').filter(|k| !k.is_empty()).map(str::to_string).collect()
}

fn opt_text(r: &AnyRow, col: &str) -> Result<String> {
    Ok(r.try_get::<Option<String>, _>(col)?.unwrap_or_default())
}

fn job(r: &AnyRow) -> Result<Job> {
    let txid: i64 = r.try_get("txid")?;
    let seq: i64 = r.try_get("seq")?;
    let state: String = r.try_get("state")?;
    Ok(Job {
        id: r.try_get("id")?,
        adapter: r.try_get("adapter")?,
        generation: r.try_get("generation")?,
        subject: r.try_get("subject")?,
        change: Change {
            cursor: Cursor { txid, seq }.to_string(),
            kind: r.try_get("kind")?,
            id: r.try_get("record_id")?,
            op: r.try_get("op")?,
            version: r.try_get("version")?,
            ente: r.try_get("ente")?,
            ufficio: r.try_get("ufficio")?,
            persona_id: opt_text(r, "persona_id")?,
            cartella_id: opt_text(r, "cartella_id")?,
            occurred_at: r.try_get("occurred_at")?,
        },
        state: JobState::parse(&state).ok_or_else(|| CoreError::Internal("unknown delivery state in the store".into()))?,
        attempts: r.try_get("attempts")?,
        due_at: r.try_get("due_at")?,
        lease_until: r.try_get("lease_until")?,
        delivered_keys: split_keys(&opt_text(r, "delivered_keys")?),
        last_error_code: opt_text(r, "last_error_code")?,
        last_error: opt_text(r, "last_error")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
        discard_reason: opt_text(r, "discard_reason")?,
        ckey: opt_text(r, "ckey")?,
        cover_upto: r.try_get("cover_upto")?,
        covered_by: r.try_get("covered_by")?,
    })
}

/// Hub administrators operate deliveries: ente-wide callers with role `amministratore`.
pub(crate) fn check_admin(caller: &Caller) -> Result<()> {
    if caller.ufficio.is_some() || !caller.has(Role::Amministratore) {
        return Err(CoreError::Denied("deliveries are operated by ente-wide callers with role amministratore"));
    }
    Ok(())
}

/// Longest discard reason kept.
const MAX_REASON: usize = 500;

impl Store {
    /// Makes sure the adapter has a cursor (at the start of the feed when new).
    pub async fn delivery_ensure(&self, adapter: &str) -> Result<()> {
        Q::new("INSERT INTO delivery_cursor (adapter, txid, seq, generation, updated_at) VALUES (")
            .bind_text(adapter)
            .push(", 0, 0, 0, ")
            .bind_int(now_ms())
            .push(") ON CONFLICT (adapter) DO NOTHING")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Refreshes the planner's statistics of the job table (see the engine's
    /// `ANALYZE_EVERY`).
    pub async fn delivery_analyze(&self) -> Result<()> {
        Q::new("ANALYZE delivery").execute(&self.pool).await?;
        Ok(())
    }

    /// Turns up to `limit` outbox changes after the adapter's cursor, of the `kinds` it
    /// follows, into jobs, and moves the cursor past every change read. `keys` names each
    /// job's subject and coalescing key ("" for none). Returns None when another worker is
    /// planning this adapter.
    pub async fn delivery_plan(
        &self,
        adapter: &str,
        kinds: &[&str],
        keys: &(dyn Fn(&Change) -> (String, String) + Sync),
        limit: u32,
    ) -> Result<Option<usize>> {
        let mut tx = self.pool.begin().await?;
        let mut q = Q::new("SELECT txid, seq, generation FROM delivery_cursor WHERE adapter = ");
        q.bind_text(adapter);
        if self.backend == Backend::Postgres {
            q.push(" FOR UPDATE SKIP LOCKED");
        }
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let cursor = Cursor { txid: row.try_get("txid")?, seq: row.try_get("seq")? };
        let generation: i64 = row.try_get("generation")?;
        // Every change after the cursor is read (not only followed kinds), so the cursor
        // moves past changes of other kinds too.
        let changes = self.outbox_after(&mut *tx, cursor, limit).await?;
        let Some(last) = changes.last().map(|c| c.cursor) else {
            tx.rollback().await?;
            return Ok(Some(0));
        };
        let at = now_ms();
        let followed: Vec<&super::Change> = changes.iter().filter(|c| kinds.contains(&c.kind.as_str())).collect();
        if !followed.is_empty() {
            let mut q = Q::new(
                "INSERT INTO delivery (adapter, generation, subject, ckey, txid, seq, kind, record_id, op, version, ente, ufficio, persona_id, cartella_id, occurred_at, state, attempts, due_at, delivered_keys, created_at, updated_at) VALUES ",
            );
            for (i, c) in followed.iter().enumerate() {
                let ch = contract_change(c);
                let (subject, ckey) = keys(&ch);
                if i > 0 {
                    q.push(", ");
                }
                q.push("(").bind_shared(Some(adapter)).push(", ").bind_int(generation).push(", ").bind_text(&subject);
                q.push(", ").bind_text(&ckey);
                q.push(", ").bind_int(c.cursor.txid).push(", ").bind_int(c.cursor.seq).push(", ").bind_shared(Some(&c.kind));
                q.push(", ").bind_text(&c.id).push(", ").bind_int(c.op).push(", ").bind_int(c.version);
                q.push(", ").bind_shared(Some(&c.ente)).push(", ").bind_shared(Some(&c.ufficio));
                q.push(", ").bind(Val::opt_text(&c.persona_id)).push(", ").bind(Val::opt_text(&c.cartella_id));
                q.push(", ").bind_text(&c.occurred_at).push(", 'pending', 0, ").bind_int(at).push(", '', ").bind_int(at);
                q.push(", ").bind_int(at).push(")");
            }
            q.push(" ON CONFLICT (adapter, generation, txid, seq) DO NOTHING");
            q.execute(&mut *tx).await?;
        }
        Q::new("UPDATE delivery_cursor SET txid = ")
            .bind_int(last.txid)
            .push(", seq = ")
            .bind_int(last.seq)
            .push(", updated_at = ")
            .bind_int(at)
            .push(" WHERE adapter = ")
            .bind_text(adapter)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(followed.len()))
    }

    /// Claims up to `n` due jobs of the adapter for `claim` until `lease_ms` from now: in
    /// commit order, only the oldest open job of each subject, skipping jobs another worker
    /// is claiming at this moment. A job whose lease ended is claimed again. A claimed job
    /// with a coalescing key notes the newest job of its subject and key queued by now: those
    /// changes are committed, so the load that follows the claim reads what they made.
    pub async fn delivery_claim(&self, adapter: &str, claim: &str, n: u32, lease_ms: i64) -> Result<Vec<Job>> {
        let at = now_ms();
        let mut q = Q::new("UPDATE delivery SET state = 'inflight', claim = ");
        q.bind_text(claim).push(", lease_until = ").bind_int(at.saturating_add(lease_ms));
        q.push(", attempts = attempts + 1, updated_at = ").bind_int(at);
        q.push(
            ", cover_upto = CASE WHEN ckey = '' THEN NULL ELSE (SELECT MAX(c.id) FROM delivery c WHERE c.adapter = delivery.adapter \
             AND c.subject = delivery.subject AND c.ckey = delivery.ckey AND c.state = 'pending') END",
        );
        q.push(" WHERE id IN (SELECT d.id FROM delivery d WHERE d.adapter = ").bind_text(adapter);
        q.push(" AND d.state IN ('pending', 'inflight') AND ((d.state = 'pending' AND d.due_at <= ").bind_int(at);
        q.push(") OR (d.state = 'inflight' AND d.lease_until < ").bind_int(at).push("))");
        q.push(
            " AND NOT EXISTS (SELECT 1 FROM delivery e WHERE e.adapter = d.adapter AND e.subject = d.subject \
             AND e.state IN ('pending', 'inflight') AND (e.txid, e.seq, e.id) < (d.txid, d.seq, d.id))",
        );
        q.push(" ORDER BY d.txid, d.seq, d.id LIMIT ").bind_int(i64::from(n.max(1)));
        if self.backend == Backend::Postgres {
            q.push(" FOR UPDATE SKIP LOCKED");
        }
        q.push(") RETURNING ").push(JOB_COLS);
        let mut jobs = q.fetch_all(&self.pool).await?.iter().map(job).collect::<Result<Vec<_>>>()?;
        jobs.sort_by_key(|j| (cursor_of(j), j.id));
        Ok(jobs)
    }

    /// Records how claimed jobs ended. A job claimed since by someone else (its lease
    /// ended) is left as the newer claim has it. Returns how many jobs were updated.
    pub async fn delivery_finish(&self, claim: &str, results: &[(i64, Finish)]) -> Result<u64> {
        if results.is_empty() {
            return Ok(0);
        }
        let at = now_ms();
        let mut updated = 0;
        let delivered: Vec<(i64, &Vec<String>)> = results
            .iter()
            .filter_map(|(id, f)| match f {
                Finish::Delivered { keys } => Some((*id, keys)),
                _ => None,
            })
            .collect();
        let mut tx = self.pool.begin().await?;
        if !delivered.is_empty() {
            // Queued changes a delivered job covered (see `delivery_claim`) are delivered with
            // it; fenced by the claim like the job itself.
            let mut q = Q::new("UPDATE delivery SET state = 'delivered', finished_at = ");
            q.bind_int(at).push(", updated_at = ").bind_int(at);
            q.push(", covered_by = (SELECT MIN(j.id) FROM delivery j WHERE ");
            push_cover(&mut q, claim, &delivered);
            q.push(") WHERE state = 'pending' AND ckey <> '' AND EXISTS (SELECT 1 FROM delivery j WHERE ");
            push_cover(&mut q, claim, &delivered);
            q.push(")");
            q.execute(&mut *tx).await?;
            let mut q = Q::new("UPDATE delivery SET state = 'delivered', lease_until = NULL, claim = NULL, finished_at = ");
            q.bind_int(at).push(", updated_at = ").bind_int(at).push(", delivered_keys = CASE id");
            for (id, keys) in &delivered {
                q.push(" WHEN ").bind_int(*id).push(" THEN ").bind_text(&join_keys(keys));
            }
            q.push(" ELSE delivered_keys END WHERE state = 'inflight' AND claim = ").bind_text(claim).push(" AND id IN (");
            for (i, (id, _)) in delivered.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_int(*id);
            }
            q.push(")");
            updated += q.execute(&mut *tx).await?;
        }
        for (id, f) in results {
            let mut q = match f {
                Finish::Delivered { .. } => continue,
                Finish::Retry { due_at, code, message, keys } => {
                    let mut q = Q::new("UPDATE delivery SET state = 'pending', due_at = ");
                    q.bind_int(*due_at).push(", last_error_code = ").bind_text(code).push(", last_error = ").bind_text(message);
                    q.push(", delivered_keys = ").bind_text(&join_keys(keys));
                    q
                }
                Finish::Dead { code, message, keys } => {
                    let mut q = Q::new("UPDATE delivery SET state = 'dead', finished_at = ");
                    q.bind_int(at).push(", last_error_code = ").bind_text(code).push(", last_error = ").bind_text(message);
                    q.push(", delivered_keys = ").bind_text(&join_keys(keys));
                    q
                }
            };
            q.push(", lease_until = NULL, claim = NULL, updated_at = ").bind_int(at);
            q.push(" WHERE state = 'inflight' AND claim = ").bind_text(claim).push(" AND id = ").bind_int(*id);
            updated += q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// Whether the adapter has work: open jobs, or outbox changes after its cursor (of any
    /// kind: planning moves the cursor past them). Used to drain in tests and one-shot runs.
    pub async fn delivery_busy(&self, adapter: &str) -> Result<bool> {
        let open: i64 = Q::new("SELECT COUNT(*) AS n FROM delivery WHERE adapter = ")
            .bind_text(adapter)
            .push(" AND state IN ('pending', 'inflight')")
            .fetch_optional(&self.pool)
            .await?
            .map_or(Ok(0), |r| r.try_get("n"))?;
        if open > 0 {
            return Ok(true);
        }
        let Some(r) =
            Q::new("SELECT txid, seq FROM delivery_cursor WHERE adapter = ").bind_text(adapter).fetch_optional(&self.pool).await?
        else {
            return Ok(true);
        };
        let c = Cursor { txid: r.try_get("txid")?, seq: r.try_get("seq")? };
        let n: i64 = Q::new("SELECT COUNT(*) AS n FROM outbox WHERE (txid > ")
            .bind_int(c.txid)
            .push(" OR (txid = ")
            .bind_int(c.txid)
            .push(" AND seq > ")
            .bind_int(c.seq)
            .push("))")
            .fetch_optional(&self.pool)
            .await?
            .map_or(Ok(0), |r| r.try_get("n"))?;
        Ok(n > 0)
    }

    /// Records an adapter's health as a worker just checked it.
    pub async fn delivery_set_health(&self, adapter: &str, healthy: bool, detail: &str) -> Result<()> {
        Q::new("INSERT INTO delivery_adapter (adapter, healthy, detail, checked_at) VALUES (")
            .bind_text(adapter)
            .push(", ")
            .bind_int(i64::from(healthy))
            .push(", ")
            .bind_text(detail)
            .push(", ")
            .bind_int(now_ms())
            .push(") ON CONFLICT (adapter) DO UPDATE SET healthy = excluded.healthy, detail = excluded.detail, checked_at = excluded.checked_at")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Counts per state, the oldest open change, cursor and health of every adapter with a
    /// cursor (an adapter gets one the first time a worker runs it).
    pub async fn delivery_stats(&self) -> Result<Vec<AdapterStats>> {
        let mut out: Vec<AdapterStats> = Vec::new();
        for r in Q::new(
            "SELECT c.adapter, c.txid, c.seq, c.generation, a.healthy, a.detail, a.checked_at FROM delivery_cursor c \
             LEFT JOIN delivery_adapter a ON a.adapter = c.adapter ORDER BY c.adapter",
        )
        .fetch_all(&self.pool)
        .await?
        {
            out.push(AdapterStats {
                adapter: r.try_get("adapter")?,
                cursor: Cursor { txid: r.try_get("txid")?, seq: r.try_get("seq")? },
                generation: r.try_get("generation")?,
                healthy: r.try_get::<Option<i64>, _>("healthy")?.map(|h| h != 0),
                health_detail: opt_text(&r, "detail")?,
                checked_at: r.try_get("checked_at")?,
                ..AdapterStats::default()
            });
        }
        for r in Q::new("SELECT adapter, state, COUNT(*) AS n FROM delivery GROUP BY adapter, state").fetch_all(&self.pool).await? {
            let adapter: String = r.try_get("adapter")?;
            let n: i64 = r.try_get("n")?;
            let Some(s) = out.iter_mut().find(|s| s.adapter == adapter) else { continue };
            match JobState::parse(&r.try_get::<String, _>("state")?) {
                Some(JobState::Pending) => s.pending = n,
                Some(JobState::Inflight) => s.inflight = n,
                Some(JobState::Dead) => s.dead = n,
                Some(JobState::Delivered) => s.delivered = n,
                Some(JobState::Discarded) => s.discarded = n,
                None => {}
            }
        }
        for r in Q::new("SELECT adapter, MIN(occurred_at) AS oldest FROM delivery WHERE state IN ('pending', 'inflight') GROUP BY adapter")
            .fetch_all(&self.pool)
            .await?
        {
            let adapter: String = r.try_get("adapter")?;
            if let Some(s) = out.iter_mut().find(|s| s.adapter == adapter) {
                s.oldest_open = r.try_get("oldest")?;
            }
        }
        Ok(out)
    }

    /// Jobs newest first; `after` is the id the previous page ended at (0 = first page).
    pub async fn delivery_list(&self, caller: &Caller, f: &JobFilter, after: i64, size: u32) -> Result<(Vec<Job>, Option<i64>)> {
        check_admin(caller)?;
        let size = size.clamp(1, 500);
        let mut q = Q::new("SELECT ");
        q.push(JOB_COLS).push(" FROM delivery WHERE 1 = 1");
        if !f.adapter.is_empty() {
            q.push(" AND adapter = ").bind_text(&f.adapter);
        }
        if let Some(s) = f.state {
            q.push(" AND state = ").bind_text(s.as_str());
        }
        if !f.subject.is_empty() {
            q.push(" AND subject = ").bind_text(&f.subject);
        }
        if after > 0 {
            q.push(" AND id < ").bind_int(after);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_int(i64::from(size) + 1);
        let mut jobs = q.fetch_all(&self.pool).await?.iter().map(job).collect::<Result<Vec<_>>>()?;
        let next = (jobs.len() > size as usize).then(|| {
            jobs.truncate(size as usize);
            jobs.last().map_or(0, |j| j.id)
        });
        Ok((jobs, next))
    }

    pub async fn delivery_get(&self, caller: &Caller, id: i64) -> Result<Job> {
        check_admin(caller)?;
        self.delivery_job(id).await
    }

    async fn delivery_job(&self, id: i64) -> Result<Job> {
        let mut q = Q::new("SELECT ");
        q.push(JOB_COLS).push(" FROM delivery WHERE id = ").bind_int(id);
        q.fetch_optional(&self.pool).await?.map(|r| job(&r)).transpose()?.ok_or(CoreError::NotFound { kind: "delivery" })
    }

    /// A dead letter or pending job due now with its attempts reset; audited.
    pub async fn delivery_retry(&self, caller: &Caller, id: i64) -> Result<Job> {
        check_admin(caller)?;
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        let n = Q::new("UPDATE delivery SET state = 'pending', attempts = 0, due_at = ")
            .bind_int(now_ms())
            .push(", finished_at = NULL, updated_at = ")
            .bind_int(now_ms())
            .push(" WHERE id = ")
            .bind_int(id)
            .push(" AND state IN ('dead', 'pending')")
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(self.delivery_refusal(id, "only a dead letter or a pending delivery can be retried").await);
        }
        audit_delivery(&mut tx, caller, &at, "delivery-retry", id, "").await?;
        tx.commit().await?;
        self.notify();
        self.delivery_job(id).await
    }

    /// Gives a dead letter or pending job up with a reason; audited.
    pub async fn delivery_discard(&self, caller: &Caller, id: i64, reason: &str) -> Result<Job> {
        check_admin(caller)?;
        let reason = reason.trim();
        if reason.chars().count() < 3 || reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(CoreError::invalid("reason", "must be 3 to 500 characters without control characters"));
        }
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        let n = Q::new("UPDATE delivery SET state = 'discarded', discard_reason = ")
            .bind_text(reason)
            .push(", finished_at = ")
            .bind_int(now_ms())
            .push(", updated_at = ")
            .bind_int(now_ms())
            .push(" WHERE id = ")
            .bind_int(id)
            .push(" AND state IN ('dead', 'pending')")
            .execute(&mut *tx)
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(self.delivery_refusal(id, "only a dead letter or a pending delivery can be discarded").await);
        }
        audit_delivery(&mut tx, caller, &at, "delivery-discard", id, reason).await?;
        tx.commit().await?;
        self.delivery_job(id).await
    }

    /// NotFound when the job does not exist, else a refusal for its state.
    async fn delivery_refusal(&self, id: i64, why: &'static str) -> CoreError {
        match self.delivery_job(id).await {
            Ok(_) => CoreError::Conflict(why),
            Err(e) => e,
        }
    }

    /// Plans the adapter again from `from`: a new generation, so every change after it
    /// becomes a new job even where one exists. Audited.
    pub async fn delivery_replay(&self, caller: &Caller, adapter: &str, from: Cursor) -> Result<i64> {
        check_admin(caller)?;
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        let row = Q::new("UPDATE delivery_cursor SET generation = generation + 1, txid = ")
            .bind_int(from.txid)
            .push(", seq = ")
            .bind_int(from.seq)
            .push(", updated_at = ")
            .bind_int(now_ms())
            .push(" WHERE adapter = ")
            .bind_text(adapter)
            .push(" RETURNING generation")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(CoreError::NotFound { kind: "adapter" })?;
        let generation: i64 = row.try_get("generation")?;
        audit_delivery(&mut tx, caller, &at, "delivery-replay", generation, &from.to_string()).await?;
        tx.commit().await?;
        self.notify();
        Ok(generation)
    }

    /// Audit rows of an action on a delivery job (tests and the console).
    pub async fn audit_count_delivery(&self, id: i64, action: &str) -> Result<i64> {
        let row = Q::new("SELECT COUNT(*) AS n FROM audit WHERE kind = 'delivery' AND record_id = ")
            .bind_text(&id.to_string())
            .push(" AND action = ")
            .bind_text(action)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map_or(Ok(0), |r| r.try_get::<i64, _>("n"))?)
    }

    /// Deletes delivered and discarded jobs finished before `before_ms`. Returns how many.
    pub async fn delivery_purge(&self, before_ms: i64) -> Result<u64> {
        Ok(Q::new("DELETE FROM delivery WHERE state IN ('delivered', 'discarded') AND finished_at < ")
            .bind_int(before_ms)
            .execute(&self.pool)
            .await?)
    }

    /// Up to `limit` outbox changes after `cursor`, of every kind and ente, in feed order
    /// and with the feed's visibility bound.
    pub(super) async fn outbox_after<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
        &self,
        e: E,
        cursor: Cursor,
        limit: u32,
    ) -> Result<Vec<super::Change>> {
        let mut q = super::feed::select_after(self.backend, cursor);
        q.push(" ORDER BY txid, seq LIMIT ").bind_int(i64::from(limit.max(1)));
        q.fetch_all(e).await?.iter().map(super::feed::change).collect()
    }
}

/// The condition "job `j` is one of `delivered`, still held by `claim`, and covers the
/// `delivery` row being updated".
fn push_cover(q: &mut Q, claim: &str, delivered: &[(i64, &Vec<String>)]) {
    q.push("j.state = 'inflight' AND j.claim = ").bind_text(claim).push(" AND j.id IN (");
    for (i, (id, _)) in delivered.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.bind_int(*id);
    }
    q.push(
        ") AND j.adapter = delivery.adapter AND j.subject = delivery.subject AND j.ckey = delivery.ckey \
         AND delivery.id > j.id AND delivery.id <= j.cover_upto",
    );
}

fn cursor_of(j: &Job) -> Cursor {
    Cursor::parse(&j.change.cursor).unwrap_or_default()
}

/// The contract's view of an outbox change.
pub fn contract_change(c: &super::Change) -> Change {
    Change {
        cursor: c.cursor.to_string(),
        kind: c.kind.clone(),
        id: c.id.clone(),
        op: c.op,
        version: c.version,
        ente: c.ente.clone(),
        ufficio: c.ufficio.clone(),
        persona_id: c.persona_id.clone(),
        cartella_id: c.cartella_id.clone(),
        occurred_at: c.occurred_at.clone(),
    }
}

/// An audit row about operating a delivery job (the record id is the job id).
async fn audit_delivery(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    caller: &Caller,
    at: &str,
    action: &str,
    id: i64,
    purpose: &str,
) -> Result<()> {
    let id = id.to_string();
    let mut q = Q::new("INSERT INTO audit (at, actor_kind, actor, ente, ufficio, action, kind, record_id, purpose, request_id) VALUES (");
    q.bind_text(at).push(", ").bind_text(caller.kind.as_str()).push(", ").bind_text(&caller.subject).push(", ").bind_text(&caller.ente);
    q.push(", NULL, ").bind_text(action).push(", 'delivery', ").bind_text(&id).push(", ");
    q.bind_text(if purpose.is_empty() { &caller.purpose } else { purpose }).push(", ").bind_text(&caller.request_id).push(")");
    q.execute(&mut **tx).await?;
    Ok(())
}
