//! [`Proxy`]: a fault-injecting HTTP proxy for one directed link between two
//! nodes, running in this process on loopback. A node calls the URL it has
//! for a peer, so giving node A the proxy's URL as peer B's puts the proxy
//! on the link A → B (B's replies come back through it too).
//!
//! What it does to each request is set by [`Faults`], which may change
//! while it runs: pass it on; cut the link (nothing is forwarded: the
//! sender's connection is refused or closed, or it gets `502`); duplicate
//! it (forward it twice and answer with one of the replies, sometimes the
//! second; or deliver the copy later, after later requests); hold it (the
//! sender waits, or is answered with an error at once and retries while the
//! held request is delivered later, after later ones); drop the reply
//! (forward it, then fail the sender). Decisions come from a seeded random
//! generator, so a failing run can be replayed with the seed it printed
//! (timing still varies between runs, so a replay repeats each link's
//! decisions in the order its requests arrive). It counts requests and
//! bytes each way.

use crate::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use locked::Locked;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What the proxy does to the requests on its link. Probabilities are per
/// request and exclusive: a request gets at most one fault.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Forward nothing: new connections are closed at once, and a request
    /// on an open one gets `502` or a closed connection.
    pub cut: bool,
    /// Forward the request twice.
    pub duplicate: f64,
    /// Hold the request back for a while before forwarding it.
    pub hold: f64,
    /// Forward the request, then fail the sender (`502` or a closed
    /// connection) instead of giving it the reply.
    pub drop_reply: f64,
    /// Longest hold, and longest wait before a late duplicate.
    pub max_delay: Duration,
}

impl Faults {
    /// Everything passes.
    pub fn pass() -> Self {
        Faults::default()
    }

    /// Nothing passes.
    pub fn cut() -> Self {
        Faults {
            cut: true,
            ..Faults::default()
        }
    }

    /// Duplicates, holds (reordering) and dropped replies at the given
    /// rates, holding requests up to `max_delay`.
    pub fn chaos(duplicate: f64, hold: f64, drop_reply: f64, max_delay: Duration) -> Self {
        Faults {
            cut: false,
            duplicate,
            hold,
            drop_reply,
            max_delay,
        }
    }
}

/// What went through a proxy. Bytes count the HTTP request line or status
/// line and headers as well as the body (as they would be on the wire in
/// HTTP/1.1, give or take header order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests the sender made.
    pub received: u64,
    /// Deliveries to the receiver (duplicates and late ones included).
    pub forwarded: u64,
    /// Bytes of the requests delivered to the receiver.
    pub request_bytes: u64,
    /// Bytes of the receiver's replies (whether or not the sender got them).
    pub reply_bytes: u64,
    /// Of those, the bodies only.
    pub request_body_bytes: u64,
    pub reply_body_bytes: u64,
    /// Replies by status class from the receiver.
    pub replies_2xx: u64,
    pub replies_401: u64,
    pub replies_other: u64,
    /// Requests (or connections) refused while cut.
    pub cut: u64,
    /// Requests forwarded twice; of those, answered with the second reply;
    /// of those, whose copy went later.
    pub duplicated: u64,
    pub answered_second: u64,
    pub duplicated_late: u64,
    /// Requests held while the sender waited.
    pub delayed: u64,
    /// Requests held while the sender was told they failed; delivered later.
    pub held: u64,
    pub delivered_late: u64,
    /// Late deliveries lost because the link was cut by then.
    pub lost_late: u64,
    /// Replies withheld from the sender.
    pub dropped_replies: u64,
    /// Requests the proxy could not deliver (receiver down).
    pub upstream_errors: u64,
}

impl Stats {
    /// What happened on the link between `earlier` and `self`.
    pub fn since(&self, earlier: &Stats) -> Stats {
        let mut d = *self;
        for (field, before) in d.fields_mut().into_iter().zip(earlier.fields()) {
            *field = field.saturating_sub(before);
        }
        d
    }

    /// `self` and `other` added up (e.g. both directions of a link).
    pub fn plus(&self, other: &Stats) -> Stats {
        let mut d = *self;
        for (field, more) in d.fields_mut().into_iter().zip(other.fields()) {
            *field = field.saturating_add(more);
        }
        d
    }

    fn fields(&self) -> [u64; 19] {
        let mut copy = *self;
        copy.fields_mut().map(|f| *f)
    }

    fn fields_mut(&mut self) -> [&mut u64; 19] {
        [
            &mut self.received,
            &mut self.forwarded,
            &mut self.request_bytes,
            &mut self.reply_bytes,
            &mut self.request_body_bytes,
            &mut self.reply_body_bytes,
            &mut self.replies_2xx,
            &mut self.replies_401,
            &mut self.replies_other,
            &mut self.cut,
            &mut self.duplicated,
            &mut self.answered_second,
            &mut self.duplicated_late,
            &mut self.delayed,
            &mut self.held,
            &mut self.delivered_late,
            &mut self.lost_late,
            &mut self.dropped_replies,
            &mut self.upstream_errors,
        ]
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} delivered, {} B out, {} B back; replies 2xx {}, 401 {}, other {}); \
             faults: cut {}, duplicated {} ({} answered with the copy, {} copies late), \
             delayed {}, held {} ({} delivered late, {} lost), replies dropped {}, \
             receiver unreachable {}",
            self.received,
            self.forwarded,
            self.request_bytes,
            self.reply_bytes,
            self.replies_2xx,
            self.replies_401,
            self.replies_other,
            self.cut,
            self.duplicated,
            self.answered_second,
            self.duplicated_late,
            self.delayed,
            self.held,
            self.delivered_late,
            self.lost_late,
            self.dropped_replies,
            self.upstream_errors
        )
    }
}

/// A seed for the proxies of one test run: `$WRAPSYNC_PROXY_SEED`, else a
/// random one. Printed, so a failing run can be replayed.
pub fn proxy_seed() -> u64 {
    let seed = std::env::var("WRAPSYNC_PROXY_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("proxy seed: {seed} (replay with WRAPSYNC_PROXY_SEED={seed})");
    seed
}

/// A fault-injecting proxy on one directed link; see the module docs. Stops
/// when dropped (requests it still holds are then lost).
pub struct Proxy {
    inner: Arc<Inner>,
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

struct Inner {
    name: String,
    upstream: Locked<String>,
    faults: Locked<Faults>,
    rng: Locked<StdRng>,
    client: reqwest::Client,
    counters: Counters,
    /// Every request and reply delivered, as bytes, while recording.
    recording: Locked<Option<Vec<u8>>>,
}

impl Proxy {
    /// Starts a proxy named `name` (for messages) in front of `upstream`
    /// (a base URL such as `http://127.0.0.1:4100`), passing everything
    /// until told otherwise; decisions seeded with `seed`.
    pub fn start(name: &str, upstream: &str, seed: u64) -> Result<Proxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("proxy {name}"))
            .enable_all()
            .build()
            .context(|| format!("proxy {name}: starting its runtime"))?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .context(|| format!("proxy {name}: binding a port"))?;
        let address = listener
            .local_addr()
            .context(|| format!("proxy {name}: its address"))?;
        listener
            .set_nonblocking(true)
            .context(|| format!("proxy {name}: a non-blocking listener"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .context(|| format!("proxy {name}: registering the listener"))?
        };
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context(|| format!("proxy {name}: its HTTP client"))?;
        let inner = Arc::new(Inner {
            name: name.to_string(),
            upstream: Locked::new(upstream.trim_end_matches('/').to_string()),
            faults: Locked::new(Faults::pass()),
            rng: Locked::new(StdRng::seed_from_u64(seed)),
            client,
            counters: Counters::default(),
            recording: Locked::new(None),
        });
        runtime.spawn(accept(inner.clone(), listener));
        Ok(Proxy {
            inner,
            url: format!("http://{address}"),
            runtime: Some(runtime),
        })
    }

    /// The URL to give the sending node as its peer's.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name it was started with.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Points the proxy at another receiver (a node restarted on a new port).
    pub fn set_upstream(&self, upstream: &str) {
        *self.inner.upstream.lock() = upstream.trim_end_matches('/').to_string();
    }

    /// What to do from the next request on.
    pub fn set_faults(&self, faults: Faults) {
        *self.inner.faults.lock() = faults;
    }

    pub fn faults(&self) -> Faults {
        *self.inner.faults.lock()
    }

    /// Cuts the link (shorthand for [`Faults::cut`]).
    pub fn cut(&self) {
        self.set_faults(Faults::cut());
    }

    /// Lets everything pass (shorthand for [`Faults::pass`]); requests held
    /// earlier are still delivered late.
    pub fn heal(&self) {
        self.set_faults(Faults::pass());
    }

    /// The counts so far.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// From now on, keeps every request and reply it delivers (method,
    /// path, headers and body), for a test to search.
    pub fn record(&self) {
        self.inner.recording.lock().get_or_insert_with(Vec::new);
    }

    /// What it kept since [`Proxy::record`].
    pub fn recorded(&self) -> Vec<u8> {
        self.inner.recording.lock().clone().unwrap_or_default()
    }

    /// Requests held back (or late copies) not yet delivered.
    pub fn pending(&self) -> u64 {
        self.inner.counters.pending.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Proxy({} at {})", self.inner.name, self.url)
    }
}

/// A tiny lock over `std::sync::Mutex` that shrugs off poisoning (a
/// panicking test thread must not wedge the proxy).
mod locked {
    use std::sync::{Mutex, MutexGuard};

    pub(crate) struct Locked<T>(Mutex<T>);

    impl<T> Locked<T> {
        pub(crate) fn new(value: T) -> Self {
            Locked(Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }
}

#[derive(Default)]
struct Counters {
    received: AtomicU64,
    forwarded: AtomicU64,
    request_bytes: AtomicU64,
    reply_bytes: AtomicU64,
    request_body_bytes: AtomicU64,
    reply_body_bytes: AtomicU64,
    replies_2xx: AtomicU64,
    replies_401: AtomicU64,
    replies_other: AtomicU64,
    cut: AtomicU64,
    duplicated: AtomicU64,
    answered_second: AtomicU64,
    duplicated_late: AtomicU64,
    delayed: AtomicU64,
    held: AtomicU64,
    delivered_late: AtomicU64,
    lost_late: AtomicU64,
    dropped_replies: AtomicU64,
    upstream_errors: AtomicU64,
    pending: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            received: get(&self.received),
            forwarded: get(&self.forwarded),
            request_bytes: get(&self.request_bytes),
            reply_bytes: get(&self.reply_bytes),
            request_body_bytes: get(&self.request_body_bytes),
            reply_body_bytes: get(&self.reply_body_bytes),
            replies_2xx: get(&self.replies_2xx),
            replies_401: get(&self.replies_401),
            replies_other: get(&self.replies_other),
            cut: get(&self.cut),
            duplicated: get(&self.duplicated),
            answered_second: get(&self.answered_second),
            duplicated_late: get(&self.duplicated_late),
            delayed: get(&self.delayed),
            held: get(&self.held),
            delivered_late: get(&self.delivered_late),
            lost_late: get(&self.lost_late),
            dropped_replies: get(&self.dropped_replies),
            upstream_errors: get(&self.upstream_errors),
        }
    }
}

/// The sender is failed by closing its connection without an answer:
/// hyper drops the connection when the service answers with an error.
#[derive(Debug)]
struct Hangup;

impl fmt::Display for Hangup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the proxy hung up (injected fault)")
    }
}

impl std::error::Error for Hangup {}

type Answer = std::result::Result<Response<Full<Bytes>>, Hangup>;

async fn accept(inner: Arc<Inner>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if inner.faults.lock().cut {
            // Refused: closed before a byte is read.
            bump(&inner.counters.cut);
            drop(stream);
            continue;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let inner = inner.clone();
                async move { handle(inner, request).await }
            });
            // A hang-up ends the connection with an error: expected.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A request as read from the sender, ready to be delivered (and again).
#[derive(Clone)]
struct Held {
    method: hyper::Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A reply from the receiver.
struct Delivered {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

enum Action {
    Pass,
    Cut {
        hang_up: bool,
    },
    Duplicate {
        answer_second: bool,
        late: Option<Duration>,
    },
    Delay(Duration),
    Hold {
        delay: Duration,
        hang_up: bool,
    },
    DropReply {
        hang_up: bool,
    },
}

impl Inner {
    fn decide(&self) -> Action {
        let faults = *self.faults.lock();
        let mut rng = self.rng.lock();
        if faults.cut {
            return Action::Cut {
                hang_up: rng.random_bool(0.5),
            };
        }
        // Always the same draws in the same order, so a seed replays.
        let pick = rng.random::<f64>();
        let hang_up = rng.random_bool(0.5);
        let second = rng.random_bool(0.5);
        let max = faults.max_delay.as_millis().max(1) as u64;
        let wait = Duration::from_millis(rng.random_range(1..=max));
        let mut edge = faults.duplicate;
        if pick < edge {
            // A quarter of the copies go later (after later requests); of
            // the rest, half the senders get the copy's reply.
            let late = (!second && hang_up).then_some(wait);
            return Action::Duplicate {
                answer_second: second,
                late,
            };
        }
        edge += faults.hold;
        if pick < edge {
            return if second {
                Action::Delay(wait)
            } else {
                Action::Hold {
                    delay: wait,
                    hang_up,
                }
            };
        }
        edge += faults.drop_reply;
        if pick < edge {
            return Action::DropReply { hang_up };
        }
        Action::Pass
    }

    /// Delivers `request` to the receiver and counts both ways.
    async fn deliver(&self, request: &Held) -> Option<Delivered> {
        let upstream = self.upstream.lock().clone();
        let mut outgoing = self
            .client
            .request(
                request.method.clone(),
                format!("{upstream}{}", request.path),
            )
            .body(request.body.clone());
        for (name, value) in &request.headers {
            if !is_hop_by_hop(name.as_str()) {
                outgoing = outgoing.header(name, value);
            }
        }
        let c = &self.counters;
        bump(&c.forwarded);
        let head = request_head_len(request);
        c.request_bytes
            .fetch_add(head + request.body.len() as u64, Ordering::Relaxed);
        c.request_body_bytes
            .fetch_add(request.body.len() as u64, Ordering::Relaxed);
        let reply = match outgoing.send().await {
            Ok(reply) => reply,
            Err(_) => {
                bump(&c.upstream_errors);
                return None;
            }
        };
        let status = reply.status();
        let headers = reply.headers().clone();
        let Ok(body) = reply.bytes().await else {
            bump(&c.upstream_errors);
            return None;
        };
        if let Some(kept) = self.recording.lock().as_mut() {
            kept.extend_from_slice(format!("{} {}\n", request.method, request.path).as_bytes());
            for (name, value) in request.headers.iter().chain(&headers) {
                kept.extend_from_slice(name.as_str().as_bytes());
                kept.extend_from_slice(b": ");
                kept.extend_from_slice(value.as_bytes());
                kept.push(b'\n');
            }
            kept.extend_from_slice(&request.body);
            kept.push(b'\n');
            kept.extend_from_slice(&body);
            kept.push(b'\n');
        }
        let head = reply_head_len(status, &headers);
        c.reply_bytes
            .fetch_add(head + body.len() as u64, Ordering::Relaxed);
        c.reply_body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        match status.as_u16() {
            200..=299 => bump(&c.replies_2xx),
            401 => bump(&c.replies_401),
            _ => bump(&c.replies_other),
        }
        Some(Delivered {
            status,
            headers,
            body,
        })
    }

    /// Delivers `request` after `delay` in the background, unless the link
    /// is cut by then.
    fn deliver_later(self: &Arc<Self>, request: Held, delay: Duration) {
        let inner = self.clone();
        inner.counters.pending.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if inner.faults.lock().cut {
                bump(&inner.counters.lost_late);
            } else {
                bump(&inner.counters.delivered_late);
                inner.deliver(&request).await;
            }
            inner.counters.pending.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

async fn handle(inner: Arc<Inner>, request: Request<Incoming>) -> Answer {
    let c = &inner.counters;
    bump(&c.received);
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(Hangup);
    };
    let request = Held {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        headers: parts.headers,
        body,
    };
    let fail = |hang_up: bool| -> Answer {
        if hang_up {
            Err(Hangup)
        } else {
            Ok(bad_gateway())
        }
    };
    match inner.decide() {
        Action::Pass => answer(inner.deliver(&request).await),
        Action::Cut { hang_up } => {
            bump(&c.cut);
            fail(hang_up)
        }
        Action::Duplicate {
            answer_second,
            late,
        } => {
            bump(&c.duplicated);
            let first = inner.deliver(&request).await;
            if let Some(delay) = late {
                bump(&c.duplicated_late);
                inner.deliver_later(request, delay);
                return answer(first);
            }
            let second = inner.deliver(&request).await;
            if answer_second {
                bump(&c.answered_second);
                answer(second)
            } else {
                answer(first)
            }
        }
        Action::Delay(delay) => {
            bump(&c.delayed);
            tokio::time::sleep(delay).await;
            answer(inner.deliver(&request).await)
        }
        Action::Hold { delay, hang_up } => {
            bump(&c.held);
            inner.deliver_later(request, delay);
            fail(hang_up)
        }
        Action::DropReply { hang_up } => {
            bump(&c.dropped_replies);
            inner.deliver(&request).await;
            fail(hang_up)
        }
    }
}

fn answer(delivered: Option<Delivered>) -> Answer {
    let Some(delivered) = delivered else {
        return Ok(bad_gateway());
    };
    let mut response = Response::new(Full::new(delivered.body));
    *response.status_mut() = delivered.status;
    for (name, value) in &delivered.headers {
        if !is_hop_by_hop(name.as_str()) {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}

fn bad_gateway() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(
        b"the proxy cut this link (injected fault)",
    )));
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

/// Headers about one connection, not the request: not passed on (the
/// length is set again for the body).
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "host"
            | "content-length"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
    )
}

/// `METHOD path HTTP/1.1\r\n`, the headers as sent on (plus `host` and
/// `content-length`), and the blank line.
fn request_head_len(request: &Held) -> u64 {
    let line = request.method.as_str().len() + 1 + request.path.len() + 11;
    let host = "host: 127.0.0.1:65535\r\n".len();
    let length = format!("content-length: {}\r\n", request.body.len()).len();
    (line + headers_len(&request.headers) + host + length + 2) as u64
}

/// `HTTP/1.1 200 OK\r\n`, the headers and the blank line.
fn reply_head_len(status: StatusCode, headers: &HeaderMap) -> u64 {
    let reason = status.canonical_reason().unwrap_or("").len();
    let length = "content-length: 65535\r\n".len();
    (9 + 3 + 1 + reason + 2 + headers_len(headers) + length + 2) as u64
}

fn headers_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .filter(|(name, _)| !is_hop_by_hop(name.as_str()))
        .map(|(name, value)| name.as_str().len() + 2 + value.len() + 2)
        .sum()
}
