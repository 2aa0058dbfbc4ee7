//! gRPC ingress for municipal apps: the `cartella.v1` services on the gateway's port,
//! authenticated here and forwarded to core with a freshly minted caller token. Bodies are
//! streamed through untouched, so server streaming (`WatchChanges`) works as it does on core.
//! A request message larger than core would decode for its service (4 MiB; 64 MiB of files
//! for `ImportService`) is refused with `RESOURCE_EXHAUSTED` naming the limit, read from the
//! message's frame header before anything is forwarded.
//!
//! The request timeout (`--request-timeout`) is not spent on the client's upload: an import
//! of 64 MiB on a slow line takes what it takes. It bounds instead each pause in the upload
//! (no piece of the body going through: `DEADLINE_EXCEEDED`) and, from the end of the
//! upload, the wait for core's response head (`UNAVAILABLE` past it, as REST's 503).
//!
//! A change feed stays open for hours, long after the credentials that opened it were
//! checked: each caller may hold a few at once, and the credentials of an open one are checked
//! again periodically; when they no longer pass (the client was disabled, the operator logged
//! out, the token expired) the stream ends with `UNAUTHENTICATED`, and the caller reconnects
//! with fresh credentials and its last cursor.
use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::post,
};
use tower::ServiceExt;

use crate::{
    auth::{Authenticator, ClientCert, Presented},
    core_link::CoreLink,
    stack::{
        limit::{Decision, Limiter},
        metrics::Metrics,
    },
};

#[derive(Clone, Debug)]
pub struct Ingress {
    pub link: CoreLink,
    pub auth: Authenticator,
    pub limiter: Limiter,
    pub metrics: Metrics,
    pub streams: StreamLimits,
    /// The request timeout: the longest pause in the upload, then the longest wait for
    /// core's response head once the upload has ended.
    pub timeout: Duration,
}

/// What every path the ingress serves starts with.
pub const PATH_PREFIX: &str = "/cartella.v1.";

/// Methods whose response is a long-lived stream.
const STREAMING: [&str; 1] = ["/cartella.v1.FeedService/WatchChanges"];

/// Bounds on long-lived streams.
#[derive(Clone, Debug)]
pub struct StreamLimits {
    /// Streams one caller (client or operator) may hold open at once.
    pub per_caller: usize,
    /// How often the credentials of an open stream are checked again.
    pub recheck: Duration,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self::new(4, Duration::from_secs(30))
    }
}

impl StreamLimits {
    pub fn new(per_caller: usize, recheck: Duration) -> Self {
        Self { per_caller: per_caller.max(1), recheck: recheck.max(Duration::from_millis(100)), open: Arc::default() }
    }

    /// A slot for one more stream of `caller`, or None when it holds its quota.
    fn take(&self, caller: &str) -> Option<StreamSlot> {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = open.entry(caller.to_string()).or_insert(0);
        if *n >= self.per_caller {
            return None;
        }
        *n += 1;
        Some(StreamSlot { open: Arc::clone(&self.open), caller: caller.to_string() })
    }
}

/// One open stream of a caller; given back when the stream ends.
struct StreamSlot {
    open: Arc<Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.caller);
            }
        }
    }
}

/// A streamed response that ends with `UNAUTHENTICATED` trailers once its caller's
/// credentials stop passing, and gives back its slot when dropped.
struct Revocable {
    inner: Body,
    revoked: Option<tokio::sync::oneshot::Receiver<()>>,
    watcher: tokio::task::JoinHandle<()>,
    done: bool,
    _slot: StreamSlot,
}

impl Drop for Revocable {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl http_body::Body for Revocable {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(rx) = this.revoked.as_mut() {
            match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(())) => {
                    this.done = true;
                    let mut t = http::HeaderMap::new();
                    t.insert("grpc-status", HeaderValue::from(tonic::Code::Unauthenticated as i32));
                    t.insert("grpc-message", HeaderValue::from_static("credentials no longer valid: reconnect with fresh ones"));
                    return Poll::Ready(Some(Ok(http_body::Frame::trailers(t))));
                }
                Poll::Ready(Err(_)) => this.revoked = None,
                Poll::Pending => {}
            }
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.done = true;
        }
        frame
    }
}

/// Checks `headers` (and the client certificate) again every `recheck`; fires `revoked` once
/// they no longer authenticate.
fn watch_credentials(
    auth: Authenticator,
    recheck: Duration,
    headers: http::HeaderMap,
    path: String,
    cert: Option<Vec<u8>>,
    revoked: tokio::sync::oneshot::Sender<()>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(recheck).await;
            let presented = Presented { headers: &headers, method: "POST", path: &path, body: None, client_cert: cert.as_deref() };
            if let Err(e) = auth.authenticate(&presented).await {
                if e == crate::auth::AuthError::Unavailable {
                    // The edge store is down: not a reason to cut the caller off.
                    continue;
                }
                tracing::info!(reason = e.reason(), "open stream ended: its credentials no longer pass");
                let _ = revoked.send(());
                return;
            }
        }
    })
}

/// Services forwarded to core. The ingress authenticates; core authorises each call by the
/// caller's roles and offices, as it does for REST (imports and deliveries: ente-wide
/// callers with role amministratore; the review queue and merges: role anagrafe).
pub const SERVICES: [&str; 6] = [
    "cartella.v1.CartellaService",
    "cartella.v1.FeedService",
    "cartella.v1.StatsService",
    "cartella.v1.ImportService",
    "cartella.v1.RevisioneService",
    "cartella.v1.DeliveryService",
];

/// Largest request message the ingress forwards to a method (bytes, as framed): what core
/// decodes, so an upload core would take is never cut here, and one it would refuse is
/// refused before it is sent on. `ImportService` takes a whole export (64 MiB of files);
/// every other service 4 MiB.
pub fn message_limit(path: &str) -> usize {
    if path.starts_with("/cartella.v1.ImportService/") {
        core_cartella::server::IMPORT_MESSAGE_LIMIT
    } else {
        core_cartella::server::MESSAGE_LIMIT
    }
}

/// Length of a gRPC message's frame header: a compression flag and a 4-byte length.
const FRAME_HEADER: usize = 5;

/// How the upload of a request body is going, shared between the body and the call.
#[derive(Debug)]
struct Upload {
    /// Told once the whole body has been forwarded.
    ended: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    /// When a piece of the body last went through.
    moved: Mutex<tokio::time::Instant>,
}

impl Upload {
    fn new(ended: tokio::sync::oneshot::Sender<()>) -> Self {
        Self { ended: Mutex::new(Some(ended)), moved: Mutex::new(tokio::time::Instant::now()) }
    }

    fn end(&self) {
        if let Some(tx) = self.ended.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = tx.send(());
        }
    }

    fn moved(&self) {
        *self.moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
    }

    fn still_for(&self) -> Duration {
        self.moved.lock().unwrap_or_else(std::sync::PoisonError::into_inner).elapsed()
    }
}

/// A request body as it is forwarded: the bytes read to learn its message's length first,
/// then the rest as it streams, cut once it carries more than one message of the limit.
/// Each piece that goes through is noted in `upload`, and so is its end.
struct Bounded {
    head: Option<axum::body::Bytes>,
    trailers: Option<http_body::Frame<axum::body::Bytes>>,
    rest: Body,
    left: usize,
    done: bool,
    upload: Arc<Upload>,
}

impl Bounded {
    fn finished(&mut self) {
        self.done = true;
        self.upload.end();
    }
}

impl http_body::Body for Bounded {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let frame = if let Some(head) = this.head.take().filter(|h| !h.is_empty()) {
            http_body::Frame::data(head)
        } else if let Some(trailers) = this.trailers.take() {
            this.finished();
            trailers
        } else {
            match Pin::new(&mut this.rest).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if frame.is_trailers() {
                        this.finished();
                    }
                    frame
                }
                Poll::Ready(None) => {
                    this.finished();
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finished();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        };
        this.upload.moved();
        if let Some(data) = frame.data_ref() {
            if data.len() > this.left {
                this.finished();
                return Poll::Ready(Some(Err(axum::Error::new("the request body is larger than its message limit"))));
            }
            this.left -= data.len();
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

/// Reads `body` up to its first message's frame header and refuses (RESOURCE_EXHAUSTED,
/// naming the limit) a message over `limit` before a byte of it goes to core; otherwise the
/// body to forward, whole. A client that sends nothing for `idle` meanwhile is answered
/// DEADLINE_EXCEEDED.
async fn bounded(mut body: Body, limit: usize, idle: Duration, upload: Arc<Upload>) -> Result<Bounded, Response> {
    use http_body::Body as _;
    let mut head: Vec<u8> = Vec::new();
    let mut trailers = None;
    let mut ended = false;
    while head.len() < FRAME_HEADER {
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(idle, next).await {
            Err(_) => return Err(stalled(idle)),
            Ok(None) => {
                ended = true;
                break;
            }
            Ok(Some(Err(_))) => return Err(grpc_error(tonic::Code::Cancelled, "the request body could not be read")),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => head.extend_from_slice(&data),
                Err(frame) => {
                    trailers = Some(frame);
                    break;
                }
            },
        }
    }
    if let Some(&[_, a, b, c, d]) = head.get(..FRAME_HEADER) {
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        if len > limit {
            return Err(grpc_error(
                tonic::Code::ResourceExhausted,
                &format!("the request message is {len} bytes, over this service's limit of {limit} bytes"),
            ));
        }
    }
    let left = limit.saturating_add(FRAME_HEADER);
    upload.moved();
    let mut b = Bounded { head: Some(head.into()), trailers, rest: body, left, done: false, upload };
    if ended {
        // Nothing more to read: the upload is over; the body ends after its head.
        b.upload.end();
        b.rest = Body::empty();
    }
    Ok(b)
}

fn stalled(idle: Duration) -> Response {
    grpc_error(
        tonic::Code::DeadlineExceeded,
        &format!("the request body stopped arriving for {} s (the request timeout)", idle.as_secs_f64()),
    )
}

/// Why the ingress gave up on a call before core answered.
enum GaveUp {
    /// No piece of the request body went through for the request timeout.
    Stalled,
    /// Core's response head did not come within the request timeout of the upload's end.
    Late,
}

/// Resolves when the call has to be given up: the upload stood still for `timeout`, or it
/// ended `timeout` ago (whoever is slow, the client sending or core reading, the upload
/// stands still).
async fn give_up(upload: &Upload, mut ended: tokio::sync::oneshot::Receiver<()>, timeout: Duration) -> GaveUp {
    let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = &mut ended => break,
            _ = tick.tick() => {
                if upload.still_for() >= timeout {
                    return GaveUp::Stalled;
                }
            }
        }
    }
    tokio::time::sleep(timeout).await;
    GaveUp::Late
}

pub fn router(ingress: Ingress) -> Router {
    let mut r = Router::new();
    for s in SERVICES {
        r = r.route(&format!("/{s}/{{method}}"), post(forward));
    }
    r.with_state(ingress)
}

/// A trailers-only gRPC error response.
fn grpc_error(code: tonic::Code, message: &str) -> Response {
    let mut r = Response::new(Body::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert("grpc-status", HeaderValue::from(code as i32));
    if let Ok(v) = HeaderValue::from_str(message) {
        h.insert("grpc-message", v);
    }
    r
}

async fn forward(State(ing): State<Ingress>, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let cert = parts.extensions.get::<ClientCert>().map(|c| c.0.clone());
    let presented = Presented {
        headers: &parts.headers,
        method: parts.method.as_str(),
        path: parts.uri.path(),
        // gRPC messages are streamed, not covered by a body signature: authenticate on
        // headers, and refuse a signature (or a caller that must sign) rather than accept
        // one over an empty body.
        body: None,
        client_cert: cert.as_deref(),
    };
    let caller = match ing.auth.authenticate(&presented).await {
        Ok(c) => c,
        Err(e) => {
            ing.metrics.refused(e.reason());
            return grpc_error(tonic::Code::Unauthenticated, &e.to_string());
        }
    };
    let streaming = STREAMING.contains(&parts.uri.path());
    let slot = if streaming {
        match ing.streams.take(&format!("{}:{}", caller.ente, caller.subject)) {
            Some(s) => Some(s),
            None => {
                ing.metrics.refused("too_many_streams");
                return grpc_error(tonic::Code::ResourceExhausted, "too many open streams for this caller: close one first");
            }
        }
    } else {
        None
    };
    let recheck = slot.is_some().then(|| (parts.headers.clone(), parts.uri.path().to_string(), cert.clone()));
    let decision = ing.limiter.check(&caller.subject);
    if let Decision::Limited { .. } = decision {
        ing.metrics.refused("rate_limited");
        let mut r = grpc_error(tonic::Code::ResourceExhausted, "the client's request quota is used up");
        ing.limiter.headers(&decision, r.headers_mut());
        return r;
    }
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let upload = Arc::new(Upload::new(ended_tx));
    let body = match bounded(body, message_limit(parts.uri.path()), ing.timeout, upload.clone()).await {
        Ok(b) => b,
        Err(refused) => {
            ing.metrics.refused("message_too_large");
            return refused;
        }
    };
    let bearer = match ing.link.bearer_for(&caller).ok().and_then(|b| HeaderValue::from_str(&b).ok()) {
        Some(b) => b,
        None => return grpc_error(tonic::Code::Internal, "cannot mint the caller token"),
    };
    parts.headers.insert(header::AUTHORIZATION, bearer);
    // Core's address, not the gateway's, is the authority of the forwarded call.
    parts.uri = match format!("http://core{}", parts.uri.path_and_query().map_or("/", |p| p.as_str())).parse() {
        Ok(u) => u,
        Err(_) => return grpc_error(tonic::Code::InvalidArgument, "bad request path"),
    };
    let upstream = http::Request::from_parts(parts, tonic::body::Body::new(body));
    // The request timeout runs from the end of the upload: the time a large upload takes is
    // not counted, only a pause in it.
    let answered = tokio::select! {
        r = ing.link.channel().oneshot(upstream) => r,
        why = give_up(&upload, ended_rx, ing.timeout) => {
            return match why {
                GaveUp::Stalled => {
                    ing.metrics.refused("upload_stalled");
                    stalled(ing.timeout)
                }
                GaveUp::Late => {
                    ing.metrics.refused("timeout");
                    grpc_error(tonic::Code::Unavailable, "core did not answer within the request timeout: retry shortly")
                }
            };
        }
    };
    match answered {
        Ok(res) => {
            let mut res = match (slot, recheck) {
                (Some(slot), Some((headers, path, cert))) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let watcher = watch_credentials(ing.auth.clone(), ing.streams.recheck, headers, path, cert, tx);
                    res.map(|b| Body::new(Revocable { inner: Body::new(b), revoked: Some(rx), watcher, done: false, _slot: slot }))
                        .into_response()
                }
                _ => res.map(Body::new).into_response(),
            };
            ing.limiter.headers(&decision, res.headers_mut());
            res
        }
        Err(e) => {
            tracing::warn!(error = %e, "core unreachable from gRPC ingress");
            grpc_error(tonic::Code::Unavailable, "core is unavailable: retry shortly")
        }
    }
}
