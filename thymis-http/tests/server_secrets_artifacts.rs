//! Secrets, artifacts and the controller settings over real HTTP: secrets are age-encrypted to
//! the controller key and never answered or stored in plaintext, artifacts are git-tracked files
//! that no name can move out of `artifacts/`, oversize bodies are refused, settings persist, and
//! every change reaches the notification socket. Each test runs its own controller on its own
//! data directory.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{git, json, open_notifications, wait_for_invalidation, Controller};
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The `detail` of an error answer, as text (a list of problems is rendered as JSON).
fn detail(body: &Value) -> String {
    match &body["detail"] {
        Value::String(text) => text.clone(),
        Value::Null => panic!("no detail in {body}"),
        other => other.to_string(),
    }
}

/// Asserts an error answer: the status and a non-empty `{"detail": …}`; returns the detail.
async fn expect_error(response: reqwest::Response, status: u16, what: &str) -> String {
    let got = response.status().as_u16();
    let body = json(response).await;
    assert_eq!(got, status, "{what}: {body}");
    let text = detail(&body);
    assert!(!text.trim().is_empty(), "{what}: empty detail in {body}");
    text
}

async fn create_secret(
    controller: &Controller,
    client: &reqwest::Client,
    body: &Value,
) -> reqwest::Response {
    client
        .post(controller.url("/api/secrets"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Creates a secret that must be accepted; returns the answer.
async fn created_secret(controller: &Controller, client: &reqwest::Client, body: &Value) -> Value {
    let response = create_secret(controller, client, body).await;
    let status = response.status();
    let answer = json(response).await;
    assert_eq!(status, 200, "creating {}: {answer}", body["display_name"]);
    answer
}

async fn list_secrets(controller: &Controller, client: &reqwest::Client) -> (Value, String) {
    let response = client
        .get(controller.url("/api/secrets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    assert!(value.is_object(), "the secret list is not a map: {text}");
    (value, text)
}

async fn patch_secret(
    controller: &Controller,
    client: &reqwest::Client,
    id: &str,
    body: &Value,
) -> reqwest::Response {
    client
        .patch(controller.url(&format!("/api/secrets/{id}")))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The bytes of the database files (`thymis.sqlite`, `-wal`, `-shm`) by file name.
fn database_files(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = data.join(format!("thymis.sqlite{suffix}"));
        if let Ok(bytes) = std::fs::read(&path) {
            files.insert(
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            );
        }
    }
    assert!(
        files.contains_key("thymis.sqlite"),
        "no thymis.sqlite in {}",
        data.display()
    );
    files
}

/// The stored ciphertext of a secret, read straight from the database.
fn stored_ciphertext(data: &Path, id: &str) -> Vec<u8> {
    let db = rusqlite::Connection::open_with_flags(
        data.join("thymis.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.query_row("SELECT value_enc FROM secrets WHERE id = ?1", [id], |row| {
        row.get(0)
    })
    .unwrap_or_else(|err| panic!("no stored value for secret {id}: {err}"))
}

/// Decrypts an age file with the `age` CLI and the controller's key (`<data>/id_thymis`).
fn age_decrypt(data: &Path, ciphertext: &[u8]) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), ciphertext).unwrap();
    let output = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(data.join("id_thymis"))
        .arg(file.path())
        .output()
        .expect("cannot run `age` (Debian package age)");
    assert!(
        output.status.success(),
        "age -d failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Checks that the stored ciphertext of secret `id` is an age file to an SSH ed25519 recipient
/// that the controller key decrypts to `plaintext`.
fn assert_stored_encrypted(data: &Path, id: &str, plaintext: &[u8]) {
    let ciphertext = stored_ciphertext(data, id);
    assert!(
        ciphertext.starts_with(b"age-encryption.org/v1\n"),
        "secret {id} is not stored as an age file"
    );
    assert!(
        contains(&ciphertext, b"\n-> ssh-ed25519 "),
        "secret {id} is not encrypted to an SSH ed25519 recipient"
    );
    assert!(!contains(&ciphertext, plaintext));
    assert_eq!(
        age_decrypt(data, &ciphertext),
        plaintext,
        "secret {id} does not decrypt to its value"
    );
}

/// A multipart form with one `files` part per `(file name, bytes)`, the names sent as given
/// (reqwest would percent-encode `/` otherwise).
fn upload_form(files: &[(&str, &[u8])]) -> Form {
    let mut form = Form::new().percent_encode_noop();
    for (name, bytes) in files {
        form = form.part(
            "files",
            Part::bytes(bytes.to_vec())
                .file_name(name.to_string())
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    }
    form
}

async fn upload(
    controller: &Controller,
    client: &reqwest::Client,
    files: &[(&str, &[u8])],
) -> reqwest::Response {
    client
        .post(controller.url("/api/artifacts/"))
        .multipart(upload_form(files))
        .send()
        .await
        .unwrap()
}

async fn list_artifacts(controller: &Controller, client: &reqwest::Client) -> Vec<Value> {
    let response = client
        .get(controller.url("/api/artifacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    match json(response).await {
        Value::Array(items) => items,
        other => panic!("the artifact list is not an array: {other}"),
    }
}

fn artifact_names(list: &[Value]) -> Vec<String> {
    list.iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn download_artifact(
    controller: &Controller,
    client: &reqwest::Client,
    name: &str,
) -> (u16, Vec<u8>) {
    let response = client
        .get(controller.url(&format!("/api/artifacts/{name}")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// Every file below `root` with its size, except the database files (their size changes with
/// every request through the audit log).
fn tree(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut files = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            if metadata.is_dir() {
                pending.push(path);
            } else if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("thymis.sqlite")
            {
                files.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    metadata.len(),
                );
            }
        }
    }
    files
}

// --- Raw HTTP, for paths a URL library would normalise and for bodies too big to hold ----------

/// An answer read off a raw connection.
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "status {}: body is not JSON ({err}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
        data = &data[line_end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&data[..size.min(data.len())]);
        data = &data[(size + 2).min(data.len())..];
    }
    body
}

fn parse_response(data: &[u8]) -> RawResponse {
    let end = find(data, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "no complete HTTP answer: {:?}",
            String::from_utf8_lossy(&data[..data.len().min(2000)])
        )
    });
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let raw_body = &data[end + 4..];
    let mut response = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    response.body = if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(raw_body)
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().unwrap();
        raw_body[..length.min(raw_body.len())].to_vec()
    } else {
        raw_body.to_vec()
    };
    response
}

/// Sends one HTTP/1.1 request exactly as given (`request_line` like `GET /x HTTP/1.1`, no URL
/// normalisation) over a new connection with `Connection: close`; `body` then writes the body
/// in pieces. The answer is read at the same time, and write errors are ignored, since a server
/// may answer and close before it has read everything (e.g. a 413).
fn raw_request<F>(
    addr: SocketAddr,
    request_line: &str,
    headers: &[(&str, String)],
    body: F,
) -> RawResponse
where
    F: FnOnce(&mut TcpStream) -> std::io::Result<()>,
{
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let read_thread = std::thread::spawn(move || {
        let mut data = Vec::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buffer[..n]),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                // A reset after the answer (the server closed with our body unread).
                Err(_) => break,
            }
        }
        data
    });
    let mut head = format!("{request_line}\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let written = stream
        .write_all(head.as_bytes())
        .and_then(|()| body(&mut stream))
        .and_then(|()| stream.flush());
    if written.is_err() {
        // The server stopped reading; whatever it answered is on its way.
        let _ = stream.shutdown(Shutdown::Write);
    }
    let data = read_thread.join().unwrap();
    parse_response(&data)
}

/// A bodiless raw request (see [`raw_request`]) with the session cookie.
async fn raw_simple(
    controller: &Controller,
    cookie: &str,
    method: &str,
    target: &str,
) -> RawResponse {
    let addr = controller.addr;
    let request_line = format!("{method} {target} HTTP/1.1");
    let cookie = cookie.to_owned();
    tokio::task::spawn_blocking(move || {
        raw_request(addr, &request_line, &[("Cookie", cookie)], |_| Ok(()))
    })
    .await
    .unwrap()
}

// --- Large deterministic content, generated block by block -----------------------------------

const BLOCK: usize = 1024 * 1024;

/// Block `index` of a large pseudo-random file (xorshift, so blocks differ from each other).
fn block(index: u64) -> Vec<u8> {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = Vec::with_capacity(BLOCK);
    for _ in 0..BLOCK / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes
}

/// Compares a stream of pieces with the blocks `0..blocks`, one block in memory at a time.
struct BlockCheck {
    blocks: u64,
    index: u64,
    current: Vec<u8>,
    position: usize,
    seen: u64,
    matches: bool,
}

impl BlockCheck {
    fn new(blocks: u64) -> Self {
        BlockCheck {
            blocks,
            index: 0,
            current: block(0),
            position: 0,
            seen: 0,
            matches: true,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        while self.matches && !bytes.is_empty() {
            if self.position == BLOCK {
                self.index += 1;
                if self.index >= self.blocks {
                    self.matches = false;
                    return;
                }
                self.current = block(self.index);
                self.position = 0;
            }
            let n = bytes.len().min(BLOCK - self.position);
            if bytes[..n] != self.current[self.position..self.position + n] {
                self.matches = false;
                return;
            }
            self.position += n;
            bytes = &bytes[n..];
        }
    }

    /// Whether exactly the blocks were fed.
    fn complete(&self) -> bool {
        self.matches && self.seen == self.blocks * BLOCK as u64
    }
}

// --- The notification socket (as in server_notifications.rs) ----------------------------------

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn secrets_are_age_encrypted_at_rest_and_never_answered() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let client = controller.login().await;

    // Every value carries the marker, so no occurrence of the marker may show up anywhere.
    let marker = format!("plaintext{}", uuid::Uuid::new_v4().simple());
    let single = format!("single-{marker}");
    let multi = format!("multi-{marker}-first\nmulti-{marker}-second\n");
    let env = format!("API_KEY=env-{marker}\n# a comment\n\nOTHER_KEY=env2-{marker}\n");
    let file: Vec<u8> = [
        b"-----BEGIN KEY-----\n".as_slice(),
        format!("file-{marker}\n").as_bytes(),
        &[0, 1, 2, 0xfe, 0xff],
        b"\n-----END KEY-----\n",
    ]
    .concat();
    // The display names are stored in plaintext: they show that the scan reads the rows.
    let name_tag = uuid::Uuid::new_v4().simple().to_string();

    let requests = [
        (
            json!({"display_name": format!("Wi-Fi {name_tag}"), "type": "single_line",
                   "value_str": single}),
            single.as_bytes().to_vec(),
        ),
        (
            json!({"display_name": "Banner", "type": "multi_line", "value_str": multi}),
            multi.as_bytes().to_vec(),
        ),
        (
            json!({"display_name": "Service env", "type": "env_list", "value_str": env,
                   "include_in_image": true}),
            env.as_bytes().to_vec(),
        ),
        (
            json!({"display_name": "TLS key", "type": "file", "value_b64": b64(&file),
                   "filename": "cert.pem"}),
            file.clone(),
        ),
    ];
    let mut created: Vec<(String, Vec<u8>, Value)> = Vec::new();
    for (request, value) in &requests {
        let response = create_secret(&controller, &client, request).await;
        assert_eq!(response.status(), 200, "{request}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(&marker),
            "a create answer holds the value: {text}"
        );
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer.get("value_str"), Some(&Value::Null), "{answer}");
        assert_eq!(answer["display_name"], request["display_name"], "{answer}");
        assert_eq!(answer["type"], request["type"], "{answer}");
        assert_eq!(answer["value_size"], value.len(), "{answer}");
        assert_eq!(
            answer["include_in_image"],
            request["include_in_image"].as_bool().unwrap_or(false),
            "{answer}"
        );
        assert_eq!(answer["processing_type"], "none", "{answer}");
        assert!(answer["created_at"].is_string(), "{answer}");
        assert!(answer["delete_at"].is_null(), "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        uuid::Uuid::parse_str(&id).unwrap();
        created.push((id, value.clone(), answer));
    }
    assert_eq!(created[3].2["filename"], "cert.pem");

    // The list: a map by id, without any value.
    let (list, text) = list_secrets(&controller, &client).await;
    assert!(!text.contains(&marker), "the list holds a value: {text}");
    assert!(
        !text.contains(&b64(&file)),
        "the list holds the file: {text}"
    );
    let listed = list.as_object().unwrap();
    assert_eq!(listed.len(), created.len(), "{list}");
    for (id, value, answer) in &created {
        let entry = &listed[id.as_str()];
        assert_eq!(entry["id"], id.as_str(), "{entry}");
        assert_eq!(entry.get("value_str"), Some(&Value::Null), "{entry}");
        assert_eq!(entry["value_size"], value.len(), "{entry}");
        assert_eq!(entry["display_name"], answer["display_name"], "{entry}");
    }

    // A file secret downloads as exactly its bytes, named; other kinds cannot be downloaded.
    let file_id = &created[3].0;
    let response = client
        .get(controller.url(&format!("/api/secrets/{file_id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .expect("no Content-Disposition")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(disposition.contains("cert.pem"), "{disposition}");
    assert_eq!(response.bytes().await.unwrap().as_ref(), file.as_slice());
    let single_id = &created[0].0;
    let response = client
        .get(controller.url(&format!("/api/secrets/{single_id}/download")))
        .send()
        .await
        .unwrap();
    let text = expect_error(response, 404, "download of a single_line secret").await;
    assert!(!text.contains(&marker), "{text}");

    // Not in the database files in plaintext (nor the file as base64) ...
    let files = database_files(&data);
    for (name, bytes) in &files {
        assert!(
            !contains(bytes, marker.as_bytes()),
            "a plaintext value is in {name}"
        );
        assert!(
            !contains(bytes, b64(&file).as_bytes()),
            "the file secret is in {name} as base64"
        );
        for (_, value, _) in &created {
            assert!(!contains(bytes, value), "a plaintext value is in {name}");
        }
    }
    // ... although the rows are there: the scan is meaningful.
    let all: Vec<u8> = files.values().flatten().copied().collect();
    for (id, _, _) in &created {
        assert!(
            contains(&all, id.as_bytes()),
            "secret id {id} not in the database files"
        );
    }
    assert!(
        contains(&all, name_tag.as_bytes()),
        "the secret rows are not in the scanned files"
    );

    // The stored ciphertext is age to the controller key: the real `age` CLI decrypts it.
    for (id, value, _) in &created {
        assert_stored_encrypted(&data, id, value);
    }
}

#[tokio::test]
async fn invalid_secrets_are_refused_with_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let marker = format!("plaintext{}", uuid::Uuid::new_v4().simple());

    let cases = [
        (
            "single_line with a newline",
            json!({"display_name": "A", "type": "single_line",
                   "value_str": format!("first\nsecond-{marker}")}),
            400,
            Some("line break"),
        ),
        (
            "single_line with a carriage return",
            json!({"display_name": "A", "type": "single_line",
                   "value_str": format!("first\rsecond-{marker}")}),
            400,
            Some("line break"),
        ),
        (
            "env_list with a bad name",
            json!({"display_name": "A", "type": "env_list",
                   "value_str": format!("GOOD=1\n1BAD=x{marker}\n")}),
            400,
            Some("line 2"),
        ),
        (
            "empty display name",
            json!({"display_name": "", "type": "single_line", "value_str": marker}),
            400,
            Some("name"),
        ),
        (
            "blank display name",
            json!({"display_name": "   ", "type": "single_line", "value_str": marker}),
            400,
            Some("name"),
        ),
        (
            "no value",
            json!({"display_name": "A", "type": "single_line"}),
            400,
            None,
        ),
        (
            "bad base64",
            json!({"display_name": "A", "type": "file", "value_b64": "%%% not base64 %%%",
                   "filename": "a.bin"}),
            400,
            Some("base64"),
        ),
        (
            "a file name that is a path",
            json!({"display_name": "A", "type": "file", "value_b64": b64(marker.as_bytes()),
                   "filename": "../id_thymis"}),
            400,
            None,
        ),
    ];
    for (what, request, status, needle) in &cases {
        let response = create_secret(&controller, &client, request).await;
        let text = expect_error(response, *status, what).await;
        if let Some(needle) = needle {
            assert!(text.contains(needle), "{what}: {text:?} lacks {needle:?}");
        }
        assert!(
            !text.contains(&marker),
            "{what}: the error echoes the value: {text}"
        );
    }

    // Values over the size limits (10 MiB for files, 1 MiB for text).
    let big_file = vec![b'x'; 10 * 1024 * 1024 + 1];
    let response = create_secret(
        &controller,
        &client,
        &json!({"display_name": "Big", "type": "file", "value_b64": b64(&big_file),
                "filename": "big.bin"}),
    )
    .await;
    let text = expect_error(response, 400, "a file secret over 10 MiB").await;
    assert!(text.contains("limit"), "{text}");
    let big_text = "y".repeat(1024 * 1024 + 1);
    let response = create_secret(
        &controller,
        &client,
        &json!({"display_name": "Big", "type": "multi_line", "value_str": big_text}),
    )
    .await;
    let text = expect_error(response, 400, "a text secret over 1 MiB").await;
    assert!(text.contains("limit"), "{text}");

    // An unknown type is a client error too.
    for kind in ["password", "", "FILE"] {
        let response = create_secret(
            &controller,
            &client,
            &json!({"display_name": "A", "type": kind, "value_str": "x"}),
        )
        .await;
        let status = response.status();
        assert!(status.is_client_error(), "type {kind:?}: {status}");
        let body = json(response).await;
        assert!(!detail(&body).is_empty(), "type {kind:?}: {body}");
    }

    let (list, _) = list_secrets(&controller, &client).await;
    assert_eq!(list, json!({}), "a refused secret was stored");
}

#[tokio::test]
async fn secrets_are_patched_field_by_field_and_deleted() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let client = controller.login().await;
    let marker = format!("plaintext{}", uuid::Uuid::new_v4().simple());
    let first_value = format!("first-{marker}");

    let created = created_secret(
        &controller,
        &client,
        &json!({"display_name": "DB password", "type": "single_line",
                "value_str": first_value, "include_in_image": true}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["include_in_image"], true);

    // Only the name changes; include_in_image stays (upstream would reset it).
    let response = patch_secret(
        &controller,
        &client,
        &id,
        &json!({"display_name": "Database password"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let patched = json(response).await;
    assert_eq!(patched["id"], id.as_str());
    assert_eq!(patched["display_name"], "Database password", "{patched}");
    assert_eq!(patched["include_in_image"], true, "{patched}");
    assert_eq!(patched["type"], "single_line", "{patched}");
    assert_eq!(patched["value_size"], first_value.len(), "{patched}");
    assert_eq!(patched["processing_type"], "none", "{patched}");
    assert_eq!(patched.get("value_str"), Some(&Value::Null), "{patched}");
    assert_stored_encrypted(&data, &id, first_value.as_bytes());
    let (list, _) = list_secrets(&controller, &client).await;
    assert_eq!(list[id.as_str()]["display_name"], "Database password");
    assert_eq!(list[id.as_str()]["include_in_image"], true);

    // A new value: re-encrypted, the rest kept.
    let second_value = format!("second-{marker}!");
    let response = patch_secret(
        &controller,
        &client,
        &id,
        &json!({"value_str": second_value}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(&marker), "{text}");
    let patched: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(patched["value_size"], second_value.len(), "{patched}");
    assert_eq!(patched["display_name"], "Database password", "{patched}");
    assert_eq!(patched["include_in_image"], true, "{patched}");
    assert_stored_encrypted(&data, &id, second_value.as_bytes());

    // Turning the flag off keeps the name.
    let response = patch_secret(
        &controller,
        &client,
        &id,
        &json!({"include_in_image": false}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let patched = json(response).await;
    assert_eq!(patched["include_in_image"], false, "{patched}");
    assert_eq!(patched["display_name"], "Database password", "{patched}");

    // An invalid new value is refused and the old one kept.
    let response = patch_secret(
        &controller,
        &client,
        &id,
        &json!({"value_str": format!("a\nb-{marker}")}),
    )
    .await;
    let text = expect_error(response, 400, "PATCH with a line break").await;
    assert!(!text.contains(&marker), "{text}");
    assert_stored_encrypted(&data, &id, second_value.as_bytes());
    // Changing the kind re-checks the stored value: a single line is no valid env_list.
    let response = patch_secret(&controller, &client, &id, &json!({"type": "env_list"})).await;
    expect_error(response, 400, "PATCH of the kind to env_list").await;

    // Ids that are no UUIDs are client errors.
    let response = patch_secret(
        &controller,
        &client,
        "not-a-uuid",
        &json!({"display_name": "x"}),
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = client
        .get(controller.url("/api/secrets/not-a-uuid/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Unknown secrets.
    let unknown = uuid::Uuid::new_v4().to_string();
    let response = patch_secret(
        &controller,
        &client,
        &unknown,
        &json!({"display_name": "x"}),
    )
    .await;
    expect_error(response, 404, "PATCH of an unknown id").await;
    let response = client
        .get(controller.url(&format!("/api/secrets/{unknown}/download")))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "download of an unknown id").await;

    // Delete: gone from the list; a second delete, a PATCH and a download find nothing.
    let other = created_secret(
        &controller,
        &client,
        &json!({"display_name": "Other", "type": "multi_line", "value_str": "keep"}),
    )
    .await;
    let response = client
        .delete(controller.url(&format!("/api/secrets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (list, _) = list_secrets(&controller, &client).await;
    let ids: Vec<&String> = list.as_object().unwrap().keys().collect();
    assert_eq!(ids, [other["id"].as_str().unwrap()], "{list}");
    let response = client
        .delete(controller.url(&format!("/api/secrets/{id}")))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "second DELETE").await;
    let response = patch_secret(&controller, &client, &id, &json!({"display_name": "x"})).await;
    expect_error(response, 404, "PATCH of a deleted secret").await;
}

/// Upstream's secret dialog fills its value field from `value_str`, which this server never
/// sends, so renaming a secret there PATCHes `value_str: ""` (and `""` for an empty env list).
/// Upstream ignores empty strings in a PATCH (spec/http-api.md §2.4); the value must survive.
#[tokio::test]
async fn patching_with_empty_strings_keeps_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let client = controller.login().await;
    for (kind, value) in [
        ("single_line", "hunter2"),
        ("multi_line", "line one\nline two"),
        ("env_list", "API_KEY=abc"),
    ] {
        let created = created_secret(
            &controller,
            &client,
            &json!({"display_name": "Before", "type": kind, "value_str": value}),
        )
        .await;
        let id = created["id"].as_str().unwrap();
        // Exactly what upstream's dialog sends when only the name is changed.
        let response = patch_secret(
            &controller,
            &client,
            id,
            &json!({"display_name": "After", "type": kind, "value_str": "",
                    "include_in_image": false, "processing_type": "none"}),
        )
        .await;
        assert_eq!(response.status(), 200, "{kind}");
        let patched = json(response).await;
        assert_eq!(patched["display_name"], "After", "{patched}");
        assert_eq!(
            patched["value_size"],
            value.len(),
            "{kind}: the value was replaced: {patched}"
        );
        assert_stored_encrypted(&data, id, value.as_bytes());
        let response = patch_secret(&controller, &client, id, &json!({"value_b64": ""})).await;
        assert_eq!(response.status(), 200, "{kind}");
        assert_stored_encrypted(&data, id, value.as_bytes());
    }
}

#[tokio::test]
async fn a_yescrypt_file_secret_downloads_as_a_hash() {
    assert!(
        Command::new("mkpasswd").arg("--help").output().is_ok(),
        "mkpasswd (Debian package whois) is needed"
    );
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let created = created_secret(
        &controller,
        &client,
        &json!({"display_name": "Root password", "type": "file",
                "value_str": format!("{password}\n"), "filename": "root.hash",
                "processing_type": "mkpasswd-yescrypt"}),
    )
    .await;
    assert_eq!(created["processing_type"], "mkpasswd-yescrypt", "{created}");
    let id = created["id"].as_str().unwrap();
    let response = client
        .get(controller.url(&format!("/api/secrets/{id}/download")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(disposition.contains("root.hash"), "{disposition}");
    let hash = String::from_utf8(response.bytes().await.unwrap().to_vec()).unwrap();
    assert!(hash.starts_with("$y$"), "not a yescrypt hash: {hash:?}");
    assert!(!hash.contains(&password), "{hash}");
    assert!(!hash.ends_with('\n'), "{hash:?}");
    // libc's crypt (through perl) checks the hash against the password, without the newline.
    let check = |candidate: &str| {
        let output = Command::new("perl")
            .args(["-e", "print crypt($ARGV[1], $ARGV[0])", &hash, candidate])
            .output()
            .expect("cannot run perl");
        String::from_utf8(output.stdout).unwrap()
    };
    assert_eq!(check(&password), hash, "the hash is not of the password");
    assert_ne!(check(&format!("{password}x")), hash);
}

// ---------------------------------------------------------------------------------------------
// Artifacts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn artifacts_upload_list_download_and_replace() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let repo = controller.repo();
    let hello = b"hello, devices\n".to_vec();
    let binary: Vec<u8> = (0..=255u8).cycle().take(5000).collect();

    let response = upload(
        &controller,
        &client,
        &[("hello.txt", &hello), ("data.bin", &binary)],
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer = json(response).await;
    assert_eq!(
        answer["stored"],
        json!(["hello.txt", "data.bin"]),
        "{answer}"
    );

    let list = list_artifacts(&controller, &client).await;
    assert_eq!(artifact_names(&list), ["data.bin", "hello.txt"], "{list:?}");
    for (entry, (media_type, size)) in list.iter().zip([
        ("application/octet-stream", binary.len()),
        ("text/plain", hello.len()),
    ]) {
        assert_eq!(entry["media_type"], media_type, "{entry}");
        assert_eq!(entry["size"], size, "{entry}");
        for time in ["created_at", "modified_at"] {
            let text = entry[time].as_str().unwrap_or_else(|| panic!("{entry}"));
            chrono::DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|err| panic!("{time} {text:?}: {err}"));
        }
    }

    // Tracked by git (staged, not committed).
    let staged = git(&repo, &["ls-files", "--stage", "artifacts/"]);
    assert!(staged.contains("\tartifacts/hello.txt"), "{staged}");
    assert!(staged.contains("\tartifacts/data.bin"), "{staged}");
    let status = git(&repo, &["status", "--porcelain", "--", "artifacts"]);
    let mut status_lines: Vec<&str> = status.lines().collect();
    status_lines.sort();
    assert_eq!(
        status_lines,
        ["A  artifacts/data.bin", "A  artifacts/hello.txt"],
        "{status}"
    );

    // Download: exactly the bytes.
    let response = client
        .get(controller.url("/api/artifacts/data.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let disposition = response
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(disposition.contains("data.bin"), "{disposition:?}");
    assert_eq!(response.bytes().await.unwrap().as_ref(), binary.as_slice());
    assert_eq!(
        download_artifact(&controller, &client, "hello.txt").await,
        (200, hello.clone())
    );
    assert_eq!(
        download_artifact(&controller, &client, "missing.txt")
            .await
            .0,
        404
    );

    // Re-upload replaces.
    let replacement = b"replaced content, longer than before\n".to_vec();
    let response = upload(&controller, &client, &[("hello.txt", &replacement)]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        download_artifact(&controller, &client, "hello.txt").await,
        (200, replacement.clone())
    );
    let list = list_artifacts(&controller, &client).await;
    assert_eq!(artifact_names(&list), ["data.bin", "hello.txt"]);
    assert_eq!(list[1]["size"], replacement.len());
    assert_eq!(
        std::fs::read(repo.join("artifacts/hello.txt")).unwrap(),
        replacement
    );
    // The index has the new content.
    let staged_blob = git(&repo, &["show", ":artifacts/hello.txt"]);
    assert_eq!(staged_blob, String::from_utf8(replacement).unwrap().trim());

    // An upload without a `files` part is refused.
    let response = client
        .post(controller.url("/api/artifacts/"))
        .multipart(Form::new().text("other", "x"))
        .send()
        .await
        .unwrap();
    expect_error(response, 400, "upload without files").await;

    // A multipart body that ends before its closing boundary: a client error, and neither the
    // half-received file nor a temporary file stays behind.
    let boundary = "thymis-broken-upload";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"half.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nonly the first half"
    );
    let response = client
        .post(controller.url("/api/artifacts/"))
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let answer = json(response).await;
    assert!(status.is_client_error(), "{status}: {answer}");
    assert!(!detail(&answer).is_empty(), "{answer}");
    let mut entries: Vec<String> = std::fs::read_dir(repo.join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["data.bin", "hello.txt"]);
}

#[tokio::test]
async fn artifact_names_cannot_leave_the_artifacts_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let session = controller.login_session().await;
    let client = &session.client;
    let cookie = session.cookie_header();
    let repo = controller.repo();
    let response = upload(&controller, client, &[("keep.txt", b"keep")]).await;
    assert_eq!(response.status(), 200);
    let state_before = std::fs::read(repo.join("state.json")).unwrap();
    let tree_before = tree(&data);
    let outside_before = tree(tmp.path()).len();

    for name in [
        "../evil",
        "..",
        ".hidden",
        "a/b",
        "../../evil",
        "/etc/evil",
        "a\\b",
    ] {
        let response = upload(&controller, client, &[(name, b"evil")]).await;
        let text = expect_error(response, 403, &format!("upload as {name:?}")).await;
        assert!(text.contains("not a valid"), "upload as {name:?}: {text}");
    }

    for target in [
        "/api/artifacts/..%2Fstate.json",
        "/api/artifacts/%2e%2e",
        "/api/artifacts/..",
        "/api/artifacts/%2E%2E%2Fstate.json",
        "/api/artifacts/.git",
        "/api/artifacts/..%5Cstate.json",
    ] {
        for method in ["GET", "DELETE"] {
            let response = raw_simple(&controller, &cookie, method, target).await;
            assert_eq!(
                response.status,
                403,
                "{method} {target}: {:?}",
                String::from_utf8_lossy(&response.body)
            );
            let body = response.json();
            assert!(
                detail(&body).contains("not a valid"),
                "{method} {target}: {body}"
            );
            assert!(
                !contains(&response.body, b"\"configs\""),
                "{method} {target} answered the state"
            );
        }
    }

    // Renames to or from such names.
    for (from, to) in [
        ("keep.txt", "..%2Fx"),
        ("keep.txt", ".x"),
        ("..%2Fstate.json", "x"),
    ] {
        let response = client
            .post(controller.url(&format!("/api/artifacts/rename/{from}?new_name={to}")))
            .send()
            .await
            .unwrap();
        let text = expect_error(response, 403, &format!("rename {from} -> {to}")).await;
        assert!(
            text.contains("not a valid"),
            "rename {from} -> {to}: {text}"
        );
    }

    // Nothing was written or removed anywhere.
    assert_eq!(
        std::fs::read(repo.join("state.json")).unwrap(),
        state_before
    );
    assert_eq!(
        tree(&data),
        tree_before,
        "files changed in the data directory"
    );
    assert_eq!(tree(tmp.path()).len(), outside_before);
    assert!(!repo.join("evil").exists() && !data.join("evil").exists());
    let list = list_artifacts(&controller, client).await;
    assert_eq!(artifact_names(&list), ["keep.txt"]);
    assert_eq!(
        download_artifact(&controller, client, "keep.txt").await,
        (200, b"keep".to_vec())
    );
}

#[tokio::test]
async fn renaming_an_artifact_updates_the_state_and_delete_removes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let client = controller.login().await;
    let repo = controller.repo();
    let logo = b"\x89PNG\r\n\x1a\nnot really a png".to_vec();
    let response = upload(
        &controller,
        &client,
        &[("logo.png", &logo), ("other.txt", b"other")],
    )
    .await;
    assert_eq!(response.status(), 200);

    let state = json!({
        "version": "0.0.9",
        "repositories": {},
        "tags": [],
        "configs": [{
            "displayName": "Kiosk",
            "identifier": "kiosk-1",
            "tags": [],
            "modules": [
                {"type": "thymis_controller.modules.thymis.ThymisDevice",
                 "settings": {"device_type": "generic-x86_64"}},
                {"type": "thymis_controller.modules.files.FilesModule",
                 "settings": {"artifacts": [{"artifact": "logo.png", "path": "/etc/logo.png"}]}}
            ]
        }]
    });
    let response = client
        .patch(controller.url("/api/state"))
        .json(&state)
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert_eq!(status, 200, "{}", json(response).await);
    let nix_file = repo.join("hosts/kiosk-1/thymis_controller.modules.files.FilesModule.nix");
    let nix = std::fs::read_to_string(&nix_file)
        .unwrap_or_else(|err| panic!("{}: {err}", nix_file.display()));
    assert!(nix.contains("/artifacts/logo.png"), "{nix}");

    let response = client
        .post(controller.url("/api/artifacts/rename/logo.png?new_name=brand.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = json(response).await;
    assert_eq!(answer["references_updated"], 1, "{answer}");

    let response = client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap();
    let current = json(response).await;
    assert_eq!(
        current["configs"][0]["modules"][1]["settings"]["artifacts"][0],
        json!({"artifact": "brand.png", "path": "/etc/logo.png"}),
        "{current}"
    );
    let on_disk = std::fs::read_to_string(repo.join("state.json")).unwrap();
    let on_disk: Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(on_disk, current, "state.json on disk");
    let nix = std::fs::read_to_string(&nix_file).unwrap();
    assert!(nix.contains("/artifacts/brand.png"), "{nix}");
    assert!(!nix.contains("/artifacts/logo.png"), "{nix}");
    assert!(!repo.join("artifacts/logo.png").exists());
    assert_eq!(
        std::fs::read(repo.join("artifacts/brand.png")).unwrap(),
        logo
    );
    assert_eq!(
        artifact_names(&list_artifacts(&controller, &client).await),
        ["brand.png", "other.txt"]
    );
    let tracked = git(&repo, &["ls-files", "artifacts/"]);
    assert_eq!(
        tracked.lines().collect::<Vec<_>>(),
        ["artifacts/brand.png", "artifacts/other.txt"],
        "{tracked}"
    );
    assert_eq!(
        download_artifact(&controller, &client, "logo.png").await.0,
        404
    );
    assert_eq!(
        download_artifact(&controller, &client, "brand.png").await,
        (200, logo.clone())
    );

    // Onto an existing name: 409, nothing changes.
    let response = client
        .post(controller.url("/api/artifacts/rename/brand.png?new_name=other.txt"))
        .send()
        .await
        .unwrap();
    expect_error(response, 409, "rename onto an existing artifact").await;
    assert_eq!(
        std::fs::read(repo.join("artifacts/brand.png")).unwrap(),
        logo
    );
    assert_eq!(
        std::fs::read(repo.join("artifacts/other.txt")).unwrap(),
        b"other"
    );
    // Out of the folder: 403.
    let response = client
        .post(controller.url("/api/artifacts/rename/brand.png?new_name=..%2Fx"))
        .send()
        .await
        .unwrap();
    expect_error(response, 403, "rename to ../x").await;
    assert!(!repo.join("x").exists());
    assert!(repo.join("artifacts/brand.png").exists());
    // A missing artifact: 404.
    let response = client
        .post(controller.url("/api/artifacts/rename/missing.png?new_name=found.png"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "rename of a missing artifact").await;

    // Delete.
    let response = client
        .delete(controller.url("/api/artifacts/brand.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!repo.join("artifacts/brand.png").exists());
    assert_eq!(
        download_artifact(&controller, &client, "brand.png").await.0,
        404
    );
    let response = client
        .delete(controller.url("/api/artifacts/brand.png"))
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "second DELETE").await;
    assert_eq!(
        artifact_names(&list_artifacts(&controller, &client).await),
        ["other.txt"]
    );
    assert_eq!(
        git(&repo, &["ls-files", "artifacts/"]),
        "artifacts/other.txt"
    );
}

#[tokio::test]
async fn oversize_bodies_are_refused_but_large_artifacts_stream_through() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let session = controller.login_session().await;
    let client = session.client.clone();
    let cookie = session.cookie_header();
    let addr = controller.addr;
    let state_before = client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // A state over the 64 MiB body limit, declared with Content-Length ...
    const LIMIT: usize = 64 * 1024 * 1024;
    let padding = LIMIT + 1;
    let prefix = b"{\"version\":\"0.0.9\",\"pad\":\"".to_vec();
    let suffix = b"\"}".to_vec();
    let length = prefix.len() + padding + suffix.len();
    let request_cookie = cookie.clone();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(
            addr,
            "PATCH /api/state HTTP/1.1",
            &[
                ("Cookie", request_cookie),
                ("Content-Type", "application/json".to_owned()),
                ("Content-Length", length.to_string()),
            ],
            |stream| {
                stream.write_all(&prefix)?;
                let chunk = vec![b'a'; BLOCK];
                let mut left = padding;
                while left > 0 {
                    let n = left.min(BLOCK);
                    stream.write_all(&chunk[..n])?;
                    left -= n;
                }
                stream.write_all(&suffix)
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(
        response.status,
        413,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(
        response
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        response.headers
    );
    assert!(!detail(&response.json()).is_empty());

    // ... and sent chunked, without a declared length.
    let request_cookie = cookie.clone();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(
            addr,
            "PATCH /api/state HTTP/1.1",
            &[
                ("Cookie", request_cookie),
                ("Content-Type", "application/json".to_owned()),
                ("Transfer-Encoding", "chunked".to_owned()),
            ],
            |stream| {
                let chunk = vec![b' '; BLOCK];
                for _ in 0..=(LIMIT / BLOCK) {
                    stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                    stream.write_all(&chunk)?;
                    stream.write_all(b"\r\n")?;
                }
                stream.write_all(b"0\r\n\r\n")
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(
        response.status,
        413,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert!(!detail(&response.json()).is_empty());

    // The controller is fine and the state unchanged.
    let state_after = client
        .get(controller.url("/api/state"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state_after, state_before);

    // A 70 MiB artifact (above the general limit, below the upload limit) is streamed to disk.
    const BLOCKS: u64 = 70;
    let boundary = format!("thymis-test-{}", uuid::Uuid::new_v4().simple());
    let part_head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let part_tail = format!("\r\n--{boundary}--\r\n");
    let length = part_head.len() as u64 + BLOCKS * BLOCK as u64 + part_tail.len() as u64;
    let request_cookie = cookie.clone();
    let response = tokio::task::spawn_blocking(move || {
        raw_request(
            addr,
            "POST /api/artifacts/ HTTP/1.1",
            &[
                ("Cookie", request_cookie),
                (
                    "Content-Type",
                    format!("multipart/form-data; boundary={boundary}"),
                ),
                ("Content-Length", length.to_string()),
            ],
            |stream| {
                stream.write_all(part_head.as_bytes())?;
                for index in 0..BLOCKS {
                    stream.write_all(&block(index))?;
                }
                stream.write_all(part_tail.as_bytes())
            },
        )
    })
    .await
    .unwrap();
    assert_eq!(
        response.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(response.json()["stored"], json!(["big.bin"]));

    let expected_size = BLOCKS * BLOCK as u64;
    let list = list_artifacts(&controller, &client).await;
    assert_eq!(artifact_names(&list), ["big.bin"]);
    assert_eq!(list[0]["size"], expected_size);
    // On disk and downloaded: exactly the bytes (compared block by block).
    let path = controller.repo().join("artifacts/big.bin");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), expected_size);
    let mut check = BlockCheck::new(BLOCKS);
    let mut file = std::fs::File::open(&path).unwrap();
    let mut buffer = vec![0u8; BLOCK];
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        check.feed(&buffer[..n]);
    }
    assert!(
        check.complete(),
        "the stored artifact differs from the upload"
    );
    let mut response = client
        .get(controller.url("/api/artifacts/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut check = BlockCheck::new(BLOCKS);
    while let Some(chunk) = response.chunk().await.unwrap() {
        check.feed(&chunk);
    }
    assert!(check.complete(), "the download differs from the upload");
    // No temporary upload file is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(controller.repo().join("artifacts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(leftovers, ["big.bin"]);
}

// ---------------------------------------------------------------------------------------------
// Controller settings
// ---------------------------------------------------------------------------------------------

async fn get_settings(controller: &Controller, client: &reqwest::Client) -> Value {
    let response = client
        .get(controller.url("/api/controller-settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json(response).await
}

async fn patch_settings(
    controller: &Controller,
    client: &reqwest::Client,
    body: &Value,
) -> reqwest::Response {
    client
        .patch(controller.url("/api/controller-settings"))
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn controller_settings_are_validated_and_persist_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let controller = Controller::start(&data);
    let client = controller.login().await;

    assert_eq!(
        get_settings(&controller, &client).await,
        json!({
            "auto_update_enabled": false,
            "auto_update_schedule": {"frequency": "daily", "time": "03:00", "weekdays": [0, 1, 2, 3],
                "weekday": null, "day_of_month": null, "nth_weekday": null}
        })
    );

    let weekly = json!({"frequency": "weekly", "time": "04:30", "weekday": 5});
    // Answers carry the fields the frequency does not use as null, as upstream.
    let weekly_answer = json!({"frequency": "weekly", "time": "04:30", "weekday": 5,
        "weekdays": null, "day_of_month": null, "nth_weekday": null});
    let response = patch_settings(
        &controller,
        &client,
        &json!({"auto_update_enabled": true, "auto_update_schedule": weekly}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let expected = json!({"auto_update_enabled": true, "auto_update_schedule": weekly_answer});
    assert_eq!(json(response).await, expected);
    assert_eq!(get_settings(&controller, &client).await, expected);

    // Only the given field changes.
    let response =
        patch_settings(&controller, &client, &json!({"auto_update_enabled": false})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        json(response).await,
        json!({"auto_update_enabled": false, "auto_update_schedule": weekly_answer})
    );
    let response =
        patch_settings(&controller, &client, &json!({"auto_update_enabled": true})).await;
    assert_eq!(response.status(), 200);

    // Incomplete or impossible schedules: 422 with the reason, nothing stored.
    let cases = [
        (json!({"frequency": "weekly", "time": "04:30"}), "weekday"),
        (
            json!({"frequency": "monthly", "time": "04:30", "day_of_month": 31}),
            "day_of_month",
        ),
        (
            json!({"frequency": "monthly", "time": "04:30"}),
            "day_of_month",
        ),
        (
            json!({"frequency": "daily", "time": "25:00", "weekdays": [0]}),
            "25:00",
        ),
        (
            json!({"frequency": "daily", "time": "03:00", "weekdays": []}),
            "weekdays",
        ),
        (
            json!({"frequency": "monthly_weekday", "time": "03:00", "weekday": 4}),
            "nth_weekday",
        ),
    ];
    for (schedule, needle) in &cases {
        let response = patch_settings(
            &controller,
            &client,
            &json!({"auto_update_enabled": false, "auto_update_schedule": schedule}),
        )
        .await;
        let text = expect_error(response, 422, &schedule.to_string()).await;
        assert!(
            text.contains(needle),
            "{schedule}: {text:?} lacks {needle:?}"
        );
    }
    // An unknown frequency is a client error as well.
    let response = patch_settings(
        &controller,
        &client,
        &json!({"auto_update_schedule": {"frequency": "hourly", "time": "03:00"}}),
    )
    .await;
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(get_settings(&controller, &client).await, expected);

    // Restarted on the same data directory, the settings are still there.
    controller.stop();
    let controller = Controller::start(&data);
    assert!(controller.printed_password.is_none());
    let client = controller.login().await;
    assert_eq!(get_settings(&controller, &client).await, expected);
}

// ---------------------------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn secret_and_artifact_changes_are_notified() {
    let tmp = tempfile::tempdir().unwrap();
    let controller = Controller::start(&tmp.path().join("data"));
    let session = controller.login_session().await;
    let client = &session.client;
    let mut socket = open_notifications(&controller, &session.cookie_header()).await;

    let created = created_secret(
        &controller,
        client,
        &json!({"display_name": "A", "type": "single_line", "value_str": "v"}),
    )
    .await;
    wait_for_invalidation(&mut socket, "/api/secrets", Duration::from_secs(3)).await;

    let response = upload(&controller, client, &[("a.txt", b"a")]).await;
    assert_eq!(response.status(), 200);
    wait_for_invalidation(&mut socket, "/api/artifacts", Duration::from_secs(3)).await;

    let id = created["id"].as_str().unwrap();
    let response = client
        .delete(controller.url(&format!("/api/secrets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_invalidation(&mut socket, "/api/secrets", Duration::from_secs(3)).await;

    let response = client
        .post(controller.url("/api/artifacts/rename/a.txt?new_name=b.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_invalidation(&mut socket, "/api/artifacts", Duration::from_secs(3)).await;

    let response = client
        .delete(controller.url("/api/artifacts/b.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for_invalidation(&mut socket, "/api/artifacts", Duration::from_secs(3)).await;

    let _ = socket.close(None).await;
}
