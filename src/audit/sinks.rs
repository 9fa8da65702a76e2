//! [`AuditSink`] and the built-in sinks: `tracing` events, JSON lines (any `Write`, or a file
//! with size-based rotation), a channel, and fan-out.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::AuditRecord;
use crate::{BoxError, BoxFuture};

/// Where audit records go. Called by the audit queue's background task, never on the request
/// path: a slow sink delays nothing but the queue, and a full queue drops (and counts) events.
///
/// Write `async fn write` in implementations.
pub trait AuditSink: Send + Sync + 'static {
    /// Writes a batch of records, in order.
    fn write(&self, batch: &[AuditRecord]) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Makes written records durable (called at shutdown). The default does nothing.
    fn flush(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        std::future::ready(Ok(()))
    }

    /// The `hash` of the last sealed event this sink already holds from an earlier run (read
    /// once, when the sink was opened), so that a new process continues the chain instead of
    /// starting a new one: a log cut just before a restart then fails verification. The
    /// default is `None` (each run starts a chain).
    fn last_hash(&self) -> Option<String> {
        None
    }
}

impl std::fmt::Debug for dyn DynAuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynAuditSink")
    }
}

/// The object-safe companion of [`AuditSink`], for [`FanOut`] and run-time choices.
pub trait DynAuditSink: Send + Sync + 'static {
    /// [`AuditSink::write`], boxed.
    fn write_boxed<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BoxError>>;
    /// [`AuditSink::flush`], boxed.
    fn flush_boxed(&self) -> BoxFuture<'_, Result<(), BoxError>>;
    /// [`AuditSink::last_hash`].
    fn last_hash_dyn(&self) -> Option<String>;
}

impl<T: AuditSink> DynAuditSink for T {
    fn write_boxed<'a>(&'a self, batch: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(self.write(batch))
    }

    fn flush_boxed(&self) -> BoxFuture<'_, Result<(), BoxError>> {
        Box::pin(self.flush())
    }

    fn last_hash_dyn(&self) -> Option<String> {
        self.last_hash()
    }
}

impl AuditSink for Arc<dyn DynAuditSink> {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        (**self).write_boxed(batch).await
    }

    async fn flush(&self) -> Result<(), BoxError> {
        (**self).flush_boxed().await
    }

    fn last_hash(&self) -> Option<String> {
        (**self).last_hash_dyn()
    }
}

impl<T: AuditSink> AuditSink for Arc<T> {
    fn write(&self, batch: &[AuditRecord]) -> impl Future<Output = Result<(), BoxError>> + Send {
        (**self).write(batch)
    }

    fn flush(&self) -> impl Future<Output = Result<(), BoxError>> + Send {
        (**self).flush()
    }

    fn last_hash(&self) -> Option<String> {
        (**self).last_hash()
    }
}

/// Emits each record as a `tracing` event (target `palisade::audit`, level INFO) whose
/// `audit` field is the JSON line: the host's subscriber decides where it goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl AuditSink for TracingSink {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        for r in batch {
            tracing::info!(target: "palisade::audit", audit = %r.json(), "audit");
        }
        Ok(())
    }
}

/// Writes one JSON object per line to a file (with optional size-based rotation) or to any
/// `Write`. Writes run on the blocking pool, buffered.
pub struct JsonLinesSink {
    inner: Arc<Mutex<Target>>,
    /// The last sealed event's hash in the file when it was opened.
    last_hash: Option<String>,
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink").finish_non_exhaustive()
    }
}

enum Target {
    Writer(BufWriter<Box<dyn Write + Send>>),
    File(RotatingFile),
}

struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    written: u64,
    max_bytes: Option<u64>,
    keep: usize,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: Option<u64>, keep: usize) -> io::Result<Self> {
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        let mut written = file.metadata()?.len();
        // A line cut short by a crash stays on a line of its own (where the verifier names
        // it) instead of running into the next event.
        if written > 0 && last_byte(&path)? != Some(b'\n') {
            file.write_all(b"\n")?;
            written += 1;
        }
        Ok(Self {
            path,
            file: BufWriter::new(file),
            written,
            max_bytes,
            keep,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        if let Some(max) = self.max_bytes
            && self.written > 0
            && self.written + line.len() as u64 + 1 > max
        {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.file.write_all(b"\n")?;
        self.written += line.len() as u64 + 1;
        Ok(())
    }

    /// `audit.jsonl` → `audit.jsonl.1` → `.2` ... up to `keep` old files.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let name = |i: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        for i in (1..self.keep).rev() {
            let from = name(i);
            if from.exists() {
                std::fs::rename(&from, name(i + 1))?;
            }
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, name(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.file = BufWriter::new(file);
        self.written = 0;
        Ok(())
    }
}

/// The last byte of the file at `path`.
fn last_byte(path: &std::path::Path) -> io::Result<Option<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(path)?;
    if f.metadata()?.len() == 0 {
        return Ok(None);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut b = [0u8; 1];
    f.read_exact(&mut b)?;
    Ok(Some(b[0]))
}

/// How far back from a log's end the last sealed event is looked for.
const TAIL_BYTES: u64 = 1024 * 1024;

/// The `hash` of the last complete, sealed event in the file at `path` (its last `TAIL_BYTES`
/// bytes), or `None` when there is none (a missing or empty file, or unsealed events).
fn last_sealed_hash(path: &std::path::Path) -> io::Result<Option<String>> {
    use std::io::{Read, Seek, SeekFrom};
    #[derive(serde::Deserialize)]
    struct Sealed {
        hash: Option<String>,
    }
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start))?;
    let mut tail = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    f.read_to_end(&mut tail)?;
    // Complete lines only: what follows the last newline is a line cut short.
    let end = tail.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    Ok(tail[..end]
        .split(|&b| b == b'\n')
        .rev()
        .filter(|l| !l.is_empty())
        .find_map(|l| serde_json::from_slice::<Sealed>(l).ok()?.hash))
}

impl JsonLinesSink {
    /// Appends to the file at `path` (created if missing), never rotated.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn file(path: impl Into<PathBuf>) -> io::Result<Self> {
        Self::rotating(path, None, 0)
    }

    /// Appends to the file at `path`; when it would pass `max_bytes` it is renamed to
    /// `path.1` (older ones shifted to `.2`... up to `keep`, the oldest deleted) and a fresh
    /// file is started.
    ///
    /// # Errors
    ///
    /// The file cannot be opened.
    pub fn rotating(
        path: impl Into<PathBuf>,
        max_bytes: Option<u64>,
        keep: usize,
    ) -> io::Result<Self> {
        let path = path.into();
        // The chain continues from the newest sealed event: in the file, or in the file it
        // was rotated to when it is still empty.
        let mut rotated = path.clone().into_os_string();
        rotated.push(".1");
        let last_hash = match last_sealed_hash(&path)? {
            Some(h) => Some(h),
            None if keep > 0 => last_sealed_hash(std::path::Path::new(&rotated))?,
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Mutex::new(Target::File(RotatingFile::open(
                path, max_bytes, keep,
            )?))),
            last_hash,
        })
    }

    /// Writes to `writer` (stdout, a socket, a `Vec`...).
    pub fn writer(writer: impl Write + Send + 'static) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Target::Writer(BufWriter::new(Box::new(writer))))),
            last_hash: None,
        }
    }
}

impl AuditSink for JsonLinesSink {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        let lines: Vec<Arc<str>> = batch.iter().map(|r| r.json.clone()).collect();
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut target = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for line in &lines {
                match &mut *target {
                    Target::Writer(w) => {
                        w.write_all(line.as_bytes())?;
                        w.write_all(b"\n")?;
                    }
                    Target::File(f) => f.write_line(line.as_bytes())?,
                }
            }
            match &mut *target {
                Target::Writer(w) => w.flush(),
                Target::File(f) => f.file.flush(),
            }
        })
        .await??;
        Ok(())
    }

    async fn flush(&self) -> Result<(), BoxError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let mut target = inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match &mut *target {
                Target::Writer(w) => w.flush(),
                Target::File(f) => {
                    f.file.flush()?;
                    f.file.get_ref().sync_data()
                }
            }
        })
        .await??;
        Ok(())
    }
    fn last_hash(&self) -> Option<String> {
        self.last_hash.clone()
    }
}

/// Sends each record to a channel (for the host to consume, or for tests). Waits for room:
/// the queue, not the request, absorbs a slow consumer.
#[derive(Debug, Clone)]
pub struct ChannelSink(tokio::sync::mpsc::Sender<AuditRecord>);

impl ChannelSink {
    /// A sink and the receiver of its records, holding up to `capacity` records.
    #[must_use]
    pub fn new(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<AuditRecord>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (Self(tx), rx)
    }
}

impl AuditSink for ChannelSink {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        for r in batch {
            self.0
                .send(r.clone())
                .await
                .map_err(|_| "the audit channel is closed")?;
        }
        Ok(())
    }
}

/// Writes every batch to each of several sinks; one failing does not stop the others (the
/// first error is reported).
#[derive(Clone, Default)]
pub struct FanOut(Vec<Arc<dyn DynAuditSink>>);

impl fmt::Debug for FanOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FanOut")
            .field("sinks", &self.0.len())
            .finish()
    }
}

impl FanOut {
    /// No sink yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: impl AuditSink) -> Self {
        self.0.push(Arc::new(sink));
        self
    }
}

impl AuditSink for FanOut {
    async fn write(&self, batch: &[AuditRecord]) -> Result<(), BoxError> {
        let mut first = None;
        for sink in &self.0 {
            if let Err(e) = sink.write_boxed(batch).await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn flush(&self) -> Result<(), BoxError> {
        let mut first = None;
        for sink in &self.0 {
            if let Err(e) = sink.flush_boxed().await {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
    /// The first sink's that has one: with a file beside `tracing`, the file's.
    fn last_hash(&self) -> Option<String> {
        self.0.iter().find_map(|s| s.last_hash_dyn())
    }
}
