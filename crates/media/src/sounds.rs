//! Prompt and music files: loading 8 kHz mono 16-bit WAVs into memory, a cache, the
//! frame-by-frame players, and the position-announcement composer. No networking.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{MediaError, Result};
use crate::stream::FRAME_SAMPLES;

/// Decoded samples of one sound file.
pub type Samples = Arc<[i16]>;

/// File name of the hold-music loop under the sounds directory.
pub const MUSIC: &str = "music.wav";

/// Loads a WAV file that must be 8000 Hz, mono, 16-bit integer PCM.
pub fn load_wav(path: &Path) -> Result<Samples> {
    let bad = |reason: String| MediaError::Sound {
        path: path.to_path_buf(),
        reason,
    };
    let reader = hound::WavReader::open(path).map_err(|e| bad(e.to_string()))?;
    let spec = reader.spec();
    if spec.sample_rate != 8000
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(bad(format!(
            "need 8000 Hz mono 16-bit PCM, found {} Hz, {} channel(s), {} bits {:?}",
            spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
        )));
    }
    let samples: std::result::Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
    let samples = samples.map_err(|e| bad(e.to_string()))?;
    if samples.is_empty() {
        return Err(bad("no samples".into()));
    }
    Ok(samples.into())
}

/// Sound files loaded once and shared by every session.
#[derive(Debug, Default)]
pub struct SoundCache {
    files: Mutex<HashMap<PathBuf, Samples>>,
}

impl SoundCache {
    /// Returns the samples of `path`, reading the file on first use.
    pub fn get(&self, path: &Path) -> Result<Samples> {
        let cached = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let samples = load_wav(path)?;
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), samples.clone());
        Ok(samples)
    }
}

/// Plays samples out in 20 ms frames, looping or once.
#[derive(Debug, Clone)]
pub struct Player {
    samples: Samples,
    pos: usize,
}

impl Player {
    /// A player at the start of `samples`.
    pub fn new(samples: Samples) -> Self {
        Player { samples, pos: 0 }
    }

    /// Next frame, wrapping to the start (for music).
    pub fn next_looped(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        for s in frame.iter_mut() {
            if self.pos >= self.samples.len() {
                self.pos = 0;
            }
            *s = self.samples.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
        }
    }

    /// Next frame, padding the last one with silence; false when nothing was left.
    pub fn next_once(&mut self, frame: &mut [i16; FRAME_SAMPLES]) -> bool {
        if self.pos >= self.samples.len() {
            return false;
        }
        for s in frame.iter_mut() {
            *s = self.samples.get(self.pos).copied().unwrap_or(0);
            self.pos = self.pos.saturating_add(1);
        }
        true
    }
}

/// File names of the spoken number `n` (0–99 as words from the shipped files, larger
/// numbers digit by digit).
fn number_files(n: u32) -> Vec<String> {
    match n {
        0..=20 => vec![format!("{n}.wav")],
        21..=99 => {
            let mut v = vec![format!("{}.wav", n / 10 * 10)];
            if !n.is_multiple_of(10) {
                v.push(format!("{}.wav", n % 10));
            }
            v
        }
        _ => n.to_string().chars().map(|c| format!("{c}.wav")).collect(),
    }
}

/// The prompt list announcing a queue position and the expected wait:
/// "you are number N in the queue; expected waiting time M minutes" (the wait part is left
/// out when `wait_minutes` is 0).
pub fn announce_position(sounds_dir: &Path, position: u32, wait_minutes: u32) -> Vec<PathBuf> {
    let mut names = vec!["you_are_number.wav".to_string()];
    names.extend(number_files(position));
    names.push("in_the_queue.wav".into());
    if wait_minutes > 0 {
        names.push("expected_wait.wav".into());
        names.extend(number_files(wait_minutes));
        names.push("minutes.wav".into());
    }
    names.into_iter().map(|n| sounds_dir.join(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announcement_composition() {
        let d = Path::new("/s");
        let names = |v: Vec<PathBuf>| -> Vec<String> {
            v.iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(announce_position(d, 3, 5)),
            [
                "you_are_number.wav",
                "3.wav",
                "in_the_queue.wav",
                "expected_wait.wav",
                "5.wav",
                "minutes.wav"
            ]
        );
        assert_eq!(
            names(announce_position(d, 42, 0)),
            ["you_are_number.wav", "40.wav", "2.wav", "in_the_queue.wav"]
        );
        assert_eq!(names(announce_position(d, 30, 0))[1], "30.wav");
        assert_eq!(
            names(announce_position(d, 105, 0))[1..4],
            ["1.wav", "0.wav", "5.wav"]
        );
    }

    #[test]
    fn players() {
        let s: Samples = (0..250).map(|i| i as i16).collect::<Vec<_>>().into();
        let mut frame = [0i16; FRAME_SAMPLES];
        let mut once = Player::new(s.clone());
        assert!(once.next_once(&mut frame));
        assert_eq!(frame[159], 159);
        assert!(once.next_once(&mut frame));
        assert_eq!(frame[89], 249);
        assert_eq!(frame[90], 0);
        assert!(!once.next_once(&mut frame));
        let mut looped = Player::new(s);
        looped.next_looped(&mut frame);
        looped.next_looped(&mut frame);
        assert_eq!(frame[90], 0);
        assert_eq!(frame[91], 1);
    }

    #[test]
    fn wav_loading_is_strict() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&good, spec).unwrap();
        for i in 0..800 {
            w.write_sample(i as i16).unwrap();
        }
        w.finalize().unwrap();
        let cache = SoundCache::default();
        assert_eq!(cache.get(&good).unwrap().len(), 800);
        assert_eq!(cache.get(&good).unwrap().len(), 800);
        let wide = dir.path().join("wide.wav");
        let mut w = hound::WavWriter::create(
            &wide,
            hound::WavSpec {
                sample_rate: 16000,
                ..spec
            },
        )
        .unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        assert!(matches!(load_wav(&wide), Err(MediaError::Sound { .. })));
        std::fs::write(dir.path().join("junk.wav"), b"RIFFjunk").unwrap();
        assert!(load_wav(&dir.path().join("junk.wav")).is_err());
        assert!(load_wav(&dir.path().join("missing.wav")).is_err());
    }
}
