//! FeedService.WatchChanges: replays the outbox after the client's cursor, then follows it
//! until the client goes or the server stops (the client resumes from its last cursor).
use std::{pin::Pin, time::Duration};

use cartella_proto::v1::{self as pb, feed_service_server::FeedService};
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::caller;
use crate::{
    error::CoreError,
    record::Kind,
    server::stopped,
    store::{Change, Cursor, OP_CREATE, OP_MERGE, Store},
};

/// Changes read per query.
const BATCH: u32 = 500;
/// How often a follower polls when nothing in this process woke it (writes by other
/// processes sharing the database).
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone, Debug)]
pub struct FeedSvc {
    store: Store,
    /// Turns `true` when the server stops: open streams end, so it can drain.
    stop: Option<watch::Receiver<bool>>,
}

impl FeedSvc {
    /// Streams that end only when their client goes.
    pub fn new(store: Store) -> Self {
        Self { store, stop: None }
    }

    /// Streams that also end, with UNAVAILABLE, once `stop` turns `true`: a server waiting
    /// for its calls to finish would otherwise wait for every follower to leave.
    pub fn until(store: Store, stop: watch::Receiver<bool>) -> Self {
        Self { store, stop: Some(stop) }
    }
}

fn to_event(c: Change) -> pb::ChangeEvent {
    pb::ChangeEvent {
        cursor: c.cursor.to_string(),
        kind: c.kind,
        id: c.id,
        operazione: match c.op {
            OP_CREATE => pb::Operazione::Create,
            OP_MERGE => pb::Operazione::Merge,
            _ => pb::Operazione::Update,
        } as i32,
        version: c.version,
        ente: c.ente,
        ufficio: c.ufficio,
        persona_id: c.persona_id,
        cartella_id: c.cartella_id,
        occurred_at: c.occurred_at,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ChangeEvent, Status>> + Send>>;

#[tonic::async_trait]
impl FeedService for FeedSvc {
    type WatchChangesStream = EventStream;

    async fn watch_changes(&self, r: Request<pb::WatchChangesRequest>) -> Result<Response<Self::WatchChangesStream>, Status> {
        let c = caller(&r)?;
        let r = r.into_inner();
        let mut cursor = Cursor::parse(&r.cursor)?;
        let mut kinds = Vec::new();
        for (i, k) in r.kinds.iter().enumerate() {
            kinds.push(Kind::parse(k).ok_or_else(|| CoreError::invalid(&format!("kinds[{i}]"), "is not a record kind"))?);
        }
        // Fail fast on a caller who may not read, before opening the stream.
        let first = self.store.changes_after(&c, cursor, &kinds, BATCH).await?;
        let (tx, rx) = mpsc::channel(BATCH as usize);
        let store = self.store.clone();
        let mut wake = store.subscribe();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut batch = first;
            loop {
                let n = batch.len();
                for change in batch {
                    cursor = change.cursor;
                    if tx.send(Ok(to_event(change))).await.is_err() {
                        return;
                    }
                }
                if n < BATCH as usize {
                    tokio::select! {
                        _ = wake.changed() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = tx.closed() => return,
                        _ = stopped(&mut stop) => {
                            let _ = tx.send(Err(Status::unavailable("core is stopping: resume from the last cursor"))).await;
                            return;
                        }
                    }
                }
                batch = match store.changes_after(&c, cursor, &kinds, BATCH).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                };
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
