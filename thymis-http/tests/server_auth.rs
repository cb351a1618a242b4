//! The controller as a newcomer and a script meet it: first start, login and logout, session
//! expiry, the login rate limit, API tokens, the auth matrix over every documented route and
//! the Origin check. Each test runs its own controller on its own data directory.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{
    anonymous, cookie_attributes, etag, git, json, set_cookie_header, set_cookies,
    state_with_configs, ws_refusal_status, ws_request, Controller,
};
use serde_json::{json, Value};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn first_start_creates_the_data_directory_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);

    // The data directory holds the key, the password and the database: private.
    assert_eq!(mode(&data), 0o700, "data directory mode");

    // id_thymis: a private ed25519 key in OpenSSH format, 0600, matching id_thymis.pub.
    let key = data.join("id_thymis");
    assert_eq!(mode(&key), 0o600, "id_thymis mode");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "{pem}"
    );
    let derived = Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&key)
        .output()
        .expect("cannot run ssh-keygen");
    assert!(
        derived.status.success(),
        "ssh-keygen refused id_thymis: {}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let derived = String::from_utf8(derived.stdout).unwrap();
    let public = std::fs::read_to_string(data.join("id_thymis.pub")).unwrap();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert_eq!(
        derived.trim(),
        public.trim(),
        "ssh-keygen -y vs id_thymis.pub"
    );

    // The password file: 0600, holding the password that was printed.
    let password_file = data.join("auth-basic-password");
    assert_eq!(mode(&password_file), 0o600, "password file mode");
    let printed = controller
        .printed_password
        .clone()
        .expect("no password printed on first start");
    assert!(printed.len() >= 16, "weak password {printed:?}");
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        printed
    );

    // The database and the repository on branch master with its initial commit.
    assert!(data.join("thymis.sqlite").is_file(), "no thymis.sqlite");
    let repo = data.join("repository");
    assert!(repo.join(".git").is_dir(), "no repository/.git");
    assert_eq!(git(&repo, &["symbolic-ref", "--short", "HEAD"]), "master");
    assert_eq!(git(&repo, &["log", "--format=%s"]), "Initial commit");
    assert!(repo.join("state.json").is_file(), "no state.json");
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "dirty after start"
    );

    // The printed password logs in.
    let client = controller.login().await;
    let me = client
        .get(controller.url("/auth/logged_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // A second start on the same directory keeps key and password and prints no password.
    let key_before = std::fs::read(&key).unwrap();
    let public_before = std::fs::read(data.join("id_thymis.pub")).unwrap();
    let head_before = git(&repo, &["rev-parse", "HEAD"]);
    drop(client);
    controller.stop();

    let again = Controller::start(&data);
    let methods = anonymous()
        .get(again.url("/auth/auth/methods"))
        .send()
        .await
        .unwrap();
    assert_eq!(methods.status(), 200);
    let state = again
        .login()
        .await
        .get(again.url("/api/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(state.status(), 200);
    let stdout = again.stop();
    assert!(
        stdout.iter().all(|line| !line.contains("password")),
        "the second start printed a password: {stdout:?}"
    );
    assert!(
        stdout
            .iter()
            .any(|line| line.starts_with("Thymis controller listening on ")),
        "{stdout:?}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), key_before, "key changed");
    assert_eq!(
        std::fs::read(data.join("id_thymis.pub")).unwrap(),
        public_before
    );
    assert_eq!(
        std::fs::read_to_string(&password_file).unwrap().trim(),
        printed,
        "password changed"
    );
    assert_eq!(
        git(&repo, &["rev-parse", "HEAD"]),
        head_before,
        "restart committed"
    );
    assert_eq!(
        git(&repo, &["status", "--porcelain"]),
        "",
        "dirty after restart"
    );
}

#[tokio::test]
async fn wrong_password_is_sent_back_to_the_login_page_without_a_session() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let response = anonymous()
        .post(controller.url("/auth/login/basic"))
        .form(&[
            ("username", "admin"),
            ("password", "not-the-password"),
            ("redirect", "/configuration"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    // Back to the login page, which still knows where to go afterwards.
    assert_eq!(
        response.headers()["location"],
        "/login?authError=credentials&redirect=/configuration"
    );
    let cookies = set_cookies(response.headers());
    assert!(
        cookies
            .iter()
            .all(|(name, value)| !name.starts_with("session") || value.is_empty()),
        "session cookie set on a failed login: {cookies:?}"
    );

    // The right password for another user name does not log in either.
    let response = anonymous()
        .post(controller.url("/auth/login/basic"))
        .form(&[("username", "root"), ("password", &controller.password())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        "/login?authError=credentials"
    );
    assert!(set_cookie_header(response.headers(), "session-token").is_none());
}

#[tokio::test]
async fn login_sets_strict_http_only_cookies_and_logout_ends_the_session() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Anonymous first.
    let response = client
        .get(controller.url("/auth/logged_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let response = client
        .post(controller.url("/auth/login/basic"))
        .form(&[
            ("username", "admin"),
            ("password", controller.password().as_str()),
            ("redirect", "/configuration/list?x=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/configuration/list?x=1");
    for name in ["session-id", "session-token"] {
        let header = set_cookie_header(response.headers(), name)
            .unwrap_or_else(|| panic!("no {name} cookie"));
        let attributes = cookie_attributes(&header);
        assert!(attributes.contains(&"httponly".to_owned()), "{header}");
        assert!(
            attributes.contains(&"samesite=strict".to_owned()),
            "{header}"
        );
        assert!(attributes.contains(&"path=/".to_owned()), "{header}");
        assert!(
            !attributes.contains(&"secure".to_owned()),
            "Secure on an http base URL: {header}"
        );
        assert!(
            attributes
                .iter()
                .any(|a| a.starts_with("max-age=") || a.starts_with("expires=")),
            "a session cookie must expire: {header}"
        );
    }

    let response = client
        .get(controller.url("/auth/logged_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let me = json(response).await;
    assert_eq!(me["username"], "admin", "{me}");
    for field in ["given_name", "family_name", "email"] {
        assert!(me.get(field).is_some(), "{field} missing from {me}");
    }
    let response = client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let response = client
        .get(controller.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/");
    let removed = set_cookies(response.headers());
    for name in ["session-id", "session-token"] {
        assert!(
            removed.iter().any(|(n, v)| n == name && v.is_empty()),
            "{name} not removed: {removed:?}"
        );
    }

    let response = client
        .get(controller.url("/auth/logged_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await, json!({"detail": "No valid session"}));

    let methods = anonymous()
        .get(controller.url("/auth/auth/methods"))
        .send()
        .await
        .unwrap();
    assert_eq!(methods.status(), 200);
    assert_eq!(json(methods).await, json!({"basic": true, "oauth2": false}));
}

#[tokio::test]
async fn logout_deletes_the_session_even_if_the_cookies_were_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let copied = session.cookie_header();
    let with_copy = || {
        anonymous()
            .get(controller.url("/auth/logged_in"))
            .header("cookie", copied.clone())
    };
    assert_eq!(with_copy().send().await.unwrap().status(), 200);
    let response = session
        .client
        .get(controller.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(with_copy().send().await.unwrap().status(), 401);
}

#[tokio::test]
async fn login_redirect_stays_on_this_site() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let password = controller.password();
    for (redirect, expected) in [
        (Some("//evil.example"), "/overview"),
        (Some("https://evil.example/"), "/overview"),
        (Some("/\\evil.example"), "/overview"),
        (None, "/overview"),
        (Some("/devices"), "/devices"),
    ] {
        let mut form = vec![("username", "admin"), ("password", password.as_str())];
        if let Some(redirect) = redirect {
            form.push(("redirect", redirect));
        }
        let response = anonymous()
            .post(controller.url("/auth/login/basic"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{redirect:?}");
        assert_eq!(
            response.headers()["location"],
            expected,
            "redirect {redirect:?}"
        );
        assert!(set_cookie_header(response.headers(), "session-id").is_some());
    }
}

#[tokio::test]
async fn an_https_base_url_makes_the_cookies_secure() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start_with(
        &tmp.path().join("data"),
        &["--base-url", "https://thymis.example.com"],
    );
    let response = anonymous()
        .post(controller.url("/auth/login/basic"))
        .form(&[("username", "admin"), ("password", &controller.password())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    for name in ["session-id", "session-token"] {
        let header = set_cookie_header(response.headers(), name)
            .unwrap_or_else(|| panic!("no {name} cookie"));
        let attributes = cookie_attributes(&header);
        assert!(attributes.contains(&"secure".to_owned()), "{header}");
        assert!(attributes.contains(&"httponly".to_owned()), "{header}");
        assert!(
            attributes.contains(&"samesite=strict".to_owned()),
            "{header}"
        );
    }
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let session = controller.login_session().await;
    let logged_in = || session.client.get(controller.url("/auth/logged_in")).send();
    assert_eq!(logged_in().await.unwrap().status(), 200);

    // Move the session's expiry into the past, in the store's own timestamp format.
    let db = rusqlite::Connection::open(data.join("thymis.sqlite")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let expires_at: String = db
        .query_row(
            "SELECT expires_at FROM sessions WHERE id = ?1",
            [&session.id],
            |row| row.get(0),
        )
        .expect("the session is not in the sessions table");
    let expires = chrono::DateTime::parse_from_rfc3339(&expires_at)
        .unwrap_or_else(|err| panic!("expires_at {expires_at:?}: {err}"));
    let lifetime = expires.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        lifetime > chrono::Duration::hours(23) && lifetime <= chrono::Duration::days(1),
        "a session should last one day, not {lifetime}"
    );
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let changed = db
        .execute(
            "UPDATE sessions SET expires_at = ?1 WHERE id = ?2",
            [&past, &session.id],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(db);

    let response = logged_in().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await, json!({"detail": "No valid session"}));
    let response = session
        .client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();
    let attempt = |password: String| {
        client
            .post(controller.url("/auth/login/basic"))
            .form(&[("username", "admin".to_owned()), ("password", password)])
            .send()
    };
    for i in 0..5 {
        let response = attempt(format!("wrong-{i}")).await.unwrap();
        assert_eq!(response.status(), 303, "attempt {}", i + 1);
        assert_eq!(
            response.headers()["location"],
            "/login?authError=credentials"
        );
    }
    // Even the right password is refused now.
    let response = attempt(controller.password()).await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("429 without Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is not a number of seconds");
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert!(set_cookie_header(response.headers(), "session-id").is_none());
    let body = json(response).await;
    assert!(body["detail"].is_string(), "{body}");
    let response = attempt(controller.password()).await.unwrap();
    assert_eq!(response.status(), 429, "the limit must last");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failed_logins_stay_within_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let attempts: Vec<_> = (0..200)
        .map(|i| {
            let url = controller.url("/auth/login/basic");
            tokio::spawn(async move {
                anonymous()
                    .post(url)
                    .form(&[
                        ("username", "admin".to_owned()),
                        ("password", format!("w{i}")),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut evaluated = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            303 => evaluated += 1,
            429 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(
        evaluated <= 5,
        "{evaluated} wrong passwords were checked in one burst; the limit is 5"
    );
}

#[tokio::test]
async fn four_failures_do_not_lock_out_the_right_password() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();
    for i in 0..4 {
        let response = client
            .post(controller.url("/auth/login/basic"))
            .form(&[
                ("username", "admin".to_owned()),
                ("password", format!("x{i}")),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
    }
    let response = client
        .post(controller.url("/auth/login/basic"))
        .form(&[("username", "admin"), ("password", &controller.password())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(set_cookie_header(response.headers(), "session-id").is_some());
}

/// Whether `text` contains a run of at least 64 hex digits (a token or a SHA-256 hash).
fn has_long_hex_run(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            run += 1;
            if run >= 64 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn database_bytes(data: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(content) = std::fs::read(data.join(format!("thymis.sqlite{suffix}"))) {
            bytes.extend(content);
        }
    }
    bytes
}

#[tokio::test]
async fn api_tokens_work_as_bearer_until_revoked_and_are_never_stored_or_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let session = controller.login().await;

    let response = session
        .post(controller.url("/api/tokens"))
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let created = json(response).await;
    let token = created["token"].as_str().expect("no token").to_owned();
    let id = created["id"].as_str().expect("no id").to_owned();
    assert_eq!(created["name"], "ci");
    assert!(token.len() >= 32, "short token {token:?}");

    let bearer = |token: &str| {
        anonymous()
            .get(controller.url("/api/state"))
            .bearer_auth(token)
            .send()
    };
    let response = bearer(&token).await.unwrap();
    assert_eq!(response.status(), 200);
    let state = json(response).await;
    assert!(state["configs"].is_array(), "{state}");
    let response = bearer(&format!("{token}x")).await.unwrap();
    assert_eq!(response.status(), 401, "a wrong token must not work");
    // A token cannot mint further tokens (they would outlive its revocation).
    let response = anonymous()
        .post(controller.url("/api/tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "child"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // The token is not a session either.
    let response = anonymous()
        .get(controller.url("/api/state"))
        .header("cookie", format!("session-id={id}; session-token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    // Listed by id and name, never with its value or hash.
    let response = session
        .get(controller.url("/api/tokens"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let list: Value = serde_json::from_str(&text).unwrap();
    let entries = list.as_array().expect("token list is not an array");
    let entry = entries
        .iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap_or_else(|| panic!("token {id} not listed: {text}"));
    assert_eq!(entry["name"], "ci");
    assert!(entry["revoked_at"].is_null(), "{entry}");
    assert!(!text.contains(&token), "the list shows the token: {text}");
    assert!(!has_long_hex_run(&text), "the list shows a hash: {text}");
    for key in entry.as_object().unwrap().keys() {
        assert!(
            !key.contains("hash") && key != "token",
            "the list has a field {key:?}: {text}"
        );
    }
    // The bearer token can list tokens too (it is a full API caller).
    let response = anonymous()
        .get(controller.url("/api/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Not in the database in plaintext (the record itself is there).
    let bytes = database_bytes(&data);
    assert!(
        contains_bytes(&bytes, id.as_bytes()),
        "the token record is not in the database files; the scan proves nothing"
    );
    assert!(
        !contains_bytes(&bytes, token.as_bytes()),
        "the token is stored in plaintext"
    );

    // Revoked: the bearer stops working at once.
    let response = session
        .delete(controller.url(&format!("/api/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = bearer(&token).await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(json(response).await, json!({"detail": "No valid session"}));
    let response = session
        .delete(controller.url(&format!("/api/tokens/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "revoking twice");
    assert!(json(response).await["detail"].is_string());
    let list = json(
        session
            .get(controller.url("/api/tokens"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id.as_str())
        .cloned()
        .unwrap_or(Value::Null);
    assert!(
        entry.is_null() || !entry["revoked_at"].is_null(),
        "a revoked token is listed as active: {entry}"
    );
    let bytes = database_bytes(&data);
    assert!(!contains_bytes(&bytes, token.as_bytes()));
}

#[tokio::test]
async fn session_secrets_and_the_password_are_not_stored_in_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let session = controller.login_session().await;
    let bytes = database_bytes(&data);
    assert!(
        contains_bytes(&bytes, session.id.as_bytes()),
        "the session is not in the database files; the scan proves nothing"
    );
    assert!(
        !contains_bytes(&bytes, session.token.as_bytes()),
        "the session token is stored in plaintext"
    );
    assert!(
        !contains_bytes(&bytes, controller.password().as_bytes()),
        "the password is in the database"
    );
}

#[tokio::test]
async fn token_names_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login().await;
    for name in ["", "   ", "a\nb"] {
        let response = session
            .post(controller.url("/api/tokens"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "name {name:?}");
        assert!(json(response).await["detail"].is_string());
    }
    let list = json(
        session
            .get(controller.url("/api/tokens"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(list, json!([]));
}

const PUBLIC: [&str; 3] = ["/auth/login/basic", "/auth/auth/methods", "/auth/logout"];

const REQUIRED_PATHS: [&str; 12] = [
    "/api/state",
    "/api/available_modules",
    "/api/repo_status",
    "/api/action/commit",
    "/api/history",
    "/api/history/diff",
    "/api/history/revert-commit",
    "/api/notification",
    "/auth/login/basic",
    "/auth/logout",
    "/auth/logged_in",
    "/auth/auth/methods",
];

/// The path with every `{parameter}` replaced by a random UUID.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("unclosed path parameter") + start;
        out.push_str(&uuid::Uuid::new_v4().to_string());
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn is_websocket(operation: &Value) -> bool {
    operation["responses"].get("101").is_some()
}

#[tokio::test]
async fn every_documented_route_refuses_an_anonymous_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();
    let response = client
        .get(controller.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/openapi.json is public");
    let doc = json(response).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "not OpenAPI 3: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("no paths");
    for required in REQUIRED_PATHS {
        assert!(paths.contains_key(required), "{required} is not documented");
    }

    let bogus_cookie = format!(
        "session-id={}; session-token={}",
        uuid::Uuid::new_v4(),
        "ab".repeat(32)
    );
    let mut checked = 0;
    let mut websockets = 0;
    for (path, item) in paths {
        let url_path = concrete(path);
        for (method, operation) in item.as_object().unwrap() {
            let Ok(method) = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue; // `parameters`, `summary`, …
            };
            // `/agent/*` is for devices: no session, they authenticate with agent tokens.
            if PUBLIC.contains(&path.as_str()) || path.starts_with("/agent/") {
                let response = client
                    .request(method.clone(), controller.url(&url_path))
                    .send()
                    .await
                    .unwrap();
                assert_ne!(response.status(), 401, "{method} {path} is public");
                assert!(
                    !response.status().is_server_error(),
                    "{method} {path}: {}",
                    response.status()
                );
                continue;
            }
            if is_websocket(operation) {
                websockets += 1;
                let status =
                    ws_refusal_status(ws_request(&controller.ws_url(&url_path), &[])).await;
                assert_eq!(status, 401, "anonymous WebSocket {path}");
                let status = ws_refusal_status(ws_request(
                    &controller.ws_url(&url_path),
                    &[("cookie", &bogus_cookie)],
                ))
                .await;
                assert_eq!(status, 401, "WebSocket {path} with a forged session");
            }
            let attempts: [(&str, Option<(&str, String)>); 3] = [
                ("anonymous", None),
                ("forged session", Some(("cookie", bogus_cookie.clone()))),
                (
                    "unknown bearer",
                    Some(("authorization", format!("Bearer {}", "cd".repeat(32)))),
                ),
            ];
            for (who, header) in attempts {
                let mut request = client.request(method.clone(), controller.url(&url_path));
                if method != reqwest::Method::GET && method != reqwest::Method::HEAD {
                    request = request.json(&json!({}));
                }
                if let Some((name, value)) = header {
                    request = request.header(name, value);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                assert_eq!(status, 401, "{who} {method} {path} ({url_path})");
                if method != reqwest::Method::HEAD {
                    assert_eq!(
                        json(response).await,
                        json!({"detail": "No valid session"}),
                        "{who} {method} {path}"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 3 * 12, "only {checked} requests checked");
    assert!(websockets >= 1, "no WebSocket route found in the document");
    // A session opens what was refused (so the 401s above are about authentication).
    let session = controller.login().await;
    let response = session
        .get(controller.url("/api/available_modules"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_openapi_document_is_served_twice_and_browsable() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();
    let main = json(
        client
            .get(controller.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let response = client
        .get(controller.url("/docs/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json(response).await, main);

    let response = client.get(controller.url("/docs/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap();
    assert!(page.to_ascii_lowercase().contains("<html"), "{page}");

    // `/docs` itself leads to the page.
    let response = client.get(controller.url("/docs")).send().await.unwrap();
    assert!(
        response.status() == 200 || response.status().is_redirection(),
        "/docs: {}",
        response.status()
    );
}

#[tokio::test]
async fn state_changes_from_a_foreign_origin_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login().await;
    let response = session
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    let revision = etag(&response);
    let new_state = state_with_configs(&["kiosk-1"]);

    // Foreign origin: refused before anything happens.
    let response = session
        .patch(controller.url("/api/state"))
        .header("origin", "https://evil.example")
        .json(&new_state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(json(response).await["detail"].is_string());
    let response = session
        .post(controller.url("/api/action/commit?message=evil"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(json(response).await["detail"].is_string());
    let response = session
        .post(controller.url("/api/tokens"))
        .header("origin", "null")
        .json(&json!({"name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "Origin: null");
    let response = session
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        etag(&response),
        revision,
        "a refused PATCH changed the state"
    );
    assert_eq!(
        git(&controller.repo(), &["rev-list", "--count", "HEAD"]),
        "1",
        "a refused commit was made"
    );

    // Nor can another site log a browser in (login CSRF).
    let response = anonymous()
        .post(controller.url("/auth/login/basic"))
        .header("origin", "https://evil.example")
        .form(&[("username", "admin"), ("password", &controller.password())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "cross-site login");
    assert!(set_cookie_header(response.headers(), "session-id").is_none());

    // The controller's own origin passes.
    let response = session
        .patch(controller.url("/api/state"))
        .header("origin", controller.origin())
        .json(&new_state)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = session
        .post(controller.url("/api/action/commit?message=mine"))
        .header("origin", controller.origin())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        git(&controller.repo(), &["log", "-1", "--format=%s"]),
        "mine"
    );
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let cookie = session.cookie_header();
    let url = controller.ws_url("/api/notification");
    let status = ws_refusal_status(ws_request(
        &url,
        &[("cookie", &cookie), ("origin", "https://evil.example")],
    ))
    .await;
    assert_eq!(status, 403);

    // The same request from the controller's own page is accepted.
    let origin = controller.origin();
    let (mut socket, response) = tokio_tungstenite::connect_async(ws_request(
        &url,
        &[("cookie", &cookie), ("origin", &origin)],
    ))
    .await
    .expect("own-origin WebSocket refused");
    assert_eq!(response.status(), 101);
    let _ = socket.close(None).await;
}

#[tokio::test]
async fn a_failed_login_keeps_the_page_to_return_to_but_never_a_foreign_one() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = anonymous();
    for (redirect, location) in [
        (
            "/configs/lobby/configure?module=1",
            "/login?authError=credentials&redirect=/configs/lobby/configure%3Fmodule%3D1",
        ),
        ("k1", "/login?authError=credentials&redirect=k1"),
        ("//evil.example/x", "/login?authError=credentials"),
        ("https://evil.example", "/login?authError=credentials"),
    ] {
        let response = client
            .post(controller.url("/auth/login/basic"))
            .form(&[
                ("username", "admin"),
                ("password", "wrong"),
                ("redirect", redirect),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{redirect}");
        assert_eq!(response.headers()["location"], location, "{redirect}");
    }
}
