//! The repository editor's helpers over HTTP: discovery status of the state's repositories
//! (real nix fetching local flakes), branch/tag lists and the API connection test against a
//! local stand-in for the GitHub and GitLab REST APIs (the real ones are not reachable here),
//! and the systemd timer check (real systemd-analyze).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use common::{json, open_notifications, state_with_configs, wait_for_invalidation, Controller};
use serde_json::{json as j, Value};

fn encode(url: &str) -> String {
    url.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A directory holding a flake (and optionally a README) for `path:` references.
fn flake_dir(root: &Path, name: &str, readme: Option<&str>) -> String {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
    if let Some(text) = readme {
        std::fs::write(dir.join("README.md"), text).unwrap();
    }
    format!("path:{}", dir.display())
}

#[tokio::test]
async fn discovery_reports_what_each_repository_is() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let client = &session.client;
    let mut socket = open_notifications(&controller, &session.cookie_header()).await;

    let flakes = tmp.path().join("flakes");
    let modules = flake_dir(
        &flakes,
        "modules",
        Some("# Ours\nThis repository contains thymis modules.\n"),
    );
    let plain = flake_dir(&flakes, "plain", Some("# Just a flake\n"));
    let bare = flake_dir(&flakes, "bare", None);
    let missing = format!("git+file://{}", flakes.join("nowhere").display());
    // Nix would copy a path into the store before finding no flake there.
    std::fs::create_dir_all(flakes.join("no-flake")).unwrap();
    let no_flake = format!("path:{}", flakes.join("no-flake").display());
    let mut state = state_with_configs(&["pi-1"]);
    let repo = |url: Value| j!({"url": url, "follows": null, "inputs_follows": {}, "api_key_secret": null});
    state["repositories"] = j!({
        "modules": repo(j!(modules)), "plain": repo(j!(plain)), "bare": repo(j!(bare)),
        "missing": repo(j!(missing)), "unset": repo(Value::Null),
        "no-flake": repo(j!(no_flake)), "relative": repo(j!("path:./mods")),
    });
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    wait_for_invalidation(
        &mut socket,
        "/api/external-repositories/status",
        Duration::from_secs(10),
    )
    .await;

    let statuses = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let statuses = json(
                client
                    .get(controller.url("/api/external-repositories/status"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            let done = statuses.as_object().is_some_and(|all| {
                all.len() == 7 && all.values().all(|s| s["status"] != "loading")
            });
            if done {
                return statuses;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("discovery did not finish");
    let status_of = |name: &str| statuses[name]["status"].as_str().unwrap().to_owned();
    assert_eq!(status_of("modules"), "loaded", "{statuses}");
    assert_eq!(statuses["modules"]["modules"], j!([]));
    assert_eq!(status_of("plain"), "no-magic-string", "{statuses}");
    assert_eq!(status_of("bare"), "no-readme", "{statuses}");
    assert_eq!(status_of("missing"), "no-path", "{statuses}");
    assert!(
        statuses["missing"]["details"]
            .as_str()
            .unwrap()
            .contains("error"),
        "{statuses}"
    );
    assert_eq!(status_of("unset"), "no-url");
    assert_eq!(status_of("no-flake"), "no-path");
    assert!(statuses["no-flake"]["details"]
        .as_str()
        .unwrap()
        .contains("no flake.nix"));
    assert_eq!(status_of("relative"), "no-path");
    assert!(statuses["relative"]["details"]
        .as_str()
        .unwrap()
        .contains("absolute"));

    // Removing a repository removes its status.
    let mut state = json(
        client
            .get(controller.url("/api/state"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    state["repositories"]
        .as_object_mut()
        .unwrap()
        .retain(|name, _| name == "unset");
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let statuses = json(
                client
                    .get(controller.url("/api/external-repositories/status"))
                    .send()
                    .await
                    .unwrap(),
            )
            .await;
            if statuses == j!({"unset": {"status": "no-url", "modules": [], "details": null}}) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the removed repositories' statuses stayed");
}

/// What the stand-in forge saw: request paths with their Authorization header.
type Requests = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Serves a small part of the GitHub (`/gh`) and GitLab (`/gl`) REST APIs on a loopback port.
async fn start_forge() -> (String, Requests) {
    let requests: Requests = Arc::default();
    let seen = requests.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            let authorization = headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            let path = uri.path().to_owned();
            seen.lock().unwrap().push((path.clone(), authorization));
            let ok = |body: Value| (StatusCode::OK, axum::Json(body)).into_response();
            match path.as_str() {
                "/gh/repos/acme/mods/branches" => {
                    ok(j!([{"name": "main", "commit": {"sha": "a".repeat(40)}}, {"name": "dev"}]))
                }
                "/gh/repos/acme/mods/tags" => ok(j!([{"name": "v1.0"}])),
                "/gh/repos/acme/mods/commits/HEAD" => ok(j!({"sha": "a".repeat(40)})),
                "/gh/repos/acme/mods/commits/feature%2Fx" => ok(j!({"sha": "b".repeat(40)})),
                "/gh/repos/acme/limited/branches" | "/gh/repos/acme/limited/commits/HEAD" => (
                    StatusCode::FORBIDDEN,
                    [("x-ratelimit-remaining", "0")],
                    axum::Json(j!({"message": "API rate limit exceeded"})),
                )
                    .into_response(),
                "/gh/repos/acme/private/branches" => (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(j!({"message": "Bad credentials"})),
                )
                    .into_response(),
                "/gl/projects/group%2Fsub%2Fmods/repository/branches" => {
                    ok(j!([{"name": "main", "commit": {"id": "c".repeat(40)}}]))
                }
                "/gl/projects/group%2Fsub%2Fmods/repository/commits/v2" => {
                    ok(j!({"id": "c".repeat(40)}))
                }
                _ => (
                    StatusCode::NOT_FOUND,
                    axum::Json(j!({"message": "Not Found"})),
                )
                    .into_response(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), requests)
}

#[tokio::test]
async fn branches_tags_and_api_access_come_from_the_forge() {
    let (forge, requests) = start_forge().await;
    let tmp = tempfile::tempdir().unwrap();
    let (github, gitlab) = (format!("{forge}/gh"), format!("{forge}/gl"));
    let controller = Controller::start_with(
        &tmp.path().join("data"),
        &["--github-api-url", &github, "--gitlab-api-url", &gitlab],
    );
    let client = controller.login().await;
    let get = |path: String| {
        let client = client.clone();
        let url = controller.url(&path);
        async move { client.get(url).send().await.unwrap() }
    };
    let count = |path: &str| {
        requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(seen, _)| seen == path)
            .count()
    };

    // Lists come through as the forge sent them, and are cached for a minute.
    let mods = encode("github:acme/mods");
    let response = get(format!("/api/external-repositories/branches/{mods}")).await;
    assert_eq!(response.status(), 200);
    let branches = json(response).await;
    assert_eq!(branches[0]["name"], "main");
    assert_eq!(branches[1]["name"], "dev");
    let again = json(get(format!("/api/external-repositories/branches/{mods}")).await).await;
    assert_eq!(again, branches);
    assert_eq!(count("/gh/repos/acme/mods/branches"), 1);
    let tags = json(get(format!("/api/external-repositories/tags/{mods}")).await).await;
    assert_eq!(tags, j!([{"name": "v1.0"}]));

    // A git URL on github.com uses the same API; the ref is one path segment.
    let git_url = encode("git+https://github.com/acme/mods.git?ref=feature/x");
    let access = json(
        get(format!(
            "/api/external-repositories/test-flake-ref/api-access/{git_url}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        access,
        j!({"status": "success", "commit_hash": "b".repeat(40)})
    );

    // GitLab subgroups become one URL-encoded project path.
    let gl = encode("gitlab:group%2Fsub/mods/v2");
    let branches = json(get(format!("/api/external-repositories/branches/{gl}")).await).await;
    assert_eq!(branches[0]["name"], "main");
    let access = json(
        get(format!(
            "/api/external-repositories/test-flake-ref/api-access/{gl}"
        ))
        .await,
    )
    .await;
    assert_eq!(access["commit_hash"], "c".repeat(40));

    // The forge's refusals keep their meaning without looking like our own session ending.
    let missing = get(format!(
        "/api/external-repositories/branches/{}",
        encode("github:acme/gone")
    ))
    .await;
    assert_eq!(missing.status(), 404);
    assert_eq!(json(missing).await["detail"], "Not Found");
    let private = get(format!(
        "/api/external-repositories/branches/{}",
        encode("github:acme/private")
    ))
    .await;
    assert_eq!(private.status(), 403);
    let limited = encode("github:acme/limited");
    let response = get(format!("/api/external-repositories/branches/{limited}")).await;
    assert_eq!(response.status(), 429);
    let access = json(
        get(format!(
            "/api/external-repositories/test-flake-ref/api-access/{limited}"
        ))
        .await,
    )
    .await;
    assert_eq!(access["status"], "rate_limited", "{access}");

    // Other hosts have no forge API: an empty list, and an error for the access test.
    let elsewhere = encode("git+https://git.example.com/acme/mods.git");
    let list = json(get(format!("/api/external-repositories/branches/{elsewhere}")).await).await;
    assert_eq!(list, j!([]));
    let access = json(
        get(format!(
            "/api/external-repositories/test-flake-ref/api-access/{elsewhere}"
        ))
        .await,
    )
    .await;
    assert_eq!(
        access,
        j!({"status": "error", "detail": "Not a supported repository type"})
    );
    // An unreachable forge is a bad gateway.
    let unreachable = encode("github:acme/mods?host=127.0.0.1:1");
    let response = get(format!("/api/external-repositories/branches/{unreachable}")).await;
    assert_eq!(response.status(), 502);
    assert!(json(response).await["detail"]
        .as_str()
        .unwrap()
        .contains("127.0.0.1:1"));
    // Not a flake reference at all.
    let response = get(format!(
        "/api/external-repositories/tags/{}",
        encode("github:")
    ))
    .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_repository_token_goes_to_its_forge_only() {
    let (forge, requests) = start_forge().await;
    let tmp = tempfile::tempdir().unwrap();
    let github = format!("{forge}/gh");
    let controller =
        Controller::start_with(&tmp.path().join("data"), &["--github-api-url", &github]);
    let client = controller.login().await;
    let secret = json(
        client
            .post(controller.url("/api/secrets"))
            .json(&j!({"display_name": "github token", "type": "single_line", "value_str": "ghp_secret"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let secret_id = secret["id"].as_str().unwrap().to_owned();
    let mut state = state_with_configs(&["pi-1"]);
    state["repositories"] = j!({"mods": {
        "url": "github:acme/mods", "follows": null, "inputs_follows": {}, "api_key_secret": secret_id
    }});
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mods = encode("github:acme/mods");
    let with_token = |path: &str| {
        controller.url(&format!(
            "/api/external-repositories/{path}/{mods}?api_key_secret={secret_id}"
        ))
    };
    for path in ["branches", "tags"] {
        let response = client.get(with_token(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    // Anonymous and token requests are cached apart.
    let response = client
        .get(controller.url(&format!("/api/external-repositories/branches/{mods}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen: BTreeMap<_, Vec<_>> =
        requests
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut all, (path, auth)| {
                all.entry(path.clone()).or_default().push(auth.clone());
                all
            });
    assert_eq!(
        seen["/gh/repos/acme/mods/branches"],
        vec![Some("Bearer ghp_secret".to_owned()), None]
    );
    assert_eq!(
        seen["/gh/repos/acme/mods/tags"],
        vec![Some("Bearer ghp_secret".to_owned())]
    );

    // Not for another host or a repository configured without it.
    for other in ["gitlab:acme/mods", "github:acme/mods?host=evil.example"] {
        let response = client
            .get(controller.url(&format!(
                "/api/external-repositories/branches/{}?api_key_secret={secret_id}",
                encode(other)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{other}");
    }
    let unknown = uuid::Uuid::new_v4();
    let response = client
        .get(controller.url(&format!(
            "/api/external-repositories/branches/{mods}?api_key_secret={unknown}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let stderr = controller.stderr();
    assert!(!stderr.contains("ghp_secret"), "the token was logged");
}

#[tokio::test]
async fn timer_expressions_are_checked_by_systemd() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let check = |query: &str| {
        let url = controller.url(&format!("/api/config/check-systemd-timer?{query}"));
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let response = check("timer_type=calendar&value=Mon%20*-*-*%2004%3A00&iterations=3").await;
    assert_eq!(response.status(), 200);
    let times = json(response).await;
    let times = times.as_array().unwrap();
    assert_eq!(times.len(), 3);
    for time in times {
        let time = time.as_str().unwrap();
        assert!(
            time.starts_with("Mon ") && time.ends_with(" 04:00:00 UTC"),
            "{time}"
        );
    }
    let response = check("timer_type=timespan&value=90min").await;
    assert_eq!(json(response).await, j!("1h 30min"));

    let response = check("timer_type=calendar&value=whenever").await;
    assert_eq!(response.status(), 400);
    assert!(json(response).await["detail"]
        .as_str()
        .unwrap()
        .contains("whenever"));
    for bad in [
        "timer_type=timespan&value=",
        "timer_type=calendar&value=daily&iterations=0",
        "timer_type=calendar&value=daily&iterations=1000",
        "timer_type=weekly&value=daily",
        "timer_type=calendar",
    ] {
        let response = check(bad).await;
        assert!(
            response.status().is_client_error(),
            "{bad}: {}",
            response.status()
        );
        assert!(json(response).await["detail"].is_string());
    }
}
