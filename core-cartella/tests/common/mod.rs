//! Test harness: a real core server on 127.0.0.1:0 over a `testkit` database (SQLite in a
//! temp file, or a fresh PostgreSQL database per test on the local server), plus
//! authenticated clients.
#![allow(dead_code, clippy::unwrap_used)]

use std::{net::SocketAddr, time::Duration};

use cartella_proto::v1::{
    cartella_service_client::CartellaServiceClient, feed_service_client::FeedServiceClient,
    revisione_service_client::RevisioneServiceClient, stats_service_client::StatsServiceClient,
};
use core_cartella::{
    auth::{Caller, CallerKind, Role, TokenSigner},
    store::{Store, StoreOptions},
    testkit::TestDb,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};

pub struct Hub {
    pub addr: SocketAddr,
    pub store: Store,
    pub signer: TokenSigner,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _keydir: tempfile::TempDir,
}

impl Hub {
    pub async fn start(db: &TestDb) -> Hub {
        let keydir = tempfile::tempdir().unwrap();
        let signer = TokenSigner::load_or_create(&keydir.path().join("key.pem")).unwrap();
        Self::start_with(db, signer, keydir).await
    }

    pub async fn start_with(db: &TestDb, signer: TokenSigner, keydir: tempfile::TempDir) -> Hub {
        let mut opts = StoreOptions::new(&db.url);
        opts.max_connections = 20;
        let store = Store::open(&opts).await.unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let verifier = signer.verifier().unwrap();
        let s = store.clone();
        let task = tokio::spawn(async move {
            core_cartella::server::serve(listener, &s, verifier, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Hub { addr, store, signer, stop: Some(tx), task: Some(task), _keydir: keydir }
    }

    /// Stops the server and closes the store, returning the signing key for a restart.
    pub async fn stop(mut self) -> (TokenSigner, tempfile::TempDir) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        self.store.close().await;
        (self.signer.clone(), self._keydir)
    }

    pub fn token(&self, ufficio: Option<&str>, roles: &[Role]) -> String {
        let caller = Caller {
            kind: CallerKind::Operatore,
            subject: format!("op-{}", ufficio.unwrap_or("ente")),
            ente: "H501".into(),
            ufficio: ufficio.map(str::to_string),
            roles: roles.to_vec(),
            purpose: "test".into(),
            request_id: String::new(),
        };
        self.signer.mint(&caller, Duration::from_secs(600)).unwrap()
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    pub async fn cartella(&self, token: &str) -> CartellaServiceClient<InterceptedService<Channel, Bearer>> {
        CartellaServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    /// Operator of Municipio `u` with the operatore role.
    pub async fn op(&self, u: &str) -> CartellaServiceClient<InterceptedService<Channel, Bearer>> {
        self.cartella(&self.token(Some(u), &[Role::Operatore])).await
    }

    pub async fn feed(&self, token: &str) -> FeedServiceClient<InterceptedService<Channel, Bearer>> {
        FeedServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    pub async fn revisione(&self, token: &str) -> RevisioneServiceClient<InterceptedService<Channel, Bearer>> {
        RevisioneServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    pub async fn stats(&self, token: &str) -> StatsServiceClient<InterceptedService<Channel, Bearer>> {
        StatsServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }
}

#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<tonic::metadata::Ascii>>);

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self(if token.is_empty() { None } else { Some(format!("Bearer {token}").parse().unwrap()) })
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// Runs `$body` (an async fn taking `&TestDb`) once per backend as two tests.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = ::core_cartella::testkit::TestDb::sqlite("sigess_test.db");
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = ::core_cartella::testkit::TestDb::postgres("sigess_test").await else { return };
                    super::$name(&db).await;
                    db.drop_pg().await;
                }
            )*
        }
    };
}
