//! The project API over real HTTP: the state round trip with its revision check, commit →
//! history → diff → revert checked with the `git` CLI, and bad input. Each test runs its own
//! controller on its own data directory.

mod common;

use std::collections::BTreeSet;

use common::{etag, git, json, state_with_configs, Controller};
use serde_json::{json, Value};

async fn get_state(controller: &Controller, client: &reqwest::Client) -> (Value, String) {
    let response = client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let revision = etag(&response);
    (json(response).await, revision)
}

async fn patch_state(
    controller: &Controller,
    client: &reqwest::Client,
    state: &Value,
    if_match: Option<&str>,
) -> reqwest::Response {
    let mut request = client.patch(controller.url("/api/state")).json(state);
    if let Some(revision) = if_match {
        request = request.header("if-match", format!("\"{revision}\""));
    }
    request.send().await.unwrap()
}

fn state_file(controller: &Controller) -> Value {
    let text = std::fs::read_to_string(controller.repo().join("state.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn state_round_trip_with_revisions_and_conflicts() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;

    let (initial, initial_rev) = get_state(&controller, &client).await;
    assert_eq!(initial["configs"], json!([]), "{initial}");
    assert!(!initial_rev.is_empty());

    // PATCH with the current revision.
    let first = state_with_configs(&["kiosk-1"]);
    let response = patch_state(&controller, &client, &first, Some(&initial_rev)).await;
    assert_eq!(response.status(), 200);
    let first_rev = etag(&response);
    assert_ne!(first_rev, initial_rev, "a new state needs a new revision");
    let answered = json(response).await;
    assert_eq!(
        answered["configs"][0]["identifier"], "kiosk-1",
        "{answered}"
    );
    let (current, current_rev) = get_state(&controller, &client).await;
    assert_eq!(current, answered);
    assert_eq!(current_rev, first_rev);
    assert_eq!(state_file(&controller), current, "state.json on disk");
    let host = controller.repo().join("hosts/kiosk-1");
    assert!(host.is_dir(), "hosts/kiosk-1 not rendered");
    let nix_files: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".nix"))
        .collect();
    assert!(!nix_files.is_empty(), "no .nix file in hosts/kiosk-1");

    // A second editor still holding the old revision is refused and shown the current state.
    let stale = state_with_configs(&["kiosk-stale"]);
    let response = patch_state(&controller, &client, &stale, Some(&initial_rev)).await;
    assert_eq!(response.status(), 409);
    let conflict = json(response).await;
    assert!(
        conflict["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{conflict}"
    );
    assert_eq!(conflict["state"]["state"], current, "{conflict}");
    assert_eq!(
        conflict["state"]["revision"],
        current_rev.as_str(),
        "{conflict}"
    );
    // Weak validators and `?revision=` are understood the same way.
    let response = client
        .patch(controller.url("/api/state"))
        .header("if-match", format!("W/\"{initial_rev}\""))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409, "weak If-Match");
    let response = client
        .patch(controller.url(&format!("/api/state?revision={initial_rev}")))
        .json(&stale)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409, "?revision=");
    let (after_conflict, after_conflict_rev) = get_state(&controller, &client).await;
    assert_eq!(after_conflict, current, "a refused PATCH changed the state");
    assert_eq!(after_conflict_rev, current_rev);
    assert!(!controller.repo().join("hosts/kiosk-stale").exists());

    // Without If-Match (as upstream's UI sends it) the change is taken.
    let second = state_with_configs(&["kiosk-1", "kiosk-2"]);
    let response = patch_state(&controller, &client, &second, None).await;
    assert_eq!(response.status(), 200);
    let second_rev = etag(&response);
    assert_ne!(second_rev, first_rev);
    let (current, _) = get_state(&controller, &client).await;
    let ids: Vec<_> = current["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["identifier"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["kiosk-1", "kiosk-2"]);
    assert!(controller.repo().join("hosts/kiosk-2").is_dir());

    // Removing a config removes its folder.
    let response = patch_state(&controller, &client, &first, Some(&second_rev)).await;
    assert_eq!(response.status(), 200);
    assert!(!controller.repo().join("hosts/kiosk-2").exists());
    assert!(controller.repo().join("hosts/kiosk-1").is_dir());
}

#[tokio::test]
async fn invalid_states_are_refused_with_every_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let (before, before_rev) = get_state(&controller, &client).await;

    // A missing tag and no device module.
    let mut missing_tag = state_with_configs(&["a"]);
    missing_tag["configs"][0]["tags"] = json!(["nope"]);
    let response = patch_state(&controller, &client, &missing_tag, None).await;
    assert_eq!(response.status(), 422);
    let body = json(response).await;
    let problems = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let paths: Vec<&str> = problems.iter().filter_map(|p| p["path"].as_str()).collect();
    assert_eq!(
        paths.len(),
        problems.len(),
        "a problem without path: {body}"
    );
    assert!(
        paths.iter().any(|p| p.contains("configs[0].tags")),
        "the missing tag is not reported: {body}"
    );
    assert!(problems.iter().all(|p| p["message"].is_string()), "{body}");

    // Wrong JSON types: every one reported, each with its path.
    let bad_types = json!({
        "version": "0.0.9",
        "tags": 5,
        "configs": [{"displayName": 3, "identifier": "a", "tags": [], "modules": []}]
    });
    let response = patch_state(&controller, &client, &bad_types, None).await;
    assert_eq!(response.status(), 422);
    let body = json(response).await;
    let problems = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    let paths: Vec<&str> = problems.iter().filter_map(|p| p["path"].as_str()).collect();
    assert!(paths.iter().any(|p| p.ends_with(".tags")), "{body}");
    assert!(
        paths.iter().any(|p| p.contains("configs[0].displayName")),
        "{body}"
    );

    // Not a state at all.
    for not_a_state in [json!([]), json!("state"), json!(null)] {
        let response = patch_state(&controller, &client, &not_a_state, None).await;
        assert_eq!(response.status(), 422, "{not_a_state}");
        assert!(json(response).await.get("detail").is_some());
    }

    // Nothing changed.
    let (after, after_rev) = get_state(&controller, &client).await;
    assert_eq!(after, before);
    assert_eq!(after_rev, before_rev);
    assert!(!controller.repo().join("hosts/a").exists());
    assert_eq!(git(&controller.repo(), &["status", "--porcelain"]), "");
}

/// The `+`/`-` lines of a unified diff (without the `---`/`+++` file headers).
fn changed_lines(diff: &str) -> Vec<String> {
    diff.lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .map(str::to_owned)
        .collect()
}

async fn commit(
    controller: &Controller,
    client: &reqwest::Client,
    message: &str,
) -> reqwest::Response {
    client
        .post(controller.url("/api/action/commit"))
        .query(&[("message", message)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn commit_history_diff_and_revert_agree_with_git() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let repo = controller.repo();
    let client = controller.login().await;

    // Nothing to commit on a fresh project.
    let response = commit(&controller, &client, "nothing").await;
    assert_eq!(response.status(), 409);
    assert!(json(response).await["detail"].is_string());

    // First commit.
    let response = patch_state(
        &controller,
        &client,
        &state_with_configs(&["kiosk-1"]),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let status = json(
        client
            .get(controller.url("/api/repo_status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let changed: BTreeSet<String> = status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(changed.contains("state.json"), "{status}");
    assert!(
        changed.iter().any(|p| p.starts_with("hosts/kiosk-1/")),
        "{status}"
    );
    let response = commit(&controller, &client, "Add kiosk-1").await;
    assert_eq!(response.status(), 200);
    let body = json(response).await;
    assert_eq!(body["message"], "commit successful", "{body}");
    let first = git(&repo, &["rev-parse", "HEAD"]);
    assert_eq!(
        git(&repo, &["log", "--format=%s"]),
        "Add kiosk-1\nInitial commit"
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>"]),
        "admin <admin@thymis.local>"
    );
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "commit left changes"
    );
    let status = json(
        client
            .get(controller.url("/api/repo_status"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status["changes"], json!([]), "{status}");
    let (first_state, _) = get_state(&controller, &client).await;

    // Second commit.
    let response = patch_state(
        &controller,
        &client,
        &state_with_configs(&["kiosk-1", "kiosk-2"]),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let response = commit(&controller, &client, "Add kiosk-2").await;
    assert_eq!(response.status(), 200);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    assert_ne!(first, second);

    // History: newest first, as git has it.
    let history = json(
        client
            .get(controller.url("/api/history"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let history = history.as_array().expect("history is not an array");
    let shas: Vec<&str> = history.iter().map(|c| c["SHA"].as_str().unwrap()).collect();
    let rev_list = git(&repo, &["rev-list", "HEAD"]);
    assert_eq!(shas, rev_list.lines().collect::<Vec<_>>());
    assert_eq!(shas.len(), 3);
    assert_eq!(history[0]["message"], "Add kiosk-2");
    assert_eq!(history[1]["message"], "Add kiosk-1");
    assert_eq!(history[2]["message"], "Initial commit");
    assert_eq!(history[0]["author"], "admin");
    assert_eq!(history[0]["SHA1"], &second[..7]);
    assert_eq!(
        history[0]["date"],
        git(&repo, &["log", "-1", "--format=%ci"]).as_str()
    );
    let limited = json(
        client
            .get(controller.url("/api/history?limit=1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(limited.as_array().map(Vec::len), Some(1));

    // The diff of state.json between the two commits, as a JSON string.
    let response = client
        .get(controller.url("/api/history/diff"))
        .query(&[("refA", first.as_str()), ("refB", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let diff = json(response).await;
    let diff = diff.as_str().expect("the diff is not a JSON string");
    assert!(diff.contains("kiosk-2"), "{diff}");
    let expected = git(&repo, &["diff", &first, &second, "--", "state.json"]);
    assert!(!changed_lines(&expected).is_empty());
    assert_eq!(changed_lines(diff), changed_lines(&expected));
    // Default refA: the empty project; default refB: HEAD.
    let whole = json(
        client
            .get(controller.url("/api/history/diff"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let whole = whole.as_str().expect("the diff is not a JSON string");
    assert!(
        whole.contains("+  \"configs\"") || whole.contains("+{"),
        "the default diff is not against the empty project: {whole}"
    );

    // Changed files between the two commits.
    let response = client
        .get(controller.url("/api/history/changes"))
        .query(&[("refA", first.as_str()), ("refB", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let changes = json(response).await;
    let paths: BTreeSet<String> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_owned())
        .collect();
    let expected: BTreeSet<String> = git(&repo, &["diff", "--name-only", &first, &second])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(paths, expected);
    assert!(paths.contains("state.json"));

    // Unknown refs.
    let response = client
        .get(controller.url("/api/history/diff"))
        .query(&[("refA", "0123456789abcdef0123456789abcdef01234567")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(json(response).await["detail"].is_string());

    // Revert to the first commit: a new commit with the first commit's tree.
    let response = client
        .post(controller.url("/api/history/revert-commit"))
        .query(&[("commit_sha", first.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reverted = git(&repo, &["rev-parse", "HEAD"]);
    assert_ne!(reverted, second);
    assert_ne!(reverted, first);
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD^"]),
        second,
        "revert is not on top"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD^{tree}"]),
        git(&repo, &["rev-parse", &format!("{first}^{{tree}}")])
    );
    assert_eq!(
        git(&repo, &["log", "-1", "--format=%an <%ae>"]),
        "admin <admin@thymis.local>"
    );
    assert_eq!(git(&repo, &["status", "--porcelain"]), "");
    let (state, _) = get_state(&controller, &client).await;
    assert_eq!(state, first_state);
    let at_first: Value =
        serde_json::from_str(&git(&repo, &["show", &format!("{first}:state.json")])).unwrap();
    assert_eq!(state, at_first);
    assert!(
        !repo.join("hosts/kiosk-2").exists(),
        "hosts/kiosk-2 left behind"
    );

    // Unknown commit.
    let response = client
        .post(controller.url("/api/history/revert-commit"))
        .query(&[("commit_sha", "0123456789abcdef0123456789abcdef01234567")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(json(response).await["detail"].is_string());

    // Nothing changed since the revert.
    let response = commit(&controller, &client, "again").await;
    assert_eq!(response.status(), 409);

    // Uncommitted changes: revert refused, nothing lost.
    let dirty = state_with_configs(&["kiosk-3"]);
    let response = patch_state(&controller, &client, &dirty, None).await;
    assert_eq!(response.status(), 200);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let response = client
        .post(controller.url("/api/history/revert-commit"))
        .query(&[("commit_sha", second.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    assert!(json(response).await["detail"].is_string());
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head);
    let (state, _) = get_state(&controller, &client).await;
    assert_eq!(state["configs"][0]["identifier"], "kiosk-3");
    assert!(repo.join("hosts/kiosk-3").is_dir());
}

#[tokio::test]
async fn commit_needs_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let response = patch_state(&controller, &client, &state_with_configs(&["a"]), None).await;
    assert_eq!(response.status(), 200);
    let response = commit(&controller, &client, "   ").await;
    assert_eq!(response.status(), 400);
    assert!(json(response).await["detail"].is_string());
    assert_eq!(
        git(&controller.repo(), &["rev-list", "--count", "HEAD"]),
        "1"
    );
}

#[tokio::test]
async fn available_modules_follow_the_locale_cookie() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let fetch = |locale: Option<&str>| {
        let mut cookie = session.cookie_header();
        if let Some(locale) = locale {
            cookie.push_str(&format!("; locale={locale}"));
        }
        common::anonymous()
            .get(controller.url("/api/available_modules"))
            .header("cookie", cookie)
            .send()
    };
    let response = fetch(None).await.unwrap();
    assert_eq!(response.status(), 200);
    let en = json(response).await;
    let modules = en.as_array().expect("modules is not an array");
    assert!(
        modules.iter().any(|m| m
            .to_string()
            .contains("thymis_controller.modules.thymis.ThymisDevice")),
        "no ThymisDevice module"
    );
    let de = json(fetch(Some("de")).await.unwrap()).await;
    assert_eq!(de.as_array().map(Vec::len), Some(modules.len()));
    assert_ne!(de, en, "the German catalogue equals the English one");
    assert_eq!(json(fetch(Some("xx")).await.unwrap()).await, en);
}

#[tokio::test]
async fn bad_input_is_never_a_server_error() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            client
                .patch(controller.url("/api/state"))
                .header("content-type", "application/json")
                .body("{\"version\":"),
            "truncated JSON",
        ),
        (
            client
                .patch(controller.url("/api/state"))
                .header("content-type", "application/json")
                .body("\u{0}\u{1}not json"),
            "garbage",
        ),
        (
            client.patch(controller.url("/api/state")).body("{}"),
            "no content type",
        ),
        (
            client
                .post(controller.url("/api/tokens"))
                .header("content-type", "application/json")
                .body("{\"name\": 5}"),
            "token name not a string",
        ),
        (
            client.delete(controller.url("/api/tokens/not-a-uuid")),
            "token id not a UUID",
        ),
        (
            client.post(controller.url("/api/action/commit")),
            "commit without message",
        ),
        (
            client.get(controller.url("/api/history?limit=lots")),
            "history limit not a number",
        ),
        (
            client.get(controller.url("/api/history/diff?refA=--output=/tmp/x")),
            "option-like ref",
        ),
        (
            client.get(controller.url("/api/history/diff?refA=HEAD..HEAD")),
            "range ref",
        ),
        (
            client.post(controller.url("/api/history/revert-commit")),
            "revert without sha",
        ),
        (
            client
                .post(controller.url("/auth/login/basic"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=admin"),
            "login without password",
        ),
    ];
    for (request, what) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert!(status.is_client_error(), "{what}: {status}");
    }
    // Still serving, state untouched.
    let (state, _) = get_state(&controller, &client).await;
    assert_eq!(state["configs"], json!([]));
}

#[tokio::test]
async fn client_errors_carry_a_json_detail() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        (
            client
                .patch(controller.url("/api/state"))
                .header("content-type", "application/json")
                .body("{\"version\":"),
            "PATCH /api/state with malformed JSON",
        ),
        (
            client.patch(controller.url("/api/state")).body("{}"),
            "PATCH /api/state without Content-Type",
        ),
        (
            client.delete(controller.url("/api/tokens/not-a-uuid")),
            "DELETE /api/tokens/not-a-uuid",
        ),
        (
            client.post(controller.url("/api/action/commit")),
            "POST /api/action/commit without message",
        ),
        (
            client.get(controller.url("/api/history?limit=lots")),
            "GET /api/history?limit=lots",
        ),
    ];
    let mut oversize = b"{\"x\":\"".to_vec();
    oversize.resize(64 * 1024 * 1024 + 16, b'a');
    oversize.extend_from_slice(b"\"}");
    let cases = cases.into_iter().chain([(
        client
            .patch(controller.url("/api/state"))
            .header("content-type", "application/json")
            .body(oversize),
        "PATCH /api/state with a body over 64 MiB",
    )]);
    let mut failures = Vec::new();
    for (request, what) in cases {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let detail = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v.get("detail").cloned());
        if !status.is_client_error() || detail.is_none() {
            failures.push(format!("{what}: {status} {text:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn unknown_api_paths_are_json_404() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login().await;
    for (client, path) in [
        (common::anonymous(), "/api/no/such/page"),
        (session.clone(), "/api/no-such-route"),
        (session.clone(), "/auth/nothing"),
    ] {
        let response = client.get(controller.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        assert_eq!(
            json(response).await,
            json!({"detail": "Not Found"}),
            "{path}"
        );
    }
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_413() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let (_, before) = get_state(&controller, &client).await;
    // A syntactically plausible JSON document just over 64 MiB.
    let limit = 64 * 1024 * 1024;
    let mut body = Vec::with_capacity(limit + 64);
    body.extend_from_slice(b"{\"version\":\"0.0.9\",\"tags\":[],\"configs\":[],\"x\":\"");
    body.resize(limit + 16, b'a');
    body.extend_from_slice(b"\"}");
    let response = client
        .patch(controller.url("/api/state"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("the controller dropped the connection instead of answering 413");
    assert_eq!(response.status(), 413);
    let (_, after) = get_state(&controller, &client).await;
    assert_eq!(after, before);
}

#[tokio::test]
async fn if_match_star_matches_any_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let response = client
        .patch(controller.url("/api/state"))
        .header("if-match", "*")
        .json(&state_with_configs(&["kiosk-1"]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (state, _) = get_state(&controller, &client).await;
    assert_eq!(state["configs"][0]["identifier"], "kiosk-1");
}
