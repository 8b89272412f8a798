//! The plan as a pull-request comment (`--pr-comment`, the Action's `comment: true`): the review
//! users know from Atlantis and tfcmt. One *sticky* comment per pipeline file: found again by a
//! hidden marker and edited in place by later runs, so a pull request pushed ten times has one
//! comment with the latest plan, not ten.
//!
//! It speaks the GitHub REST API at `GITHUB_API_URL` (GitHub Enterprise servers, and tests,
//! point it elsewhere) with the job's `GITHUB_TOKEN`. The comment holds names and counts, never
//! a value (the plan is rendered as the human output without `--show-values`). A comment that
//! cannot be posted is a warning with the fix; it never changes the run's exit code.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::env::EnvVars;
use crate::report::{RunReport, TargetStatus};

/// GitHub refuses comments over 65,536 characters; the target blocks stop short of that.
const MAX_COMMENT: usize = 60_000;

/// Where the comment goes, from the runner's variables.
#[derive(Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `https://api.github.com` or a GitHub Enterprise server's API.
    pub api_url: String,
    /// `owner/repo`.
    pub repository: String,
    /// The pull request's number.
    pub number: u64,
    /// The job's token.
    pub token: String,
    /// `pull_request_target`: the workflow of the base branch runs with a write token, so what
    /// is checked out — and planned — may not be the pull request's pipeline.
    pub target_event: bool,
}

impl std::fmt::Debug for PullRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullRequest")
            .field("api_url", &self.api_url)
            .field("repository", &self.repository)
            .field("number", &self.number)
            .field("token", &"<hidden>")
            .field("target_event", &self.target_event)
            .finish()
    }
}

/// Why there is no pull request to comment on. None is an error (the same workflow often runs
/// on pushes too); all but [`NotAPullRequest::Event`] are worth a warning, as the comment was
/// asked for and cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAPullRequest {
    /// Not a `pull_request` event (a push, a schedule): nothing to comment on.
    #[error("the event is `{0}`, not a pull request")]
    Event(String),
    /// A variable the runner sets is missing.
    #[error(
        "`{0}` is not set (in GitHub Actions the runner sets it; the token comes from the Action's `github-token` input)"
    )]
    Missing(&'static str),
    /// The event file cannot be read.
    #[error("cannot read the event file `{0}`")]
    EventFile(String),
    /// The event file has no pull request number.
    #[error("the event file has no pull request number")]
    NoNumber,
}

impl PullRequest {
    /// The pull request this job runs for, from `GITHUB_EVENT_NAME`, `GITHUB_EVENT_PATH`,
    /// `GITHUB_REPOSITORY`, `GITHUB_API_URL` and `GITHUB_TOKEN`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Self, NotAPullRequest> {
        let need = |name: &'static str| {
            var(name)
                .filter(|v| !v.is_empty())
                .ok_or(NotAPullRequest::Missing(name))
        };
        let event = need(EnvVars::GITHUB_EVENT_NAME)?;
        if !matches!(event.as_str(), "pull_request" | "pull_request_target") {
            return Err(NotAPullRequest::Event(event));
        }
        let event_file = need(EnvVars::GITHUB_EVENT_PATH)?;
        let payload: Value = std::fs::read(&event_file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(NotAPullRequest::EventFile(event_file))?;
        let number = payload["pull_request"]["number"]
            .as_u64()
            .or_else(|| payload["number"].as_u64())
            .ok_or(NotAPullRequest::NoNumber)?;
        Ok(Self {
            api_url: var(EnvVars::GITHUB_API_URL)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| "https://api.github.com".to_owned())
                .trim_end_matches('/')
                .to_owned(),
            repository: need(EnvVars::GITHUB_REPOSITORY)?,
            number,
            token: need(EnvVars::GITHUB_TOKEN)?,
            target_event: event == "pull_request_target",
        })
    }
}

/// Which pipeline a comment is about: the file's path relative to the repository's checkout
/// (`GITHUB_WORKSPACE`), so jobs naming it differently (`./p.yaml`, `p.yaml`, an absolute
/// path) share one comment and jobs in different folders with the same file name do not.
pub fn pipeline_key(config: &std::path::Path, workspace: Option<&std::path::Path>) -> String {
    let absolute = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let relative = workspace
        .and_then(|w| std::fs::canonicalize(w).ok())
        .and_then(|w| absolute.strip_prefix(w).ok().map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| config.components().collect());
    relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir | std::path::Component::RootDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The hidden line that makes the comment findable again: one comment per pipeline. The key is
/// percent-encoded but for letters, digits, `.`, `_` and `/`, so no file name can end the HTML
/// comment (`-->`) or open another.
pub fn marker(key: &str) -> String {
    let mut encoded = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'/') {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    format!("<!-- secretsync:plan {encoded} -->")
}

/// The comment: the marker, a summary line, the step-summary table, then one collapsed block
/// per synced target with its changes (key names only).
pub fn body(report: &RunReport, key: &str, run_url: Option<&str>) -> String {
    let mut out = marker(key);
    out.push('\n');
    let link = run_url.map(|url| format!("\n[The run]({}) · run `{}`\n", url.replace(')', "%29"), report.run_id));
    let summary = crate::report::github::step_summary(report);
    let room = MAX_COMMENT.saturating_sub(out.len() + link.as_ref().map_or(0, String::len));
    if summary.len() > room {
        // Thousands of targets or problems: the table is cut at a line, and says so.
        let cut = summary[..summary.floor_char_boundary(room)].rfind('\n').unwrap_or(0);
        out.push_str(&summary[..cut]);
        out.push_str("\n\n… the rest of the table is too long for a comment: see the run.\n");
    } else {
        out.push_str(&summary);
    }
    if let Some(link) = link {
        out.push_str(&link);
    }
    let mut left = 0;
    for target in report.targets.iter().filter(|t| t.sync_selected) {
        let c = target.counts();
        let state = match &target.status {
            TargetStatus::Ok if c.changes() == 0 && !target.has_problems() => continue,
            TargetStatus::Ok => format!(
                "{} create, {} update, {} delete",
                c.create,
                c.update + c.restore + c.adopt,
                c.delete
            ),
            TargetStatus::Failed { .. } => "failed".to_owned(),
            TargetStatus::Skipped { .. } => "skipped".to_owned(),
        };
        let section = crate::report::human::target_section(target, report).replace("```", "ˋˋˋ");
        let block = format!(
            "\n<details><summary><code>{}</code>: {state}</summary>\n\n```diff\n{}```\n</details>\n",
            html_escape(&target.name),
            section
        );
        if out.len() + block.len() > MAX_COMMENT {
            left += 1;
            continue;
        }
        out.push_str(&block);
    }
    if left > 0 {
        let _ = writeln!(
            out,
            "\n… {left} more targets with changes: too long for a comment, see the run."
        );
    }
    out
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// Why the comment could not be posted.
#[derive(Debug, thiserror::Error)]
#[error("cannot comment on pull request #{number}: {detail}")]
pub struct CommentError {
    /// The pull request.
    pub number: u64,
    /// What went wrong, with the fix when known.
    pub detail: String,
}

/// What posting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// A new comment.
    Created,
    /// The earlier comment, edited.
    Updated,
}

/// Creates the comment, or edits the one an earlier run made: the newest comment that starts
/// with `marker` *and was written by this token's account* — anyone can post a comment with the
/// marker, and editing theirs would put the plan under their name, where they can rewrite it.
/// The account is `GET /user` (a personal or app-user token); the job's `GITHUB_TOKEN` cannot
/// ask that, and its comments are a GitHub App's (`user.type` `Bot`), which no one commenting
/// on a pull request can forge.
pub async fn post(pr: &PullRequest, marker: &str, body: &str) -> Result<Posted, CommentError> {
    let fail = |detail: String| CommentError {
        number: pr.number,
        detail,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("secretsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| fail(e.to_string()))?;
    let request = |method: reqwest::Method, url: String| {
        client
            .request(method, url)
            .bearer_auth(&pr.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    };
    let send = |builder: reqwest::RequestBuilder| async move {
        builder
            .send()
            .await
            .map_err(|e| crate::error_chain::chain(&e.without_url()))
    };
    let me: Option<String> = match send(request(reqwest::Method::GET, format!("{}/user", pr.api_url))).await {
        Ok(answer) if answer.status().is_success() => checked::<Value>(answer, "ask who the token is")
            .await
            .ok()
            .and_then(|user| user["login"].as_str().map(str::to_owned)),
        _ => None,
    };
    let ours = |comment: &Value| match &me {
        Some(login) => comment["user"]["login"].as_str() == Some(login),
        None => comment["user"]["type"].as_str() == Some("Bot"),
    };
    let base = format!("{}/repos/{}/issues", pr.api_url, pr.repository);
    let mut existing = None;
    for page in 1..=50 {
        let answer = send(request(
            reqwest::Method::GET,
            format!("{base}/{}/comments?per_page=100&page={page}", pr.number),
        ))
        .await
        .map_err(fail)?;
        let comments: Vec<Value> = checked(answer, "list the comments").await.map_err(fail)?;
        // Oldest first: a later match is newer.
        if let Some(id) = comments
            .iter()
            .filter(|c| c["body"].as_str().is_some_and(|b| b.starts_with(marker)) && ours(c))
            .filter_map(|c| c["id"].as_u64())
            .next_back()
        {
            existing = Some(id);
        }
        if comments.len() < 100 {
            break;
        }
    }
    let payload = json!({ "body": body }).to_string();
    let create = || {
        send(
            request(reqwest::Method::POST, format!("{base}/{}/comments", pr.number))
                .header("content-type", "application/json")
                .body(payload.clone()),
        )
    };
    let (answer, posted) = match existing {
        Some(id) => {
            let edited = send(
                request(reqwest::Method::PATCH, format!("{base}/comments/{id}"))
                    .header("content-type", "application/json")
                    .body(payload.clone()),
            )
            .await
            .map_err(fail)?;
            if edited.status() == reqwest::StatusCode::NOT_FOUND {
                // Deleted since it was listed: make a new one.
                (create().await.map_err(fail)?, Posted::Created)
            } else {
                (edited, Posted::Updated)
            }
        }
        None => (create().await.map_err(fail)?, Posted::Created),
    };
    let _: Value = checked(answer, "post the comment").await.map_err(fail)?;
    Ok(posted)
}

/// The answer's JSON, or what went wrong with the fix for the usual causes.
async fn checked<T: serde::de::DeserializeOwned>(answer: reqwest::Response, doing: &str) -> Result<T, String> {
    let status = answer.status();
    if status.is_success() {
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| format!("cannot {doing}: {}", crate::error_chain::chain(&e.without_url())))?;
        return serde_json::from_slice(&bytes)
            .map_err(|e| format!("cannot {doing}: GitHub's answer is not what its API returns ({e})"));
    }
    let hint = match status.as_u16() {
        401 => "the token was refused: pass the job's token (`GITHUB_TOKEN`, the Action's `github-token` input)",
        422 => "GitHub refused the comment's text (too long, or not valid); the run's step summary has the plan",
        403 | 404 => {
            "the token may not write to pull requests: give the job `permissions: { pull-requests: write }` (a pull request from a fork gets a read-only token)"
        }
        _ => "GitHub may be unavailable; the next run will post it",
    };
    Err(format!("cannot {doing}: GitHub answered {status}; {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(event: &str, path: &str) -> impl Fn(&str) -> Option<String> {
        let event = event.to_owned();
        let path = path.to_owned();
        move |name: &str| match name {
            "GITHUB_EVENT_NAME" => Some(event.clone()),
            "GITHUB_EVENT_PATH" => Some(path.clone()),
            "GITHUB_REPOSITORY" => Some("acme/infra".to_owned()),
            "GITHUB_TOKEN" => Some("ghs_token".to_owned()),
            _ => None,
        }
    }

    /// A synced target the run skipped `because`.
    fn skipped(name: &str, because: &str) -> crate::report::TargetReport {
        crate::report::TargetReport {
            name: name.to_owned(),
            level: 1,
            kind: "aws",
            destination: String::new(),
            imports: Vec::new(),
            sync_selected: true,
            merge: None,
            plan: None,
            status: TargetStatus::Skipped {
                because: because.to_owned(),
            },
            duration: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn the_pull_request_comes_from_the_event_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.json");
        std::fs::write(&path, r#"{"pull_request": {"number": 17}}"#).unwrap();
        let path = path.display().to_string();
        let pr = PullRequest::from_env(actions("pull_request", &path)).unwrap();
        assert_eq!(pr.number, 17);
        assert_eq!(pr.api_url, "https://api.github.com");
        assert_eq!(pr.repository, "acme/infra");
        assert_eq!(
            PullRequest::from_env(actions("push", &path)),
            Err(NotAPullRequest::Event("push".to_owned()))
        );
        assert!(
            PullRequest::from_env(actions("pull_request_target", &path))
                .unwrap()
                .target_event
        );
        std::fs::write(dir.path().join("event.json"), "{}").unwrap();
        assert_eq!(
            PullRequest::from_env(actions("pull_request", &path)),
            Err(NotAPullRequest::NoNumber)
        );
        assert_eq!(
            PullRequest::from_env(actions("pull_request", "/nonexistent/event.json")),
            Err(NotAPullRequest::EventFile("/nonexistent/event.json".to_owned()))
        );
    }

    #[test]
    fn a_comment_for_thousands_of_targets_stays_under_githubs_limit() {
        let target = |i: usize| {
            skipped(
                &format!("account-with-a-rather-long-name-{i:05}"),
                "an earlier target failed and `continue_on_error` is false",
            )
        };
        let report = RunReport {
            targets: (0..5000).map(target).collect(),
            ..RunReport::default()
        };
        let text = body(&report, "pipeline.yaml", None);
        assert!(text.len() < 65_536, "{}", text.len());
        assert!(
            text.contains("the rest of the table is too long for a comment"),
            "says it was cut"
        );
    }

    #[test]
    fn the_marker_cannot_end_the_html_comment_early() {
        assert_eq!(
            marker("deploy/pipeline.yaml"),
            "<!-- secretsync:plan deploy/pipeline.yaml -->"
        );
        for hostile in ["a-->b.yaml", "a--->b.yaml", "a--!>b", "x<!--y", "a b\n-->"] {
            let line = marker(hostile);
            let inner = &line["<!-- ".len()..line.len() - " -->".len()];
            assert!(
                !inner.contains("--") && !inner.contains('>') && !inner.contains('<') && !inner.contains('\n'),
                "{hostile:?} → {line}"
            );
        }
        assert_ne!(marker("a-b"), marker("a_b"), "different files, different markers");
    }

    #[test]
    fn one_pipeline_has_one_key_however_it_is_named() {
        let workspace = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(workspace.path().join("deploy")).unwrap();
        let file = workspace.path().join("deploy/pipeline.yaml");
        std::fs::write(&file, "").unwrap();
        let w = Some(workspace.path());
        assert_eq!(pipeline_key(&file, w), "deploy/pipeline.yaml");
        assert_eq!(
            pipeline_key(&workspace.path().join("deploy/./pipeline.yaml"), w),
            "deploy/pipeline.yaml"
        );
        assert_eq!(pipeline_key(std::path::Path::new("./p.yaml"), None), "p.yaml");
        assert_eq!(pipeline_key(std::path::Path::new("p.yaml"), None), "p.yaml");
    }

    #[test]
    fn names_cannot_open_html_or_mention_people() {
        let mut report = RunReport::default();
        report
            .targets
            .push(skipped("acct<!-- @acme/admins", "see <details> and @octocat"));
        let text = body(&report, "pipeline.yaml", Some("https://ci/run)x"));
        // Code blocks and code elements show their text as written (no HTML, no mentions):
        // what matters is everything outside them.
        let mut outside = String::new();
        let mut rest = text.split_once('\n').unwrap().1;
        while let Some((before, after)) = rest.split_once("```diff") {
            outside.push_str(before);
            rest = after.split_once("```").map_or("", |(_, after)| after);
        }
        outside.push_str(rest);
        let outside: String = outside
            .split("<code>")
            .map(|part| part.split_once("</code>").map_or(part, |(_, after)| after))
            .collect::<String>()
            .split('`')
            .step_by(2)
            .collect();
        assert!(!outside.contains("<!--"), "{text}");
        assert!(!outside.contains("<details> and"), "{text}");
        assert!(!outside.contains("@acme"), "no mention: {text}");
        assert!(!outside.contains("@octocat"), "no mention: {text}");
        assert!(text.contains("[The run](https://ci/run%29x)"), "{text}");
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let pr = PullRequest {
            api_url: "https://api.github.com".to_owned(),
            repository: "acme/infra".to_owned(),
            number: 1,
            token: "ghs_secret".to_owned(),
            target_event: false,
        };
        assert!(!format!("{pr:?}").contains("ghs_secret"));
    }
}
