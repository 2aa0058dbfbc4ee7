//! Import jobs: an office's export imported in the background (`ImportService`). A job is a
//! row of `import_job` with its uploaded files; runners in every core process claim queued
//! jobs with a lease (a compare-and-set on the row, so two runners never run one job), keep
//! the lease alive while they work and write progress beside it. A runner that stops
//! cleanly puts its job back in the queue; one that dies leaves a lease that runs out, and
//! the next runner resumes the job: the office ids in `import_origine` make the resumed run
//! import only what is missing, and each person (with their household) is one transaction,
//! so nothing is ever half-imported. Cancelling is cooperative: the job's row says so at
//! once, its runner learns it (at once in the same process, at its next heartbeat in
//! another), stops the import between units (a unit half-way is rolled back) and records
//! how far it got; a new job on the same export imports the rest. Problems are kept with
//! the job (file, line, column, reason; never a value).
use std::{
    collections::{BTreeMap, HashMap},
    path::{Component, Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use cartella_proto::v1 as pb;
use prost::Message;
use sqlx::Row;
use tokio::sync::{Notify, watch};

use super::{
    FILES, Source,
    load::{ImportOptions, ImportSummary, StopSignal, import_until},
};
use crate::{
    auth::{Caller, CallerKind, Role},
    domain::Violation,
    error::{CoreError, Result},
    linkage::Config,
    record::Val,
    store::{Store, now, sql::Q},
};

/// Largest upload a job accepts, all files together.
pub const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// After this many runs a job that keeps failing on a store error is given up.
const MAX_ATTEMPTS: i64 = 5;

/// How long a runner asked to stop (the process shutting down) waits for the unit in
/// progress before dropping it (a rollback either way).
const STOP_GRACE: Duration = Duration::from_secs(5);

const QUEUED: &str = "queued";
const RUNNING: &str = "running";
const DONE: &str = "done";
const FAILED: &str = "failed";
const CANCELLED: &str = "cancelled";

/// How the import runners of a core process work.
#[derive(Clone, Debug)]
pub struct ImportConfig {
    /// The folder server-side imports may read from (sub-folders only); None: uploads only.
    pub root: Option<PathBuf>,
    /// How long a claim holds a job without a heartbeat; a runner that dies loses its job
    /// after this.
    pub lease: Duration,
    /// How often a running job's progress is written (and its lease renewed).
    pub heartbeat: Duration,
    /// How often idle runners look for jobs queued by other processes.
    pub poll: Duration,
    pub linkage: Config,
}

impl Default for ImportConfig {
    fn default() -> Self {
        Self {
            root: None,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(1),
            poll: Duration::from_secs(2),
            linkage: Config::default(),
        }
    }
}

/// The import jobs of a store: what the service calls, and the runner.
#[derive(Clone, Debug)]
pub struct Jobs {
    store: Store,
    config: Arc<ImportConfig>,
    /// Wakes this process's runner when a job is queued here.
    wake: Arc<Notify>,
    /// The stop signals of the jobs this process runs, by id: a cancel made here reaches
    /// its runner without waiting for a heartbeat.
    running: Arc<Mutex<HashMap<String, StopSignal>>>,
}

/// Removes a running job's stop signal when its run ends, however it ends.
struct Registered<'a> {
    running: &'a Mutex<HashMap<String, StopSignal>>,
    id: String,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.running.lock() {
            m.remove(&self.id);
        }
    }
}

fn check_admin(caller: &Caller) -> Result<()> {
    if caller.ufficio.is_some() || !caller.has(Role::Amministratore) {
        return Err(CoreError::Denied("imports are run by ente-wide callers with role amministratore"));
    }
    Ok(())
}

fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn violation(field: &str, description: &str) -> Violation {
    Violation { field: field.into(), description: description.into() }
}

/// `rel` as a folder under `root`: a relative path of plain names, which, with symbolic
/// links resolved, is still under the root. The reason never repeats the path.
pub fn resolve_under(root: &Path, rel: &str) -> std::result::Result<PathBuf, &'static str> {
    let rel_path = Path::new(rel);
    if rel.trim().is_empty() {
        return Err("is required");
    }
    if rel.len() > 512 || !rel_path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("must be a relative path of folder names under the import root");
    }
    let root = root.canonicalize().map_err(|_| "no such folder under the import root")?;
    let full = root.join(rel_path).canonicalize().map_err(|_| "no such folder under the import root")?;
    if !full.starts_with(&root) {
        return Err("must be a relative path of folder names under the import root");
    }
    if !full.is_dir() {
        return Err("no such folder under the import root");
    }
    Ok(full)
}

fn state_pb(s: &str) -> pb::ImportState {
    match s {
        QUEUED => pb::ImportState::Queued,
        RUNNING => pb::ImportState::Running,
        DONE => pb::ImportState::Done,
        FAILED => pb::ImportState::Failed,
        CANCELLED => pb::ImportState::Cancelled,
        _ => pb::ImportState::Unspecified,
    }
}

fn counts_pb(s: &ImportSummary) -> pb::ImportCounts {
    let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
    pb::ImportCounts {
        problemi: n(s.problems.len()),
        persone_righe: n(s.persone_rows),
        persone_gia_importate: n(s.persone_gia_importate),
        persone_nuove: n(s.persone_nuove),
        persone_collegate: n(s.persone_collegate),
        persone_unite: n(s.persone_unite),
        coppie_da_rivedere: n(s.coppie_da_rivedere),
        cf_non_affidabili: n(s.cf_non_affidabili),
        cartelle_nuove: n(s.cartelle_nuove),
        cartelle_gia_importate: n(s.cartelle_gia_importate),
        nuclei_nuovi: n(s.nuclei_nuovi),
        nuclei_gia_importati: n(s.nuclei_gia_importati),
        prestazioni_nuove: n(s.prestazioni_nuove),
        prestazioni_gia_importate: n(s.prestazioni_gia_importate),
    }
}

const JOB_COLUMNS: &str = "SELECT id, ente, ufficio, origine, dry_run, source, cartella, state, done, total, attempts, counts, error, \
     created_by, created_kind, created_at, started_at, finished_at, linkage FROM import_job";

/// The settings as the job keeps them, every field set.
fn settings_pb(c: &Config) -> pb::LinkageSettings {
    let n32 = |v: usize| Some(u32::try_from(v).unwrap_or(u32::MAX));
    pb::LinkageSettings {
        link_threshold: Some(c.link_threshold),
        review_threshold: Some(c.review_threshold),
        max_block: n32(c.max_block),
        training_max_block: n32(c.training_max_block),
        u_sample_pairs: Some(u64::try_from(c.u_sample_pairs).unwrap_or(u64::MAX)),
        em_iterations: n32(c.em_iterations),
    }
}

/// `s` over `defaults`: each setting `s` leaves unset keeps its default.
fn settings_over(defaults: &Config, s: Option<&pb::LinkageSettings>) -> Config {
    let Some(s) = s else { return defaults.clone() };
    let n = |v: Option<u32>, d: usize| v.map_or(d, |v| usize::try_from(v).unwrap_or(usize::MAX));
    Config {
        link_threshold: s.link_threshold.unwrap_or(defaults.link_threshold),
        review_threshold: s.review_threshold.unwrap_or(defaults.review_threshold),
        max_block: n(s.max_block, defaults.max_block),
        training_max_block: n(s.training_max_block, defaults.training_max_block),
        u_sample_pairs: s.u_sample_pairs.map_or(defaults.u_sample_pairs, |v| usize::try_from(v).unwrap_or(usize::MAX)),
        em_iterations: n(s.em_iterations, defaults.em_iterations),
        ..defaults.clone()
    }
}

fn job_of(r: &sqlx::any::AnyRow) -> Result<pb::ImportJob> {
    let counts: Option<Vec<u8>> = r.try_get("counts")?;
    let counts = counts
        .map(|b| pb::ImportCounts::decode(b.as_slice()))
        .transpose()
        .map_err(|_| CoreError::Internal("undecodable import counts".into()))?;
    let state: String = r.try_get("state")?;
    let linkage: Option<Vec<u8>> = r.try_get("linkage")?;
    let linkage = linkage
        .map(|b| pb::LinkageSettings::decode(b.as_slice()))
        .transpose()
        .map_err(|_| CoreError::Internal("undecodable import linkage settings".into()))?;
    Ok(pb::ImportJob {
        id: r.try_get("id")?,
        ente: r.try_get("ente")?,
        ufficio: r.try_get("ufficio")?,
        origine: r.try_get("origine")?,
        dry_run: r.try_get::<i64, _>("dry_run")? != 0,
        source: r.try_get("source")?,
        cartella: r.try_get("cartella")?,
        state: state_pb(&state) as i32,
        done: r.try_get("done")?,
        total: r.try_get("total")?,
        attempts: i32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(i32::MAX),
        counts,
        error: r.try_get("error")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        started_at: r.try_get::<Option<String>, _>("started_at")?.unwrap_or_default(),
        finished_at: r.try_get::<Option<String>, _>("finished_at")?.unwrap_or_default(),
        linkage,
    })
}

/// A checked start request: the files uploaded (None for a folder) and the linkage
/// settings the job will run with.
type Checked = (Option<BTreeMap<String, Vec<u8>>>, Config);

/// Checks a start request and turns it into its source and settings; every bad field at once.
fn check_start(req: &pb::StartImportRequest, root: Option<&Path>, defaults: &Config) -> Result<Checked> {
    let mut v = Vec::new();
    let code =
        |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    if req.ufficio.is_empty() {
        v.push(violation("ufficio", "is required"));
    } else if !code(&req.ufficio, 16) {
        v.push(violation("ufficio", "must be an ufficio code (letters, digits, - or _; at most 16)"));
    }
    if req.origine.is_empty() {
        v.push(violation("origine", "is required"));
    } else if !code(&req.origine, 64) {
        v.push(violation("origine", "must be 1-64 letters, digits, - or _"));
    }
    let mut files = None;
    match &req.source {
        None => v.push(violation("source", "give the files or a cartella under the import root")),
        Some(pb::start_import_request::Source::Files(f)) => {
            let mut map = BTreeMap::new();
            let mut size = 0usize;
            for (i, file) in f.files.iter().enumerate() {
                if !FILES.contains(&file.name.as_str()) {
                    v.push(violation(
                        &format!("files.files[{i}].name"),
                        "must be persone.csv, nuclei.csv, cartelle.csv or prestazioni.csv",
                    ));
                } else if map.insert(file.name.clone(), file.content.clone()).is_some() {
                    v.push(violation(&format!("files.files[{i}].name"), "is given twice"));
                }
                size = size.saturating_add(file.content.len());
            }
            if !map.contains_key(super::rows::PERSONE) {
                v.push(violation("files", "must include persone.csv"));
            }
            if size > MAX_UPLOAD {
                v.push(violation("files", "must be at most 64 MiB in all"));
            }
            files = Some(map);
        }
        Some(pb::start_import_request::Source::Cartella(rel)) => match root {
            None => return Err(CoreError::Conflict("no import root is configured: upload the files, or start core with --import-root")),
            Some(root) => match resolve_under(root, rel) {
                Ok(dir) if dir.join(super::rows::PERSONE).is_file() => {}
                Ok(_) => v.push(violation("cartella", "has no persone.csv")),
                Err(why) => v.push(violation("cartella", why)),
            },
        },
    }
    let linkage = settings_over(defaults, req.linkage.as_ref());
    for (field, why) in linkage.check() {
        v.push(violation(&format!("linkage.{field}"), &why));
    }
    if !v.is_empty() {
        return Err(CoreError::Invalid(v));
    }
    Ok((files, linkage))
}

fn page_size(v: i32, default: i64, max: i64, bad: &mut Vec<Violation>) -> i64 {
    match i64::from(v) {
        0 => default,
        n if (1..=max).contains(&n) => n,
        _ => {
            bad.push(violation("page_size", &format!("must be between 1 and {max}")));
            default
        }
    }
}

impl Jobs {
    pub fn new(store: Store, config: ImportConfig) -> Self {
        Self { store, config: Arc::new(config), wake: Arc::new(Notify::new()), running: Arc::default() }
    }

    /// Queues a job (its files with it, in one transaction) and wakes the runner.
    pub async fn start(&self, caller: &Caller, req: pb::StartImportRequest) -> Result<pb::ImportJob> {
        check_admin(caller)?;
        let (files, linkage) = check_start(&req, self.config.root.as_deref(), &self.config.linkage)?;
        let id = uuid::Uuid::now_v7().to_string();
        let (at, _) = now();
        let (source, cartella) = match &req.source {
            Some(pb::start_import_request::Source::Cartella(c)) => ("cartella", c.clone()),
            _ => ("files", String::new()),
        };
        let mut tx = self.store.pool().begin().await?;
        let mut q = Q::new(
            "INSERT INTO import_job (id, ente, ufficio, origine, dry_run, source, cartella, state, created_by, created_kind, created_at, linkage) VALUES (",
        );
        q.bind_text(&id).push(", ").bind_text(&caller.ente).push(", ").bind_text(&req.ufficio).push(", ").bind_text(&req.origine);
        q.push(", ").bind_int(i64::from(req.dry_run)).push(", ").bind_text(source).push(", ").bind_text(&cartella);
        q.push(", ").bind_text(QUEUED).push(", ").bind_text(&caller.subject).push(", ").bind_text(caller.kind.as_str());
        q.push(", ").bind_text(&at).push(", ").bind(Val::Bytes(settings_pb(&linkage).encode_to_vec())).push(")");
        q.execute(&mut *tx).await?;
        for (name, content) in files.unwrap_or_default() {
            Q::new("INSERT INTO import_job_file (job_id, name, content) VALUES (")
                .bind_text(&id)
                .push(", ")
                .bind_text(&name)
                .push(", ")
                .bind(Val::Bytes(content))
                .push(")")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        tracing::info!(job = %id, source, dry_run = req.dry_run, "import job queued");
        self.wake.notify_one();
        self.get(caller, &id).await
    }

    async fn find(&self, ente: &str, id: &str) -> Result<pb::ImportJob> {
        let row = Q::new(JOB_COLUMNS)
            .push(" WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(ente)
            .fetch_optional(self.store.pool())
            .await?
            .ok_or(CoreError::NotFound { kind: "import job" })?;
        job_of(&row)
    }

    pub async fn get(&self, caller: &Caller, id: &str) -> Result<pb::ImportJob> {
        check_admin(caller)?;
        self.find(&caller.ente, id).await
    }

    /// The ente's jobs, newest first (ids are time-ordered).
    pub async fn list(&self, caller: &Caller, req: &pb::ListImportsRequest) -> Result<pb::ListImportsResponse> {
        check_admin(caller)?;
        let mut bad = Vec::new();
        let size = page_size(req.page_size, 50, 200, &mut bad);
        if !bad.is_empty() {
            return Err(CoreError::Invalid(bad));
        }
        let mut q = Q::new(JOB_COLUMNS);
        q.push(" WHERE ente = ").bind_text(&caller.ente);
        if !req.page_token.is_empty() {
            q.push(" AND id < ").bind_text(&req.page_token);
        }
        q.push(" ORDER BY id DESC LIMIT ").bind_int(size + 1);
        let rows = q.fetch_all(self.store.pool()).await?;
        let mut jobs = rows.iter().map(job_of).collect::<Result<Vec<_>>>()?;
        let next = if jobs.len() as i64 > size {
            jobs.truncate(usize::try_from(size).unwrap_or(0));
            jobs.last().map(|j| j.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(pb::ListImportsResponse { jobs, next_page_token: next })
    }

    /// A job's problems in the order they were found.
    pub async fn problems(&self, caller: &Caller, req: &pb::ListImportProblemsRequest) -> Result<pb::ListImportProblemsResponse> {
        check_admin(caller)?;
        let mut bad = Vec::new();
        let size = page_size(req.page_size, 200, 1000, &mut bad);
        let after = if req.page_token.is_empty() {
            -1
        } else {
            req.page_token.parse::<i64>().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
                bad.push(violation("page_token", "is not a token this service issued"));
                -1
            })
        };
        if !bad.is_empty() {
            return Err(CoreError::Invalid(bad));
        }
        self.find(&caller.ente, &req.id).await?;
        let rows = Q::new("SELECT seq, file, line, col, reason FROM import_job_problem WHERE job_id = ")
            .bind_text(&req.id)
            .push(" AND seq > ")
            .bind_int(after)
            .push(" ORDER BY seq LIMIT ")
            .bind_int(size + 1)
            .fetch_all(self.store.pool())
            .await?;
        let mut problems = Vec::with_capacity(rows.len());
        let mut last = -1;
        for r in rows.iter().take(usize::try_from(size).unwrap_or(0)) {
            last = r.try_get("seq")?;
            problems.push(pb::ImportProblem {
                file: r.try_get("file")?,
                line: r.try_get("line")?,
                column: r.try_get("col")?,
                reason: r.try_get("reason")?,
            });
        }
        let next = if rows.len() as i64 > size { last.to_string() } else { String::new() };
        Ok(pb::ListImportProblemsResponse { problems, next_page_token: next })
    }

    /// Stops a queued or running job. The row says cancelled at once; the claim stays so
    /// that the runner, told at once in this process and at its next heartbeat in another,
    /// records how far it got once it has stopped between two units.
    pub async fn cancel(&self, caller: &Caller, id: &str) -> Result<pb::ImportJob> {
        check_admin(caller)?;
        let (at, _) = now();
        let n = Q::new("UPDATE import_job SET state = ")
            .bind_text(CANCELLED)
            .push(", finished_at = ")
            .bind_text(&at)
            .push(", lease_until = NULL WHERE id = ")
            .bind_text(id)
            .push(" AND ente = ")
            .bind_text(&caller.ente)
            .push(" AND state IN ('queued', 'running')")
            .execute(self.store.pool())
            .await?;
        let job = self.find(&caller.ente, id).await?;
        if n == 0 {
            return Err(CoreError::Conflict("the import job has already ended"));
        }
        if let Some(stop) = self.running.lock().ok().and_then(|m| m.get(id).cloned()) {
            stop.stop();
        }
        tracing::info!(job = %id, "import job cancelled");
        Ok(job)
    }

    /// Runs jobs until `stop` turns true (or the store is closed): this process's runner.
    pub fn spawn(self, stop: Option<watch::Receiver<bool>>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run_loop(stop).await })
    }

    async fn run_loop(self, mut stop: Option<watch::Receiver<bool>>) {
        loop {
            if self.store.pool().is_closed() || stop.as_ref().is_some_and(|s| *s.borrow()) {
                return;
            }
            match self.claim().await {
                Ok(Some((job, claim))) => {
                    if self.run(job, &claim, &mut stop).await == Ended::Stopped {
                        return;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "import runner: looking for jobs failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.poll) => {}
                _ = self.wake.notified() => {}
                _ = crate::server::stopped(&mut stop) => return,
            }
        }
    }

    /// Takes the oldest job that is queued or whose runner's lease ran out.
    async fn claim(&self) -> Result<Option<(pb::ImportJob, String)>> {
        for _ in 0..8 {
            let t = now_ms();
            let Some(row) =
                Q::new("SELECT id FROM import_job WHERE state IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < ")
                    .bind_int(t)
                    .push(") ORDER BY id LIMIT 1")
                    .fetch_optional(self.store.pool())
                    .await?
            else {
                return Ok(None);
            };
            let id: String = row.try_get("id")?;
            let claim = uuid::Uuid::new_v4().to_string();
            let (at, _) = now();
            let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
            let n = Q::new("UPDATE import_job SET state = ")
                .bind_text(RUNNING)
                .push(", claim = ")
                .bind_text(&claim)
                .push(", lease_until = ")
                .bind_int(t.saturating_add(lease))
                .push(", attempts = attempts + 1, started_at = COALESCE(started_at, ")
                .bind_text(&at)
                .push(") WHERE id = ")
                .bind_text(&id)
                .push(" AND state IN ('queued', 'running') AND (lease_until IS NULL OR lease_until < ")
                .bind_int(t)
                .push(")")
                .execute(self.store.pool())
                .await?;
            if n == 1 {
                let row = Q::new(JOB_COLUMNS).push(" WHERE id = ").bind_text(&id).fetch_optional(self.store.pool()).await?;
                return row.map(|r| job_of(&r).map(|j| (j, claim))).transpose();
            }
        }
        Ok(None)
    }

    async fn source(&self, job: &pb::ImportJob) -> std::result::Result<Source, &'static str> {
        if job.source == "cartella" {
            let root = self.config.root.as_deref().ok_or("no import root is configured in the core running the job")?;
            return resolve_under(root, &job.cartella).map(Source::Dir).map_err(|_| "the folder is no longer under the import root");
        }
        let rows = Q::new("SELECT name, content FROM import_job_file WHERE job_id = ")
            .bind_text(&job.id)
            .fetch_all(self.store.pool())
            .await
            .map_err(|_| "the uploaded files cannot be read")?;
        let mut files = BTreeMap::new();
        for r in rows {
            let name: String = r.try_get("name").map_err(|_| "the uploaded files cannot be read")?;
            let content: Vec<u8> = r.try_get("content").map_err(|_| "the uploaded files cannot be read")?;
            files.insert(name, Arc::from(content));
        }
        Ok(Source::Files(files))
    }

    /// Runs a claimed job to its end, or until it is cancelled, its claim lost or the
    /// runner stopped.
    async fn run(&self, job: pb::ImportJob, claim: &str, stop: &mut Option<watch::Receiver<bool>>) -> Ended {
        let id = job.id.clone();
        if i64::from(job.attempts) > MAX_ATTEMPTS {
            self.finish_failed(&id, claim, "the job failed too many times on store errors").await;
            return Ended::Finished;
        }
        let src = match self.source(&job).await {
            Ok(s) => s,
            Err(why) => {
                self.finish_failed(&id, claim, why).await;
                return Ended::Finished;
            }
        };
        let kind = self.created_kind(&id).await;
        // The records are written for the job's ufficio by whoever started it.
        let caller = Caller {
            kind,
            subject: job.created_by.clone(),
            ente: job.ente.clone(),
            ufficio: Some(job.ufficio.clone()),
            roles: vec![Role::Operatore],
            purpose: "importazione dalle banche dati degli uffici".into(),
            request_id: format!("import-{id}"),
        };
        // Jobs queued before settings were kept with them run with this core's.
        let linkage = settings_over(&self.config.linkage, job.linkage.as_ref());
        let opts = ImportOptions { origine: job.origine.clone(), dry_run: job.dry_run, linkage };
        let progress = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let seen = progress.clone();
        let signal = StopSignal::new();
        if let Ok(mut m) = self.running.lock() {
            m.insert(id.clone(), signal.clone());
        }
        let _registered = Registered { running: &self.running, id: id.clone() };
        tracing::info!(job = %id, attempt = job.attempts, "import job running");
        let store = self.store.clone();
        let stop_work = signal.clone();
        // A task of its own, so that it goes on while the heartbeat waits for a connection
        // (SQLite has one); it ends with this runner, however this runner ends.
        let mut work = AbortOnDrop(tokio::spawn(async move {
            let mut seen_progress = |done, total| {
                seen.0.store(done, Ordering::Relaxed);
                seen.1.store(total, Ordering::Relaxed);
            };
            import_until(&store, &caller, &src, &opts, &mut seen_progress, &stop_work).await
        }));
        let mut beat = tokio::time::interval(self.config.heartbeat);
        beat.tick().await;
        let outcome = loop {
            tokio::select! {
                r = &mut work.0 => break r.unwrap_or_else(|_| Err(CoreError::Internal("the import task ended abruptly".into()))),
                _ = beat.tick(), if !signal.is_stopped() => {
                    let (done, total) = (progress.0.load(Ordering::Relaxed), progress.1.load(Ordering::Relaxed));
                    match self.heartbeat(&id, claim, done, total).await {
                        Ok(true) => {}
                        Ok(false) if self.cancelled(&id, claim).await => {
                            tracing::info!(job = %id, "import job cancelled: stopping after the unit in progress");
                            signal.stop();
                        }
                        // Taken over after a lease that ran out: dropping the work rolls
                        // back the unit in progress.
                        Ok(false) => {
                            tracing::info!(job = %id, "import job no longer ours (taken over): stopping");
                            return Ended::Finished;
                        }
                        Err(e) => tracing::warn!(job = %id, error = %e, "import job heartbeat failed"),
                    }
                }
                _ = crate::server::stopped(stop) => {
                    // The unit in progress ends (or is rolled back) before the job goes back
                    // to the queue; one that takes too long is dropped, a rollback too. Its
                    // open transaction must give the connection back first.
                    signal.stop();
                    if tokio::time::timeout(STOP_GRACE, &mut work.0).await.is_err() {
                        work.0.abort();
                        let _ = (&mut work.0).await;
                    }
                    self.release(&id, claim).await;
                    return Ended::Stopped;
                }
            }
        };
        let (done, total) = (progress.0.load(Ordering::Relaxed), progress.1.load(Ordering::Relaxed));
        match outcome {
            Ok(summary) => {
                if let Err(e) = self.finish(&id, claim, &summary, done, total).await {
                    tracing::warn!(job = %id, error = %e, "import job result not recorded; it will run again");
                }
            }
            Err(e) if signal.is_stopped() => {
                tracing::warn!(job = %id, error = %e, "cancelled import job ended on an error");
                self.record_stop(&id, claim, done, total).await;
            }
            // A store that failed may answer again: the lease runs out and the job resumes.
            Err(e) if e.retryable() => tracing::warn!(job = %id, error = %e, "import job interrupted by a store error; it will resume"),
            Err(e) => {
                let why = match e {
                    CoreError::Denied(w) | CoreError::Conflict(w) => w,
                    _ => "the import failed (see the server log)",
                };
                tracing::warn!(job = %id, error = %e, "import job failed");
                self.finish_failed(&id, claim, why).await;
            }
        }
        Ended::Finished
    }

    /// How far a cancelled job got, when its run ended on an error (no counts to keep).
    async fn record_stop(&self, id: &str, claim: &str, done: u64, total: u64) {
        let r = Q::new("UPDATE import_job SET done = ")
            .bind_int(i64::try_from(done).unwrap_or(i64::MAX))
            .push(", total = ")
            .bind_int(i64::try_from(total).unwrap_or(i64::MAX))
            .push(", claim = NULL WHERE id = ")
            .bind_text(id)
            .push(" AND claim = ")
            .bind_text(claim)
            .push(" AND state = ")
            .bind_text(CANCELLED)
            .execute(self.store.pool())
            .await;
        if let Err(e) = r {
            tracing::warn!(job = %id, error = %e, "how far the cancelled import job got is not recorded");
        }
    }

    /// Whether the job was cancelled while this claim held it.
    async fn cancelled(&self, id: &str, claim: &str) -> bool {
        let row = Q::new("SELECT 1 AS x FROM import_job WHERE id = ")
            .bind_text(id)
            .push(" AND claim = ")
            .bind_text(claim)
            .push(" AND state = ")
            .bind_text(CANCELLED)
            .fetch_optional(self.store.pool())
            .await;
        matches!(row, Ok(Some(_)))
    }

    async fn created_kind(&self, id: &str) -> CallerKind {
        let kind = Q::new("SELECT created_kind FROM import_job WHERE id = ")
            .bind_text(id)
            .fetch_optional(self.store.pool())
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get::<String, _>("created_kind").ok());
        if kind.as_deref() == Some("operatore") { CallerKind::Operatore } else { CallerKind::Sistema }
    }

    /// Writes progress and renews the lease; false when the job is no longer this claim's.
    async fn heartbeat(&self, id: &str, claim: &str, done: u64, total: u64) -> Result<bool> {
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let n = Q::new("UPDATE import_job SET done = ")
            .bind_int(i64::try_from(done).unwrap_or(i64::MAX))
            .push(", total = ")
            .bind_int(i64::try_from(total).unwrap_or(i64::MAX))
            .push(", lease_until = ")
            .bind_int(now_ms().saturating_add(lease))
            .push(" WHERE id = ")
            .bind_text(id)
            .push(" AND claim = ")
            .bind_text(claim)
            .push(" AND state = ")
            .bind_text(RUNNING)
            .execute(self.store.pool())
            .await?;
        Ok(n == 1)
    }

    /// Puts a job back in the queue when its runner stops cleanly.
    async fn release(&self, id: &str, claim: &str) {
        let r = Q::new("UPDATE import_job SET state = ")
            .bind_text(QUEUED)
            .push(", claim = NULL, lease_until = NULL WHERE id = ")
            .bind_text(id)
            .push(" AND claim = ")
            .bind_text(claim)
            .push(" AND state = ")
            .bind_text(RUNNING)
            .execute(self.store.pool())
            .await;
        match r {
            Ok(_) => tracing::info!(job = %id, "import job put back in the queue: it resumes at the next start"),
            Err(e) => tracing::warn!(job = %id, error = %e, "import job not released; it resumes when its lease runs out"),
        }
    }

    /// Records the end of a run: done, or, when the job was cancelled meanwhile (the import
    /// stopped early or had just finished), how far it got, keeping the cancelled state
    /// and time.
    async fn finish(&self, id: &str, claim: &str, s: &ImportSummary, done: u64, total: u64) -> Result<()> {
        let (at, _) = now();
        let counts = counts_pb(s);
        let mut tx = self.store.pool().begin().await?;
        // An import stops early only when asked: cancelled, or (should the signal come from
        // elsewhere) put back in the queue to resume.
        let (ended, finished_at) = if s.stopped { (QUEUED, None) } else { (DONE, Some(at.as_str())) };
        let mut q = Q::new("UPDATE import_job SET state = CASE WHEN state = ");
        q.bind_text(RUNNING).push(" THEN ").bind_text(ended).push(" ELSE state END, finished_at = CASE WHEN state = ");
        q.bind_text(RUNNING).push(" THEN ").bind(Val::Text(finished_at.map(str::to_string))).push(" ELSE finished_at END, counts = ");
        q.bind(Val::Bytes(counts.encode_to_vec())).push(", done = ").bind_int(i64::try_from(done).unwrap_or(i64::MAX));
        q.push(", total = ").bind_int(i64::try_from(total).unwrap_or(i64::MAX));
        q.push(", error = '', claim = NULL, lease_until = NULL WHERE id = ").bind_text(id).push(" AND claim = ").bind_text(claim);
        q.push(" AND state IN (").bind_text(RUNNING).push(", ").bind_text(CANCELLED).push(")");
        if q.execute(&mut *tx).await? == 0 {
            // Taken over meanwhile: the run that took it reports.
            return Ok(());
        }
        Q::new("DELETE FROM import_job_problem WHERE job_id = ").bind_text(id).execute(&mut *tx).await?;
        for (chunk_no, chunk) in s.problems.chunks(200).enumerate() {
            let mut q = Q::new("INSERT INTO import_job_problem (job_id, seq, file, line, col, reason) VALUES ");
            for (i, p) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                let seq = i64::try_from(chunk_no * 200 + i).unwrap_or(i64::MAX);
                q.push("(").bind_shared(Some(id)).push(", ").bind_int(seq).push(", ").bind_shared(Some(&p.file)).push(", ");
                q.bind_int(i64::try_from(p.line).unwrap_or(i64::MAX))
                    .push(", ")
                    .bind_text(&p.column)
                    .push(", ")
                    .bind_text(&p.reason)
                    .push(")");
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        tracing::info!(
            job = %id,
            problems = s.problems.len(),
            persone_nuove = s.persone_nuove,
            cartelle_nuove = s.cartelle_nuove,
            prestazioni_nuove = s.prestazioni_nuove,
            nuclei_nuovi = s.nuclei_nuovi,
            stopped = s.stopped,
            "import job ended"
        );
        Ok(())
    }

    async fn finish_failed(&self, id: &str, claim: &str, why: &str) {
        let (at, _) = now();
        let r = Q::new("UPDATE import_job SET state = ")
            .bind_text(FAILED)
            .push(", error = ")
            .bind_text(why)
            .push(", finished_at = ")
            .bind_text(&at)
            .push(", claim = NULL, lease_until = NULL WHERE id = ")
            .bind_text(id)
            .push(" AND claim = ")
            .bind_text(claim)
            .execute(self.store.pool())
            .await;
        if let Err(e) = r {
            tracing::warn!(job = %id, error = %e, "import job failure not recorded");
        }
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Finished,
    Stopped,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn folders_stay_under_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("2026/M01-A")).unwrap();
        let outside = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.path(), root.path().join("fuori")).unwrap();
        assert!(resolve_under(root.path(), "2026/M01-A").is_ok());
        assert!(resolve_under(root.path(), "2026").is_ok());
        for bad in ["", "../etc", "/etc", "2026/../..", "./2026", "2026/M02-A", "fuori"] {
            assert!(resolve_under(root.path(), bad).is_err(), "{bad:?}");
        }
        let why = resolve_under(root.path(), "/etc/passwd").unwrap_err();
        assert!(!why.contains("etc"), "reasons never repeat the path");
    }

    #[test]
    fn start_requests_are_checked_field_by_field() {
        let bad = pb::StartImportRequest {
            ufficio: "M 01".into(),
            origine: String::new(),
            dry_run: false,
            source: Some(pb::start_import_request::Source::Files(pb::ImportFiles {
                files: vec![
                    pb::ImportFile { name: "../persone.csv".into(), content: vec![] },
                    pb::ImportFile { name: "nuclei.csv".into(), content: vec![] },
                    pb::ImportFile { name: "nuclei.csv".into(), content: vec![] },
                ],
            })),
            linkage: Some(pb::LinkageSettings { review_threshold: Some(0.95), ..Default::default() }),
        };
        let d = Config::default();
        let Err(CoreError::Invalid(v)) = check_start(&bad, None, &d) else { panic!("refused") };
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, vec!["ufficio", "origine", "files.files[0].name", "files.files[2].name", "files", "linkage.review_threshold"]);
        let folder = pb::StartImportRequest {
            ufficio: "M01".into(),
            origine: "M01-A".into(),
            dry_run: true,
            source: Some(pb::start_import_request::Source::Cartella("M01-A".into())),
            linkage: None,
        };
        assert!(matches!(check_start(&folder, None, &d), Err(CoreError::Conflict(_))), "no root: no folders");
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("M01-A")).unwrap();
        let Err(CoreError::Invalid(v)) = check_start(&folder, Some(root.path()), &d) else { panic!("no persone.csv") };
        assert_eq!(v[0].field, "cartella");
        std::fs::write(root.path().join("M01-A/persone.csv"), "id_persona\n").unwrap();
        let (files, linkage) = check_start(&folder, Some(root.path()), &d).unwrap();
        assert!(files.is_none());
        assert_eq!(linkage, d, "unset settings keep the defaults");
        let some = pb::LinkageSettings { link_threshold: Some(0.97), training_max_block: Some(50), ..Default::default() };
        let with = pb::StartImportRequest { linkage: Some(some), ..folder.clone() };
        let (_, linkage) = check_start(&with, Some(root.path()), &d).unwrap();
        assert_eq!(linkage, Config { link_threshold: 0.97, training_max_block: 50, ..d.clone() });
        assert_eq!(settings_over(&d, Some(&settings_pb(&linkage))), linkage, "kept with the job as they are");
    }
}
