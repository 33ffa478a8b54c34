//! Container log files as containerd's CRI plugin writes them (`<RFC3339Nano> <stdout|stderr>
//! <F|P> <text>` per line, long lines split into `P` chunks ended by an `F` one), read the way
//! the kubelet's `/containerLogs` endpoint serves them: tail, since, timestamps, byte limit,
//! stream filter and follow.
//!
//! Files are read in blocks: `tailLines` scans backwards from the end, so a huge file costs only
//! the lines asked for. Log rotation is not handled (the kubelet does not rotate yet).

use bytes::{Bytes, BytesMut};
use jiff::Timestamp;
use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why logs could not be served.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A query parameter has a value Kubernetes would refuse.
    #[error("{0}")]
    BadOption(String),
    /// A line of the file is not in the CRI format.
    #[error("malformed CRI log line: {0:?}")]
    BadLine(String),
    /// The log file could not be read.
    #[error("reading log file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The `stream` query parameter: which streams to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFilter {
    /// Both, interleaved as written.
    #[default]
    All,
    /// Standard output only.
    Stdout,
    /// Standard error only.
    Stderr,
}

impl StreamFilter {
    fn admits(self, s: Stream) -> bool {
        matches!(
            (self, s),
            (StreamFilter::All, _) | (StreamFilter::Stdout, Stream::Stdout) | (StreamFilter::Stderr, Stream::Stderr)
        )
    }
}

/// What to return, from the query of `/containerLogs` (Kubernetes' PodLogOptions).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming new lines until the container exits.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<u64>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Stop after this many bytes of output.
    pub limit_bytes: Option<u64>,
    /// Which streams.
    pub stream: StreamFilter,
    /// The container before the current one (its last termination).
    pub previous: bool,
}

/// A boolean spelled any way Go's strconv.ParseBool accepts; a bare `?follow` counts as true.
fn parse_bool(key: &str, v: &str) -> Result<bool, LogError> {
    match v {
        "" | "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(LogError::BadOption(format!("invalid value for {key}: {v:?}"))),
    }
}

fn parse_int(key: &str, v: &str) -> Result<i64, LogError> {
    v.parse().map_err(|_| LogError::BadOption(format!("invalid value for {key}: {v:?}")))
}

impl LogOptions {
    /// Parses the query pairs; `now` anchors `sinceSeconds`. Values are checked as Kubernetes'
    /// PodLogOptions validation checks them.
    pub fn from_query(pairs: &[(String, String)], now: Timestamp) -> Result<LogOptions, LogError> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        for (k, v) in pairs {
            match k.as_str() {
                "follow" => o.follow = parse_bool(k, v)?,
                "previous" => o.previous = parse_bool(k, v)?,
                "timestamps" => o.timestamps = parse_bool(k, v)?,
                "tailLines" => {
                    let n = parse_int(k, v)?;
                    if n < 0 {
                        return Err(LogError::BadOption("tailLines: must be greater than or equal to 0".into()));
                    }
                    o.tail_lines = Some(n as u64);
                }
                "limitBytes" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err(LogError::BadOption("limitBytes: must be greater than 0".into()));
                    }
                    o.limit_bytes = Some(n as u64);
                }
                "sinceSeconds" => {
                    let n = parse_int(k, v)?;
                    if n < 1 {
                        return Err(LogError::BadOption("sinceSeconds: must be greater than 0".into()));
                    }
                    since_seconds = Some(n);
                }
                "sinceTime" => {
                    since_time = Some(v.parse::<Timestamp>().map_err(|e| {
                        LogError::BadOption(format!("invalid value for sinceTime: {v:?} is not an RFC 3339 time ({e})"))
                    })?);
                }
                "stream" => {
                    o.stream = match v.as_str() {
                        "" | "All" => StreamFilter::All,
                        "Stdout" => StreamFilter::Stdout,
                        "Stderr" => StreamFilter::Stderr,
                        other => {
                            return Err(LogError::BadOption(format!(
                                "stream: unsupported value {other:?}: supported values: \"All\", \"Stdout\", \"Stderr\""
                            )));
                        }
                    }
                }
                _ => {}
            }
        }
        o.since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(LogError::BadOption(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
                ));
            }
            (Some(s), None) => now.checked_sub(jiff::SignedDuration::from_secs(s)).ok(),
            (None, t) => t,
        };
        Ok(o)
    }
}

/// One line of a CRI log file.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    /// When the runtime read it from the container.
    pub time: Timestamp,
    /// Where it was written.
    pub stream: Stream,
    /// A chunk of a longer line, continued by the next entry of the same stream.
    pub partial: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Parses one line (without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<Entry<'_>, LogError> {
    let bad = || LogError::BadLine(String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned());
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = fields.next().and_then(|t| std::str::from_utf8(t).ok()).ok_or_else(bad)?;
    let time: Timestamp = time.parse().map_err(|_| bad())?;
    let stream = match fields.next().ok_or_else(bad)? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return Err(bad()),
    };
    // The tag may carry more attributes after ':' in later runtimes; only the first matters.
    let tag = fields.next().ok_or_else(bad)?;
    let partial = match tag.split(|b| *b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => return Err(bad()),
    };
    Ok(Entry { time, stream, partial, text: fields.next().unwrap_or(b"") })
}

/// How long the follower sleeps at the end of the file, growing while nothing is written.
const FOLLOW_POLL_MIN: Duration = Duration::from_millis(20);
const FOLLOW_POLL_MAX: Duration = Duration::from_millis(250);
/// After the container exited, how long the file must stay unchanged before a follow ends.
const DRAIN_QUIET: Duration = Duration::from_millis(200);
/// The longest a follow keeps reading after the container exited.
const DRAIN_MAX: Duration = Duration::from_secs(2);
/// Output is sent in chunks of about this size (or sooner, when the reader catches up).
const CHUNK: usize = 32 << 10;
/// A line longer than this without a newline is broken up rather than buffered whole.
const MAX_RAW_LINE: usize = 1 << 20;

/// Turns CRI entries into the bytes a client sees.
struct Formatter {
    opts: LogOptions,
    /// The pending partial line of each stream and the time of its first chunk.
    partial: [Option<(Timestamp, Vec<u8>)>; 2],
    out: BytesMut,
    written: u64,
}

impl Formatter {
    fn new(opts: LogOptions) -> Formatter {
        Formatter { opts, partial: [None, None], out: BytesMut::new(), written: 0 }
    }

    fn full(&self) -> bool {
        self.opts.limit_bytes.is_some_and(|l| self.written >= l)
    }

    /// Adds one raw file line (without its newline); unparseable lines are skipped, as the
    /// kubelet skips them.
    fn line(&mut self, raw: &[u8]) {
        let Ok(e) = parse_line(raw) else {
            tracing::debug!(line = %String::from_utf8_lossy(&raw[..raw.len().min(120)]), "skipping malformed log line");
            return;
        };
        if !self.opts.stream.admits(e.stream) {
            return;
        }
        let slot = &mut self.partial[e.stream as usize];
        if e.partial {
            slot.get_or_insert_with(|| (e.time, Vec::new())).1.extend_from_slice(e.text);
            return;
        }
        let (time, text) = match slot.take() {
            Some((t, mut text)) => {
                text.extend_from_slice(e.text);
                (t, std::borrow::Cow::Owned(text))
            }
            None => (e.time, std::borrow::Cow::Borrowed(e.text)),
        };
        self.emit(time, &text, true);
    }

    /// Writes out partial lines left when the container stopped mid-line.
    fn finish(&mut self) {
        for i in 0..2 {
            if let Some((t, text)) = self.partial[i].take() {
                self.emit(t, &text, false);
            }
        }
    }

    fn emit(&mut self, time: Timestamp, text: &[u8], newline: bool) {
        if self.full() || self.opts.since.is_some_and(|s| time < s) {
            return;
        }
        let mut line = Vec::with_capacity(text.len() + 40);
        if self.opts.timestamps {
            line.extend_from_slice(format_time(time).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(text);
        if newline {
            line.push(b'\n');
        }
        let room = self.opts.limit_bytes.map_or(u64::MAX, |l| l - self.written);
        let take = (line.len() as u64).min(room) as usize;
        self.out.extend_from_slice(&line[..take]);
        self.written += take as u64;
    }

    fn take(&mut self) -> Bytes {
        self.out.split().freeze()
    }
}

/// Go's RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed, as kubectl shows them.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
}

/// The offset where the last `n` lines (of the admitted streams) start, found by reading the
/// file backwards in blocks. A chain of `P` chunks counts as the one line it ends in; an
/// unterminated last line is still being written and is not counted.
async fn tail_start(file: &mut tokio::fs::File, len: u64, n: u64, filter: StreamFilter) -> std::io::Result<u64> {
    const BLOCK: u64 = 64 << 10;
    let mut pos = len;
    // The line being assembled: the offset just after its newline, and its bytes found so far
    // (the end of the line, when its start lies in an earlier block).
    let mut line_end: Option<u64> = None;
    let mut acc: Vec<u8> = Vec::new();
    let mut seen = 0u64;
    while pos > 0 {
        let start = pos.saturating_sub(BLOCK);
        let mut block = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start)).await?;
        file.read_exact(&mut block).await?;
        // Bytes of `block` before `seg_end` may still belong to the line being assembled.
        let mut seg_end = block.len();
        for i in (0..block.len()).rev() {
            if block[i] != b'\n' {
                continue;
            }
            if let Some(end) = line_end {
                let line = if acc.is_empty() {
                    std::borrow::Cow::Borrowed(&block[i + 1..seg_end])
                } else {
                    std::borrow::Cow::Owned([&block[i + 1..seg_end], &acc[..]].concat())
                };
                if ends_admitted_line(&line, filter) {
                    seen += 1;
                    if seen > n {
                        return Ok(end);
                    }
                }
            }
            line_end = Some(start + i as u64 + 1);
            acc.clear();
            seg_end = i;
        }
        if let Some(end) = line_end {
            acc.splice(0..0, block[..seg_end].iter().copied());
            if acc.len() > MAX_RAW_LINE {
                // No newline for a megabyte: not a CRI log line; start after it.
                return Ok(end);
            }
        }
        pos = start;
    }
    // The first line of the file has no newline before it.
    if let Some(end) = line_end
        && ends_admitted_line(&acc, filter)
        && seen + 1 > n
    {
        return Ok(end);
    }
    Ok(0)
}

fn ends_admitted_line(line: &[u8], filter: StreamFilter) -> bool {
    parse_line(line).is_ok_and(|e| !e.partial && filter.admits(e.stream))
}

/// Streams the log at `path` into `tx` as `opts` asks. When following, new lines are sent as
/// they are written until `done` is cancelled (the container exited) and the file has been read
/// to its end; the stream also ends when the receiver is dropped.
pub async fn stream_logs(
    path: &Path,
    opts: LogOptions,
    done: CancellationToken,
    tx: mpsc::Sender<Bytes>,
) -> Result<(), LogError> {
    let io = |source| LogError::Io { path: path.to_path_buf(), source };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    let len = file.metadata().await.map_err(io)?.len();
    let start = match opts.tail_lines {
        Some(n) => tail_start(&mut file, len, n, opts.stream).await.map_err(io)?,
        None => 0,
    };
    file.seek(SeekFrom::Start(start)).await.map_err(io)?;
    let follow = opts.follow;
    let mut fmt = Formatter::new(opts);
    let mut reader = BufReader::with_capacity(64 << 10, file);
    let mut line = Vec::new();
    let mut idle = FOLLOW_POLL_MIN;
    // Set when `done` fired: the runtime may still be writing what the container printed last,
    // so reading goes on until the file has been quiet for DRAIN_QUIET (at most DRAIN_MAX).
    let mut draining: Option<Instant> = None;
    let mut last_data = Instant::now();
    loop {
        let n = reader.read_until(b'\n', &mut line).await.map_err(io)?;
        if n > 0 {
            last_data = Instant::now();
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            fmt.line(&line);
            line.clear();
            idle = FOLLOW_POLL_MIN;
        } else if line.len() > MAX_RAW_LINE {
            line.clear();
        }
        if fmt.full() {
            break;
        }
        if n > 0 && fmt.out.len() < CHUNK {
            continue;
        }
        // At the end of what is written so far, or with a chunk ready: send it.
        if !fmt.out.is_empty() && tx.send(fmt.take()).await.is_err() {
            return Ok(());
        }
        if n > 0 {
            continue;
        }
        if !follow {
            break;
        }
        if let Some(since) = draining {
            if last_data.elapsed() >= DRAIN_QUIET || since.elapsed() >= DRAIN_MAX {
                break;
            }
            tokio::time::sleep(FOLLOW_POLL_MIN).await;
            continue;
        }
        tokio::select! {
            _ = done.cancelled() => {
                draining = Some(Instant::now());
                last_data = Instant::now();
            }
            _ = tx.closed() => return Ok(()),
            _ = tokio::time::sleep(idle) => idle = (idle * 2).min(FOLLOW_POLL_MAX),
        }
    }
    fmt.finish();
    if !fmt.out.is_empty() {
        let _ = tx.send(fmt.take()).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_cri_lines() {
        let e = parse_line(b"2024-05-01T10:00:00.123456789Z stdout F hello world").unwrap();
        assert_eq!((e.stream, e.partial, e.text), (Stream::Stdout, false, &b"hello world"[..]));
        assert_eq!(e.time, ts("2024-05-01T10:00:00.123456789Z"));
        let e = parse_line(b"2024-05-01T12:00:00.5+02:00 stderr P  two  spaces ").unwrap();
        assert_eq!((e.stream, e.partial, e.text), (Stream::Stderr, true, &b" two  spaces "[..]));
        assert_eq!(e.time, ts("2024-05-01T10:00:00.5Z"));
        // An empty line: the text field may be missing altogether.
        assert_eq!(parse_line(b"2024-05-01T10:00:00Z stdout F ").unwrap().text, b"");
        assert_eq!(parse_line(b"2024-05-01T10:00:00Z stdout F").unwrap().text, b"");
        assert!(parse_line(b"2024-05-01T10:00:00Z stdout F:x y").is_ok_and(|e| e.text == b"y"));
        for bad in [
            &b""[..],
            b"garbage",
            b"2024-05-01T10:00:00Z stdin F x",
            b"2024-05-01T10:00:00Z stdout X x",
            b"yesterday stdout F x",
        ] {
            assert!(parse_line(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn options_are_validated_like_kubernetes() {
        let now = ts("2024-05-01T10:00:00Z");
        let o = LogOptions::from_query(
            &pairs(&[
                ("follow", "true"),
                ("tailLines", "5"),
                ("timestamps", "1"),
                ("limitBytes", "10"),
                ("sinceSeconds", "60"),
            ]),
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes, o.since), (Some(5), Some(10), Some(ts("2024-05-01T09:59:00Z"))));
        let o =
            LogOptions::from_query(&pairs(&[("sinceTime", "2024-05-01T09:00:00+01:00"), ("follow", "")]), now).unwrap();
        assert_eq!(o.since, Some(ts("2024-05-01T08:00:00Z")));
        assert!(o.follow);
        for q in [
            &[("tailLines", "-1")][..],
            &[("limitBytes", "0")],
            &[("sinceSeconds", "0")],
            &[("sinceSeconds", "5"), ("sinceTime", "2024-05-01T09:00:00Z")],
            &[("follow", "yes")],
            &[("sinceTime", "5m")],
            &[("stream", "stdin")],
        ] {
            assert!(LogOptions::from_query(&pairs(q), now).is_err(), "{q:?}");
        }
    }

    #[test]
    fn timestamps_print_like_go_rfc3339nano() {
        assert_eq!(format_time(ts("2024-05-01T10:00:00.123450000Z")), "2024-05-01T10:00:00.12345Z");
        assert_eq!(format_time(ts("2024-05-01T10:00:00Z")), "2024-05-01T10:00:00Z");
        assert_eq!(format_time(ts("2024-05-01T12:00:00.000000001+02:00")), "2024-05-01T10:00:00.000000001Z");
    }

    /// A log file with `lines` of (time offset seconds, stream, tag, text).
    fn file(lines: &[(i64, &str, &str, &str)]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        for (secs, stream, tag, text) in lines {
            let t = ts("2024-05-01T10:00:00Z") + jiff::SignedDuration::from_secs(*secs);
            writeln!(f, "{} {stream} {tag} {text}", format_time(t)).unwrap();
        }
        f
    }

    async fn read(path: &Path, opts: LogOptions) -> String {
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn({
            let path = path.to_path_buf();
            async move { stream_logs(&path, opts, CancellationToken::new(), tx).await }
        });
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        task.await.unwrap().unwrap();
        String::from_utf8(out).unwrap()
    }

    const SAMPLE: &[(i64, &str, &str, &str)] = &[
        (0, "stdout", "F", "one"),
        (1, "stderr", "F", "two"),
        (2, "stderr", "F", "four"),
        (2, "stdout", "P", "thr"),
        (3, "stdout", "P", "e"),
        (3, "stdout", "F", "e!"),
        (4, "stdout", "F", ""),
        (5, "stdout", "F", "six"),
    ];

    #[tokio::test]
    async fn joins_partials_and_applies_options() {
        let f = file(SAMPLE);
        let all = |o: LogOptions| read(f.path(), o);
        // Chunks of one stream join even with the other stream's lines in between.
        let mixed =
            file(&[(0, "stdout", "P", "a"), (1, "stderr", "F", "x"), (2, "stdout", "F", "b"), (3, "stderr", "P", "y")]);
        assert_eq!(read(mixed.path(), LogOptions::default()).await, "x\nab\ny");
        assert_eq!(all(LogOptions::default()).await, "one\ntwo\nfour\nthree!\n\nsix\n");
        assert_eq!(all(LogOptions { tail_lines: Some(2), ..Default::default() }).await, "\nsix\n");
        assert_eq!(all(LogOptions { tail_lines: Some(4), ..Default::default() }).await, "four\nthree!\n\nsix\n");
        // The partial chain counts as one line and is never cut in the middle.
        assert_eq!(all(LogOptions { tail_lines: Some(3), ..Default::default() }).await, "three!\n\nsix\n");
        assert_eq!(all(LogOptions { tail_lines: Some(0), ..Default::default() }).await, "");
        assert_eq!(
            all(LogOptions { tail_lines: Some(100), ..Default::default() }).await,
            "one\ntwo\nfour\nthree!\n\nsix\n"
        );
        assert_eq!(all(LogOptions { stream: StreamFilter::Stderr, ..Default::default() }).await, "two\nfour\n");
        assert_eq!(
            all(LogOptions { stream: StreamFilter::Stdout, tail_lines: Some(3), ..Default::default() }).await,
            "three!\n\nsix\n"
        );
        assert_eq!(all(LogOptions { limit_bytes: Some(6), ..Default::default() }).await, "one\ntw");
        assert_eq!(
            all(LogOptions { since: Some(ts("2024-05-01T10:00:02Z")), ..Default::default() }).await,
            "four\nthree!\n\nsix\n"
        );
        assert_eq!(
            all(LogOptions { timestamps: true, tail_lines: Some(2), ..Default::default() }).await,
            "2024-05-01T10:00:04Z \n2024-05-01T10:00:05Z six\n"
        );
        // A joined line carries the time of its first chunk.
        assert!(
            all(LogOptions { timestamps: true, ..Default::default() }).await.contains("2024-05-01T10:00:02Z three!\n")
        );
    }

    #[tokio::test]
    async fn tail_reads_only_the_end_of_a_big_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let mut w = std::io::BufWriter::new(f.as_file_mut());
        for i in 0..200_000 {
            writeln!(w, "2024-05-01T10:00:00.000000001Z stdout F line {i}").unwrap();
        }
        drop(w);
        let out = read(f.path(), LogOptions { tail_lines: Some(3), ..Default::default() }).await;
        assert_eq!(out, "line 199997\nline 199998\nline 199999\n");
        let out = read(f.path(), LogOptions { tail_lines: Some(150_000), ..Default::default() }).await;
        assert_eq!(out.lines().count(), 150_000);
        assert!(out.starts_with("line 50000\n"));
    }

    async fn recv(rx: &mut mpsc::Receiver<Bytes>) -> Bytes {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn follow_streams_new_lines_until_done() {
        let mut f = file(&[(0, "stdout", "F", "first")]);
        let done = CancellationToken::new();
        let (tx, mut rx) = mpsc::channel(4);
        let path = f.path().to_path_buf();
        let task = tokio::spawn({
            let done = done.clone();
            async move { stream_logs(&path, LogOptions { follow: true, ..Default::default() }, done, tx).await }
        });
        assert_eq!(recv(&mut rx).await, "first\n");
        // Half a line is held back until its newline arrives.
        write!(f, "2024-05-01T10:00:01Z stdout F sec").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        writeln!(f, "ond").unwrap();
        assert_eq!(recv(&mut rx).await, "second\n");
        writeln!(f, "2024-05-01T10:00:02Z stdout P par").unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        done.cancel();
        // The container is gone mid-line: what was written comes out, then the stream ends.
        assert_eq!(recv(&mut rx).await, "par");
        assert!(tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().is_none());
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_missing_file_is_an_error() {
        let (tx, _rx) = mpsc::channel(1);
        let err =
            stream_logs(Path::new("/nonexistent/0.log"), LogOptions::default(), CancellationToken::new(), tx).await;
        assert!(matches!(err, Err(LogError::Io { .. })));
    }
}
