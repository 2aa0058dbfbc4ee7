//! The SIUSS flow ledger: every flow the hub produced for INPS, its state and INPS's esito,
//! and what the hub last decided for each prestazione.
//!
//! The ledger knows flows only as bytes plus metadata: mapping and XML live in the SIUSS
//! adapter, which hands the store a decision holding closures: one that chooses the flows
//! given what stands at INPS (called inside the applying transaction) and, per flow, one
//! that writes the XML once the flow id is known. Ordering: a flow's `ts_flusso` (ms) is taken from a per-ente counter row that
//! stays locked until the flow's transaction commits, so flows of an ente commit in
//! `ts_flusso` order and `ts_flusso > since` never skips one that commits late; within an
//! ente `ts_flusso` and the ledger sequence grow together. Flow states: `ready` (produced),
//! `served` (returned by `GET /flussi` at least once), `acknowledged` (esito OK) or
//! `rejected` (any other esito).
use std::sync::Arc;

use sqlx::{Row, any::AnyRow};
use time::OffsetDateTime;

use super::{Store, audit, now, sql::Q};
use crate::{
    auth::{Caller, Role},
    error::{CoreError, Result},
    record::{Kind, Val},
};

/// Longest flow the ledger accepts, in XML bytes: base64 of it must stay within the
/// `flusso` property's 10 MB (`maxLength: 10000000`).
pub const MAX_XML_BYTES: usize = 7_400_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatoFlusso {
    Ready,
    Served,
    Acknowledged,
    Rejected,
}

impl StatoFlusso {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Served => "served",
            Self::Acknowledged => "acknowledged",
            Self::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "served" => Self::Served,
            "acknowledged" => Self::Acknowledged,
            "rejected" => Self::Rejected,
            _ => Self::Ready,
        }
    }
}

/// A flow as the ledger holds it (the XML only when asked for).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flusso {
    pub seq: i64,
    pub id_flusso: String,
    pub ente: String,
    pub denominazione_ente: String,
    pub prestazione_id: String,
    pub prestazione_version: i64,
    /// `PS` or `SINBA`.
    pub tipo: String,
    /// `I` or `C`.
    pub operazione: String,
    pub ts_flusso: i64,
    pub stato: StatoFlusso,
    pub impronta: String,
    pub created_at: String,
    pub served_at: String,
    pub codice_esito: String,
    pub descrizione_esito: String,
    pub id_acquisizione_siuss: String,
    pub ts_acquisizione: String,
    /// The encoded records the flow was mapped from (insertions only), so that a later
    /// cancellation can repeat exactly what was inserted.
    pub snapshot: Vec<u8>,
    pub xml: Vec<u8>,
}

/// Writes a flow's XML once its id is known.
pub type XmlWriter = Box<dyn FnOnce(&str) -> std::result::Result<Vec<u8>, String> + Send>;

/// One flow to produce for a prestazione.
pub struct Emissione {
    /// `PS` or `SINBA`.
    pub tipo: &'static str,
    /// `I` or `C`.
    pub operazione: &'static str,
    pub impronta: String,
    pub snapshot: Vec<u8>,
    /// Writes the flow's XML given its id (`{ente}.{tipo}.{AAAAMMGG}.{NNNNNNN}`), or says
    /// why it cannot (the decision is then stored without this flow).
    pub xml: XmlWriter,
}

impl std::fmt::Debug for Emissione {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emissione").field("tipo", &self.tipo).field("operazione", &self.operazione).finish_non_exhaustive()
    }
}

/// A problem that keeps a prestazione from being sent; never carries a value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mancanza {
    pub path: String,
    pub rule: String,
    pub message: String,
}

/// Given the flow standing at INPS for the prestazione (read under the ledger row's lock;
/// None when nothing stands), chooses what to emit.
pub type Decisore = Box<dyn FnOnce(Option<&Flusso>) -> Scelta + Send>;

/// What a [`Decisore`] chose.
#[derive(Debug)]
pub enum Scelta {
    /// Write these flows in order (possibly none); `nota` replaces the decision's when set.
    Emetti { emissioni: Vec<Emissione>, nota: Option<String> },
    /// Write no flow; the note and the extra gap say why.
    Trattieni { nota: String, mancanza: Mancanza },
}

/// What a producer decided for one version of a prestazione, before knowing what stands.
pub struct Decisione {
    pub prestazione_id: String,
    pub ente: String,
    /// As the flows name it (`denominazione_ente` of `GET /flussi`).
    pub denominazione_ente: String,
    pub ufficio: String,
    pub version: i64,
    /// Empty when the prestazione is sendable.
    pub mancanze: Vec<Mancanza>,
    /// A note for operators (e.g. a SINBA record cannot be cancelled), no personal data.
    pub nota: String,
    pub decidi: Decisore,
}

/// The ledger row a decision is about.
struct Testata {
    prestazione_id: String,
    ente: String,
    denominazione_ente: String,
    ufficio: String,
    version: i64,
}

impl std::fmt::Debug for Decisione {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decisione")
            .field("prestazione_id", &self.prestazione_id)
            .field("version", &self.version)
            .field("mancanze", &self.mancanze.len())
            .finish_non_exhaustive()
    }
}

/// What [`Store::siuss_apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applicazione {
    /// Recorded; these flows were written, in order (possibly none).
    Emessi(Vec<String>),
    /// Recorded with no flow: the decider held them back, for the reason given (the note).
    Trattenuta(String),
    /// The ledger holds a newer version of the prestazione; nothing changed.
    Superata,
}

/// Why a decision was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A flow's XML could not be written or is too large: nothing of the decision was stored.
    /// The reason names rules and counts, never values.
    #[error("flow refused: {0}")]
    Rifiutato(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

/// What the hub last decided for a prestazione, as shown to operators.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatoPrestazione {
    pub valutata: bool,
    pub version: i64,
    pub mancanze: Vec<Mancanza>,
    pub nota: String,
    pub updated_at: String,
    pub flussi: Vec<Flusso>,
}

/// An esito posted by INPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Esito {
    pub id_flusso: String,
    pub codice_esito: String,
    pub descrizione_esito: String,
    pub id_acquisizione_siuss: String,
    pub ts_acquisizione: String,
}

/// Why a batch of esiti was refused; nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum EsitiError {
    #[error("{} esito(i) name flows this ente never produced", .0.len())]
    Sconosciuti(Vec<usize>),
    #[error(transparent)]
    Core(#[from] CoreError),
}

const FLUSSO_COLS: &str = "seq, id_flusso, ente, denominazione_ente, prestazione_id, prestazione_version, tipo, operazione, ts_flusso, stato, impronta, created_at, served_at, codice_esito, descrizione_esito, id_acquisizione_siuss, ts_acquisizione, snapshot";

fn opt(r: &AnyRow, col: &str) -> Result<String> {
    Ok(r.try_get::<Option<String>, _>(col)?.unwrap_or_default())
}

fn flusso(r: &AnyRow, with_xml: bool) -> Result<Flusso> {
    Ok(Flusso {
        seq: r.try_get("seq")?,
        id_flusso: r.try_get("id_flusso")?,
        ente: r.try_get("ente")?,
        denominazione_ente: r.try_get("denominazione_ente")?,
        prestazione_id: r.try_get("prestazione_id")?,
        prestazione_version: r.try_get("prestazione_version")?,
        tipo: r.try_get("tipo")?,
        operazione: r.try_get("operazione")?,
        ts_flusso: r.try_get("ts_flusso")?,
        stato: StatoFlusso::parse(&r.try_get::<String, _>("stato")?),
        impronta: r.try_get("impronta")?,
        created_at: r.try_get("created_at")?,
        served_at: opt(r, "served_at")?,
        codice_esito: opt(r, "codice_esito")?,
        descrizione_esito: opt(r, "descrizione_esito")?,
        id_acquisizione_siuss: opt(r, "id_acquisizione_siuss")?,
        ts_acquisizione: opt(r, "ts_acquisizione")?,
        snapshot: r.try_get::<Option<Vec<u8>>, _>("snapshot")?.unwrap_or_default(),
        xml: if with_xml { r.try_get("xml")? } else { Vec::new() },
    })
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Store {
    /// Applies a decision atomically. In one transaction: the prestazione's ledger row is
    /// taken first (an upsert, which on PostgreSQL locks the row until commit, and on SQLite
    /// takes the single write lock), then the flow standing at INPS is read and handed to the
    /// decision's [`Decisore`], then the flows it chose are written (each with a fresh id and
    /// `ts_flusso`) with the prestazione's gaps and note. Two appliers of one prestazione are
    /// thus serialised, and the second sees what the first emitted. A decision older than the
    /// version the ledger holds changes nothing. A flow whose XML cannot be written, or is too
    /// large, stores nothing of the decision (the refusal is noted on the prestazione).
    pub async fn siuss_apply(&self, d: Decisione) -> std::result::Result<Applicazione, ApplyError> {
        let Decisione { prestazione_id, ente, denominazione_ente, ufficio, version, mancanze, nota, decidi } = d;
        let t = Testata { prestazione_id, ente, denominazione_ente, ufficio, version };
        let (at, today) = now();
        let giorno = format!("{:04}{:02}{:02}", today.year(), u8::from(today.month()), today.day());
        let mut tx = self.pool.begin().await.map_err(CoreError::from)?;
        let mut q = Q::new("INSERT INTO siuss_prestazione (prestazione_id, ente, ufficio, version, violazioni, updated_at) VALUES (");
        q.bind_text(&t.prestazione_id).push(", ").bind_text(&t.ente).push(", ").bind_text(&t.ufficio).push(", ").bind_int(t.version);
        q.push(", '[]', ").bind_text(&at);
        // A no-op update, so that an existing row is locked too and its version returned.
        q.push(") ON CONFLICT (prestazione_id) DO UPDATE SET version = siuss_prestazione.version RETURNING version");
        let held: i64 = q
            .fetch_optional(&mut *tx)
            .await
            .map_err(CoreError::from)?
            .ok_or_else(|| CoreError::Internal("ledger row upsert returned no row".into()))?
            .try_get("version")
            .map_err(CoreError::from)?;
        if held > t.version {
            tx.rollback().await.map_err(CoreError::from)?;
            return Ok(Applicazione::Superata);
        }
        let mut q = Q::new("SELECT ");
        q.push(FLUSSO_COLS).push(" FROM siuss_flusso WHERE prestazione_id = ").bind_text(&t.prestazione_id);
        q.push(" ORDER BY seq DESC LIMIT 1");
        let latest = q.fetch_optional(&mut *tx).await.map_err(CoreError::from)?.map(|r| flusso(&r, false)).transpose()?;
        let standing = latest.filter(|f| f.operazione == "I" && f.stato != StatoFlusso::Rejected);
        let base = mancanze.clone();
        let mut mancanze = mancanze;
        let (emissioni, nota, trattenuta) = match (decidi)(standing.as_ref()) {
            Scelta::Emetti { emissioni, nota: scelta } => (emissioni, scelta.unwrap_or(nota), false),
            Scelta::Trattieni { nota: motivo, mancanza } => {
                mancanze.push(mancanza);
                (Vec::new(), motivo, true)
            }
        };
        let mut ids = Vec::new();
        for e in emissioni {
            match self.siuss_scrivi(&mut tx, &t, e, &giorno, &at).await? {
                Ok(id) => ids.push(id),
                Err(why) => {
                    drop(tx);
                    self.siuss_nota_rifiuto(&t, &base, &why, &at).await?;
                    return Err(ApplyError::Rifiutato(why));
                }
            }
        }
        let mancanze = serde_json::to_string(&mancanze).map_err(|e| CoreError::Internal(e.to_string()))?;
        let mut q = Q::new("UPDATE siuss_prestazione SET ente = ");
        q.bind_text(&t.ente).push(", ufficio = ").bind_text(&t.ufficio).push(", version = ").bind_int(t.version);
        q.push(", violazioni = ").bind_text(&mancanze).push(", nota = ").bind(Val::opt_text(&nota)).push(", updated_at = ").bind_text(&at);
        q.push(" WHERE prestazione_id = ").bind_text(&t.prestazione_id);
        q.execute(&mut *tx).await.map_err(CoreError::from)?;
        tx.commit().await.map_err(CoreError::from)?;
        Ok(if trattenuta { Applicazione::Trattenuta(nota) } else { Applicazione::Emessi(ids) })
    }

    /// Writes one flow of a decision in its transaction. The inner error is the writer's
    /// refusal (no value in it).
    async fn siuss_scrivi(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        t: &Testata,
        e: Emissione,
        giorno: &str,
        at: &str,
    ) -> Result<std::result::Result<String, String>> {
        // Per-ente ts counter first: its row lock orders this ente's flows by commit.
        let ts: i64 = Q::new("INSERT INTO siuss_progressivo (ente, giorno, ultimo) VALUES (")
            .bind_text(&t.ente)
            .push(", 'ts', ")
            .bind_int(now_ms())
            .push(") ON CONFLICT (ente, giorno) DO UPDATE SET ultimo = CASE WHEN excluded.ultimo > siuss_progressivo.ultimo THEN excluded.ultimo ELSE siuss_progressivo.ultimo + 1 END RETURNING ultimo")
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| CoreError::Internal("ts counter returned no row".into()))?
            .try_get("ultimo")?;
        let n: i64 = Q::new("INSERT INTO siuss_progressivo (ente, giorno, ultimo) VALUES (")
            .bind_text(&t.ente)
            .push(", ")
            .bind_text(giorno)
            .push(", 1) ON CONFLICT (ente, giorno) DO UPDATE SET ultimo = siuss_progressivo.ultimo + 1 RETURNING ultimo")
            .fetch_optional(&mut **tx)
            .await?
            .ok_or_else(|| CoreError::Internal("progressivo returned no row".into()))?
            .try_get("ultimo")?;
        if n > 9_999_999 {
            return Err(CoreError::Internal("daily flow sequence exhausted".into()));
        }
        let id = format!("{}.{}.{}.{:07}", t.ente, e.tipo, giorno, n);
        let xml = match (e.xml)(&id) {
            Ok(x) if x.len() > MAX_XML_BYTES => return Ok(Err(format!("flusso {} più grande dei 10 MB ammessi dall'API", e.operazione))),
            Ok(x) => x,
            Err(why) => return Ok(Err(format!("flusso {} non scritto: {why}", e.operazione))),
        };
        let mut q = Q::new(
            "INSERT INTO siuss_flusso (id_flusso, ente, denominazione_ente, ufficio, prestazione_id, prestazione_version, tipo, operazione, ts_flusso, xml, impronta, snapshot, stato, created_at) VALUES (",
        );
        q.bind_text(&id)
            .push(", ")
            .bind_text(&t.ente)
            .push(", ")
            .bind_text(&t.denominazione_ente)
            .push(", ")
            .bind_text(&t.ufficio)
            .push(", ")
            .bind_text(&t.prestazione_id);
        q.push(", ").bind_int(t.version).push(", ").bind_text(e.tipo).push(", ").bind_text(e.operazione).push(", ").bind_int(ts);
        q.push(", ").bind(Val::Bytes(xml)).push(", ").bind_text(&e.impronta).push(", ").bind(Val::Bytes(e.snapshot));
        q.push(", 'ready', ").bind_text(at).push(")");
        q.execute(&mut **tx).await?;
        Ok(Ok(id))
    }

    /// Notes on the prestazione that its flow was refused (the decision itself stored
    /// nothing), so operators see it beside the prestazione as well as in the dead letter.
    async fn siuss_nota_rifiuto(&self, t: &Testata, mancanze: &[Mancanza], why: &str, at: &str) -> Result<()> {
        let mancanze = serde_json::to_string(mancanze).map_err(|e| CoreError::Internal(e.to_string()))?;
        let nota = format!("nessun flusso emesso: {why}");
        let mut q = Q::new("INSERT INTO siuss_prestazione (prestazione_id, ente, ufficio, version, violazioni, nota, updated_at) VALUES (");
        q.bind_text(&t.prestazione_id).push(", ").bind_text(&t.ente).push(", ").bind_text(&t.ufficio).push(", ").bind_int(t.version);
        q.push(", ").bind_text(&mancanze).push(", ").bind_text(&nota).push(", ").bind_text(at);
        q.push(") ON CONFLICT (prestazione_id) DO UPDATE SET nota = excluded.nota, updated_at = excluded.updated_at");
        q.push(" WHERE siuss_prestazione.version <= excluded.version");
        q.execute(&self.pool).await?;
        Ok(())
    }

    /// `GET /flussi`: up to `limit` flows of the caller's ente with `ts_flusso > since`, in
    /// ledger order, with their XML. Marks them served and audits the disclosure. The same
    /// `since` always returns the same flows (plus any produced since).
    pub async fn siuss_serve(&self, caller: &Caller, since: i64, limit: u32) -> Result<Vec<Flusso>> {
        if caller.ufficio.is_some() || !caller.has(Role::Siuss) {
            return Err(CoreError::Denied("SIUSS flows are served only to an ente-wide caller with the siuss role"));
        }
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        let mut q = Q::new("SELECT ");
        q.push(FLUSSO_COLS).push(", xml FROM siuss_flusso WHERE ente = ").bind_text(&caller.ente);
        q.push(" AND ts_flusso > ").bind_int(since).push(" ORDER BY ts_flusso, seq LIMIT ").bind_int(i64::from(limit));
        let rows = q.fetch_all(&mut *tx).await?;
        let out = rows.iter().map(|r| flusso(r, true)).collect::<Result<Vec<_>>>()?;
        let fresh: Vec<&Flusso> = out.iter().filter(|f| f.stato == StatoFlusso::Ready).collect();
        if !fresh.is_empty() {
            let mut q = Q::new("UPDATE siuss_flusso SET stato = 'served', served_at = ");
            q.bind_text(&at).push(" WHERE stato = 'ready' AND seq IN (");
            for (i, f) in fresh.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind_int(f.seq);
            }
            q.push(")");
            q.execute(&mut *tx).await?;
        }
        let ids: Vec<&str> = out.iter().map(|f| f.prestazione_id.as_str()).collect();
        audit(&mut *tx, caller, &at, "siuss-flusso", Kind::Prestazione, &ids, "conferimento SIUSS a INPS").await?;
        tx.commit().await?;
        Ok(out)
    }

    /// `POST /esiti`: stores every esito or none. An esito repeated with the same content
    /// changes nothing; a later different one replaces it (INPS reprocessed the flow).
    pub async fn siuss_esiti(&self, caller: &Caller, esiti: &[Esito]) -> std::result::Result<usize, EsitiError> {
        if caller.ufficio.is_some() || !caller.has(Role::Siuss) {
            return Err(CoreError::Denied("SIUSS esiti are accepted only from an ente-wide caller with the siuss role").into());
        }
        let (at, _) = now();
        let mut tx = self.pool.begin().await.map_err(CoreError::from)?;
        let mut unknown = Vec::new();
        let mut changed = 0;
        for (i, e) in esiti.iter().enumerate() {
            let stato = if e.codice_esito == "OK" { StatoFlusso::Acknowledged } else { StatoFlusso::Rejected };
            let mut q = Q::new("UPDATE siuss_flusso SET stato = ");
            q.bind_text(stato.as_str()).push(", codice_esito = ").bind_text(&e.codice_esito);
            q.push(", descrizione_esito = ").bind(Val::opt_text(&e.descrizione_esito));
            q.push(", id_acquisizione_siuss = ").bind(Val::opt_text(&e.id_acquisizione_siuss));
            q.push(", ts_acquisizione = ").bind(Val::opt_text(&e.ts_acquisizione)).push(", esito_at = ").bind_text(&at);
            q.push(" WHERE id_flusso = ").bind_text(&e.id_flusso).push(" AND ente = ").bind_text(&caller.ente);
            let n = q.execute(&mut *tx).await.map_err(CoreError::from)?;
            if n == 0 {
                unknown.push(i);
            }
            changed += n as usize;
        }
        if !unknown.is_empty() {
            tx.rollback().await.map_err(CoreError::from)?;
            return Err(EsitiError::Sconosciuti(unknown));
        }
        tx.commit().await.map_err(CoreError::from)?;
        Ok(changed)
    }

    /// Operators' view of a prestazione's SIUSS state. Reading the prestazione first applies
    /// tenancy and audits the read.
    pub async fn siuss_stato(&self, caller: &Caller, prestazione_id: &str, purpose: &str) -> Result<StatoPrestazione> {
        self.get::<cartella_proto::v1::Prestazione>(caller, prestazione_id, purpose).await?;
        let row = Q::new("SELECT version, violazioni, nota, updated_at FROM siuss_prestazione WHERE prestazione_id = ")
            .bind_text(prestazione_id)
            .fetch_optional(&self.pool)
            .await?;
        let mut out = StatoPrestazione::default();
        if let Some(r) = row {
            out.valutata = true;
            out.version = r.try_get("version")?;
            out.mancanze = serde_json::from_str(&r.try_get::<String, _>("violazioni")?).unwrap_or_default();
            out.nota = opt(&r, "nota")?;
            out.updated_at = r.try_get("updated_at")?;
        }
        let mut q = Q::new("SELECT ");
        q.push(FLUSSO_COLS).push(" FROM siuss_flusso WHERE prestazione_id = ").bind_text(prestazione_id).push(" ORDER BY seq");
        out.flussi = q.fetch_all(&self.pool).await?.iter().map(|r| flusso(r, false)).collect::<Result<_>>()?;
        for f in &mut out.flussi {
            f.snapshot.clear();
        }
        Ok(out)
    }

    /// One flow with its XML (tests, conformance scripts).
    pub async fn siuss_flusso(&self, id_flusso: &str) -> Result<Option<Flusso>> {
        let mut q = Q::new("SELECT ");
        q.push(FLUSSO_COLS).push(", xml FROM siuss_flusso WHERE id_flusso = ").bind_text(id_flusso);
        q.fetch_optional(&self.pool).await?.map(|r| flusso(&r, true)).transpose()
    }

    /// The next progressivo of the ente's day, for a portal file name.
    pub async fn siuss_next_progressivo(&self, ente: &str, giorno: &str) -> Result<i64> {
        let n: i64 = Q::new("INSERT INTO siuss_progressivo (ente, giorno, ultimo) VALUES (")
            .bind_text(ente)
            .push(", ")
            .bind_text(giorno)
            .push(", 1) ON CONFLICT (ente, giorno) DO UPDATE SET ultimo = siuss_progressivo.ultimo + 1 RETURNING ultimo")
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| CoreError::Internal("progressivo returned no row".into()))?
            .try_get("ultimo")?;
        Ok(n)
    }
}

/// The records one prestazione is mapped from.
#[derive(Clone, Debug, Default)]
pub struct Fonte {
    pub persona: cartella_proto::v1::Persona,
    pub cartella: cartella_proto::v1::Cartella,
    pub prestazione: cartella_proto::v1::Prestazione,
    /// The latest SINA and SINBA assessments of the cartella.
    pub sina: Option<cartella_proto::v1::Valutazione>,
    pub sinba: Option<cartella_proto::v1::Valutazione>,
}

/// One prestazione of an export page with the records it is mapped from; consecutive rows
/// of the same person or cartella share them.
#[derive(Clone, Debug)]
pub struct RigaExport {
    pub persona: Arc<cartella_proto::v1::Persona>,
    pub cartella: Arc<cartella_proto::v1::Cartella>,
    pub prestazione: cartella_proto::v1::Prestazione,
    pub sina: Option<Arc<cartella_proto::v1::Valutazione>>,
    pub sinba: Option<Arc<cartella_proto::v1::Valutazione>>,
}

/// Where an export page starts: after this (persona id, prestazione id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportKey {
    pub persona_id: String,
    pub prestazione_id: String,
}

fn decode<M: prost::Message + Default>(r: &AnyRow, col: &str) -> Result<Option<M>> {
    super::esporta::decodifica(r.try_get::<Option<Vec<u8>>, _>(col)?.as_deref(), col)
}

fn fonte(r: &AnyRow) -> Result<Fonte> {
    Ok(Fonte {
        persona: decode(r, "pe_body")?.unwrap_or_default(),
        cartella: decode(r, "c_body")?.unwrap_or_default(),
        prestazione: decode(r, "pr_body")?.unwrap_or_default(),
        sina: decode(r, "sina_body")?,
        sinba: decode(r, "sinba_body")?,
    })
}

/// Columns `sina_body` and `sinba_body`: the latest SINA and SINBA valutazione of the
/// cartella `c`.
macro_rules! ultime_valutazioni {
    () => {
        "(SELECT v.body FROM valutazione v WHERE v.cartella_id = c.id AND v.tipo = 'sina' ORDER BY v.data DESC, v.id DESC LIMIT 1) AS sina_body, \
         (SELECT v.body FROM valutazione v WHERE v.cartella_id = c.id AND v.tipo = 'sinba' ORDER BY v.data DESC, v.id DESC LIMIT 1) AS sinba_body"
    };
}

/// The same two subqueries, for readers outside sqlx.
pub(super) const ULTIME_VALUTAZIONI: &str = ultime_valutazioni!();

/// The joined read of prestazioni with their person, cartella and latest assessments.
fn fonte_select() -> Q {
    Q::new(concat!(
        "SELECT pr.id AS pr_id, pr.persona_id AS pe_id, pr.body AS pr_body, c.body AS c_body, pe.body AS pe_body, ",
        ultime_valutazioni!(),
        " FROM prestazione pr JOIN cartella c ON c.id = pr.cartella_id JOIN persona pe ON pe.id = pr.persona_id WHERE ",
    ))
}

impl Store {
    /// The records a prestazione is mapped from, read by an ente-wide system caller (the
    /// SIUSS worker); the read is audited. None when the prestazione is gone.
    pub async fn siuss_fonte(&self, caller: &Caller, prestazione_id: &str) -> Result<Option<Fonte>> {
        if caller.ufficio.is_some() || !caller.can_read() {
            return Err(CoreError::Denied("the SIUSS worker must be an ente-wide caller allowed to read"));
        }
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        let mut q = fonte_select();
        q.push("pr.ente = ").bind_text(&caller.ente).push(" AND pr.id = ").bind_text(prestazione_id);
        let Some(r) = q.fetch_optional(&mut *tx).await? else { return Ok(None) };
        let f = fonte(&r)?;
        audit(&mut *tx, caller, &at, "read", Kind::Prestazione, &[prestazione_id], "conferimento SIUSS a INPS").await?;
        tx.commit().await?;
        Ok(Some(f))
    }

    /// Prestazioni of the ente touched by a change of a cartella (or its valutazioni) or of a
    /// persona.
    pub async fn siuss_prestazioni_di(&self, ente: &str, cartella_id: &str, persona_id: &str) -> Result<Vec<String>> {
        let mut q = Q::new("SELECT id FROM prestazione WHERE ente = ");
        q.bind_text(ente);
        if !cartella_id.is_empty() {
            q.push(" AND cartella_id = ").bind_text(cartella_id);
        } else {
            q.push(" AND persona_id = ").bind_text(persona_id);
        }
        q.push(" ORDER BY id");
        q.fetch_all(&self.pool).await?.iter().map(|r| Ok(r.try_get::<String, _>("id")?)).collect()
    }

    /// One page of the portal export: the ente's prestazioni after `after` in (persona,
    /// prestazione) order, with the records they are mapped from. Three reads in one
    /// transaction (a repeatable-read snapshot on PostgreSQL): the page of prestazioni, then
    /// the people and the cartelle (with their latest SINA and SINBA assessments) that the
    /// page's key range refers to, each read and decoded once and shared by the rows that
    /// need it. The read is audited with one row per person in the same transaction.
    pub async fn siuss_export_page(&self, caller: &Caller, after: &ExportKey, limit: u32) -> Result<(Vec<RigaExport>, Option<ExportKey>)> {
        if caller.ufficio.is_some() || !caller.can_read() {
            return Err(CoreError::Denied("the SIUSS export needs an ente-wide caller allowed to read"));
        }
        let (at, _) = now();
        let mut tx = self.pool.begin().await?;
        if self.backend == super::Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
        }
        // A row-value comparison, so both engines walk the (ente, persona_id, id) index
        // instead of rescanning the ente on every page.
        let mut q = Q::new("SELECT id, persona_id, cartella_id, body FROM prestazione WHERE ente = ");
        q.bind_text(&caller.ente);
        q.push(" AND (persona_id, id) > (").bind_text(&after.persona_id).push(", ").bind_text(&after.prestazione_id).push(")");
        q.push(" ORDER BY persona_id, id LIMIT ").bind_int(i64::from(limit.max(1)));
        let rows = q.fetch_all(&mut *tx).await?;
        let Some(l) = rows.last() else {
            tx.commit().await?;
            return Ok((Vec::new(), None));
        };
        let last = ExportKey { persona_id: l.try_get("persona_id")?, prestazione_id: l.try_get("id")? };
        // The page's key range, for the reads of what it refers to and for the audit.
        let range = |q: &mut Q| {
            q.bind_text(&caller.ente);
            q.push(" AND (r.persona_id, r.id) > (").bind_text(&after.persona_id).push(", ").bind_text(&after.prestazione_id).push(")");
            q.push(" AND (r.persona_id, r.id) <= (").bind_text(&last.persona_id).push(", ").bind_text(&last.prestazione_id).push(")");
        };
        let mut q = Q::new("SELECT pe.id, pe.body FROM persona pe WHERE pe.id IN (SELECT r.persona_id FROM prestazione r WHERE r.ente = ");
        range(&mut q);
        q.push(")");
        let mut persone = std::collections::HashMap::new();
        for r in q.fetch_all(&mut *tx).await? {
            let p: cartella_proto::v1::Persona = decode(&r, "body")?.unwrap_or_default();
            persone.insert(r.try_get::<String, _>("id")?, Arc::new(p));
        }
        let mut q = Q::new(concat!(
            "SELECT c.id, c.body, ",
            ultime_valutazioni!(),
            " FROM cartella c WHERE c.id IN (SELECT r.cartella_id FROM prestazione r WHERE r.ente = ",
        ));
        range(&mut q);
        q.push(")");
        let mut cartelle = std::collections::HashMap::new();
        for r in q.fetch_all(&mut *tx).await? {
            let c: cartella_proto::v1::Cartella = decode(&r, "body")?.unwrap_or_default();
            let sina = decode(&r, "sina_body")?.map(Arc::new);
            let sinba = decode(&r, "sinba_body")?.map(Arc::new);
            cartelle.insert(r.try_get::<String, _>("id")?, (Arc::new(c), sina, sinba));
        }
        let mut out: Vec<RigaExport> = Vec::with_capacity(rows.len());
        for r in &rows {
            let persona = persone
                .get(r.try_get::<&str, _>("persona_id")?)
                .ok_or_else(|| CoreError::Internal("prestazione without its persona".into()))?;
            let (cartella, sina, sinba) = cartelle
                .get(r.try_get::<&str, _>("cartella_id")?)
                .ok_or_else(|| CoreError::Internal("prestazione without its cartella".into()))?;
            out.push(RigaExport {
                persona: Arc::clone(persona),
                cartella: Arc::clone(cartella),
                prestazione: decode(r, "body")?.unwrap_or_default(),
                sina: sina.clone(),
                sinba: sinba.clone(),
            });
        }
        // One audit row per person whose records the page read (anagrafica, cartella,
        // valutazioni and prestazioni go out together in the person's Beneficiario), written
        // from the page's key range: a constant number of parameters however long the page.
        let mut q =
            Q::new("INSERT INTO audit (at, actor_kind, actor, ente, ufficio, action, kind, record_id, purpose, request_id) SELECT ");
        q.bind_text(&at)
            .push(", ")
            .bind_text(caller.kind.as_str())
            .push(", ")
            .bind_text(&caller.subject)
            .push(", ")
            .bind_text(&caller.ente);
        q.push(", NULL, 'read', ").bind_text(Kind::Persona.name()).push(", p.persona_id, ").bind_text(super::esporta::SCOPO_EXPORT);
        q.push(", ").bind_text(&caller.request_id).push(" FROM (SELECT DISTINCT r.persona_id FROM prestazione r WHERE r.ente = ");
        range(&mut q);
        q.push(") p");
        q.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok((out, Some(last)))
    }
}

/// A flow in the administrators' list: the ledger row (no XML, no snapshot) and its ufficio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlussoElencato {
    pub flusso: Flusso,
    pub ufficio: String,
}

/// One page of the administrators' list of flows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElencoFlussi {
    /// Every state with its count (zeros included), in the ledger's order of states.
    pub per_stato: Vec<(StatoFlusso, i64)>,
    pub flussi: Vec<FlussoElencato>,
    /// The ledger sequence to continue before, when there is a next page.
    pub next: Option<i64>,
}

/// What INPS's `codice_esito` means for the people who run the hub, and what to do about it.
/// The codes are those of WaaS `api-comuni.yaml` 2.0.1 (`EsitoFlusso.codice_esito`).
pub fn significato_esito(codice: &str) -> &'static str {
    match codice {
        "" => "",
        "OK" => "Flusso acquisito da INPS nel SIUSS.",
        "DATI_NON_TROVATI" => {
            "INPS non ha trovato i dati a cui il flusso si riferisce (ad esempio la prestazione da cancellare): \
             verificare che l'inserimento originario sia stato acquisito."
        }
        "RICHIESTA_INVALIDA" => {
            "INPS ha rifiutato il flusso perché non rispetta la specifica (vedere la descrizione dell'esito): \
             correggere la prestazione o la cartella; la modifica produce un nuovo flusso."
        }
        "ERRORE_GENERICO" => "Errore di INPS nell'acquisizione: il flusso va ripresentato quando il servizio torna disponibile.",
        _ => "Codice di esito non previsto dalla specifica WaaS 2.0.1.",
    }
}

const STATI: [StatoFlusso; 4] = [StatoFlusso::Ready, StatoFlusso::Served, StatoFlusso::Acknowledged, StatoFlusso::Rejected];

impl StatoFlusso {
    /// The state named `s`, if it is one.
    pub fn from_name(s: &str) -> Option<Self> {
        STATI.into_iter().find(|x| x.as_str() == s)
    }
}

impl Store {
    /// The flows of the caller's ente, newest first, with the count of every state: what
    /// the console's INPS page shows. For hub administrators (ente-wide, `amministratore`);
    /// flows carry ids and codes only, so nothing is audited as a read of personal data.
    pub async fn siuss_elenco(&self, caller: &Caller, stato: Option<StatoFlusso>, before: i64, size: u32) -> Result<ElencoFlussi> {
        super::delivery::check_admin(caller)?;
        let size = size.clamp(1, 200);
        let counts = Q::new("SELECT stato, COUNT(*) AS n FROM siuss_flusso WHERE ente = ")
            .bind_text(&caller.ente)
            .push(" GROUP BY stato")
            .fetch_all(&self.pool)
            .await?;
        let mut per_stato: Vec<(StatoFlusso, i64)> = STATI.iter().map(|s| (*s, 0)).collect();
        for r in &counts {
            let s = StatoFlusso::parse(&r.try_get::<String, _>("stato")?);
            let n: i64 = r.try_get("n")?;
            if let Some(e) = per_stato.iter_mut().find(|(x, _)| *x == s) {
                e.1 += n;
            }
        }
        let mut q = Q::new("SELECT ");
        q.push(FLUSSO_COLS).push(", ufficio FROM siuss_flusso WHERE ente = ").bind_text(&caller.ente);
        if let Some(s) = stato {
            q.push(" AND stato = ").bind_text(s.as_str());
        }
        if before > 0 {
            q.push(" AND seq < ").bind_int(before);
        }
        q.push(" ORDER BY seq DESC LIMIT ").bind_int(i64::from(size) + 1);
        let rows = q.fetch_all(&self.pool).await?;
        let mut flussi = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut f = flusso(r, false)?;
            f.snapshot.clear();
            flussi.push(FlussoElencato { flusso: f, ufficio: r.try_get("ufficio")? });
        }
        let next = (flussi.len() > size as usize).then(|| {
            flussi.truncate(size as usize);
            flussi.last().map_or(0, |f| f.flusso.seq)
        });
        Ok(ElencoFlussi { per_stato, flussi, next })
    }
}
