//! The UPDATE journal: every accepted RFC 2136 UPDATE to a local zone, one
//! JSON line (records removed, records added, in zone-file syntax), synced
//! before the UPDATE is acknowledged and replayed onto the zone file's data
//! at start and reload, so an acknowledged update survives a crash.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::update::Change;
use crate::proto::zone::{fqdn_lower, ZoneData, ZoneError};

/// The journal cannot be replayed: the zone is not served rather than
/// served without updates that were acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {why}", path.display())]
    Record {
        path: PathBuf,
        line: usize,
        why: RecordProblem,
    },
}

/// Why one journaled record cannot be applied.
#[derive(Debug, thiserror::Error)]
pub enum RecordProblem {
    #[error("{0}")]
    Parse(Box<hickory_proto::serialize::txt::ParseError>),
    #[error("{0}")]
    Zone(Box<ZoneError>),
}

impl From<hickory_proto::serialize::txt::ParseError> for RecordProblem {
    fn from(e: hickory_proto::serialize::txt::ParseError) -> RecordProblem {
        RecordProblem::Parse(Box::new(e))
    }
}

impl From<ZoneError> for RecordProblem {
    fn from(e: ZoneError) -> RecordProblem {
        RecordProblem::Zone(Box::new(e))
    }
}

/// One accepted UPDATE as journaled: the records it removed and added, in
/// zone-file syntax. In a cluster also its place in the cluster's journal
/// of the zone (`seq`, from 1) and the serial the leader published it at,
/// so every node applies it once, in order, at the same serial (and IXFR
/// from any node gives the same differences).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<u32>,
    pub del: Vec<String>,
    pub add: Vec<String>,
}

impl Entry {
    pub fn of(ch: &Change) -> Entry {
        Entry {
            seq: None,
            serial: None,
            del: ch.removed.iter().map(|r| r.to_string()).collect(),
            add: ch.added.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// Append one accepted UPDATE, synced before it is acknowledged.
pub(super) fn append(path: &Path, entry: &Entry) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut text = serde_json::to_string(entry).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Re-apply journaled updates onto freshly loaded zone data; the last
/// cluster journal position among them (0: none).
pub(super) fn replay(zone: &mut ZoneData, path: &Path) -> Result<u64, JournalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(JournalError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut seq = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // A torn last line (crash mid-write) was never acknowledged: skip it.
        let Ok(entry) = serde_json::from_str::<Entry>(line) else {
            tracing::warn!(path = %path.display(), line = i + 1, "skipping unreadable journal line");
            continue;
        };
        apply(zone, &entry).map_err(|why| JournalError::Record {
            path: path.to_path_buf(),
            line: i + 1,
            why,
        })?;
        seq = seq.max(entry.seq.unwrap_or(0));
    }
    Ok(seq)
}

/// Apply one entry to zone data: what it removed and added, as records.
/// Applying it twice changes nothing more (removing an absent record and
/// adding a present one are no-ops).
pub(super) fn apply(zone: &mut ZoneData, entry: &Entry) -> Result<Change, RecordProblem> {
    let origin = zone.origin.clone();
    let parse = |rr: &str| -> Result<Vec<hickory_proto::rr::Record>, RecordProblem> {
        let parser = hickory_proto::serialize::txt::Parser::new(rr, None, Some(origin.clone()));
        let (_, sets) = parser.parse()?;
        Ok(sets
            .into_values()
            .flat_map(|s| s.records_without_rrsigs().cloned().collect::<Vec<_>>())
            .collect())
    };
    let mut change = Change::default();
    for rr in &entry.del {
        for rec in parse(rr)? {
            let name = fqdn_lower(&rec.name);
            if let Some(set) = zone
                .rrsets
                .get_mut(&name)
                .and_then(|t| t.get_mut(&rec.record_type()))
            {
                set.rdatas.retain(|d| d != &rec.data);
                if set.rdatas.is_empty() {
                    zone.replace_rrset(&name, rec.record_type(), None);
                }
            }
            change.removed.push(rec);
        }
    }
    for rr in &entry.add {
        for rec in parse(rr)? {
            zone.add_record(&rec)?;
            change.added.push(rec);
        }
    }
    Ok(change)
}
