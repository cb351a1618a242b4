//! Tasks: `GET /api/tasks` (paged, filtered), `GET /api/tasks/{id}`, cancel and retry, and
//! `WS /api/task_status` streaming task changes and a subscribed task's new output
//! (http-api.md §2.3, §3.1).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use thymis::events::Event;
use thymis::store::{
    OutputChunk, OutputStream, TaskFilter, TaskProcessRecord, TaskRecord, TaskState,
};
use thymis::task::TaskError;
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Caller;
use crate::error::{blocking, ApiError};

/// The routes of this module.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tasks))
        .routes(routes!(get_task))
        .routes(routes!(cancel_task))
        .routes(routes!(retry_task))
        .routes(routes!(task_status))
}

impl From<TaskError> for ApiError {
    fn from(err: TaskError) -> Self {
        match err {
            TaskError::NotFound(_) => ApiError::not_found(err.to_string()),
            TaskError::AlreadyFinished(_) | TaskError::NotFinished(_) => {
                ApiError::new(StatusCode::CONFLICT, err.to_string())
            }
            TaskError::BadSubmission { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, err.to_string())
            }
            TaskError::Store(err) => ApiError::internal(err),
        }
    }
}

/// Nix's counters, upstream's `nix_status`.
fn nix_status(progress: Option<&Value>) -> Value {
    match progress {
        Some(p) => json!({
            "done": p.get("done").cloned().unwrap_or(json!(0)),
            "expected": p.get("expected").cloned().unwrap_or(json!(0)),
            "running": p.get("running").cloned().unwrap_or(json!(0)),
            "failed": p.get("failed").cloned().unwrap_or(json!(0)),
        }),
        None => Value::Null,
    }
}

/// A task in lists: upstream's `TaskShort` plus parent, submitter and the full progress.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskShort {
    id: Uuid,
    task_type: String,
    #[schema(value_type = String)]
    state: TaskState,
    submitted_time: String,
    start_time: Option<String>,
    end_time: Option<String>,
    exception: Option<String>,
    #[schema(value_type = Object)]
    task_submission_data: Value,
    #[schema(value_type = Object)]
    nix_status: Value,
    #[schema(value_type = Object)]
    progress: Option<Value>,
    parent_task_id: Option<Uuid>,
    submitted_by: Option<String>,
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

impl From<&TaskRecord> for TaskShort {
    fn from(task: &TaskRecord) -> Self {
        TaskShort {
            id: task.id,
            task_type: task.kind.clone(),
            state: task.state,
            submitted_time: time(&task.submitted_at),
            start_time: task.started_at.as_ref().map(time),
            end_time: task.ended_at.as_ref().map(time),
            exception: task.exception.clone(),
            task_submission_data: task.submission_data.clone(),
            nix_status: nix_status(task.progress.as_ref()),
            progress: task.progress.clone(),
            parent_task_id: task.parent_id,
            submitted_by: task.submitted_by.clone(),
        }
    }
}

/// A command of a task with its output.
#[derive(Debug, Serialize, ToSchema)]
struct TaskProcess {
    process_index: u32,
    process_program: String,
    process_args: Vec<String>,
    started_at: String,
    ended_at: Option<String>,
    exit_code: Option<i32>,
    process_stdout: String,
    process_stderr: String,
    #[schema(value_type = Object)]
    nix_status: Value,
    #[schema(value_type = Object)]
    progress: Option<Value>,
    #[schema(value_type = Vec<Object>)]
    nix_errors: Vec<Value>,
}

/// A task in full: [`TaskShort`] plus children, commands and output.
#[derive(Debug, Serialize, ToSchema)]
struct TaskFull {
    #[serde(flatten)]
    short: TaskShort,
    children: Vec<Uuid>,
    processes: Vec<TaskProcess>,
    output_truncated_bytes: u64,
}

/// How much of a subscribed task's output a socket has sent.
#[derive(Debug, Default)]
struct Sent {
    last_seq: i64,
    errors: HashMap<u32, usize>,
}

/// Builds a task's full view; with `sent`, only output and errors newer than what was sent.
fn full_task(
    task: &TaskRecord,
    processes: Vec<TaskProcessRecord>,
    output: &[OutputChunk],
    sent: &mut Sent,
) -> TaskFull {
    let mut texts: HashMap<(u32, OutputStream), Vec<u8>> = HashMap::new();
    for chunk in output {
        texts
            .entry((chunk.process_index, chunk.stream))
            .or_default()
            .extend_from_slice(&chunk.data);
        sent.last_seq = sent.last_seq.max(chunk.seq);
    }
    let mut text = |index, stream| {
        texts
            .remove(&(index, stream))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let processes = processes
        .into_iter()
        .map(|process| {
            let errors = process.errors.as_array().cloned().unwrap_or_default();
            let already = sent.errors.entry(process.index).or_default();
            let new_errors = errors.iter().skip(*already).cloned().collect();
            *already = errors.len();
            TaskProcess {
                process_index: process.index,
                process_stdout: text(process.index, OutputStream::Stdout),
                process_stderr: text(process.index, OutputStream::Stderr),
                process_program: process.program,
                process_args: process.args,
                started_at: time(&process.started_at),
                ended_at: process.ended_at.as_ref().map(time),
                exit_code: process.exit_code,
                nix_status: nix_status(process.progress.as_ref()),
                progress: process.progress,
                nix_errors: new_errors,
            }
        })
        .collect();
    TaskFull {
        short: TaskShort::from(task),
        children: task.children.clone(),
        processes,
        output_truncated_bytes: task.output_dropped_bytes,
    }
}

/// Reads a task with its commands and the output after `sent`.
async fn load_full(app: &AppState, id: Uuid, mut sent: Sent) -> Result<(TaskFull, Sent), ApiError> {
    let store = app.store.clone();
    blocking(move || {
        let task = store
            .get_task(id)
            .map_err(ApiError::internal)?
            .ok_or_else(|| ApiError::not_found(format!("task {id} not found")))?;
        let processes = store.list_task_processes(id).map_err(ApiError::internal)?;
        let output = store
            .task_output(id, sent.last_seq)
            .map_err(ApiError::internal)?;
        let full = full_task(&task, processes, &output, &mut sent);
        Ok((full, sent))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
struct ListQuery {
    /// At most this many tasks (default 100, at most 1,000).
    limit: Option<usize>,
    /// Skip this many of the newest.
    offset: Option<usize>,
    /// Only tasks in this state (pending, running, completed, failed, cancelled).
    state: Option<String>,
    /// Only tasks of this type.
    task_type: Option<String>,
}

/// Tasks, newest first; the `total-count` header gives how many match in all.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", params(ListQuery),
    responses((status = 200, description = "Tasks", body = [TaskShort],
        headers(("total-count" = u64, description = "Number of matching tasks"))),
        (status = 400, description = "Unknown state")))]
async fn list_tasks(
    State(app): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let state = query
        .state
        .as_deref()
        .map(str::parse::<TaskState>)
        .transpose()
        .map_err(|err| ApiError::bad_request(err.to_string()))?;
    let filter = TaskFilter {
        state,
        kind: query.task_type,
        parent_id: None,
    };
    let limit = query.limit.unwrap_or(100).min(1000);
    let offset = query.offset.unwrap_or(0);
    let store = app.store.clone();
    let (tasks, total) = blocking(move || {
        store
            .list_tasks(&filter, limit, offset)
            .map_err(ApiError::internal)
    })
    .await?;
    let body: Vec<TaskShort> = tasks.iter().map(TaskShort::from).collect();
    let mut headers = HeaderMap::new();
    headers.insert("total-count", HeaderValue::from(total));
    headers.insert(
        "access-control-expose-headers",
        HeaderValue::from_static("total-count"),
    );
    Ok((headers, Json(body)).into_response())
}

/// A task with its commands and their output.
#[utoipa::path(get, path = "/api/tasks/{task_id}", tag = "tasks",
    params(("task_id" = Uuid, Path, description = "The task")),
    responses((status = 200, description = "The task", body = TaskFull),
        (status = 404, description = "No such task")))]
async fn get_task(
    State(app): State<AppState>,
    _caller: Caller,
    Path(task_id): Path<Uuid>,
) -> Result<Json<TaskFull>, ApiError> {
    let (full, _) = load_full(&app, task_id, Sent::default()).await?;
    Ok(Json(full))
}

/// Cancels a task: a queued one ends at once, a running one's command is stopped.
#[utoipa::path(post, path = "/api/tasks/{task_id}/cancel", tag = "tasks",
    params(("task_id" = Uuid, Path, description = "The task")),
    responses((status = 200, description = "Cancelled"),
        (status = 404, description = "No such task"),
        (status = 409, description = "The task has already finished")))]
async fn cancel_task(
    State(app): State<AppState>,
    caller: Caller,
    Path(task_id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    app.tasks.cancel(task_id).await?;
    app.audit(&caller, "task.cancel", &task_id.to_string());
    Ok(Json(json!({"message": "Task cancelled"})))
}

/// Runs a finished task's submission again as a new task.
#[utoipa::path(post, path = "/api/tasks/{task_id}/retry", tag = "tasks",
    params(("task_id" = Uuid, Path, description = "The task")),
    responses((status = 200, description = "The new task's id"),
        (status = 404, description = "No such task"),
        (status = 409, description = "The task has not finished")))]
async fn retry_task(
    State(app): State<AppState>,
    caller: Caller,
    Path(task_id): Path<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let task = app
        .tasks
        .retry(task_id, Some(caller.user.username.clone()))
        .await?;
    app.audit(&caller, "task.retry", &task_id.to_string());
    Ok(Json(json!({"message": "Task retried", "task_id": task.id})))
}

/// WebSocket of task changes (`new_short_task`, `short_task_update`) and, after
/// `{"type":"subscribe_task","task_id":…}`, that task in full (`subscribed_task`) followed by
/// only its new output (`subscribed_task_output`).
#[utoipa::path(get, path = "/api/task_status", tag = "tasks",
    responses((status = 101, description = "Switching to the WebSocket protocol"),
        (status = 401, description = "Not logged in")))]
async fn task_status(
    State(app): State<AppState>,
    caller: Caller,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade
        .max_message_size(4096)
        .on_upgrade(move |socket| stream_tasks(socket, app, caller))
}

/// New output of a subscribed task is sent at most this often.
const OUTPUT_INTERVAL: Duration = Duration::from_millis(100);
/// How often an open socket checks that its session or token is still valid.
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    task_id: Option<Uuid>,
}

async fn send(
    sender: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    value: Value,
) -> bool {
    sender
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

async fn stream_tasks(socket: WebSocket, app: AppState, caller: Caller) {
    let mut events = app.events.subscribe();
    let (mut sender, mut receiver) = socket.split();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let mut subscribed: Option<(Uuid, Sent)> = None;
    let mut output_due = false;
    let mut output_timer = tokio::time::interval(OUTPUT_INTERVAL);
    loop {
        tokio::select! {
            _ = recheck.tick() => {
                if !caller.still_valid(&app).await {
                    let _ = sender.send(Message::Close(None)).await;
                    return;
                }
            }
            event = events.recv() => match event {
                Ok(Event::TaskSubmitted(id)) => {
                    if let Ok(task) = app.tasks.get(id).await {
                        let task = TaskShort::from(&task);
                        if !send(&mut sender, json!({"type": "new_short_task", "task_id": id, "task": task})).await {
                            return;
                        }
                    }
                }
                Ok(Event::TaskChanged(id)) => {
                    if let Ok(task) = app.tasks.get(id).await {
                        let task = TaskShort::from(&task);
                        if !send(&mut sender, json!({"type": "short_task_update", "task_id": id, "task": task})).await {
                            return;
                        }
                    }
                    output_due |= subscribed.as_ref().is_some_and(|(s, _)| *s == id);
                }
                Ok(Event::TaskOutput(id)) => {
                    output_due |= subscribed.as_ref().is_some_and(|(s, _)| *s == id);
                }
                Ok(_) => {}
                // Missed events: the subscribed task's output may be behind.
                Err(RecvError::Lagged(_)) => output_due = subscribed.is_some(),
                Err(RecvError::Closed) => return,
            },
            _ = output_timer.tick(), if output_due => {
                output_due = false;
                let Some((id, sent)) = subscribed.take() else { continue };
                match load_full(&app, id, sent).await {
                    Ok((task, sent)) => {
                        subscribed = Some((id, sent));
                        let frame = json!({"type": "subscribed_task_output", "task_id": id, "task": task});
                        if !send(&mut sender, frame).await {
                            return;
                        }
                    }
                    Err(_) => subscribed = None,
                }
            }
            message = receiver.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let Ok(message) = serde_json::from_str::<ClientMessage>(&text) else {
                        let _ = send(&mut sender, json!({"type": "error", "detail": "expected {\"type\":\"subscribe_task\",\"task_id\":…}"})).await;
                        continue;
                    };
                    match (message.kind.as_str(), message.task_id) {
                        ("subscribe_task", Some(id)) => match load_full(&app, id, Sent::default()).await {
                            Ok((task, sent)) => {
                                subscribed = Some((id, sent));
                                output_due = false;
                                if !send(&mut sender, json!({"type": "subscribed_task", "task_id": id, "task": task})).await {
                                    return;
                                }
                            }
                            Err(_) => {
                                let _ = send(&mut sender, json!({"type": "error", "detail": format!("task {id} not found")})).await;
                            }
                        },
                        ("unsubscribe_task", _) => subscribed = None,
                        _ => {
                            let _ = send(&mut sender, json!({"type": "error", "detail": "unknown message type"})).await;
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
