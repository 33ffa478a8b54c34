//! A status line on stderr for long waits (rollout status, wait, image load): a spinner, what is
//! awaited, the time spent and, for transfers, bytes and rate. Drawn only when stderr is a
//! terminal, so scripts and pipes see exactly kubectl's output.

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(120);
/// Set to any value to keep the status line off even on a terminal.
pub const DISABLE_ENV: &str = "RKUBECTL_NO_PROGRESS";

/// What the status line says; shared with the drawing thread.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// What is awaited, e.g. `deployment/web: 1 of 3 updated replicas are available`.
    pub message: String,
    /// Bytes done and, when known, the total (transfers only).
    pub bytes: Option<(u64, Option<u64>)>,
    /// When the wait gives up, if it does.
    pub deadline: Option<Instant>,
}

/// A live status line; cleared when dropped.
pub struct Progress {
    shared: Option<Arc<Shared>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    status: Mutex<Status>,
    stop: AtomicBool,
    /// Serialises drawing with `clear` so a line printed on stdout never lands mid-status.
    drawn: Mutex<bool>,
}

impl Progress {
    /// Starts a status line when stderr is a terminal (and `RKUBECTL_NO_PROGRESS` is unset);
    /// otherwise every call is a no-op.
    pub fn start(message: impl Into<String>) -> Progress {
        let enabled = std::io::stderr().is_terminal()
            && std::env::var_os(DISABLE_ENV).is_none()
            && std::env::var("TERM").map_or(true, |t| t != "dumb");
        if !enabled {
            return Progress { shared: None, thread: None };
        }
        let shared = Arc::new(Shared {
            status: Mutex::new(Status { message: message.into(), ..Status::default() }),
            stop: AtomicBool::new(false),
            drawn: Mutex::new(false),
        });
        let started = Instant::now();
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                let mut frame = 0usize;
                while !worker.stop.load(Ordering::Acquire) {
                    let status = worker.status.lock().map(|s| s.clone()).unwrap_or_default();
                    let width = crate::term::size().map_or(80, |(c, _)| c as usize);
                    let line = render(&status, frame, started.elapsed(), Instant::now(), width);
                    if let Ok(mut drawn) = worker.drawn.lock() {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(err, "\r\x1b[K{line}");
                        let _ = err.flush();
                        *drawn = true;
                    }
                    frame = frame.wrapping_add(1);
                    std::thread::sleep(TICK);
                }
            })
            .ok();
        Progress { shared: Some(shared), thread }
    }

    /// Whether a status line is being drawn.
    pub fn is_active(&self) -> bool {
        self.shared.is_some()
    }

    /// Replaces what the line says.
    pub fn set_message(&self, message: impl Into<String>) {
        self.update(|s| s.message = message.into());
    }

    /// Sets the transfer counters.
    pub fn set_bytes(&self, done: u64, total: Option<u64>) {
        self.update(|s| s.bytes = Some((done, total)));
    }

    /// Sets when the wait times out, shown as the time left.
    pub fn set_deadline(&self, deadline: Instant) {
        self.update(|s| s.deadline = Some(deadline));
    }

    fn update(&self, f: impl FnOnce(&mut Status)) {
        if let Some(shared) = &self.shared
            && let Ok(mut s) = shared.status.lock()
        {
            f(&mut s);
        }
    }

    /// Erases the line so the caller can print; the next tick draws it again.
    pub fn clear(&self) {
        if let Some(shared) = &self.shared
            && let Ok(mut drawn) = shared.drawn.lock()
            && *drawn
        {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
            *drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(shared) = &self.shared {
            shared.stop.store(true, Ordering::Release);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.clear();
    }
}

/// The status line for one frame, cut to `width` columns (the cursor must not wrap, or `\r`
/// would no longer return to the line's start).
pub fn render(status: &Status, frame: usize, elapsed: Duration, now: Instant, width: usize) -> String {
    let mut line = format!("{} {}", SPINNER[frame % SPINNER.len()], status.message);
    if let Some((done, total)) = status.bytes {
        line.push_str(&format!(" {}", human_bytes(done)));
        if let Some(total) = total.filter(|t| *t > 0) {
            line.push_str(&format!("/{} ({}%)", human_bytes(total), done.saturating_mul(100) / total));
        }
        let secs = elapsed.as_secs_f64();
        if secs >= 0.5 {
            line.push_str(&format!(" {}/s", human_bytes((done as f64 / secs) as u64)));
        }
    }
    line.push_str(&format!(" [{}", short_duration(elapsed)));
    if let Some(deadline) = status.deadline {
        line.push_str(&format!(", timeout in {}", short_duration(deadline.saturating_duration_since(now))));
    }
    line.push(']');
    let width = width.max(10) - 1;
    if line.chars().count() > width {
        line = line.chars().take(width.saturating_sub(1)).collect();
        line.push('…');
    }
    line
}

/// `950B`, `1.5KiB`, `12.0MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

/// `7s`, `2m05s`, `1h02m`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_message_elapsed_and_time_left() {
        let now = Instant::now();
        let s = Status {
            message: "deployment/web: 1 of 3 updated replicas are available".into(),
            bytes: None,
            deadline: Some(now + Duration::from_secs(125)),
        };
        let line = render(&s, 1, Duration::from_secs(7), now, 200);
        assert_eq!(line, "⠙ deployment/web: 1 of 3 updated replicas are available [7s, timeout in 2m05s]");
    }

    #[test]
    fn renders_transfers_with_share_and_rate() {
        let s =
            Status { message: "loading busybox.tar".into(), bytes: Some((3 << 20, Some(12 << 20))), deadline: None };
        let line = render(&s, 0, Duration::from_secs(2), Instant::now(), 200);
        assert_eq!(line, "⠋ loading busybox.tar 3.0MiB/12.0MiB (25%) 1.5MiB/s [2s]");
    }

    #[test]
    fn cuts_to_the_terminal_width() {
        let s = Status { message: "x".repeat(100), ..Status::default() };
        let line = render(&s, 0, Duration::ZERO, Instant::now(), 40);
        assert_eq!(line.chars().count(), 39);
        assert!(line.ends_with('…'));
    }

    #[test]
    fn sizes_and_durations_read_short() {
        assert_eq!(human_bytes(950), "950B");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(short_duration(Duration::from_secs(3725)), "1h02m");
    }

    #[test]
    fn off_when_stderr_is_no_terminal() {
        // cargo test captures stderr through a pipe, so nothing may be drawn.
        let p = Progress::start("waiting");
        if !std::io::stderr().is_terminal() {
            assert!(!p.is_active());
        }
    }
}
