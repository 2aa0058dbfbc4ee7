//! Test databases shared by the workspace's tests (feature `testkit`): a temporary SQLite
//! file, or a fresh PostgreSQL database on the local server, created with a prefix naming
//! the test and dropped afterwards. Also the generated statistics families the disclosure
//! tests and benchmark protect ([`famiglie`]).
//!
//! The house rule lives here once: when PostgreSQL is not reachable, a test skips with a
//! message saying so, and under `CI=true` it fails instead.
#![allow(clippy::unwrap_used, clippy::panic)]

/// The local server every PostgreSQL test uses (trust authentication, database `test`).
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
}

/// A database for one test. SQLite files go with the value; call [`TestDb::drop_pg`] to
/// drop a PostgreSQL database.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

impl TestDb {
    /// A temporary SQLite database named `file` in a folder of its own.
    pub fn sqlite(file: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join(file).display());
        Self { url, dir: Some(dir), pg_name: None }
    }

    /// A fresh PostgreSQL database named `{prefix}_{uuid}`, or None (with a SKIPPED line)
    /// when the server is not reachable outside CI. Under `CI=true` an unreachable server
    /// fails the test.
    pub async fn postgres(prefix: &str) -> Option<Self> {
        sqlx::any::install_default_drivers();
        let admin = match sqlx::AnyPool::connect(PG_ADMIN).await {
            Ok(p) => p,
            Err(e) => {
                if std::env::var("CI").as_deref() == Ok("true") {
                    panic!("PostgreSQL at {PG_ADMIN} is required under CI=true: {e}");
                }
                eprintln!("SKIPPED: PostgreSQL not reachable at {PG_ADMIN} ({e}); set CI=true to make this a failure");
                return None;
            }
        };
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
        admin.close().await;
        Some(Self { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), dir: None, pg_name: Some(name) })
    }

    /// SQLite, or PostgreSQL as [`TestDb::postgres`] does.
    pub async fn new(backend: TestBackend, prefix: &str) -> Option<Self> {
        match backend {
            TestBackend::Sqlite => Some(Self::sqlite(&format!("{prefix}.db"))),
            TestBackend::Postgres => Self::postgres(prefix).await,
        }
    }

    /// The name of a PostgreSQL database (None on SQLite), for tools that take one.
    pub fn pg_name(&self) -> Option<&str> {
        self.pg_name.as_deref()
    }

    /// The folder of a SQLite database (None on PostgreSQL).
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }

    /// Core's store on this database with a pool of `max_connections`, migrations applied.
    pub async fn store(&self, max_connections: u32) -> crate::store::Store {
        let mut opts = crate::store::StoreOptions::new(&self.url);
        opts.max_connections = max_connections;
        crate::store::Store::open(&opts).await.unwrap()
    }

    /// Drops the PostgreSQL database (closing its connections); nothing on SQLite.
    pub async fn drop_pg(&self) {
        if let Some(name) = &self.pg_name
            && let Ok(admin) = sqlx::AnyPool::connect(PG_ADMIN).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
            admin.close().await;
        }
    }
}

/// Statistics families for the disclosure control's tests and benchmark.
pub mod famiglie {
    use crate::stats::disclosure::Cella;

    /// xorshift64*: a fixed sequence on every machine.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A Poisson count of mean `lambda` (Knuth's method; `lambda` stays small here).
        fn poisson(&mut self, lambda: f64) -> i64 {
            let limit = (-lambda).exp();
            let mut k = 0;
            let mut p = self.unit();
            while p > limit {
                k += 1;
                p *= self.unit();
            }
            k
        }
    }

    /// One year's family of `municipi` × `aree` at the year, its quarters and months, with
    /// the margins and the total: people per (Municipio, area, month) from a fixed-seed
    /// generator with a skewed distribution (a few big areas, many small ones, Municipi of
    /// different sizes), so that many cells are under the threshold; then summed into
    /// quarters, the year and the margins. Cells nobody is in are not listed, as in the
    /// projection. `scala` multiplies the rates (1 for the benchmark's sizes; smaller makes a
    /// small family as sparse).
    pub fn sparsa(seed: u64, municipi: usize, aree: usize, scala: f64) -> Vec<Cella> {
        let mut rng = Rng(seed);
        let pesi_m: Vec<f64> = (0..municipi).map(|_| 0.4 + 1.2 * rng.unit()).collect();
        // Areas from big to small: 80, 26, 14, 8, 6, … 1.5 people a month in an average Municipio.
        let pesi_a: Vec<f64> = (1..=aree).map(|a| scala * 80.0 / (a as f64).powf(1.6)).collect();
        let mut mesi = vec![vec![[0i64; 12]; aree]; municipi];
        for (m, fm) in pesi_m.iter().enumerate() {
            for (a, fa) in pesi_a.iter().enumerate() {
                for cell in mesi[m][a].iter_mut() {
                    *cell = rng.poisson(fm * fa);
                }
            }
        }
        let mut periodi: Vec<(String, Vec<usize>)> = vec![("2026".into(), (0..12).collect())];
        for q in 0..4 {
            periodi.push((format!("2026-T{}", q + 1), (3 * q..3 * q + 3).collect()));
        }
        for month in 0..12 {
            periodi.push((format!("2026-{:02}", month + 1), vec![month]));
        }
        let mut out = Vec::new();
        let mut push = |periodo: &str, riga: String, colonna: String, persone: i64| {
            if persone > 0 {
                // Prestazioni: a person has one to a few in a period.
                let valore = persone + persone / 3;
                out.push(Cella { periodo: periodo.into(), riga, colonna, valore, persone, somma: valore * 400 });
            }
        };
        let star = || "*".to_string();
        for (p, months) in &periodi {
            let sum = |ms: &[usize], ar: &[usize]| -> i64 {
                ms.iter()
                    .flat_map(|&m| ar.iter().flat_map(move |&a| months.iter().map(move |&t| (m, a, t))))
                    .map(|(m, a, t)| mesi[m][a][t])
                    .sum()
            };
            let all_m: Vec<usize> = (0..municipi).collect();
            let all_a: Vec<usize> = (0..aree).collect();
            push(p, star(), star(), sum(&all_m, &all_a));
            for m in 0..municipi {
                push(p, format!("M{:02}", m + 1), star(), sum(&[m], &all_a));
            }
            for a in 0..aree {
                push(p, star(), format!("A{:02}", a + 1), sum(&all_m, &[a]));
            }
            for m in 0..municipi {
                for a in 0..aree {
                    push(p, format!("M{:02}", m + 1), format!("A{:02}", a + 1), sum(&[m], &[a]));
                }
            }
        }
        out.sort_by(|x, y| (&x.periodo, &x.riga, &x.colonna).cmp(&(&y.periodo, &y.riga, &y.colonna)));
        out
    }
}
