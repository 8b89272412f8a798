//! The independent OTLP receiver (`scripts/otlp_receiver.py`: Python, the official protobuf
//! definitions from PyPI `opentelemetry-proto`) started for one test, and the spans it decoded.
//! Nothing here decodes OTLP itself: the receiver does, so the test does not agree with the
//! exporter merely because both sides were written together.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::{repo, venv_python};

/// One span as the receiver decoded it.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedSpan {
    pub(crate) trace_id: String,
    pub(crate) span_id: String,
    /// Empty for a root span.
    pub(crate) parent: String,
    pub(crate) name: String,
    pub(crate) kind: String,
    pub(crate) attributes: BTreeMap<String, Value>,
    pub(crate) status: String,
    pub(crate) resource: BTreeMap<String, Value>,
}

impl ReceivedSpan {
    /// A string attribute ("" when absent).
    pub(crate) fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).and_then(Value::as_str).unwrap_or_default()
    }
}

/// A running receiver; killed when dropped.
pub(crate) struct OtlpReceiver {
    child: Child,
    /// `http://127.0.0.1:PORT`: the base endpoint (`/v1/traces` is where spans go).
    pub(crate) endpoint: String,
    out: tempfile::TempDir,
}

impl OtlpReceiver {
    /// A receiver answering every export with 200.
    pub(crate) fn start() -> Self {
        Self::with_args(&[])
    }

    /// A receiver started with extra arguments (`--status 503`, `--hang`).
    pub(crate) fn with_args(args: &[&str]) -> Self {
        let python = venv_python();
        let out = tempfile::tempdir().unwrap();
        let mut child = Command::new(python)
            .arg(repo().join("scripts/otlp_receiver.py"))
            .arg(out.path().join("spans.jsonl"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/otlp_receiver.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("the OTLP receiver did not start (is opentelemetry-proto in .venv?): {line:?}"));
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            out,
        }
    }

    /// Everything the receiver wrote, raw (for leak checks).
    pub(crate) fn raw(&self) -> String {
        std::fs::read_to_string(self.out.path().join("spans.jsonl")).unwrap_or_default()
    }

    /// The spans received so far; panics on a protocol violation the receiver recorded.
    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.raw()
            .lines()
            .map(|line| {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(
                    v.get("violation").is_none(),
                    "the receiver saw a protocol violation: {line}"
                );
                let map = |key: &str| -> BTreeMap<String, Value> {
                    v[key]
                        .as_object()
                        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default()
                };
                let text = |key: &str| v[key].as_str().unwrap_or_default().to_owned();
                ReceivedSpan {
                    trace_id: text("trace_id"),
                    span_id: text("span_id"),
                    parent: text("parent_span_id"),
                    name: text("name"),
                    kind: text("kind"),
                    attributes: map("attributes"),
                    status: v["status"]["code"].as_str().unwrap_or_default().to_owned(),
                    resource: map("resource"),
                }
            })
            .collect()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The spans of one run, with lookups along parent links.
pub(crate) struct Trace {
    pub(crate) spans: Vec<ReceivedSpan>,
}

impl Trace {
    pub(crate) fn new(spans: Vec<ReceivedSpan>) -> Self {
        Self { spans }
    }

    pub(crate) fn by_id(&self, id: &str) -> Option<&ReceivedSpan> {
        self.spans.iter().find(|s| s.span_id == id)
    }

    pub(crate) fn named(&self, name: &str) -> Vec<&ReceivedSpan> {
        self.spans.iter().filter(|s| s.name == name).collect()
    }

    /// The names of `span`'s ancestors, nearest first, up to the root; panics on a parent link
    /// to a span the receiver never got (unless it is the root's external parent).
    pub(crate) fn ancestors(&self, span: &ReceivedSpan) -> Vec<&ReceivedSpan> {
        let mut chain = Vec::new();
        let mut at = span;
        while !at.parent.is_empty() {
            match self.by_id(&at.parent) {
                Some(parent) => {
                    chain.push(parent);
                    at = parent;
                }
                None => break,
            }
        }
        chain
    }
}
