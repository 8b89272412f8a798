//! The audit log: an append-only, value-free JSON Lines record of the writes a run made, chained
//! by hashes so that a deleted, edited or reordered line is detected (`secretsync audit verify`).
//!
//! Each line is one JSON object. Every line carries `prev`, the SHA-256 (hex) of the line before
//! it as written (64 zeros for the first line of a file), and `seq`, its 1-based line number, so
//! removing or moving a line breaks the chain at the next one. A run appends a `run_started`
//! record, one `write` record per attempted write (applied or failed, never a value), and a
//! `run_finished` record that counts them: removing a run's last writes is caught by that count.
//! What a chain cannot show by itself is the loss of whole runs from the end of the file; the
//! `head` that `audit verify` prints (the hash of the last line) is the anchor to keep elsewhere.
//!
//! The file is opened for appending without following links, created private (0600), and synced
//! to disk once per run.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::plan::ApplyResult;
use crate::report::RunReport;
use crate::store::Receipt;

/// `prev` of a file's first line.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub use crate::history::Identity;

/// What a line records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run begins writing.
    RunStarted {
        /// Who ran it.
        identity: Identity,
        /// The pipeline file, as given.
        config: String,
    },
    /// One attempted write to a target.
    Write {
        /// The target.
        target: String,
        /// Where it syncs to (`aws: 111111111111/eu-west-1`, `vault: …`, `file: …`).
        destination: String,
        /// The secret's path.
        secret: String,
        /// `create`, `update`, `delete`, `restore` or `adopt`.
        action: String,
        /// `applied` or `failed`.
        result: String,
        /// The failure's class, for a failed write.
        #[serde(skip_serializing_if = "Option::is_none")]
        error_class: Option<String>,
        /// The calls an applied write made, with the provider's request ids (tag and KMS
        /// changes of a Secrets Manager secret are calls of their own), and the version it left
        /// current.
        #[serde(default, flatten)]
        receipt: Receipt,
    },
    /// The run took the merge store's run lock (stores shared between machines: S3).
    LockTaken {
        /// The merge store.
        merge_store: String,
    },
    /// The run gave its lock back (or could not: `released` false — the lock then expires).
    LockReleased {
        /// The merge store.
        merge_store: String,
        /// Whether the release succeeded.
        released: bool,
    },
    /// Writes of merged results to the merge store, per target.
    MergeStoreWrites {
        /// The target whose merged result was written.
        target: String,
        /// Secrets written or removed.
        writes: u64,
    },
    /// The run's writes are all recorded.
    RunFinished {
        /// The run's lines between `run_started` and this one.
        lines: u64,
        /// The run's outcome (`changes`, `no_changes`, `failed`, `interrupted`).
        outcome: String,
    },
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// 1-based line number in the file.
    pub seq: u64,
    /// SHA-256 (hex) of the previous line as written.
    pub prev: String,
    /// When (UTC, seconds).
    pub time: String,
    /// The run's id, the `run_id` its log lines carry.
    pub run: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::new(), |mut hex, b| {
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// The events a finished run adds to the log: its attempted writes, from the report.
pub fn events_of(report: &RunReport, identity: Identity, config: &str) -> Vec<Event> {
    let mut events = vec![Event::RunStarted {
        identity,
        config: config.to_owned(),
    }];
    if let Some(lock) = &report.run_lock {
        events.push(Event::LockTaken {
            merge_store: lock.store.clone(),
        });
    }
    for target in &report.targets {
        if let Some(merge) = target.merge.as_ref().filter(|m| m.store_writes > 0) {
            events.push(Event::MergeStoreWrites {
                target: target.name.clone(),
                writes: merge.store_writes,
            });
        }
        for change in target.plan.iter().flat_map(|p| &p.changes) {
            let (result, error_class) = match &change.result {
                Some(ApplyResult::Applied) => ("applied", None),
                Some(ApplyResult::Failed(failure)) => ("failed", Some(failure.class.label().to_owned())),
                Some(ApplyResult::NotAttempted(_)) | None => continue,
            };
            events.push(Event::Write {
                target: target.name.clone(),
                destination: target.destination.clone(),
                secret: change.path.to_string(),
                action: change.action.name().to_owned(),
                result: result.to_owned(),
                error_class,
                receipt: change.receipt.as_deref().cloned().unwrap_or_default(),
            });
        }
    }
    if let Some(lock) = &report.run_lock {
        events.push(Event::LockReleased {
            merge_store: lock.store.clone(),
            released: lock.released,
        });
    }
    let lines = events.len() as u64 - 1;
    events.push(Event::RunFinished {
        lines,
        outcome: report.outcome().label().to_owned(),
    });
    events
}

/// The hash and number of the last line of `existing` (the log as it is), to chain onto.
fn head_of(existing: &str) -> Result<(String, u64), AuditError> {
    match existing.lines().enumerate().last() {
        None => Ok((GENESIS.to_owned(), 0)),
        Some((index, last)) => {
            let line: Line = serde_json::from_str(last).map_err(|_| AuditError::Unreadable { line: index + 1 })?;
            Ok((sha256_hex(last), line.seq))
        }
    }
}

/// Appends `events` of run `run` to the log at `path`, chained onto its last line, and syncs the
/// file. An existing log must verify first: a run never chains onto a broken log. The file is
/// locked (an exclusive advisory lock) from reading its head to the sync, so runs sharing one log
/// (the shards of a sharded job on one machine) append one after the other, each onto the head
/// the previous one wrote.
pub fn append(path: &Path, run: &str, events: Vec<Event>) -> Result<(), AuditError> {
    let io = |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = crate::files::append_private(path).map_err(io)?;
    file.lock().map_err(io)?;
    let existing = crate::files::read_regular(path).map_err(io)?.unwrap_or_default();
    let existing = String::from_utf8(existing).map_err(|_| AuditError::Unreadable { line: 0 })?;
    verify_text(&existing)?;
    let (prev, seq) = head_of(&existing)?;
    let text = chain(run, events, prev, seq);
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A run's events as a log of their own (chained from the first line), the text the merge store
/// keeps beside the run's revision; `audit verify` checks it once saved to a file.
pub fn standalone(run: &str, events: Vec<Event>) -> String {
    chain(run, events, GENESIS.to_owned(), 0)
}

/// `events` as JSON Lines chained onto the line hashed `prev`, numbered after `seq`.
fn chain(run: &str, events: Vec<Event>, mut prev: String, mut seq: u64) -> String {
    let time = crate::duration::utc(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    );
    let mut text = String::new();
    for event in events {
        seq += 1;
        let line = Line {
            seq,
            prev,
            time: time.clone(),
            run: run.to_owned(),
            event,
        };
        let json = serde_json::to_string(&line).expect("an audit line serialises");
        prev = sha256_hex(&json);
        text.push_str(&json);
        text.push('\n');
    }
    text
}

/// Checks, before a run writes anything, that the log at `path` can be appended to: absent in
/// a folder that exists, or an intact chain. (A log that cannot be created would otherwise be
/// found out after the writes, which would then have no audit record.)
pub fn check_appendable(path: &Path) -> Result<(), AuditError> {
    let io = |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    };
    match crate::files::read_regular(path).map_err(io)? {
        None => {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if folder.is_dir() {
                Ok(())
            } else {
                Err(io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("its folder `{}` does not exist (create it first)", folder.display()),
                )))
            }
        }
        Some(bytes) => {
            verify_text(&String::from_utf8(bytes).map_err(|_| AuditError::Unreadable { line: 0 })?).map(drop)
        }
    }
}

/// What a verified log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Lines.
    pub lines: u64,
    /// Runs recorded.
    pub runs: u64,
    /// SHA-256 of the last line: keep it elsewhere to detect lost runs at the end.
    pub head: String,
}

/// Checks the chain of the log in `text`: numbering, hashes, and each run's count of lines.
pub fn verify_text(text: &str) -> Result<Verified, AuditError> {
    let mut prev = GENESIS.to_owned();
    let mut runs = 0;
    let mut open_run: Option<(String, u64)> = None;
    let mut count = 0usize;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line: Line = serde_json::from_str(raw).map_err(|_| AuditError::Unreadable { line: number })?;
        if line.seq != number as u64 {
            return Err(AuditError::Broken {
                line: number,
                why: format!("it says it is line {}", line.seq),
            });
        }
        if line.prev != prev {
            return Err(AuditError::Broken {
                line: number,
                why: "the line before it was removed, changed or moved".to_owned(),
            });
        }
        match &line.event {
            Event::RunStarted { .. } => {
                if let Some((run, _)) = &open_run {
                    return Err(AuditError::Broken {
                        line: number,
                        why: format!("run `{run}` has no `run_finished` line: lines of it were removed"),
                    });
                }
                open_run = Some((line.run.clone(), 0));
                runs += 1;
            }
            Event::Write { .. }
            | Event::MergeStoreWrites { .. }
            | Event::LockTaken { .. }
            | Event::LockReleased { .. } => match &mut open_run {
                Some((run, n)) if *run == line.run => *n += 1,
                _ => {
                    return Err(AuditError::Broken {
                        line: number,
                        why: "a write outside its run".to_owned(),
                    });
                }
            },
            Event::RunFinished { lines, .. } => match open_run.take() {
                Some((run, n)) if run == line.run && n == *lines => {}
                _ => {
                    return Err(AuditError::Broken {
                        line: number,
                        why: format!("its run recorded {lines} writes, but another number is here"),
                    });
                }
            },
        }
        prev = sha256_hex(raw);
        count += 1;
    }
    if let Some((run, _)) = open_run {
        return Err(AuditError::Broken {
            line: count,
            why: format!("run `{run}` has no `run_finished` line: the log was cut"),
        });
    }
    Ok(Verified {
        lines: count as u64,
        runs,
        head: prev,
    })
}

/// Reads and verifies the log at `path`.
pub fn verify(path: &Path) -> Result<Verified, AuditError> {
    let bytes = crate::files::read_regular(path)
        .map_err(|source| AuditError::Io {
            path: path.display().to_string(),
            source,
        })?
        .ok_or_else(|| AuditError::Missing {
            path: path.display().to_string(),
        })?;
    verify_text(&String::from_utf8(bytes).map_err(|_| AuditError::Unreadable { line: 0 })?)
}

/// Why an audit log cannot be read, verified or appended to.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file cannot be read or written.
    #[error("cannot use the audit log {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// There is no log at the path.
    #[error("there is no audit log at {path}")]
    Missing {
        /// The file.
        path: String,
    },
    /// A line is not an audit record.
    #[error("line {line} of the audit log is not an audit record")]
    Unreadable {
        /// 1-based; 0 when the file is not UTF-8.
        line: usize,
    },
    /// The chain is broken at a line.
    #[error("the audit log's chain is broken at line {line}: {why}")]
    Broken {
        /// 1-based.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(target: &str, secret: &str) -> Event {
        Event::Write {
            target: target.to_owned(),
            destination: "file: ./t".to_owned(),
            secret: secret.to_owned(),
            action: "create".to_owned(),
            result: "applied".to_owned(),
            error_class: None,
            receipt: Receipt::of("PutSecretValue", Some("req-1")).with_version(Some("v1".to_owned())),
        }
    }

    fn run(writes: &[Event]) -> Vec<Event> {
        let mut events = vec![Event::RunStarted {
            identity: Identity::default(),
            config: "p.yaml".to_owned(),
        }];
        events.extend(writes.iter().cloned());
        events.push(Event::RunFinished {
            lines: writes.len() as u64,
            outcome: "changes".to_owned(),
        });
        events
    }

    /// Shards of one job appending to one log at once each chain onto the other's head.
    #[test]
    fn concurrent_runs_append_one_after_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::thread::scope(|scope| {
            for shard in 0..4 {
                let path = &path;
                scope.spawn(move || {
                    for run_number in 0..5 {
                        let writes: Vec<Event> =
                            (0..3).map(|i| write(&format!("T{shard}"), &format!("s{i}"))).collect();
                        append(path, &format!("shard{shard}-run{run_number}"), run(&writes)).unwrap();
                    }
                });
            }
        });
        let verified = verify(&path).unwrap();
        assert_eq!((verified.runs, verified.lines), (20, 20 * 5));
    }

    #[test]
    fn runs_chain_onto_each_other_and_any_tampering_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        append(&path, "run1", run(&[write("A", "db"), write("A", "api")])).unwrap();
        append(&path, "run2", run(&[write("B", "db")])).unwrap();
        let verified = verify(&path).unwrap();
        assert_eq!((verified.lines, verified.runs), (7, 2));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();

        let without = |i: usize| {
            let mut l = lines.clone();
            l.remove(i);
            l.join("\n") + "\n"
        };
        for i in 0..lines.len() - 1 {
            assert!(
                verify_text(&without(i)).is_err(),
                "removing line {} goes unnoticed",
                i + 1
            );
        }
        let edited = text.replacen("\"api\"", "\"apx\"", 1);
        assert!(
            matches!(verify_text(&edited), Err(AuditError::Broken { line: 4, .. })),
            "{:?}",
            verify_text(&edited)
        );
        let mut swapped = lines.clone();
        swapped.swap(1, 2);
        assert!(verify_text(&(swapped.join("\n") + "\n")).is_err());
        // Cutting the last run's final line leaves it without `run_finished`.
        assert!(verify_text(&(lines[..6].join("\n") + "\n")).is_err());
        // A broken log is not appended to.
        std::fs::write(&path, edited).unwrap();
        assert!(append(&path, "run3", run(&[])).is_err());
    }
}
