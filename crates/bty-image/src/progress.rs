//! Progress events: what stage a flash is in, bytes read from the source, bytes handled by the
//! writer, bytes verified, the total when known, the rate and an ETA. The engine emits them a
//! few times a second; the CLI's bar, its NDJSON output, the wizard and the agent consume them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Opening and checking the source and target.
    Preparing,
    /// Reading, decoding and writing.
    Writing,
    /// Writing the held-back last and first MiB and flushing to stable storage.
    Syncing,
    /// Reading the target back and comparing.
    Verifying,
    /// Finished successfully.
    Done,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Stage::Preparing => "preparing",
            Stage::Writing => "writing",
            Stage::Syncing => "syncing",
            Stage::Verifying => "verifying",
            Stage::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub stage: Stage,
    /// Bytes of the source (as published, e.g. compressed) read so far.
    pub bytes_read: u64,
    pub source_size: Option<u64>,
    /// Bytes of the decoded image handled by the writer (written, zeroed or skipped).
    pub bytes_written: u64,
    /// Size of the decoded image when known.
    pub total: Option<u64>,
    pub bytes_verified: u64,
    /// Bytes per second of the current stage's work, over the last few seconds.
    pub rate: f64,
    /// Seconds left in the current stage, when it can be estimated.
    pub eta_secs: Option<f64>,
    pub elapsed_secs: f64,
}

/// Receives progress events.
pub trait ProgressSink: Send + Sync {
    fn progress(&self, p: &Progress);
}

impl<F: Fn(&Progress) + Send + Sync> ProgressSink for F {
    fn progress(&self, p: &Progress) {
        self(p)
    }
}

/// Discards events.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn progress(&self, _: &Progress) {}
}

/// Turns counters into throttled events with a windowed rate and ETA.
pub struct ProgressMeter<'a> {
    sink: &'a dyn ProgressSink,
    start: Instant,
    last_emit: Option<Instant>,
    interval: Duration,
    stage: Stage,
    /// (time, stage work done, source bytes read) samples over the last few seconds.
    window: VecDeque<(Instant, u64, u64)>,
    pub source_size: Option<u64>,
    pub total: Option<u64>,
    bytes_read: u64,
    bytes_written: u64,
    bytes_verified: u64,
}

const WINDOW: Duration = Duration::from_secs(3);

impl<'a> ProgressMeter<'a> {
    pub fn new(sink: &'a dyn ProgressSink, source_size: Option<u64>, total: Option<u64>) -> Self {
        ProgressMeter {
            sink,
            start: Instant::now(),
            last_emit: None,
            interval: Duration::from_millis(200),
            stage: Stage::Preparing,
            window: VecDeque::new(),
            source_size,
            total,
            bytes_read: 0,
            bytes_written: 0,
            bytes_verified: 0,
        }
    }

    /// Enter a stage; always emits.
    pub fn stage(&mut self, stage: Stage) {
        self.stage = stage;
        self.window.clear();
        self.emit(Instant::now());
    }

    /// Update counters; emits when the throttle interval has passed.
    pub fn update(&mut self, bytes_read: u64, bytes_written: u64, bytes_verified: u64) {
        self.bytes_read = bytes_read;
        self.bytes_written = bytes_written;
        self.bytes_verified = bytes_verified;
        let now = Instant::now();
        if self
            .last_emit
            .is_none_or(|t| now.duration_since(t) >= self.interval)
        {
            self.emit(now);
        }
    }

    fn done_in_stage(&self) -> u64 {
        match self.stage {
            Stage::Verifying => self.bytes_verified,
            _ => self.bytes_written,
        }
    }

    fn emit(&mut self, now: Instant) {
        let done = self.done_in_stage();
        self.window.push_back((now, done, self.bytes_read));
        while self.window.len() > 2
            && self
                .window
                .front()
                .is_some_and(|(t, _, _)| now.duration_since(*t) > WINDOW)
        {
            self.window.pop_front();
        }
        let (rate, read_rate) = match self.window.front() {
            Some(&(t0, d0, r0)) if now.duration_since(t0) > Duration::from_millis(50) => {
                let secs = now.duration_since(t0).as_secs_f64();
                (
                    (done - d0) as f64 / secs,
                    (self.bytes_read - r0) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        let eta_secs = match (self.stage, self.total, self.source_size) {
            (Stage::Writing | Stage::Verifying, Some(total), _) if rate > 0.0 => {
                Some(total.saturating_sub(done) as f64 / rate)
            }
            // Decoded size unknown: estimate from how much of the source has been read.
            (Stage::Writing, None, Some(src)) if read_rate > 0.0 => {
                Some(src.saturating_sub(self.bytes_read) as f64 / read_rate)
            }
            _ => None,
        };
        let p = Progress {
            stage: self.stage,
            bytes_read: self.bytes_read,
            source_size: self.source_size,
            bytes_written: self.bytes_written,
            total: self.total,
            bytes_verified: self.bytes_verified,
            rate,
            eta_secs,
            elapsed_secs: now.duration_since(self.start).as_secs_f64(),
        };
        self.last_emit = Some(now);
        self.sink.progress(&p);
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn stages_always_emit_and_updates_are_throttled() {
        let seen = Mutex::new(Vec::new());
        let sink = |p: &Progress| seen.lock().unwrap().push((p.stage, p.bytes_written));
        let mut m = ProgressMeter::new(&sink, Some(100), Some(1000));
        m.stage(Stage::Writing);
        for i in 0..1000 {
            m.update(i / 10, i, 0);
        }
        m.stage(Stage::Done);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.first().map(|s| s.0), Some(Stage::Writing));
        assert_eq!(seen.last().map(|s| s.0), Some(Stage::Done));
        assert!(
            seen.len() < 10,
            "updates must be throttled, got {}",
            seen.len()
        );
    }
}
