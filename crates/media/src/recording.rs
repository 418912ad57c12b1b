//! Call recording: a stereo 16-bit 8 kHz WAV, caller on the left, agent on the right.
//!
//! [`StereoAligner`] (pure) places each decoded packet by its arrival time on a 20 ms grid,
//! fills gaps with silence and releases frames a little behind real time so jitter does not
//! misplace them. [`RecordingWriter`] owns the file on a dedicated thread (`hound` does
//! blocking writes; the media task never touches the disk). No networking here.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use crate::error::{MediaError, Result};
use crate::stream::FRAME_SAMPLES;

/// Which channel of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// Left: what the caller says.
    Caller = 0,
    /// Right: what the agent says.
    Agent = 1,
}

/// Frames held back from the file to absorb arrival jitter.
const LAG_SLOTS: u64 = 3;
/// A channel may run at most this many frames ahead of its arrival slot (a sender whose
/// clock is fast); beyond that its audio is dropped rather than drifting.
const MAX_AHEAD_SLOTS: u64 = 5;
const FRAME: u64 = FRAME_SAMPLES as u64;

/// Places audio of two channels on a common 20 ms grid by arrival slot.
#[derive(Debug, Default, Clone)]
pub struct StereoAligner {
    /// Absolute sample index of the front of `pending`.
    emitted: u64,
    /// Next free absolute sample index per channel.
    cursor: [u64; 2],
    pending: [VecDeque<i16>; 2],
    dropped_frames: u64,
}

impl StereoAligner {
    /// An empty aligner whose slot 0 is the start of the recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames dropped because a channel ran too far ahead.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Adds decoded audio of `channel` that arrived during `slot` (20 ms slots since start).
    pub fn push(&mut self, channel: Channel, slot: u64, samples: &[i16]) {
        let ch = channel as usize;
        let at = slot.saturating_mul(FRAME);
        let start = at.max(self.cursor[ch]).max(self.emitted);
        if start > at.saturating_add(MAX_AHEAD_SLOTS * FRAME) {
            self.dropped_frames = self.dropped_frames.saturating_add(1);
            return;
        }
        let offset = usize::try_from(start - self.emitted).unwrap_or(usize::MAX);
        let buf = &mut self.pending[ch];
        let end = offset.saturating_add(samples.len());
        if buf.len() < end {
            buf.resize(end, 0);
        }
        for (dst, src) in buf.range_mut(offset..end).zip(samples) {
            *dst = *src;
        }
        self.cursor[ch] = start.saturating_add(samples.len() as u64);
    }

    /// Interleaved stereo samples for every slot older than `now_slot` minus the jitter lag.
    pub fn drain(&mut self, now_slot: u64) -> Vec<i16> {
        self.drain_until(now_slot.saturating_sub(LAG_SLOTS).saturating_mul(FRAME))
    }

    /// Everything up to `now_slot` (or the furthest audio), for the end of the recording.
    pub fn finish(&mut self, now_slot: u64) -> Vec<i16> {
        let end = now_slot
            .saturating_mul(FRAME)
            .max(self.cursor[0])
            .max(self.cursor[1]);
        self.drain_until(end)
    }

    fn drain_until(&mut self, until: u64) -> Vec<i16> {
        if until <= self.emitted {
            return Vec::new();
        }
        let n = usize::try_from(until - self.emitted).unwrap_or(0);
        let mut out = Vec::with_capacity(n * 2);
        for _ in 0..n {
            out.push(self.pending[0].pop_front().unwrap_or(0));
            out.push(self.pending[1].pop_front().unwrap_or(0));
        }
        self.emitted = until;
        out
    }
}

/// The WAV file of one recording, written on its own thread.
#[derive(Debug)]
pub struct RecordingWriter {
    path: PathBuf,
    tx: Option<SyncSender<Vec<i16>>>,
    thread: Option<JoinHandle<Result<()>>>,
    dropped_chunks: u64,
}

impl RecordingWriter {
    /// Creates `path` (and its parent directories) as a stereo 16-bit 8 kHz WAV.
    pub fn create(path: &Path) -> Result<Self> {
        let fail = |reason: String| MediaError::Recording {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut wav = hound::WavWriter::create(path, spec).map_err(|e| fail(e.to_string()))?;
        // About 5 s of 20 ms chunks of backlog before audio is dropped.
        let (tx, rx) = sync_channel::<Vec<i16>>(256);
        let owned = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("sb-recording".into())
            .spawn(move || {
                let fail = |e: hound::Error| MediaError::Recording {
                    path: owned.clone(),
                    reason: e.to_string(),
                };
                for chunk in rx {
                    for s in chunk {
                        wav.write_sample(s).map_err(fail)?;
                    }
                }
                wav.finalize().map_err(fail)
            })
            .map_err(|e| fail(e.to_string()))?;
        Ok(RecordingWriter {
            path: path.to_path_buf(),
            tx: Some(tx),
            thread: Some(thread),
            dropped_chunks: 0,
        })
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues interleaved samples; never blocks (a full queue drops the chunk and counts it).
    pub fn write(&mut self, interleaved: Vec<i16>) {
        if interleaved.is_empty() {
            return;
        }
        if let Some(tx) = &self.tx {
            match tx.try_send(interleaved) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.dropped_chunks = self.dropped_chunks.saturating_add(1);
                }
            }
        }
    }

    /// Chunks dropped because the disk did not keep up.
    pub fn dropped_chunks(&self) -> u64 {
        self.dropped_chunks
    }

    /// Closes the queue, waits for the thread to write the WAV header, returns the path.
    /// Blocks: call from a blocking context.
    pub fn finish(mut self) -> Result<PathBuf> {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.map(|()| self.path.clone()),
            Some(Err(_)) => Err(MediaError::Recording {
                path: self.path.clone(),
                reason: "writer thread panicked".into(),
            }),
            None => Ok(self.path.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; FRAME_SAMPLES]
    }

    #[test]
    fn aligns_by_slot_and_fills_gaps() {
        let mut a = StereoAligner::new();
        a.push(Channel::Caller, 0, &frame(1));
        a.push(Channel::Agent, 1, &frame(2));
        a.push(Channel::Caller, 3, &frame(3));
        assert!(a.drain(2).is_empty()); // still inside the jitter lag
        let out = a.finish(5);
        assert_eq!(out.len(), 5 * FRAME_SAMPLES * 2);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(left[0], 1);
        assert_eq!(left[160], 0);
        assert_eq!(left[3 * 160], 3);
        assert_eq!(right[0], 0);
        assert_eq!(right[160], 2);
        assert_eq!(right[2 * 160], 0);
    }

    #[test]
    fn bursts_are_laid_out_sequentially_and_runaway_is_dropped() {
        let mut a = StereoAligner::new();
        // Three packets arriving in the same slot (a burst after a network hiccup).
        for v in 1..=3 {
            a.push(Channel::Caller, 10, &frame(v));
        }
        let out = a.finish(0);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        assert_eq!(left.len(), 13 * 160);
        assert_eq!((left[10 * 160], left[11 * 160], left[12 * 160]), (1, 2, 3));
        // A channel far ahead of its slot loses frames instead of drifting.
        let mut b = StereoAligner::new();
        for _ in 0..10 {
            b.push(Channel::Agent, 0, &frame(5));
        }
        assert_eq!(b.dropped_frames(), 4);
        // Half frames (10 ms packetisation) are packed back to back.
        let mut c = StereoAligner::new();
        c.push(Channel::Caller, 0, &[7; 80]);
        c.push(Channel::Caller, 0, &[8; 80]);
        let out = c.finish(1);
        assert_eq!((out[0], out[2 * 80]), (7, 8));
    }

    #[test]
    fn writer_produces_stereo_wav() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/call.wav");
        let mut w = RecordingWriter::create(&path).unwrap();
        w.write(vec![100, -100, 200, -200]);
        assert_eq!(w.finish().unwrap(), path);
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.spec().channels, 2);
        assert_eq!(r.spec().sample_rate, 8000);
        let s: Vec<i16> = r.into_samples::<i16>().map(|s| s.unwrap()).collect();
        assert_eq!(s, vec![100, -100, 200, -200]);
        assert!(RecordingWriter::create(Path::new("/proc/forbidden/x.wav")).is_err());
    }
}
