//! Replay buffers for resumable SSE (2025-11-25 sessions).
//!
//! rmcp numbers every event of a session's POST stream (`<index>/<stream>`)
//! and can resume a stream from `Last-Event-ID`, but its resume sends the
//! event named by the header again, and it forgets a stream as soon as the
//! result has been sent, so a client that reconnects after the call ended
//! gets nothing. So airlock keeps the buffers itself: each POST response
//! stream of a session is read by a pump task that records every event
//! and passes it on to whichever client connection is current. The pump
//! keeps reading after the client went away (in this generation a dropped
//! connection is not a cancellation), so the call finishes and its result
//! waits here for the reconnect.
//!
//! Bounds: per stream [`STREAM_EVENTS`] events and [`STREAM_BYTES`] bytes
//! (oldest dropped first; the newest event is always kept, so a result
//! larger than the cap is still delivered); a finished stream is kept for
//! [`FINISHED_TTL`], and all finished streams together hold at most
//! [`FINISHED_BYTES`] (oldest stream dropped first). Streams still running
//! are bounded by the number of calls in flight.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Events kept per stream.
pub const STREAM_EVENTS: usize = 64;
/// Bytes kept per stream (the newest event is kept even if larger).
pub const STREAM_BYTES: usize = 256 << 10;
/// How long a finished stream stays resumable.
pub const FINISHED_TTL: Duration = Duration::from_secs(60);
/// Bytes kept across all finished streams.
pub const FINISHED_BYTES: usize = 16 << 20;
/// Events queued to a slow client before the pump waits for it.
const LIVE_QUEUE: usize = 64;

type Key = (String, u64);

struct Buf {
    events: VecDeque<(u64, Bytes)>,
    bytes: usize,
    finished: Option<Instant>,
    /// The client connection currently reading this stream, if any, and
    /// a token cancelled when another connection takes over, so the pump
    /// never stays stuck on a client that stopped reading.
    live: Option<Reader>,
}

#[derive(Clone)]
struct Reader {
    tx: mpsc::Sender<Bytes>,
    replaced: CancellationToken,
}

impl Reader {
    fn new(tx: mpsc::Sender<Bytes>) -> Reader {
        Reader {
            tx,
            replaced: CancellationToken::new(),
        }
    }
}

#[derive(Default)]
struct Inner {
    streams: HashMap<Key, Buf>,
    finished_bytes: usize,
}

impl Inner {
    /// Drops finished streams past their time, then the oldest finished
    /// ones while over the byte cap.
    fn expire(&mut self, now: Instant) {
        let mut finished: Vec<(Instant, Key, usize)> = self
            .streams
            .iter()
            .filter_map(|(k, b)| b.finished.map(|at| (at, k.clone(), b.bytes)))
            .collect();
        finished.sort_by_key(|(at, _, _)| *at);
        let mut total: usize = finished.iter().map(|(_, _, n)| n).sum();
        for (at, k, n) in finished {
            if now.duration_since(at) >= FINISHED_TTL || total > FINISHED_BYTES {
                self.streams.remove(&k);
                total -= n;
            }
        }
        self.finished_bytes = total;
    }
}

/// All sessions' replay buffers.
#[derive(Default)]
pub struct Replay(Mutex<Inner>);

/// `<index>/<stream>` as rmcp writes it on POST streams.
pub fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (i, r) = id.split_once('/')?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(i)?, num(r)?))
}

/// The `id:` field of one SSE event block.
fn event_id(block: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(block).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("id:"))?;
    parse_id(line.trim())
}

impl Replay {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes over the body of a session's POST SSE response: returns the
    /// body the client reads, and keeps a pump reading rmcp's body to the
    /// end whether or not the client stays.
    pub fn tee<B>(self: &std::sync::Arc<Self>, session: String, mut upstream: B) -> Live
    where
        B: Body<Data = Bytes, Error = Infallible> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(LIVE_QUEUE);
        let me = self.clone();
        tokio::spawn(async move {
            let mut first = Some(Reader::new(tx));
            let mut key: Option<Key> = None;
            let mut pending: Vec<u8> = Vec::new();
            while let Some(frame) = upstream.frame().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(never) => match never {},
                };
                // Trailers and the like carry no events.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                // rmcp writes whole events ending in a blank line; split
                // there so each event is recorded on its own.
                while let Some(i) = pending.windows(2).position(|w| w == b"\n\n") {
                    let block = Bytes::from(pending.drain(..i + 2).collect::<Vec<u8>>());
                    let id = event_id(&block);
                    if key.is_none() {
                        if let Some((_, r)) = id {
                            let k = (session.clone(), r);
                            me.lock().streams.insert(
                                k.clone(),
                                Buf {
                                    events: VecDeque::new(),
                                    bytes: 0,
                                    finished: None,
                                    live: first.take(),
                                },
                            );
                            key = Some(k);
                        }
                    }
                    let live = match (&key, id) {
                        (Some(k), Some((idx, _))) => me.record(k, idx, &block),
                        (Some(k), None) => me.lock().streams.get(k).and_then(|b| b.live.clone()),
                        // No id yet (nothing rmcp sends first): pass on.
                        (None, _) => first.clone(),
                    };
                    if let Some(live) = live {
                        // A client that left is noticed here; the pump goes on.
                        tokio::select! {
                            _ = live.tx.send(block) => {}
                            _ = live.replaced.cancelled() => {}
                        }
                    }
                }
            }
            if let Some(k) = key {
                let mut inner = me.lock();
                if let Some(b) = inner.streams.get_mut(&k) {
                    b.finished = Some(Instant::now());
                    b.live = None;
                }
                inner.expire(Instant::now());
            }
        });
        Live {
            replay: VecDeque::new(),
            rx: Some(rx),
        }
    }

    /// Records one event; returns where to send it.
    fn record(&self, k: &Key, idx: u64, block: &Bytes) -> Option<Reader> {
        let mut inner = self.lock();
        let b = inner.streams.get_mut(k)?;
        b.events.push_back((idx, block.clone()));
        b.bytes += block.len();
        while b.events.len() > 1 && (b.events.len() > STREAM_EVENTS || b.bytes > STREAM_BYTES) {
            if let Some((_, old)) = b.events.pop_front() {
                b.bytes -= old.len();
            }
        }
        b.live.clone()
    }

    /// A GET with `Last-Event-ID: <index>/<stream>` in `session`: the
    /// stream's events after `index`, then (if it is still running) its
    /// next events as they come. `None` when the stream is not (or no
    /// longer) held.
    pub fn resume(&self, session: &str, index: u64, stream: u64) -> Option<Live> {
        let mut inner = self.lock();
        inner.expire(Instant::now());
        let b = inner.streams.get_mut(&(session.to_string(), stream))?;
        let replay: VecDeque<Bytes> = b
            .events
            .iter()
            .filter(|(i, _)| *i > index)
            .map(|(_, e)| e.clone())
            .collect();
        let rx = if b.finished.is_none() {
            // The new connection replaces the old one as the live reader.
            let (tx, rx) = mpsc::channel(LIVE_QUEUE);
            if let Some(old) = b.live.replace(Reader::new(tx)) {
                old.replaced.cancel();
            }
            Some(rx)
        } else {
            None
        };
        Some(Live { replay, rx })
    }
}

/// A client's view of a stream: replayed events, then live ones.
pub struct Live {
    replay: VecDeque<Bytes>,
    rx: Option<mpsc::Receiver<Bytes>>,
}

impl Live {
    /// An SSE body that ends at once (a stream that is not held).
    pub fn empty() -> Live {
        Live {
            replay: VecDeque::new(),
            rx: None,
        }
    }
}

impl Body for Live {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(b) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(b))));
        }
        match self.rx.as_mut() {
            None => Poll::Ready(None),
            Some(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.replay.is_empty() && self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ev(i: u64, r: u64, data: &str) -> String {
        format!("data: {data}\nid: {i}/{r}\n\n")
    }

    async fn drain(mut b: Live) -> String {
        let mut out = Vec::new();
        while let Some(Ok(f)) = b.frame().await {
            out.extend_from_slice(&f.into_data().unwrap_or_default());
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ids_parse_strictly() {
        assert_eq!(parse_id("3/7"), Some((3, 7)));
        for bad in ["3", "/7", "3/", "a/1", "1/2/3", "-1/2", " 1/2"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn a_finished_stream_replays_after_the_index_and_is_bounded() {
        let replay = Arc::new(Replay::default());
        let mut text = String::new();
        for i in 0..(STREAM_EVENTS as u64 + 10) {
            text.push_str(&ev(i, 4, "x"));
        }
        let body = http_body_util::Full::new(Bytes::from(text));
        drop(replay.tee("s".into(), body)); // the client is gone at once
        for _ in 0..100 {
            if replay.lock().streams.values().any(|b| b.finished.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = drain(replay.resume("s", 70, 4).unwrap()).await;
        assert_eq!(
            got,
            format!("{}{}{}", ev(71, 4, "x"), ev(72, 4, "x"), ev(73, 4, "x"))
        );
        // Only the newest STREAM_EVENTS are held.
        let all = drain(replay.resume("s", 0, 4).unwrap()).await;
        assert_eq!(all.matches("data:").count(), STREAM_EVENTS);
        assert!(all.starts_with(&ev(10, 4, "x")));
        // Another session, or another stream, gets nothing.
        assert!(replay.resume("t", 0, 4).is_none());
        assert!(replay.resume("s", 0, 5).is_none());
    }

    #[tokio::test]
    async fn one_event_larger_than_the_cap_is_kept_alone() {
        let replay = Arc::new(Replay::default());
        let big = "y".repeat(STREAM_BYTES + 10);
        let text = format!("{}{}", ev(0, 1, "small"), ev(1, 1, &big));
        drop(replay.tee("s".into(), http_body_util::Full::new(Bytes::from(text))));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = drain(replay.resume("s", 0, 1).unwrap()).await;
        assert_eq!(got, ev(1, 1, &big));
        let inner = replay.lock();
        assert_eq!(inner.streams.values().next().unwrap().events.len(), 1);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_does_not_stall_the_next_one() {
        let replay = Arc::new(Replay::default());
        let (up_tx, up_rx) = mpsc::channel::<Bytes>(1);
        let upstream = Live {
            replay: VecDeque::new(),
            rx: Some(up_rx),
        };
        let stuck = replay.tee("s".into(), upstream); // held, never read
        let n = LIVE_QUEUE as u64 + 10;
        let feed = tokio::spawn(async move {
            for i in 0..n {
                up_tx.send(Bytes::from(ev(i, 2, "z"))).await.unwrap();
            }
            up_tx
        });
        // The pump fills the stuck reader's queue and waits on it.
        let recorded = || {
            replay
                .lock()
                .streams
                .values()
                .filter_map(|b| b.events.back().map(|(i, _)| *i))
                .max()
        };
        for _ in 0..500 {
            if recorded() >= Some(LIVE_QUEUE as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(recorded(), Some(LIVE_QUEUE as u64));
        assert!(!feed.is_finished());
        // Recorded so far: the 64 queued events and the one the pump holds.
        let held = LIVE_QUEUE as u64;
        let next = replay.resume("s", held - 2, 2).unwrap();
        let up_tx = tokio::time::timeout(Duration::from_secs(5), feed)
            .await
            .expect("the pump moved on to the new reader")
            .unwrap();
        up_tx.send(Bytes::from(ev(n, 2, "last"))).await.unwrap();
        drop(up_tx);
        let got = tokio::time::timeout(Duration::from_secs(5), drain(next))
            .await
            .unwrap();
        // From just after the id resumed from, each event once, in order.
        let want: String = (held - 1..n)
            .map(|i| ev(i, 2, "z"))
            .chain([ev(n, 2, "last")])
            .collect();
        assert_eq!(got, want);
        drop(stuck);
    }
}
