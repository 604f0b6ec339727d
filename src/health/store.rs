//! What health checking remembers across restarts, in `state_dir`:
//! `regions.json` (forced states and each region's last known state,
//! replaced atomically by write-then-rename) and `events.jsonl` (the
//! failover history, appended a line per event and rotated at a size cap).
//!
//! A damaged file is logged and survived: a torn last line loses at most the
//! event being written; an unreadable `regions.json` means no remembered
//! state. A state_dir that cannot be written is logged on every failed write
//! and the server goes on with its memory.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::{Forced, State};

/// Events kept in memory and served by `/events`.
pub(crate) const HISTORY: usize = 1000;
/// `events.jsonl` is rotated to `events.jsonl.1` past this size.
const ROTATE_BYTES: u64 = 1 << 20;

/// One entry of the failover history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub time: String,
    pub region: String,
    pub from: String,
    pub to: String,
    pub reason: String,
    /// The failover name's answer before and after the event.
    #[serde(default)]
    pub answer_before: Vec<String>,
    #[serde(default)]
    pub answer_after: Vec<String>,
    /// In a fleet: how every fresh vantage point observed the region at
    /// that moment, by instance name ("up" or "down").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Remembered {
    pub state: State,
    pub forced: Option<Forced>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegionsFile {
    regions: BTreeMap<String, Remembered>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    pub(crate) fn new(dir: &Path) -> Store {
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::error!(dir = %dir.display(), error = %e, "cannot create state_dir; forced states and history will not survive a restart");
        }
        Store {
            dir: dir.to_owned(),
        }
    }

    fn regions_path(&self) -> PathBuf {
        self.dir.join("regions.json")
    }

    fn events_path(&self) -> PathBuf {
        self.dir.join("events.jsonl")
    }

    /// Last known states; empty when there is no usable file.
    pub(crate) fn load_regions(&self) -> BTreeMap<String, Remembered> {
        let path = self.regions_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return BTreeMap::new(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read remembered region states; starting from healthy");
                return BTreeMap::new();
            }
        };
        match serde_json::from_str::<RegionsFile>(&text) {
            Ok(f) => f.regions,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "remembered region states are damaged; starting from healthy");
                BTreeMap::new()
            }
        }
    }

    /// Replaces `regions.json` so that a crash leaves either the old or the
    /// new file, never a torn one.
    pub(crate) fn save_regions(
        &self,
        regions: &BTreeMap<String, Remembered>,
    ) -> Result<(), StoreError> {
        let path = self.regions_path();
        let tmp = self.dir.join("regions.json.tmp");
        let err = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(&RegionsFile {
            regions: regions.clone(),
        })
        .map_err(|e| err(std::io::Error::other(e)))?;
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&body).map_err(err)?;
        f.sync_all().map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// The newest [`HISTORY`] events, oldest first, skipping damaged lines.
    pub(crate) fn load_events(&self) -> VecDeque<Event> {
        let mut events = VecDeque::with_capacity(HISTORY);
        let rotated = self.dir.join("events.jsonl.1");
        for path in [rotated, self.events_path()] {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let mut damaged = 0;
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else {
                    damaged += 1;
                    break;
                };
                match serde_json::from_str::<Event>(&line) {
                    Ok(e) => {
                        if events.len() == HISTORY {
                            events.pop_front();
                        }
                        events.push_back(e);
                    }
                    Err(_) if line.trim().is_empty() => {}
                    Err(_) => damaged += 1,
                }
            }
            if damaged > 0 {
                tracing::warn!(path = %path.display(), damaged, "skipped damaged lines in the failover history");
            }
        }
        events
    }

    /// Appends one event and syncs it (events are rare; losing one to a
    /// crash is what docs/reference.md §7 allows, losing more is not).
    pub(crate) fn append_event(&self, event: &Event) -> Result<(), StoreError> {
        let path = self.events_path();
        let err = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        if fs::metadata(&path).is_ok_and(|m| m.len() > ROTATE_BYTES) {
            fs::rename(&path, self.dir.join("events.jsonl.1")).map_err(err)?;
        }
        let mut line = serde_json::to_vec(event).map_err(|e| err(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(err)?;
        // A torn line left by a crash would glue onto this one: start clean.
        if f.metadata().is_ok_and(|m| m.len() > 0) && !ends_with_newline(&path) {
            f.write_all(b"\n").map_err(err)?;
        }
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)
    }
}

fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return true;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1))
        .and_then(|_| f.read_exact(&mut last))
        .map_or(true, |_| last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> Event {
        Event {
            time: format!("2026-11-26T00:00:{:02}Z", i % 60),
            region: "us-east-1".into(),
            from: "up".into(),
            to: "down".into(),
            reason: format!("event {i}"),
            answer_before: vec!["192.0.2.10".into()],
            answer_after: vec!["198.51.100.10".into()],
            observers: Default::default(),
        }
    }

    #[test]
    fn regions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load_regions().is_empty());
        let mut m = BTreeMap::new();
        m.insert(
            "eu-west-1".to_string(),
            Remembered {
                state: State::Down,
                forced: Some(Forced::Down),
            },
        );
        store.save_regions(&m).unwrap();
        assert_eq!(Store::new(dir.path()).load_regions(), m);
    }

    #[test]
    fn damaged_region_file_is_survived() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("regions.json"), b"{\"regions\": {\"us-e").unwrap();
        assert!(Store::new(dir.path()).load_regions().is_empty());
    }

    #[test]
    fn events_survive_and_a_torn_line_loses_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.append_event(&event(1)).unwrap();
        store.append_event(&event(2)).unwrap();
        // A crash in the middle of a write.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("events.jsonl"))
            .unwrap();
        f.write_all(b"{\"time\":\"2026-11-26T00:00:03Z\",\"reg")
            .unwrap();
        drop(f);
        store.append_event(&event(4)).unwrap();
        let reasons: Vec<String> = store.load_events().into_iter().map(|e| e.reason).collect();
        assert_eq!(reasons, vec!["event 1", "event 2", "event 4"]);
    }

    #[test]
    fn history_is_bounded_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut big = event(0);
        big.reason = "x".repeat(2000);
        for _ in 0..600 {
            store.append_event(&big).unwrap();
        }
        assert!(
            dir.path().join("events.jsonl.1").exists(),
            "rotated past 1 MiB"
        );
        assert!(fs::metadata(dir.path().join("events.jsonl")).unwrap().len() < ROTATE_BYTES);
        let loaded = store.load_events();
        assert!(loaded.len() <= HISTORY);
        assert_eq!(loaded.len(), 600);
    }

    #[test]
    fn an_unwritable_state_dir_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let store = Store::new(&file);
        assert!(store.append_event(&event(1)).is_err());
        assert!(store.save_regions(&BTreeMap::new()).is_err());
        assert!(store.load_events().is_empty());
    }
}
