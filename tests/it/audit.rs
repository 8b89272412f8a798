//! `pipeline --audit-log` and `audit verify`, on the bundled example (file stores).

use crate::support::{QUICKSTART, Test, files};

/// Every value in the example's sources that is long enough to find by searching.
fn source_values(test: &Test) -> Vec<String> {
    let root = test.path().join("examples/quickstart/sources");
    let mut values = Vec::new();
    for rel in files(&root) {
        let contents = std::fs::read_to_string(root.join(&rel)).unwrap();
        match serde_json::from_str::<serde_json::Value>(&contents) {
            Ok(serde_json::Value::Object(map)) => values.extend(
                map.values()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned)),
            ),
            _ => values.push(contents.trim().to_owned()),
        }
    }
    values.retain(|v| v.len() >= 6);
    values
}

#[test]
fn the_audit_log_records_every_write_without_values_and_verify_finds_tampering() {
    let test = Test::quickstart();
    test.args(&["pipeline", "-c", QUICKSTART, "--dry-run", "--audit-log", "audit.jsonl"])
        .code(0);
    assert!(
        !test.exists("audit.jsonl"),
        "a dry run writes nothing, not even to the log"
    );

    test.args(&[
        "pipeline",
        "-c",
        QUICKSTART,
        "--audit-log",
        "audit.jsonl",
        "--report",
        "r.json",
    ])
    .code(0);
    let report = test.read_json("r.json");
    let log = test.read("audit.jsonl");
    let lines: Vec<serde_json::Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let writes: Vec<&serde_json::Value> = lines.iter().filter(|l| l["event"] == "write").collect();
    let run_id = report["run_id"].as_str().unwrap();
    assert_eq!(run_id.len(), 16, "{report}");
    assert!(
        lines.iter().all(|l| l["run"] == run_id),
        "the log and the report name one run"
    );
    assert_eq!(
        writes.len() as u64,
        report["summary"]["applied"].as_u64().unwrap(),
        "{log}"
    );
    assert!(
        writes
            .iter()
            .all(|w| w["result"] == "applied" && w["secret"].is_string())
    );
    assert_eq!(lines.first().unwrap()["event"], "run_started");
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    let values = source_values(&test);
    assert!(values.len() > 5, "the canary list was read: {values:?}");
    for value in &values {
        assert!(!log.contains(value.as_str()), "a secret value is in the audit log");
    }
    test.assert_private_file("audit.jsonl");

    // A second run (nothing to change) chains onto the first.
    test.args(&["pipeline", "-c", QUICKSTART, "--audit-log", "audit.jsonl"])
        .code(0);
    let verified = test.args(&["audit", "verify", "audit.jsonl"]).code(0);
    let total = test.read("audit.jsonl").lines().count();
    assert!(
        verified
            .stdout
            .contains(&format!("{total} lines of 2 runs, chain intact; head ")),
        "{}",
        verified.stdout
    );

    // One changed line breaks the chain at the next; a run refuses to append to it.
    let tampered = test
        .read("audit.jsonl")
        .replacen("\"action\":\"delete\"", "\"action\":\"create\"", 1);
    assert_ne!(tampered, test.read("audit.jsonl"), "the run deleted a secret");
    test.write("audit.jsonl", &tampered);
    let broken = test.args(&["audit", "verify", "audit.jsonl"]).code(2);
    assert!(
        broken.stderr.contains("the audit log's chain is broken at line "),
        "{}",
        broken.stderr
    );
    assert!(broken.stderr.contains("hint: "), "{}", broken.stderr);
    let refused = test
        .args(&["pipeline", "-c", QUICKSTART, "--audit-log", "audit.jsonl"])
        .code(2);
    assert!(refused.stderr.contains("chain is broken"), "{}", refused.stderr);
}
