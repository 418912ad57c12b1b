//! The durable local spool: records that could not go to the database yet.
//!
//! A spool directory holds numbered segment files (`records-<n>.spool`), appended to in order
//! and replayed oldest first. Each line is `<crc32 as 8 hex digits> <record as JSON>\n`; a
//! batch of lines is written with one `write` and made durable with one `fdatasync` before the
//! records count as spooled. A line with a bad checksum, or a torn last line left by a crash,
//! is skipped on replay and counted. A segment is deleted only after all of its records are
//! committed to the database, so a crash at any point replays at least what was acknowledged;
//! the database ignores rows whose id it already has, so nothing is stored twice.
//!
//! The directory is locked (`spool.lock`) so two processes never share a spool.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::model::Record;

const LOCK_FILE: &str = "spool.lock";
/// Records the database refused as invalid, kept for an operator; never replayed.
pub(crate) const REJECTED_FILE: &str = "rejected.spool";
const PREFIX: &str = "records-";
const SUFFIX: &str = ".spool";

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct Active {
    seq: u64,
    file: File,
    len: u64,
    /// A failed write could not be undone: never append to this file again.
    broken: bool,
}

/// Records read back from the spool, not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) records: Vec<Record>,
    /// Lines skipped because their checksum or JSON was bad.
    pub(crate) corrupt: u64,
    end_offset: u64,
    reached_end: bool,
}

/// What [`Spool::open`] found left over from earlier runs.
#[derive(Debug, Default)]
pub(crate) struct Recovered {
    pub(crate) records: u64,
    pub(crate) corrupt: u64,
    pub(crate) segments: usize,
}

/// The spool of one store. Used by the writer thread only.
#[derive(Debug)]
pub(crate) struct Spool {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    active: Option<Active>,
    read_offset: u64,
    backlog: u64,
    segment_bytes: u64,
    next_seq: u64,
    _lock: File,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{PREFIX}{seq:020}{SUFFIX}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One spool line for `record`.
pub(crate) fn encode_line(record: &Record, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(record)?;
    let crc = crc32fast::hash(&json);
    write!(out, "{crc:08x} ")?;
    out.extend_from_slice(&json);
    out.push(b'\n');
    Ok(())
}

/// Parses one line (without its `\n`); `None` when it is damaged.
pub(crate) fn decode_line(line: &[u8]) -> Option<Record> {
    let (crc_hex, json) = (line.get(..8)?, line.get(9..)?);
    if line.get(8) != Some(&b' ') {
        return None;
    }
    let crc = u32::from_str_radix(std::str::from_utf8(crc_hex).ok()?, 16).ok()?;
    if crc32fast::hash(json) != crc {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// Reads up to `max` lines from `path` starting at `offset`. A last line without `\n` is
/// reported as torn and not consumed.
fn read_lines(path: &Path, offset: u64, max: usize) -> io::Result<(Vec<Vec<u8>>, u64, bool, bool)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut lines = Vec::new();
    let mut pos = offset;
    let mut torn = false;
    let mut at_end = false;
    while lines.len() < max {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            at_end = true;
            break;
        }
        if line.last() != Some(&b'\n') {
            torn = true;
            at_end = true;
            break;
        }
        line.pop();
        pos += n as u64;
        lines.push(line);
    }
    if !at_end && reader.fill_buf()?.is_empty() {
        at_end = true;
    }
    Ok((lines, pos, at_end, torn))
}

impl Spool {
    /// Opens (creating if needed) and locks the spool directory, and counts what earlier runs
    /// left in it.
    pub(crate) fn open(dir: &Path, segment_bytes: u64) -> Result<(Spool, Recovered), StoreError> {
        let err = |what: &str| {
            let what = format!("{what} {}", dir.display());
            move |source| StoreError::Spool { what, source }
        };
        std::fs::create_dir_all(dir).map_err(err("create spool directory"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(err("open the lock file in"))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::SpoolLocked(dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(err("lock")(e)),
        }
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(err("list"))? {
            let entry = entry.map_err(err("list"))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(seq) = name
                .strip_prefix(PREFIX)
                .and_then(|n| n.strip_suffix(SUFFIX))
                .and_then(|n| n.parse::<u64>().ok())
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut recovered = Recovered {
            segments: seqs.len(),
            ..Recovered::default()
        };
        let mut segments = VecDeque::new();
        for seq in &seqs {
            let path = segment_path(dir, *seq);
            let (lines, _, _, torn) =
                read_lines(&path, 0, usize::MAX).map_err(err("read spool segment in"))?;
            for line in &lines {
                if decode_line(line).is_some() {
                    recovered.records += 1;
                } else {
                    recovered.corrupt += 1;
                }
            }
            if torn {
                recovered.corrupt += 1;
            }
            segments.push_back(Segment { seq: *seq, path });
        }
        let spool = Spool {
            dir: dir.to_owned(),
            segments,
            active: None,
            read_offset: 0,
            backlog: recovered.records,
            segment_bytes,
            next_seq: seqs.last().map_or(1, |s| s.saturating_add(1)),
            _lock: lock,
        };
        Ok((spool, recovered))
    }

    /// Whether any record waits in the spool.
    pub(crate) fn has_backlog(&self) -> bool {
        !self.segments.is_empty()
    }

    /// How many records wait in the spool.
    pub(crate) fn backlog(&self) -> u64 {
        self.backlog
    }

    fn start_segment(&mut self) -> io::Result<()> {
        let seq = self.next_seq;
        let path = segment_path(&self.dir, seq);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        sync_dir(&self.dir)?;
        self.next_seq = seq.saturating_add(1);
        self.segments.push_back(Segment { seq, path });
        self.active = Some(Active {
            seq,
            file,
            len: 0,
            broken: false,
        });
        Ok(())
    }

    /// Appends `records` in order and fsyncs them. On error nothing is counted as spooled and
    /// the segment is cut back to its last complete line.
    pub(crate) fn append(&mut self, records: &[Record]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(records.len() * 512);
        for r in records {
            encode_line(r, &mut buf)?;
        }
        let rotate = self
            .active
            .as_ref()
            .is_none_or(|a| a.broken || a.len >= self.segment_bytes);
        if rotate {
            self.start_segment()?;
        }
        let Some(active) = self.active.as_mut() else {
            return Err(io::Error::other("no active spool segment"));
        };
        let result = active
            .file
            .write_all(&buf)
            .and_then(|()| active.file.sync_data());
        match result {
            Ok(()) => {
                active.len += buf.len() as u64;
                self.backlog += records.len() as u64;
                Ok(())
            }
            Err(e) => {
                // Cut off a partly written line so the next append starts on a clean line.
                if active
                    .file
                    .set_len(active.len)
                    .and_then(|()| active.file.sync_data())
                    .is_err()
                {
                    active.broken = true;
                }
                Err(e)
            }
        }
    }

    /// Keeps a record the database refused in [`REJECTED_FILE`] (fsync'd).
    pub(crate) fn reject(&mut self, record: &Record) -> io::Result<()> {
        let mut buf = Vec::new();
        encode_line(record, &mut buf)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(REJECTED_FILE))?;
        file.write_all(&buf)?;
        file.sync_data()
    }

    /// Reads up to `max` records from the oldest segment without consuming them.
    pub(crate) fn read_chunk(&mut self, max: usize) -> io::Result<Chunk> {
        let Some(front) = self.segments.front() else {
            return Ok(Chunk::default());
        };
        // The segment this process appends to, unless a failed write left it unusable.
        let is_active = self
            .active
            .as_ref()
            .is_some_and(|a| a.seq == front.seq && !a.broken);
        let (lines, end_offset, at_end, torn) = read_lines(&front.path, self.read_offset, max)?;
        let mut chunk = Chunk {
            end_offset,
            reached_end: at_end,
            ..Chunk::default()
        };
        for line in lines {
            match decode_line(&line) {
                Some(r) => chunk.records.push(r),
                None => chunk.corrupt += 1,
            }
        }
        if torn {
            if is_active {
                // Being written by this process: never torn after a successful append.
                chunk.reached_end = false;
            } else {
                chunk.corrupt += 1;
            }
        }
        Ok(chunk)
    }

    /// Marks `chunk` as committed to the database; deletes the segment when it is finished.
    pub(crate) fn commit(&mut self, chunk: &Chunk) -> io::Result<()> {
        self.backlog = self.backlog.saturating_sub(chunk.records.len() as u64);
        self.read_offset = chunk.end_offset;
        if !chunk.reached_end {
            return Ok(());
        }
        let Some(front) = self.segments.pop_front() else {
            return Ok(());
        };
        if self.active.as_ref().is_some_and(|a| a.seq == front.seq) {
            self.active = None;
        }
        self.read_offset = 0;
        std::fs::remove_file(&front.path)?;
        sync_dir(&self.dir)?;
        if self.segments.is_empty() {
            self.backlog = 0;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AgentEventKind, AgentSessionEvent, Timestamp};

    fn rec(i: u32) -> Record {
        Record::AgentSession(AgentSessionEvent {
            id: format!("r{i}"),
            at: Timestamp::from_timestamp(1_700_000_000 + i64::from(i), 0).unwrap(),
            agent_id: "ana".into(),
            event: AgentEventKind::State,
            state: Some("available".into()),
            reason: None,
        })
    }

    #[test]
    fn lines_round_trip_and_damage_is_detected() {
        let mut buf = Vec::new();
        encode_line(&rec(1), &mut buf).unwrap();
        assert_eq!(buf.last(), Some(&b'\n'));
        let line = &buf[..buf.len() - 1];
        assert_eq!(decode_line(line), Some(rec(1)));
        let mut bad = line.to_vec();
        let last = bad.len() - 2;
        bad[last] ^= 1;
        assert_eq!(decode_line(&bad), None);
        assert_eq!(decode_line(b"zz"), None);
    }

    #[test]
    fn append_replay_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut spool, found) = Spool::open(dir.path(), 300).unwrap();
            assert_eq!(found.records, 0);
            for i in 0..10 {
                spool.append(&[rec(2 * i), rec(2 * i + 1)]).unwrap();
            }
            assert_eq!(spool.backlog(), 20);
            // Replay a little, then "crash" (drop without finishing).
            let chunk = spool.read_chunk(3).unwrap();
            assert_eq!(chunk.records, vec![rec(0), rec(1), rec(2)]);
            spool.commit(&chunk).unwrap();
        }
        // Simulate a torn write at the end of the last segment.
        let mut last = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "spool"))
            .collect::<Vec<_>>();
        last.sort();
        let mut f = OpenOptions::new()
            .append(true)
            .open(last.last().unwrap())
            .unwrap();
        f.write_all(b"0000abcd {\"Call\":").unwrap();

        let (mut spool, found) = Spool::open(dir.path(), 300).unwrap();
        // The first segment is replayed again from its start: the database skips known ids.
        assert_eq!(found.records, 20);
        assert_eq!(found.corrupt, 1);
        spool.append(&[rec(100)]).unwrap();
        let mut seen = Vec::new();
        let mut corrupt = 0;
        for _ in 0..100 {
            if !spool.has_backlog() {
                break;
            }
            let chunk = spool.read_chunk(4).unwrap();
            corrupt += chunk.corrupt;
            seen.extend(chunk.records.iter().map(|r| r.id().to_owned()));
            spool.commit(&chunk).unwrap();
        }
        let want: Vec<String> = (0..20)
            .map(|i| format!("r{i}"))
            .chain(["r100".into()])
            .collect();
        assert_eq!(seen, want);
        assert_eq!(corrupt, 1);
        assert!(!spool.has_backlog());
        assert_eq!(spool.backlog(), 0);
        // Only the lock file is left.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_second_process_cannot_share_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Spool::open(dir.path(), 1 << 20).unwrap();
        assert!(matches!(
            Spool::open(dir.path(), 1 << 20),
            Err(StoreError::SpoolLocked(_))
        ));
    }
}
