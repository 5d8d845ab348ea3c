//! The writer: one thread owns the segment files. Callers hand over events;
//! the thread redacts and encodes them (off the callers' paths: a routed
//! request, a tool call), numbers them, chains them (each record holds the
//! SHA-256 of the previous line) and appends them. The fsync (group
//! commit) follows at once when a caller waits for it ([`AuditHandle::
//! record_durable`], [`AuditHandle::flush`]); records nobody waits for are
//! fsynced within `audit.flush_interval` of being written, so a burst of
//! them shares one fsync instead of paying one each. Every N records or T
//! seconds it appends a signed checkpoint covering the chain so far.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use airlock_config::{Audit, AuditExport};
use serde_json::{Map, Value};

use crate::event::Event;
use crate::keys::{hex, sha256, SigningKey};
use crate::redact::Redactor;
use crate::{canonical, segments, time, AuditError};

/// How long, by default, the writer lets a stream of records nobody waits
/// for queue up before writing them (see [`Writer::gather`]).
const GATHER: Duration = Duration::from_millis(1);

/// `prev` of the first record and `prev_checkpoint` of the first checkpoint.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

enum Msg {
    Record(Box<Event>, Option<SyncSender<Result<u64, AuditError>>>),
    Flush(SyncSender<Result<(), AuditError>>),
}

struct Shared {
    tx: Mutex<Option<Sender<Msg>>>,
    /// Group commits (fsyncs of the current segment) made so far.
    commits: Arc<AtomicU64>,
    /// Shared with the writer thread, which redacts each event.
    redactor: Arc<RwLock<Redactor>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The writer, woken by callers that wait (see [`Writer::gather`]).
    writer: std::thread::Thread,
}

/// A cheap, cloneable handle every part writes through.
#[derive(Clone)]
pub struct AuditHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AuditHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditHandle")
    }
}

/// Options beyond the config section.
#[derive(Default)]
pub struct LogOptions {
    /// Already loaded signing key (else `audit.signing_key` is loaded).
    pub signing_key: Option<SigningKey>,
    /// Where `export` lines go instead of stdout (tests).
    pub export_to: Option<Box<dyn Write + Send>>,
    /// How long records nobody waits for may queue before the writer takes
    /// them (default 1 ms; never longer than `audit.flush_interval`).
    pub gather: Option<Duration>,
}

/// Opens (or creates) the log described by `cfg` and starts its writer.
pub fn open(cfg: &Audit, opts: LogOptions) -> Result<AuditHandle, AuditError> {
    let dir = cfg.dir.clone();
    std::fs::create_dir_all(&dir)
        .map_err(|e| AuditError::Io(format!("create {}: {e}", dir.display())))?;
    let key = match opts.signing_key {
        Some(k) => Some(k),
        None => match &cfg.signing_key {
            Some(p) => Some(SigningKey::load(p, &dir)?),
            None => None,
        },
    };
    // Without a signing key, fingerprints use a per-process key: they still
    // match within a run, and nothing on disk lets anyone test guesses.
    let hmac_key = key
        .as_ref()
        .map(|k| k.hmac_key())
        .unwrap_or_else(crate::keys::random_bytes::<32>);
    let redactor = Arc::new(RwLock::new(Redactor::new(hmac_key, &cfg.redact_fields)));
    let commits = Arc::new(AtomicU64::new(0));
    let mut w = Writer::resume(&dir, cfg, key, redactor.clone())?;
    w.commits = commits.clone();
    w.gather = opts.gather.unwrap_or(GATHER).min(cfg.flush_interval);
    w.export = match (cfg.export, opts.export_to) {
        (_, Some(out)) => Some(Export::Stream(out)),
        (AuditExport::Stdout, None) => Some(Export::Stream(Box::new(std::io::stdout()))),
        (AuditExport::Syslog, None) => Some(Export::Syslog(
            std::os::unix::net::UnixDatagram::unbound()
                .map_err(|e| AuditError::Io(e.to_string()))?,
        )),
        (AuditExport::None, None) => None,
    };
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("airlock-audit".into())
        .spawn(move || w.run(rx))
        .map_err(|e| AuditError::Io(e.to_string()))?;
    Ok(AuditHandle {
        shared: Arc::new(Shared {
            tx: Mutex::new(Some(tx)),
            commits,
            redactor,
            writer: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
        }),
    })
}

impl AuditHandle {
    fn send(&self, m: Msg) -> Result<(), AuditError> {
        let g = self.shared.tx.lock().map_err(|_| AuditError::Closed)?;
        g.as_ref()
            .ok_or(AuditError::Closed)?
            .send(m)
            .map_err(|_| AuditError::Closed)
    }

    /// Queues an event; it is durable within the group-commit delay. The
    /// writer thread redacts and encodes it: the caller only hands it over.
    pub fn record(&self, ev: Event) -> Result<(), AuditError> {
        self.send(Msg::Record(Box::new(ev), None))
    }

    /// Records an event and returns its sequence number once it is on disk.
    pub fn record_durable(&self, ev: Event) -> Result<u64, AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::Record(Box::new(ev), Some(tx)))?;
        self.shared.writer.unpark();
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// Waits until everything queued so far is on disk.
    pub fn flush(&self) -> Result<(), AuditError> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::Flush(tx))?;
        self.shared.writer.unpark();
        rx.recv().map_err(|_| AuditError::Closed)?
    }

    /// How many group commits (fsyncs) the writer has made: with records
    /// arriving faster than `audit.flush_interval`, far fewer than records.
    pub fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// A secret value airlock resolved: redacted wherever it appears.
    pub fn add_known_secret(&self, name: &str, value: &str) {
        if let Ok(mut r) = self.shared.redactor.write() {
            r.add_known_secret(name, value);
        }
    }

    /// Redacts a value the way records are redacted (for callers that log elsewhere too).
    pub fn redact_text(&self, s: &str) -> String {
        self.shared
            .redactor
            .read()
            .map(|r| r.text(s))
            .unwrap_or_default()
    }

    /// Writes a final checkpoint and stops the writer (all handles).
    pub fn close(&self) {
        let tx = self.shared.tx.lock().ok().and_then(|mut g| g.take());
        drop(tx);
        self.shared.writer.unpark();
        if let Some(t) = self.shared.thread.lock().ok().and_then(|mut g| g.take()) {
            let _ = t.join();
        }
    }
}

enum Export {
    Stream(Box<dyn Write + Send>),
    Syslog(std::os::unix::net::UnixDatagram),
}

struct Writer {
    dir: PathBuf,
    segment_size: u64,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    /// Longest a written record waits for its fsync when nobody waits.
    flush_interval: Duration,
    /// When the oldest record not yet fsynced was written.
    dirty_since: Option<Instant>,
    /// See [`Writer::gather`].
    gather: Duration,
    commits: Arc<AtomicU64>,
    key: Option<SigningKey>,
    index: u64,
    file: File,
    size: u64,
    next_seq: u64,
    prev: String,
    prev_checkpoint: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    export: Option<Export>,
    /// A torn tail found at start, recorded as the first record written.
    pending_recovery: Option<Map<String, Value>>,
    redactor: Arc<RwLock<Redactor>>,
}

fn io(what: &str, p: &Path) -> impl Fn(std::io::Error) -> AuditError {
    let s = format!("{what} {}", p.display());
    move |e| AuditError::Io(format!("{s}: {e}"))
}

impl Writer {
    /// Picks up where the log left off: last sequence number, chain head,
    /// last checkpoint; a torn last line starts a new segment and is
    /// recorded by a `recovery` record (never dropped, never accepted).
    fn resume(
        dir: &Path,
        cfg: &Audit,
        key: Option<SigningKey>,
        redactor: Arc<RwLock<Redactor>>,
    ) -> Result<Writer, AuditError> {
        let segs = segments::list(dir)?;
        let mut next_seq = 1;
        let mut prev = GENESIS.to_string();
        let mut prev_checkpoint: Option<String> = None;
        let mut index = 1;
        let mut pending_recovery = None;
        let mut rotate = false;
        for (i, (idx, path)) in segs.iter().enumerate().rev() {
            let bytes = std::fs::read(path).map_err(io("read", path))?;
            let (lines, torn) = segments::split(&bytes);
            if i == segs.len() - 1 {
                index = *idx;
                if let Some((off, t)) = torn {
                    let mut m = Map::new();
                    m.insert("kind".into(), "recovery".into());
                    m.insert(
                        "detail".into(),
                        serde_json::json!({
                            "segment": segments::name(*idx),
                            "offset": off,
                            "torn_bytes": t.len(),
                            "torn_sha256": hex(&sha256(t)),
                            "note": "the last line of this segment was cut short (crash during an append); it is kept as found and not part of the chain"
                        }),
                    );
                    pending_recovery = Some(m);
                    rotate = true;
                }
                if let Some((_, last)) = lines.last() {
                    let v: Value = serde_json::from_slice(last).map_err(|e| {
                        AuditError::Corrupt(format!(
                            "{} last line: {e}; run `airlock audit verify {}`",
                            path.display(),
                            dir.display()
                        ))
                    })?;
                    next_seq = v["seq"].as_u64().ok_or_else(|| {
                        AuditError::Corrupt(format!("{}: last line has no seq", path.display()))
                    })? + 1;
                    prev = hex(&sha256(last));
                }
            }
            if prev_checkpoint.is_none() {
                for (_, l) in lines.iter().rev() {
                    const NEEDLE: &[u8] = b"\"kind\":\"checkpoint\"";
                    if l.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
                        prev_checkpoint = Some(hex(&sha256(l)));
                        break;
                    }
                }
            }
            if prev_checkpoint.is_some() && i < segs.len() - 1 {
                break;
            }
        }
        if segs.is_empty() {
            index = 1;
        } else if rotate {
            index += 1;
        }
        let path = dir.join(segments::name(index));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        sync_dir(dir);
        Ok(Writer {
            dir: dir.to_path_buf(),
            segment_size: cfg.segment_size.0.max(4096),
            checkpoint_every: u64::from(cfg.checkpoint_every.max(1)),
            checkpoint_interval: cfg.checkpoint_interval,
            flush_interval: cfg.flush_interval,
            dirty_since: None,
            gather: GATHER.min(cfg.flush_interval),
            commits: Arc::default(),
            key,
            index,
            file,
            size,
            next_seq,
            prev,
            prev_checkpoint: prev_checkpoint.unwrap_or_else(|| GENESIS.to_string()),
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            export: None,
            pending_recovery,
            redactor,
        })
    }

    fn run(mut self, rx: Receiver<Msg>) {
        if let Some(m) = self.pending_recovery.take() {
            let _ = self.append(m).and_then(|_| self.commit());
        }
        loop {
            let mut wait = self
                .checkpoint_interval
                .saturating_sub(self.last_checkpoint.elapsed());
            if let Some(t) = self.dirty_since {
                wait = wait.min(self.flush_interval.saturating_sub(t.elapsed()));
            }
            let first = match rx.recv_timeout(wait.max(Duration::from_micros(100))) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => {
                    let mut commit = self
                        .dirty_since
                        .is_some_and(|t| t.elapsed() >= self.flush_interval);
                    if self.last_checkpoint.elapsed() >= self.checkpoint_interval {
                        if self.since_checkpoint > 0 {
                            commit |= self.checkpoint().is_ok();
                        }
                        self.last_checkpoint = Instant::now();
                    }
                    if commit {
                        let _ = self.commit();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            // Group commit: everything already queued goes in this batch.
            let mut acks: Vec<(SyncSender<Result<u64, AuditError>>, u64)> = Vec::new();
            let mut flushes = Vec::new();
            let mut err: Option<AuditError> = None;
            let mut msg = Some(first);
            let mut n = 0;
            let mut closed = false;
            while let Some(m) = msg.take() {
                match m {
                    Msg::Record(ev, ack) => match self.append(self.body(*ev)) {
                        Ok(seq) => {
                            if let Some(a) = ack {
                                acks.push((a, seq));
                            }
                            if self.since_checkpoint >= self.checkpoint_every {
                                if let Err(e) = self.checkpoint() {
                                    err = Some(e);
                                }
                            }
                        }
                        Err(e) => {
                            if let Some(a) = ack {
                                let _ = a.send(Err(e.clone()));
                            }
                            err = Some(e);
                        }
                    },
                    Msg::Flush(a) => flushes.push(a),
                }
                n += 1;
                if n < 8192 {
                    msg = match rx.try_recv() {
                        Ok(m) => Some(m),
                        Err(TryRecvError::Empty) => None,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            None
                        }
                    };
                }
            }
            if self.since_checkpoint > 0
                && self.last_checkpoint.elapsed() >= self.checkpoint_interval
            {
                if let Err(e) = self.checkpoint() {
                    err = Some(e);
                }
            }
            let oldest = *self.dirty_since.get_or_insert_with(Instant::now);
            let waited_for = !acks.is_empty() || !flushes.is_empty();
            let due = oldest.elapsed() >= self.flush_interval;
            if !(waited_for || due) {
                // Nobody waits: this batch's fsync is shared with the next
                // ones, within flush_interval (the wait above wakes for it).
                if !closed {
                    self.gather();
                }
                continue;
            }
            let committed = self.commit();
            for (a, seq) in acks {
                let _ = a.send(committed.clone().map(|_| seq));
            }
            for f in flushes {
                let _ = f.send(match (&committed, &err) {
                    (Err(e), _) | (_, Some(e)) => Err(e.clone()),
                    _ => Ok(()),
                });
            }
        }
        if self.since_checkpoint > 0 {
            let _ = self.checkpoint();
        }
        let _ = self.commit();
    }

    /// After a batch nobody waited for, lets the next records queue for a
    /// moment instead of being woken by each: while this thread sleeps
    /// outside the channel, `record` only enqueues (no futex wake, no
    /// thread switch per record on the caller's path), and the next batch
    /// takes them all. `record_durable`, `flush` and `close` unpark it, so
    /// nobody who waits waits longer. Bounded by `flush_interval`, so with
    /// `flush_interval: 0` every record is written as it arrives.
    fn gather(&self) {
        if !self.gather.is_zero() {
            std::thread::park_timeout(self.gather);
        }
    }

    fn commit(&mut self) -> Result<(), AuditError> {
        self.dirty_since = None;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.file
            .sync_data()
            .map_err(|e| AuditError::Io(format!("fsync {}: {e}", self.dir.display())))
    }

    /// Redacted with the secrets known now, which include every secret
    /// known when the event was recorded.
    fn body(&self, ev: Event) -> Map<String, Value> {
        let r = self.redactor.read().unwrap_or_else(|e| e.into_inner());
        ev.into_body(&r)
    }

    fn append(&mut self, mut body: Map<String, Value>) -> Result<u64, AuditError> {
        let now = time::now_unix_nanos();
        let seq = self.next_seq;
        body.insert("v".into(), 1.into());
        body.insert("seq".into(), seq.into());
        body.insert("ts".into(), (now as u64).into());
        body.insert("time".into(), time::rfc3339(now).into());
        body.insert("prev".into(), self.prev.clone().into());
        let mut line = canonical::to_vec(&Value::Object(body));
        let hash = hex(&sha256(&line));
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.segment_size {
            self.rotate()?;
        }
        self.file
            .write_all(&line)
            .map_err(|e| AuditError::Io(format!("append to {}: {e}", self.dir.display())))?;
        self.size += line.len() as u64;
        self.next_seq += 1;
        self.prev = hash.clone();
        self.since_checkpoint += 1;
        self.export(&line);
        Ok(seq)
    }

    fn checkpoint(&mut self) -> Result<(), AuditError> {
        let now = time::now_unix_nanos();
        let mut m = Map::new();
        m.insert("v".into(), 1.into());
        m.insert("kind".into(), "checkpoint".into());
        m.insert("seq".into(), self.next_seq.into());
        m.insert("ts".into(), (now as u64).into());
        m.insert("time".into(), time::rfc3339(now).into());
        m.insert("prev".into(), self.prev.clone().into());
        m.insert(
            "prev_checkpoint".into(),
            self.prev_checkpoint.clone().into(),
        );
        match &self.key {
            Some(k) => {
                m.insert("key".into(), k.public().to_text().into());
                let sig = k.sign(&canonical::to_vec(&Value::Object(m.clone())));
                m.insert("sig".into(), hex(&sig).into());
            }
            None => {
                m.insert("key".into(), Value::Null);
                m.insert("sig".into(), Value::Null);
            }
        }
        let mut line = canonical::to_vec(&Value::Object(m));
        let hash = hex(&sha256(&line));
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.segment_size {
            self.rotate()?;
        }
        self.file
            .write_all(&line)
            .map_err(|e| AuditError::Io(format!("append to {}: {e}", self.dir.display())))?;
        self.size += line.len() as u64;
        self.next_seq += 1;
        self.prev = hash.clone();
        self.prev_checkpoint = hash;
        self.since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), AuditError> {
        self.commit()?;
        self.index += 1;
        let path = self.dir.join(segments::name(self.index));
        self.file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io("create", &path))?;
        self.size = 0;
        sync_dir(&self.dir);
        Ok(())
    }

    fn export(&mut self, line: &[u8]) {
        match &mut self.export {
            Some(Export::Stream(w)) => {
                let _ = w.write_all(line);
                let _ = w.flush();
            }
            Some(Export::Syslog(s)) => {
                // RFC 5424: local0.info, structured data omitted, JSON as message.
                let mut msg = format!(
                    "<134>1 {} - airlock - audit - ",
                    time::rfc3339(time::now_unix_nanos())
                )
                .into_bytes();
                msg.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
                let _ = s.send_to(&msg, "/dev/log");
            }
            None => {}
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
