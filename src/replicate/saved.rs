//! A secondary zone's last copy on disk, so a restart serves it at once
//! (as NSD, Knot and BIND do) instead of REFUSED until the primary answers.
//!
//! Owns: the file `secondary/<origin>.json` in the state directory: the
//! records (each in DNS wire form, base64: exact for every type, where
//! hickory's text form of TXT, for one, does not parse back), the serial, and
//! when the primary was last reached (the
//! SOA refresh, retry and expire timers count from it across restarts).
//! Written atomically ([`write_atomic`]), like the state file: a crash
//! leaves the previous copy or the new one.

use std::path::{Path, PathBuf};

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use serde::{Deserialize, Serialize};

use crate::decide::state::write_atomic;
use crate::proto::zone::ZoneData;

#[derive(Serialize, Deserialize)]
struct File {
    origin: String,
    serial: u32,
    /// Unix seconds of the last successful check (transfer, or the primary
    /// saying our serial is current).
    last_ok: u64,
    /// Each record in wire form, base64.
    records: Vec<String>,
}

/// Why the saved copy cannot be used (the zone is transferred afresh).
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct SavedError {
    pub path: PathBuf,
    pub problem: SavedProblem,
}

/// What is wrong with a saved copy.
#[derive(Debug, thiserror::Error)]
pub enum SavedProblem {
    #[error("{0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Json(serde_json::Error),
    #[error("record {index}: {source}")]
    Base64 {
        index: usize,
        source: data_encoding::DecodeError,
    },
    #[error("record {index}: {source}")]
    Record {
        index: usize,
        source: hickory_proto::serialize::binary::DecodeError,
    },
    #[error("{0}")]
    Zone(#[from] crate::proto::zone::ZoneError),
    #[error("serial {records} in the records, {file} in the file")]
    Serial { records: u32, file: u32 },
}

/// What was loaded.
pub struct Copy {
    pub zone: ZoneData,
    /// Unix seconds of the last successful check.
    pub last_ok: u64,
}

/// Where one zone's copy is kept.
#[derive(Debug, Clone)]
pub struct Saved {
    path: PathBuf,
}

impl Saved {
    pub fn new(state_dir: &Path, origin: &Name) -> Saved {
        let name = origin.to_ascii().trim_end_matches('.').to_lowercase();
        let name = if name.is_empty() { "root".into() } else { name };
        Saved {
            path: state_dir.join("secondary").join(format!("{name}.json")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replace the saved copy.
    pub fn save(&self, zone: &ZoneData, last_ok: u64) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let b64 = data_encoding::BASE64;
        let records = zone
            .records()
            .map(|r| r.to_bytes().map(|b| b64.encode(&b)))
            .collect::<Result<Vec<String>, _>>()
            .map_err(std::io::Error::other)?;
        let file = File {
            origin: zone.origin.to_ascii(),
            serial: zone.serial(),
            last_ok,
            records,
        };
        let data = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        write_atomic(&self.path, &data)
    }

    /// The saved copy, if there is one; an error says why it cannot be used.
    pub fn load(&self, origin: &Name) -> Result<Option<Copy>, SavedError> {
        let bad = |problem: SavedProblem| SavedError {
            path: self.path.clone(),
            problem,
        };
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(bad(SavedProblem::Read(e))),
        };
        let file: File = serde_json::from_slice(&bytes).map_err(|e| bad(SavedProblem::Json(e)))?;
        let b64 = data_encoding::BASE64;
        let mut zone = ZoneData {
            origin: origin.clone(),
            rrsets: Default::default(),
        };
        for (i, r) in file.records.iter().enumerate() {
            let bytes = b64
                .decode(r.as_bytes())
                .map_err(|source| bad(SavedProblem::Base64 { index: i, source }))?;
            let rec = Record::from_bytes(&bytes)
                .map_err(|source| bad(SavedProblem::Record { index: i, source }))?;
            zone.add_record(&rec).map_err(|e| bad(e.into()))?;
        }
        zone.check().map_err(|e| bad(e.into()))?;
        if zone.serial() != file.serial {
            return Err(bad(SavedProblem::Serial {
                records: zone.serial(),
                file: file.serial,
            }));
        }
        Ok(Some(Copy {
            zone,
            last_ok: file.last_ok,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_round_trips_every_record() {
        let origin = Name::from_ascii("ggon.org.").unwrap();
        let text = "$ORIGIN ggon.org.\n$TTL 300\n\
            @ IN SOA ns1 hostmaster 42 2 1 6 60\n@ IN NS ns1\n@ IN MX 10 mail\n\
            ns1 IN A 127.0.0.1\nwiki IN AAAA ::1\nwww IN CNAME wiki\n*.apps IN A 127.0.0.90\n\
            t IN TXT \"two words\" \"and \\\"quotes\\\"\"\n_s._tcp IN SRV 1 2 389 ns1\n\
            sub IN NS ns.sub\nns.sub IN A 127.0.0.53\n";
        let zone = ZoneData::parse(text, None, &origin).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved::new(dir.path(), &origin);
        assert!(saved.load(&origin).unwrap().is_none());
        saved.save(&zone, 1_800_000_000).unwrap();
        let copy = saved.load(&origin).unwrap().expect("saved");
        assert_eq!(copy.last_ok, 1_800_000_000);
        assert_eq!(copy.zone.serial(), 42);
        let mut a: Vec<String> = zone.records().map(|r| r.to_string()).collect();
        let mut b: Vec<String> = copy.zone.records().map(|r| r.to_string()).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        std::fs::write(saved.path(), b"{\"origin\":").unwrap();
        assert!(saved.load(&origin).is_err());
    }
}
