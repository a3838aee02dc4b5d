//! The purge log on disk (`cluster.state_dir`), so that a purge a peer has not
//! acknowledged outlives a restart of the node that took it: the caller was told it
//! "will be replayed", and a restart must not make that a lie.
//!
//! Two files:
//! - `purge-log.jsonl`: one line per purge, `{"seq":N,"purge":{...}}`, appended before
//!   the purge is sent anywhere. Rewritten (to a temporary file, then renamed) with
//!   the newest `capacity` entries when it holds twice that many, so it stays bounded.
//! - `purge-acked.json`: `{"peer name": seq, ...}`, each peer's gap-free delivered
//!   sequence, replaced whole (temporary file, then rename) after fan-outs and
//!   catch-ups. When it lags the truth (a crash between a delivery and its write),
//!   the peer is sent a purge twice; purges are idempotent, so that costs nothing.
//!
//! Writes are not fsynced: the files survive the process (crash, restart, reload),
//! not the host losing power. A line that does not parse (a torn last write) is
//! skipped with a warning; nothing in these files can stop a node from starting.
//!
//! Hand-written rather than an embedded database: two small files of JSON lines,
//! read once at start, need no crate that would bring its own storage engine.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read as _, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

const LOG_FILE: &str = "purge-log.jsonl";
const ACKED_FILE: &str = "purge-acked.json";
/// Longest journal line read back: a purge body is an admin request, bounded by
/// `admin.max_body` far below this.
const MAX_LINE: usize = 16 << 20;

/// What the files held at start.
#[derive(Debug, Default)]
pub struct Restored {
    /// `(seq, purge)`, oldest first, at most `capacity`.
    pub entries: Vec<(u64, Value)>,
    /// The newest sequence number ever written (0: none).
    pub head: u64,
    pub acked: HashMap<String, u64>,
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    capacity: usize,
    log: Mutex<Appender>,
}

#[derive(Debug)]
struct Appender {
    file: File,
    /// Lines in the file now; at twice the capacity it is rewritten.
    lines: usize,
}

impl Journal {
    /// Open (creating) the journal in `dir` and read back what it holds.
    pub fn open(dir: &Path, capacity: usize) -> Result<(Journal, Restored), String> {
        fs::create_dir_all(dir).map_err(|e| format!("cluster.state_dir {}: {e}", dir.display()))?;
        let capacity = capacity.max(1);
        let log_path = dir.join(LOG_FILE);
        let mut restored = Restored {
            acked: read_acked(&dir.join(ACKED_FILE)),
            ..Restored::default()
        };
        let mut entries = read_log(&log_path);
        restored.head = entries.last().map_or(0, |(seq, _)| *seq);
        if entries.len() > capacity {
            entries.drain(..entries.len() - capacity);
        }
        // Start from a compact file: what was read back, and nothing torn.
        write_log(&log_path, &entries)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let lines = entries.len();
        restored.entries = entries;
        Ok((
            Journal {
                dir: dir.to_path_buf(),
                capacity,
                log: Mutex::new(Appender { file, lines }),
            },
            restored,
        ))
    }

    /// Record one purge before it is sent. `recent` is the in-memory log's entries,
    /// newest last, used when the file is due for a rewrite.
    pub fn append(&self, seq: u64, purge: &Value, recent: impl FnOnce() -> Vec<(u64, Value)>) {
        let line = serde_json::json!({ "seq": seq, "purge": purge }).to_string();
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.lines >= self.capacity.saturating_mul(2) {
            let path = self.dir.join(LOG_FILE);
            let reopened = write_log(&path, &recent()).and_then(|()| {
                OpenOptions::new()
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))
            });
            match reopened {
                Ok(file) => {
                    log.file = file;
                    log.lines = self.capacity;
                }
                Err(e) => tracing::warn!(error = %e, "purge journal: compaction failed"),
            }
        }
        match writeln!(log.file, "{line}") {
            Ok(()) => log.lines += 1,
            Err(e) => {
                tracing::error!(error = %e, seq, "purge journal: write failed; this purge lives only in memory")
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replace the whole log with `entries` (oldest first).
    pub fn replace_all(&self, entries: &[(u64, Value)]) {
        let path = self.dir.join(LOG_FILE);
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        let reopened = write_log(&path, entries).and_then(|()| {
            OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| format!("{}: {e}", path.display()))
        });
        match reopened {
            Ok(file) => {
                log.file = file;
                log.lines = entries.len();
            }
            Err(e) => tracing::error!(error = %e, "purge journal: rewrite failed"),
        }
    }

    /// Replace the acknowledged sequences.
    pub fn save_acked(&self, acked: &HashMap<String, u64>) {
        let path = self.dir.join(ACKED_FILE);
        let body = serde_json::to_vec(acked).unwrap_or_default();
        if let Err(e) = replace(&path, &body) {
            tracing::warn!(error = %e, "purge journal: could not save acknowledgements");
        }
    }
}

fn read_log(path: &Path) -> Vec<(u64, Value)> {
    let Ok(file) = File::open(path) else {
        return Vec::new();
    };
    let mut out: Vec<(u64, Value)> = Vec::new();
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut skipped = 0usize;
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "purge journal: read stopped");
                break;
            }
        }
        if line.len() > MAX_LINE {
            // Skip the rest of an overlong line.
            skipped += 1;
            let mut rest = Vec::new();
            if reader.read_until(b'\n', &mut rest).is_err() {
                break;
            }
            continue;
        }
        let parsed = serde_json::from_slice::<Value>(&line).ok().and_then(|v| {
            let seq = v.get("seq")?.as_u64()?;
            let purge = v.get("purge")?.clone();
            purge.is_object().then_some((seq, purge))
        });
        match parsed {
            // Sequences only grow; anything else is not a line this code wrote.
            Some((seq, purge)) if out.last().map_or(true, |(last, _)| seq > *last) => {
                out.push((seq, purge))
            }
            _ if line.iter().all(u8::is_ascii_whitespace) => {}
            _ => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(file = %path.display(), skipped, "purge journal: unreadable lines skipped");
    }
    out
}

fn read_acked(path: &Path) -> HashMap<String, u64> {
    let Ok(bytes) = fs::read(path) else {
        return HashMap::new();
    };
    serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        tracing::warn!(error = %e, file = %path.display(), "purge journal: acknowledgements unreadable; peers are sent the whole log again");
        HashMap::new()
    })
}

fn write_log(path: &Path, entries: &[(u64, Value)]) -> Result<(), String> {
    let mut body = Vec::new();
    for (seq, purge) in entries {
        body.extend_from_slice(
            serde_json::json!({ "seq": seq, "purge": purge })
                .to_string()
                .as_bytes(),
        );
        body.push(b'\n');
    }
    replace(path, &body)
}

/// Write `path` whole: a reader (or a crash) sees the old file or the new one.
fn replace(path: &Path, body: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, body).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "lacquer-journal-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn purges_and_acks_come_back() {
        let d = dir("back");
        let (j, r) = Journal::open(&d, 10).unwrap();
        assert_eq!(r.head, 0);
        for seq in 1..=3 {
            j.append(seq, &json!({"url": format!("/{seq}")}), Vec::new);
        }
        j.save_acked(&HashMap::from([("b".to_string(), 2)]));
        drop(j);
        let (_, r) = Journal::open(&d, 10).unwrap();
        assert_eq!(r.head, 3);
        assert_eq!(r.entries.len(), 3);
        assert_eq!(r.entries[2].1, json!({"url": "/3"}));
        assert_eq!(r.acked.get("b"), Some(&2));
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn the_file_stays_bounded_and_keeps_the_head() {
        let d = dir("bounded");
        let (j, _) = Journal::open(&d, 4).unwrap();
        let mut mem: Vec<(u64, Value)> = Vec::new();
        for seq in 1..=50u64 {
            let purge = json!({"url": format!("/{seq}")});
            let recent = mem.clone();
            j.append(seq, &purge, move || recent);
            mem.push((seq, purge));
            if mem.len() > 4 {
                mem.remove(0);
            }
        }
        let lines = fs::read_to_string(d.join(LOG_FILE))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 9, "{lines} lines for a capacity of 4");
        drop(j);
        let (_, r) = Journal::open(&d, 4).unwrap();
        assert_eq!(r.head, 50);
        let seqs: Vec<u64> = r.entries.iter().map(|e| e.0).collect();
        assert_eq!(seqs, vec![47, 48, 49, 50]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn torn_and_foreign_lines_are_skipped() {
        let d = dir("torn");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(LOG_FILE),
            "{\"seq\":1,\"purge\":{\"all\":true}}\nnot json\n{\"seq\":1,\"purge\":{}}\n{\"seq\":2,\"purge\":{\"url\":\"/a\"}}\n{\"seq\":3,\"pur",
        )
        .unwrap();
        fs::write(d.join(ACKED_FILE), "{broken").unwrap();
        let (_, r) = Journal::open(&d, 10).unwrap();
        assert_eq!(r.head, 2);
        assert_eq!(r.entries.len(), 2);
        assert!(r.acked.is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn an_unusable_directory_is_an_error() {
        let d = dir("file");
        fs::write(&d, "a file, not a directory").unwrap();
        assert!(Journal::open(&d, 10).is_err());
        let _ = fs::remove_file(&d);
    }
}
