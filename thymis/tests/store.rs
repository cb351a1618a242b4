//! Tests of `thymis::store` against real SQLite files in temporary directories.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Duration, Utc};
use rusqlite::Connection;
use serde_json::json;
use thymis::module::{SecretKind, SecretProcessing};
use thymis::store::{
    hash_token, new_token, parse_database_url, NewSecret, NewSession, SecretUpdate, SecretValue,
    SqliteStore, Store, StoreError, SCHEMA_VERSION,
};
use uuid::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("thymis.sqlite")
}

fn user_version(path: &Path) -> rusqlite::Result<i64> {
    Connection::open(path)?.pragma_query_value(None, "user_version", |row| row.get(0))
}

fn new_session(token: &str, expires_in: Duration) -> NewSession {
    NewSession {
        token_hash: hash_token(token),
        username: "admin".into(),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        email: None,
        expires_at: Utc::now() + expires_in,
    }
}

fn new_secret(name: &str) -> NewSecret {
    NewSecret {
        display_name: name.into(),
        secret_type: SecretKind::SingleLine,
        value: SecretValue {
            value_enc: b"age-ciphertext".to_vec(),
            value_size: 6,
        },
        filename: None,
        include_in_image: false,
        processing_type: SecretProcessing::None,
    }
}

#[test]
fn store_is_send_sync_and_object_safe() -> TestResult {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
    let store: Box<dyn Store> = Box::new(SqliteStore::open_in_memory()?);
    store.set_setting("k", &json!(1))?;
    assert_eq!(store.get_setting("k")?, Some(json!(1)));
    Ok(())
}

#[test]
fn migrations_apply_once_and_record_the_version() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let store = SqliteStore::open(&path)?;
    store.set_setting("marker", &json!("kept"))?;
    drop(store);
    assert_eq!(user_version(&path)?, i64::from(SCHEMA_VERSION));

    let conn = Connection::open(&path)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for table in [
        "sessions",
        "api_tokens",
        "secrets",
        "audit_log",
        "controller_settings",
        "devices",
        "hardware_devices",
        "agent_tokens",
        "access_client_tokens",
        "agent_connections",
        "tasks",
        "task_output",
        "device_metrics",
        "device_logs",
    ] {
        assert!(tables.iter().any(|t| t == table), "missing table {table}");
    }
    drop(conn);

    // A second open finds the schema current: re-running 0001 would fail on CREATE TABLE, and
    // the data written before must still be there.
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.get_setting("marker")?, Some(json!("kept")));
    drop(store);
    assert_eq!(user_version(&path)?, i64::from(SCHEMA_VERSION));
    Ok(())
}

#[test]
fn database_is_in_wal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let _store = SqliteStore::open(&path)?;
    let mode: String =
        Connection::open(&path)?.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    assert_eq!(mode.to_lowercase(), "wal");
    Ok(())
}

#[test]
fn open_creates_missing_directories() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a/b/thymis.sqlite");
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.path(), Some(path.as_path()));
    assert!(path.exists());
    Ok(())
}

#[test]
fn newer_schema_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    drop(SqliteStore::open(&path)?);
    let newer = i64::from(SCHEMA_VERSION) + 1;
    Connection::open(&path)?.pragma_update(None, "user_version", newer)?;

    match SqliteStore::open(&path) {
        Err(err @ StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, newer);
            assert_eq!(supported, SCHEMA_VERSION);
            assert!(err.to_string().contains("newer"), "{err}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Refusing must not have touched the file.
    assert_eq!(user_version(&path)?, newer);
    Ok(())
}

#[test]
fn database_url_forms() -> TestResult {
    assert_eq!(
        parse_database_url("sqlite:////var/lib/thymis/thymis.sqlite")?,
        Path::new("/var/lib/thymis/thymis.sqlite")
    );
    assert_eq!(
        parse_database_url("sqlite:///relative.sqlite")?,
        Path::new("relative.sqlite")
    );
    assert_eq!(
        parse_database_url("sqlite:///data/thymis.sqlite")?,
        Path::new("data/thymis.sqlite")
    );
    assert_eq!(
        parse_database_url("sqlite+pysqlite:////x/y.sqlite")?,
        Path::new("/x/y.sqlite")
    );
    assert_eq!(
        parse_database_url("/var/lib/thymis/thymis.sqlite")?,
        Path::new("/var/lib/thymis/thymis.sqlite")
    );
    assert_eq!(
        parse_database_url("thymis.sqlite")?,
        Path::new("thymis.sqlite")
    );
    for bad in [
        "",
        "   ",
        "postgres://user@db/thymis",
        "postgresql+asyncpg://db/thymis",
        "mysql://db",
        "sqlite://host/thymis.sqlite",
        "sqlite:thymis.sqlite",
        "sqlite:///",
        "sqlite:////x.sqlite?mode=ro",
    ] {
        match parse_database_url(bad) {
            Err(StoreError::InvalidUrl(message)) => assert!(!message.is_empty()),
            other => panic!("{bad:?} should be refused, got {other:?}"),
        }
    }
    Ok(())
}

#[test]
fn sessions_create_find_expire_delete() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&db_path(&dir))?;
    let token = new_token();
    let session = store.create_session(&new_session(&token, Duration::hours(24)))?;
    assert_eq!(session.username, "admin");

    let found = store.find_session(session.id, &hash_token(&token))?;
    assert_eq!(found.as_ref(), Some(&session));
    // Wrong secret, wrong id, and the plaintext instead of its hash all fail alike.
    assert_eq!(store.find_session(session.id, &hash_token("wrong"))?, None);
    assert_eq!(
        store.find_session(Uuid::new_v4(), &hash_token(&token))?,
        None
    );
    assert_eq!(store.find_session(session.id, &token)?, None);

    let old_token = new_token();
    let expired = store.create_session(&new_session(&old_token, Duration::seconds(-1)))?;
    assert_eq!(
        store.find_session(expired.id, &hash_token(&old_token))?,
        None
    );
    assert_eq!(store.delete_expired_sessions()?, 1);
    assert_eq!(store.delete_expired_sessions()?, 0);
    assert!(store
        .find_session(session.id, &hash_token(&token))?
        .is_some());

    assert!(store.delete_session(session.id)?);
    assert!(!store.delete_session(session.id)?);
    assert_eq!(store.find_session(session.id, &hash_token(&token))?, None);

    // Debug output of a new session hides the hash.
    let debug = format!("{:?}", new_session(&token, Duration::hours(1)));
    assert!(!debug.contains(&hash_token(&token)), "{debug}");
    Ok(())
}

#[test]
fn api_tokens_create_find_revoke_list() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&db_path(&dir))?;
    let token_a = new_token();
    let token_b = new_token();
    let a = store.create_api_token("ci", &hash_token(&token_a), "admin")?;
    let b = store.create_api_token("backup", &hash_token(&token_b), "admin")?;

    assert_eq!(
        store
            .find_active_api_token(&hash_token(&token_a))?
            .map(|t| t.id),
        Some(a.id)
    );
    assert_eq!(store.find_active_api_token(&hash_token("nope"))?, None);
    assert!(matches!(
        store.create_api_token("dup", &hash_token(&token_a), "admin"),
        Err(StoreError::Conflict(_))
    ));

    store.touch_api_token(a.id)?;
    let touched = store
        .find_active_api_token(&hash_token(&token_a))?
        .ok_or("token a vanished")?;
    assert!(touched.last_used_at.is_some());
    assert!(matches!(
        store.touch_api_token(Uuid::new_v4()),
        Err(StoreError::NotFound { .. })
    ));

    assert!(store.revoke_api_token(b.id)?);
    assert!(!store.revoke_api_token(b.id)?);
    assert!(!store.revoke_api_token(Uuid::new_v4())?);
    assert_eq!(store.find_active_api_token(&hash_token(&token_b))?, None);

    let list = store.list_api_tokens()?;
    assert_eq!(
        list.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![a.id, b.id]
    );
    assert!(list[0].revoked_at.is_none());
    assert!(list[1].revoked_at.is_some());
    let json = serde_json::to_string(&list)?;
    for secret in [
        &token_a,
        &token_b,
        &hash_token(&token_a),
        &hash_token(&token_b),
    ] {
        assert!(
            !json.contains(secret.as_str()),
            "list leaks {secret}: {json}"
        );
    }
    assert!(json.contains("\"name\":\"ci\""));
    Ok(())
}

/// Every byte of the database and its WAL/shared-memory files.
fn database_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::read(PathBuf::from(file)) {
            Ok(content) => bytes.extend(content),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn database_file_never_contains_a_plaintext_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let store = SqliteStore::open(&path)?;
    let api_token = new_token();
    let session_token = new_token();
    store.create_api_token("ci", &hash_token(&api_token), "admin")?;
    store.create_session(&new_session(&session_token, Duration::hours(1)))?;

    // While open the rows live in the WAL; after close they are checkpointed into the file.
    let open_bytes = database_bytes(&path)?;
    drop(store);
    let closed_bytes = database_bytes(&path)?;
    for bytes in [&open_bytes, &closed_bytes] {
        // The hashes are found, which shows the search sees the rows at all ...
        assert!(contains(bytes, &hash_token(&api_token)));
        assert!(contains(bytes, &hash_token(&session_token)));
        // ... and the tokens are not.
        assert!(!contains(bytes, &api_token));
        assert!(!contains(bytes, &session_token));
    }
    Ok(())
}

#[test]
fn secrets_crud_with_soft_delete() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&db_path(&dir))?;
    let beta = store.insert_secret(&new_secret("beta"))?;
    let alpha = store.insert_secret(&NewSecret {
        secret_type: SecretKind::File,
        filename: Some("wifi.conf".into()),
        include_in_image: true,
        processing_type: SecretProcessing::MkpasswdYescrypt,
        ..new_secret("Alpha")
    })?;

    assert_eq!(store.get_secret(beta.id)?.as_ref(), Some(&beta));
    assert_eq!(store.get_secret(Uuid::new_v4())?, None);
    let names: Vec<_> = store
        .list_secrets()?
        .into_iter()
        .map(|s| s.display_name)
        .collect();
    assert_eq!(names, vec!["Alpha", "beta"]);

    // Only the given fields change.
    let renamed = store.update_secret(
        alpha.id,
        &SecretUpdate {
            display_name: Some("alpha renamed".into()),
            ..SecretUpdate::default()
        },
    )?;
    assert_eq!(renamed.display_name, "alpha renamed");
    assert_eq!(renamed.secret_type, SecretKind::File);
    assert_eq!(renamed.filename.as_deref(), Some("wifi.conf"));
    assert!(renamed.include_in_image);
    assert_eq!(renamed.processing_type, SecretProcessing::MkpasswdYescrypt);
    assert_eq!(renamed.value_enc, alpha.value_enc);
    assert_eq!(renamed.created_at, alpha.created_at);
    assert!(renamed.updated_at >= alpha.updated_at);

    let changed = store.update_secret(
        alpha.id,
        &SecretUpdate {
            secret_type: Some(SecretKind::MultiLine),
            value: Some(SecretValue {
                value_enc: b"new ciphertext".to_vec(),
                value_size: 42,
            }),
            filename: Some(None),
            include_in_image: Some(false),
            processing_type: Some(SecretProcessing::None),
            ..SecretUpdate::default()
        },
    )?;
    assert_eq!(changed.display_name, "alpha renamed");
    assert_eq!(changed.secret_type, SecretKind::MultiLine);
    assert_eq!(changed.value_enc, b"new ciphertext");
    assert_eq!(changed.value_size, 42);
    assert_eq!(changed.filename, None);
    assert!(!changed.include_in_image);
    assert_eq!(store.get_secret(alpha.id)?.as_ref(), Some(&changed));
    // An empty update changes nothing and still reports the secret.
    assert_eq!(
        store.update_secret(alpha.id, &SecretUpdate::default())?,
        changed
    );

    // Serialised records carry the upstream field names and never the ciphertext.
    let json = serde_json::to_value(&changed)?;
    assert_eq!(json["type"], "multi_line");
    assert_eq!(json["processing_type"], "none");
    assert!(json.get("value_enc").is_none());
    assert!(!serde_json::to_string(&store.list_secrets()?)?.contains("ciphertext"));
    assert!(!format!("{changed:?}").contains("ciphertext"));

    assert!(store.soft_delete_secret(alpha.id)?);
    assert!(!store.soft_delete_secret(alpha.id)?);
    assert_eq!(store.get_secret(alpha.id)?, None);
    assert_eq!(
        store
            .list_secrets()?
            .into_iter()
            .map(|s| s.id)
            .collect::<Vec<_>>(),
        vec![beta.id]
    );
    assert!(matches!(
        store.update_secret(
            alpha.id,
            &SecretUpdate {
                display_name: Some("revived".into()),
                ..SecretUpdate::default()
            }
        ),
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.update_secret(Uuid::new_v4(), &SecretUpdate::default()),
        Err(StoreError::NotFound { .. })
    ));
    Ok(())
}

#[test]
fn settings_round_trip_and_persist() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = db_path(&dir);
    let store = SqliteStore::open(&path)?;
    assert_eq!(store.get_setting("auto_update_enabled")?, None);
    store.set_setting("auto_update_enabled", &json!(false))?;
    let schedule = json!({"frequency": "weekly", "time": "03:00", "weekday": 2});
    store.set_setting("auto_update_schedule", &schedule)?;
    store.set_setting("auto_update_enabled", &json!(true))?;
    assert_eq!(store.get_setting("auto_update_enabled")?, Some(json!(true)));
    drop(store);

    let store = SqliteStore::open(&path)?;
    assert_eq!(store.get_setting("auto_update_schedule")?, Some(schedule));
    assert_eq!(store.get_setting("auto_update_enabled")?, Some(json!(true)));
    Ok(())
}

#[test]
fn audit_log_lists_newest_first() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&db_path(&dir))?;
    let first = store.append_audit("admin", "login", None, &serde_json::Value::Null)?;
    let second = store.append_audit(
        "admin",
        "secret.create",
        Some("3f1c"),
        &json!({"display_name": "wifi"}),
    )?;
    let third = store.append_audit("system", "session.cleanup", None, &json!({"deleted": 2}))?;
    assert!(first.id < second.id && second.id < third.id);

    let all = store.list_audit(10)?;
    assert_eq!(all, vec![third.clone(), second.clone(), first.clone()]);
    assert_eq!(all[2].detail, serde_json::Value::Null);
    assert_eq!(all[1].target.as_deref(), Some("3f1c"));
    assert_eq!(store.list_audit(2)?, vec![third, second]);
    assert!(store.list_audit(0)?.is_empty());
    Ok(())
}

#[test]
fn concurrent_use_from_several_threads() -> TestResult {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 200;
    let dir = tempfile::tempdir()?;
    let store = Arc::new(SqliteStore::open(&db_path(&dir))?);

    let handles: Vec<_> = (0..THREADS)
        .map(|thread| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || -> Result<(), StoreError> {
                for i in 0..PER_THREAD {
                    let token = new_token();
                    let record = store.create_api_token(
                        &format!("t{thread}-{i}"),
                        &hash_token(&token),
                        "x",
                    )?;
                    store.append_audit(
                        "x",
                        "token.create",
                        Some(&record.id.to_string()),
                        &json!(i),
                    )?;
                    // Reads interleave with the other threads' writes.
                    if store.find_active_api_token(&hash_token(&token))?.is_none() {
                        return Err(StoreError::NotFound {
                            what: "API token",
                            id: record.id.to_string(),
                        });
                    }
                    if i % 50 == 0 {
                        store.list_api_tokens()?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for handle in handles {
        handle.join().map_err(|_| "thread panicked")??;
    }

    assert_eq!(store.list_api_tokens()?.len(), THREADS * PER_THREAD);
    let audit = store.list_audit(usize::MAX)?;
    assert_eq!(audit.len(), THREADS * PER_THREAD);
    assert!(audit.windows(2).all(|pair| pair[0].id > pair[1].id));
    Ok(())
}

#[test]
fn in_memory_store_works() -> TestResult {
    let store = SqliteStore::open_in_memory()?;
    assert_eq!(store.path(), None);
    let token = new_token();
    let session = store.create_session(&new_session(&token, Duration::hours(1)))?;
    assert!(store
        .find_session(session.id, &hash_token(&token))?
        .is_some());
    let secret = store.insert_secret(&new_secret("x"))?;
    assert_eq!(store.list_secrets()?, vec![secret]);
    Ok(())
}
