//! Import jobs (`import::jobs`, behind `ImportService`) on both engines: progress while a job
//! runs; a runner killed mid-job (its task aborted: the stand-in for `kill -9`) leaves only
//! whole persons and households, and the next runner resumes the job once the lease has run
//! out and imports exactly the rest; a runner stopped cleanly puts its job back in the queue;
//! a bad export's problems are kept with the job, paged; only ente-wide administrators may
//! run imports; a cancelled job stops between units and says how far it got.
#![allow(clippy::unwrap_used)]

use std::{collections::BTreeMap, time::Duration};

use cartella_proto::v1 as pb;
use core_cartella::{
    CoreError,
    auth::{Caller, CallerKind, Role},
    domain::codice_fiscale::compose,
    import::jobs::{ImportConfig, Jobs},
    linkage::Config,
    store::Store,
    testkit::{TestBackend as Backend, TestDb},
};
use sqlx::Row;

fn admin() -> Caller {
    Caller {
        kind: CallerKind::Operatore,
        subject: "admin-1".into(),
        ente: "H501".into(),
        ufficio: None,
        roles: vec![Role::Amministratore],
        purpose: "importazione".into(),
        request_id: "t".into(),
    }
}

fn config() -> ImportConfig {
    ImportConfig {
        root: None,
        lease: Duration::from_millis(800),
        heartbeat: Duration::from_millis(15),
        poll: Duration::from_millis(50),
        linkage: Config { u_sample_pairs: 10_000, ..Config::default() },
    }
}

fn letters(mut i: usize) -> String {
    let mut s = String::new();
    for _ in 0..3 {
        s.push(char::from(b'a' + (i % 26) as u8));
        i /= 26;
    }
    s
}

/// `n` people (n even; the `first`-th on) in households of two, each with a cartella and a
/// prestazione, every one with a trusted codice fiscale so that none is linked to another.
fn export(first: usize, n: usize) -> BTreeMap<String, Vec<u8>> {
    let mut persone =
        String::from("id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale\n");
    let mut nuclei = String::from("id_nucleo;id_persona;relazione\n");
    let mut cartelle = String::from("id_cartella;id_persona;data_apertura;area_utenza;stato\n");
    let mut prestazioni = String::from(
        "id_prestazione;id_cartella;codice_prestazione;denominazione;carattere;prova_mezzi;protocollo_domanda;data_erogazione;importo\n",
    );
    for i in first..first + n {
        let cognome = format!("Bar{}", letters(i));
        let female = i % 2 == 1;
        let nome = if female { "Anna" } else { "Marco" };
        let (y, m, d) = (1940 + (i % 50) as i32, 1 + (i / 50 % 12) as u8, 1 + (i % 28) as u8);
        let cf = compose(&cognome, nome, y, m, d, female, "H501");
        let sesso = if female { "F" } else { "M" };
        persone.push_str(&format!("P{i};{cognome};{nome};{sesso};{d:02}/{m:02}/{y};Roma;H501;380;{cf}\n"));
        let rel = if i % 2 == 0 { "intestatario" } else { "coniuge" };
        nuclei.push_str(&format!("N{};P{i};{rel}\n", i / 2));
        cartelle.push_str(&format!("C{i};P{i};01/02/2020;anziani;aperta\n"));
        prestazioni
            .push_str(&format!("S{i};C{i};B2.01;Contributo economico straordinario;occasionale;isee;PR-{i};10/05/2024;{},50\n", 100 + i));
    }
    BTreeMap::from([
        ("persone.csv".to_string(), persone.into_bytes()),
        ("nuclei.csv".to_string(), nuclei.into_bytes()),
        ("cartelle.csv".to_string(), cartelle.into_bytes()),
        ("prestazioni.csv".to_string(), prestazioni.into_bytes()),
    ])
}

fn start_request(origine: &str, files: &BTreeMap<String, Vec<u8>>) -> pb::StartImportRequest {
    pb::StartImportRequest {
        ufficio: "M04".into(),
        origine: origine.into(),
        dry_run: false,
        source: Some(pb::start_import_request::Source::Files(pb::ImportFiles {
            files: files.iter().map(|(name, content)| pb::ImportFile { name: name.clone(), content: content.clone() }).collect(),
        })),
        linkage: None,
    }
}

async fn count(store: &Store, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(store.pool()).await.unwrap().try_get::<i64, _>(0).unwrap()
}

async fn wait_for(jobs: &Jobs, id: &str, what: &str, until: impl Fn(&pb::ImportJob) -> bool) -> pb::ImportJob {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let job = jobs.get(&admin(), id).await.unwrap();
        if until(&job) {
            return job;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}: {job:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn state(job: &pb::ImportJob) -> pb::ImportState {
    pb::ImportState::try_from(job.state).unwrap()
}

/// Every person imported so far came with all their rows: cartella, prestazione and a
/// complete household (both people), never part of them.
async fn only_whole_units(store: &Store) {
    let persone = count(store, "SELECT COUNT(*) FROM import_origine WHERE kind = 'persona'").await;
    assert_eq!(count(store, "SELECT COUNT(*) FROM persona").await, persone);
    assert_eq!(count(store, "SELECT COUNT(*) FROM import_origine WHERE kind = 'cartella'").await, persone);
    assert_eq!(count(store, "SELECT COUNT(*) FROM import_origine WHERE kind = 'prestazione'").await, persone);
    assert_eq!(count(store, "SELECT COUNT(*) FROM prestazione").await, persone);
    assert_eq!(count(store, "SELECT COUNT(*) FROM nucleo").await * 2, persone, "households whole");
}

async fn jobs_progress_resume_and_problems(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = db.store(4).await;
    let n = 400;
    let files = export(0, n);
    let jobs = Jobs::new(store.clone(), config());

    // Only ente-wide administrators.
    let mut operator = admin();
    operator.roles = vec![Role::Operatore];
    assert!(matches!(jobs.start(&operator, start_request("M04-A", &files)).await, Err(CoreError::Denied(_))));
    let mut municipio = admin();
    municipio.ufficio = Some("M04".into());
    assert!(matches!(jobs.start(&municipio, start_request("M04-A", &files)).await, Err(CoreError::Denied(_))));

    let job = jobs.start(&admin(), start_request("M04-A", &files)).await.unwrap();
    assert_eq!((state(&job), job.attempts, job.source.as_str(), job.created_by.as_str()), (pb::ImportState::Queued, 0, "files", "admin-1"));

    // Runner A, in a process of its own (its own pool), is killed once it has written part
    // of the export: its task aborted and its connections gone, as with `kill -9`.
    let store_a = db.store(4).await;
    let runner_a = Jobs::new(store_a.clone(), config()).spawn(None);
    let running = wait_for(&jobs, &job.id, "progress", |j| j.done >= 2).await;
    runner_a.abort();
    let _ = runner_a.await;
    let _ = tokio::time::timeout(Duration::from_secs(10), store_a.close()).await;
    assert_eq!(state(&running), pb::ImportState::Running);
    assert!(running.done < running.total, "the job ended before it could be interrupted: {running:?}");
    assert_eq!(running.total, (n / 2) as i64, "one unit per household");
    only_whole_units(&store).await;
    let written = count(&store, "SELECT COUNT(*) FROM persona").await;
    assert!(written > 0 && written < n as i64, "{written}");

    // Runner B takes the job over once A's lease has run out, and imports the rest.
    let runner_b = Jobs::new(store.clone(), config()).spawn(None);
    let done = wait_for(&jobs, &job.id, "the resumed job", |j| state(j) == pb::ImportState::Done).await;
    let c = done.counts.unwrap();
    assert_eq!(done.attempts, 2);
    assert_eq!((done.done, done.total), (done.total, (n as i64 - c.persone_gia_importate) / 2));
    assert_eq!(c.persone_gia_importate + c.persone_nuove, n as i64);
    assert!(c.persone_gia_importate >= written, "what A wrote is not written again");
    assert_eq!((c.problemi, c.nuclei_gia_importati + c.nuclei_nuovi, c.prestazioni_gia_importate + c.prestazioni_nuove), (0, 200, 400));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, n as i64);
    only_whole_units(&store).await;
    assert!(!done.started_at.is_empty() && !done.finished_at.is_empty() && done.error.is_empty());
    assert!(matches!(jobs.cancel(&admin(), &job.id).await, Err(CoreError::Conflict(_))), "an ended job cannot be cancelled");

    // A runner stopped cleanly gives its job back at once.
    runner_b.abort();
    let _ = runner_b.await;
    let more = export(n, 200);
    let job2 = jobs.start(&admin(), start_request("M04-B", &more)).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let runner_c = Jobs::new(store.clone(), config()).spawn(Some(stop_rx));
    wait_for(&jobs, &job2.id, "the second job to run", |j| j.done >= 1).await;
    stop_tx.send(true).unwrap();
    runner_c.await.unwrap();
    let queued = jobs.get(&admin(), &job2.id).await.unwrap();
    assert_eq!((state(&queued), queued.attempts), (pb::ImportState::Queued, 1));
    let runner_d = Jobs::new(store.clone(), config()).spawn(None);
    let done2 = wait_for(&jobs, &job2.id, "the second job", |j| state(j) == pb::ImportState::Done).await;
    assert_eq!(done2.attempts, 2);
    only_whole_units(&store).await;

    // A bad export: every problem kept with the job, nothing stored for its rows.
    let mut bad = export(1000, 4);
    bad.insert(
        "persone.csv".into(),
        b"id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_fiscale\nX1;;Ada;Q;31/02/1970;Roma;\nX2;Verdi;;F;;;ABC\n"
            .to_vec(),
    );
    let before = count(&store, "SELECT COUNT(*) FROM persona").await;
    let job3 = jobs.start(&admin(), start_request("M04-C", &bad)).await.unwrap();
    let done3 = wait_for(&jobs, &job3.id, "the bad job", |j| state(j) == pb::ImportState::Done).await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, before);
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = jobs
            .problems(&admin(), &pb::ListImportProblemsRequest { id: job3.id.clone(), page_size: 3, page_token: token.clone() })
            .await
            .unwrap();
        assert!(page.problems.len() <= 3);
        all.extend(page.problems.into_iter().map(|p| format!("{}:{}:{}", p.file, p.line, p.column)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(done3.counts.unwrap().problemi, all.len() as i64);
    assert_eq!(
        &all[..5],
        [
            "persone.csv:2:cognome",
            "persone.csv:2:sesso",
            "persone.csv:2:data_nascita",
            "persone.csv:3:nome",
            "persone.csv:3:codice_fiscale"
        ]
    );
    // The rows hanging on X1…X4's missing persone are each reported too.
    assert!(all.contains(&"cartelle.csv:2:id_persona".to_string()) && all.contains(&"nuclei.csv:2:id_persona".to_string()), "{all:?}");

    let list = jobs.list(&admin(), &pb::ListImportsRequest { page_size: 2, page_token: String::new() }).await.unwrap();
    assert_eq!(list.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![job3.id.as_str(), job2.id.as_str()], "newest first");
    let rest = jobs.list(&admin(), &pb::ListImportsRequest { page_size: 2, page_token: list.next_page_token }).await.unwrap();
    assert_eq!(rest.jobs.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), vec![job.id.as_str()]);
    let mut other = admin();
    other.ente = "F205".into();
    assert!(matches!(jobs.get(&other, &job.id).await, Err(CoreError::NotFound { .. })), "another ente's job is not found");
    runner_d.abort();
    store.close().await;
    db.drop_pg().await;
}

/// Cancelling a running job stops it between two units, whichever process cancels: the job
/// says cancelled with how far it got (done of total, the counts of what was written),
/// only whole persons and households are stored, nothing more is written after, and a new
/// job on the same export imports exactly the rest.
async fn cancel_stops_between_units(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = db.store(4).await;
    let n = 1200;
    let files = export(0, n);
    let jobs = Jobs::new(store.clone(), config());

    // A job cancelled before any runner took it: nothing run, nothing counted.
    let queued = jobs.start(&admin(), start_request("M04-A", &files)).await.unwrap();
    let cancelled = jobs.cancel(&admin(), &queued.id).await.unwrap();
    assert_eq!((state(&cancelled), cancelled.done, cancelled.counts.is_none()), (pb::ImportState::Cancelled, 0, true));

    // Cancelled from another process (its own pool): the runner learns it at its heartbeat.
    let store_a = db.store(4).await;
    let (stop_a, stop_rx) = tokio::sync::watch::channel(false);
    let runner_a = Jobs::new(store_a.clone(), config()).spawn(Some(stop_rx));
    let job = jobs.start(&admin(), start_request("M04-A", &files)).await.unwrap();
    wait_for(&jobs, &job.id, "progress", |j| j.done >= 3).await;
    assert_eq!(state(&jobs.cancel(&admin(), &job.id).await.unwrap()), pb::ImportState::Cancelled, "cancelled at once");
    let ended = wait_for(&jobs, &job.id, "the runner to record how far it got", |j| j.counts.is_some()).await;
    assert_eq!(state(&ended), pb::ImportState::Cancelled);
    assert_eq!(ended.total, (n / 2) as i64, "one unit per household");
    assert!(ended.done >= 3 && ended.done < ended.total, "stopped part-way: {ended:?}");
    let written = count(&store, "SELECT COUNT(*) FROM persona").await;
    let c = ended.counts.unwrap();
    assert_eq!((c.persone_nuove, c.nuclei_nuovi * 2, ended.done * 2), (written, written, written), "the counts are what was written");
    only_whole_units(&store).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, written, "nothing is written after the stop");
    stop_a.send(true).unwrap();
    runner_a.await.unwrap();
    store_a.close().await;

    // Re-run, cancelled in the runner's own process: the signal reaches it at once, without
    // waiting for a heartbeat (here a minute apart).
    let slow = ImportConfig { heartbeat: Duration::from_secs(60), lease: Duration::from_secs(120), ..config() };
    let local = Jobs::new(store.clone(), slow);
    let runner = local.clone().spawn(None);
    let job2 = local.start(&admin(), start_request("M04-A", &files)).await.unwrap();
    // Progress is written at heartbeats: watch the store instead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while count(&store, "SELECT COUNT(*) FROM persona").await < written + 6 {
        assert!(tokio::time::Instant::now() < deadline, "the re-run wrote nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = std::time::Instant::now();
    local.cancel(&admin(), &job2.id).await.unwrap();
    let ended2 = wait_for(&jobs, &job2.id, "the re-run to record how far it got", |j| j.counts.is_some()).await;
    assert!(asked.elapsed() < Duration::from_secs(20), "stopped without waiting for the heartbeat");
    assert_eq!(state(&ended2), pb::ImportState::Cancelled);
    let written2 = count(&store, "SELECT COUNT(*) FROM persona").await;
    let c2 = ended2.counts.unwrap();
    assert_eq!(ended2.total, (n as i64 - written) / 2, "the re-run starts where the first stopped");
    assert!(ended2.done < ended2.total, "{ended2:?}");
    assert_eq!((c2.persone_gia_importate, c2.persone_nuove), (written, written2 - written));
    only_whole_units(&store).await;

    // The last run imports the rest: every person exactly once.
    let job3 = local.start(&admin(), start_request("M04-A", &files)).await.unwrap();
    let done = wait_for(&jobs, &job3.id, "the last run", |j| state(j) == pb::ImportState::Done).await;
    let c3 = done.counts.unwrap();
    assert_eq!((c3.persone_gia_importate, c3.persone_nuove, c3.problemi), (written2, n as i64 - written2, 0));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM persona").await, n as i64);
    assert_eq!(count(&store, "SELECT COUNT(DISTINCT id_locale) FROM import_origine WHERE kind = 'persona'").await, n as i64);
    only_whole_units(&store).await;
    runner.abort();
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_import_sqlite() {
    cancel_stops_between_units(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_import_postgres() {
    cancel_stops_between_units(Backend::Postgres).await;
}

/// A job's linkage settings are checked field by field, kept with the job and used by its
/// run: the same export, two people sharing a surname and a birth date without a codice
/// fiscale, is one person when every scored pair links and two for review when none does.
async fn linkage_settings_reach_the_run(backend: Backend) {
    let Some(db) = TestDb::new(backend, "sigess_test").await else { return };
    let store = db.store(4).await;
    let jobs = Jobs::new(store.clone(), config());
    let runner = jobs.clone().spawn(None);
    let persone = "id_persona;cognome;nome;sesso;data_nascita;luogo_nascita;codice_luogo_nascita;cittadinanza;codice_fiscale\n\
                   A1;Ferri;Ada;F;02/03/1950;Roma;H501;380;\nA2;Ferri;Ida;F;02/03/1950;Roma;H501;380;\n";
    let files = BTreeMap::from([("persone.csv".to_string(), persone.as_bytes().to_vec())]);
    let with = |s: pb::LinkageSettings| pb::StartImportRequest { dry_run: true, linkage: Some(s), ..start_request("M04-L", &files) };

    let bad = pb::LinkageSettings { link_threshold: Some(1.5), max_block: Some(1), em_iterations: Some(0), ..Default::default() };
    let Err(CoreError::Invalid(v)) = jobs.start(&admin(), with(bad)).await else { panic!("bad settings are refused") };
    let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(fields, ["linkage.link_threshold", "linkage.max_block", "linkage.training_max_block", "linkage.em_iterations"]);

    let all = pb::LinkageSettings { link_threshold: Some(0.0), review_threshold: Some(0.0), ..Default::default() };
    let linked = jobs.start(&admin(), with(all)).await.unwrap();
    let kept = linked.linkage.unwrap();
    assert_eq!((kept.link_threshold, kept.max_block, kept.u_sample_pairs), (Some(0.0), Some(2_000), Some(10_000)), "set over the defaults");
    let none = pb::LinkageSettings { link_threshold: Some(1.0), review_threshold: Some(0.0), ..Default::default() };
    let apart = jobs.start(&admin(), with(none)).await.unwrap();
    let linked = wait_for(&jobs, &linked.id, "the first job", |j| state(j) == pb::ImportState::Done).await.counts.unwrap();
    let apart = wait_for(&jobs, &apart.id, "the second job", |j| state(j) == pb::ImportState::Done).await.counts.unwrap();
    assert_eq!((linked.persone_nuove, linked.persone_unite, linked.coppie_da_rivedere), (1, 1, 0));
    assert_eq!((apart.persone_nuove, apart.persone_unite, apart.coppie_da_rivedere), (2, 0, 1));
    runner.abort();
    store.close().await;
    db.drop_pg().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkage_settings_sqlite() {
    linkage_settings_reach_the_run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linkage_settings_postgres() {
    linkage_settings_reach_the_run(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_jobs_sqlite() {
    jobs_progress_resume_and_problems(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_jobs_postgres() {
    jobs_progress_resume_and_problems(Backend::Postgres).await;
}
