//! The task engine against a real SQLite store and real processes: states, output, limits,
//! cancellation (process groups really gone), retry, parents and children, recovery.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thymis::events::{Event, EventBus};
use thymis::store::{
    NewTask, OutputStream, SqliteStore, Store, TaskFilter, TaskRecord, TaskState, TaskUpdate,
};
use thymis::task::{
    CommandRunner, CommandSpec, TaskEngine, TaskEngineConfig, TaskError, TaskHandler, TaskRun,
    TaskSubmission,
};

/// Runs a shell script per task type; `children` makes a build task submit lock tasks.
struct ScriptHandler {
    scripts: HashMap<&'static str, String>,
    children: usize,
}

#[async_trait::async_trait]
impl TaskHandler for ScriptHandler {
    async fn run(
        &self,
        _task: &TaskRecord,
        submission: &TaskSubmission,
        run: &TaskRun,
    ) -> Result<(), String> {
        if matches!(submission, TaskSubmission::BuildProject {}) {
            for _ in 0..self.children {
                run.submit_child(TaskSubmission::ProjectFlakeLock {}, None)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let script = self
            .scripts
            .get(submission.kind())
            .cloned()
            .unwrap_or_else(|| "true".to_owned());
        let outcome = run
            .run(CommandSpec::new("/bin/sh", vec!["-c".into(), script]))
            .await
            .map_err(|e| e.to_string())?;
        if outcome.success() {
            Ok(())
        } else {
            Err(format!("script failed: {}", outcome.failure_reason()))
        }
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: Arc<SqliteStore>,
    events: EventBus,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thymis.sqlite");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    Setup {
        _dir: dir,
        path,
        store,
        events: EventBus::new(),
    }
}

fn engine(
    setup: &Setup,
    scripts: &[(&'static str, String)],
    children: usize,
    config: TaskEngineConfig,
) -> TaskEngine {
    TaskEngine::new(
        setup.store.clone(),
        setup.events.clone(),
        Arc::new(ScriptHandler {
            scripts: scripts.iter().cloned().collect(),
            children,
        }),
        config,
    )
}

fn config(concurrency: usize) -> TaskEngineConfig {
    TaskEngineConfig {
        concurrency,
        flush_interval: Duration::from_millis(50),
        ..TaskEngineConfig::default()
    }
}

const BUILD: &str = "build_project_task";
const UPDATE: &str = "project_flake_update_task";
const LOCK: &str = "project_flake_lock_task";

async fn wait_until_finished(engine: &TaskEngine, id: uuid::Uuid) -> TaskRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let task = engine.get(id).await.unwrap();
        if task.state.is_finished() {
            return task;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not finish: {task:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_for_state(engine: &TaskEngine, id: uuid::Uuid, state: TaskState) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine.get(id).await.unwrap().state != state {
        assert!(Instant::now() < deadline, "task {id} never became {state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn output_text(store: &SqliteStore, id: uuid::Uuid, stream: OutputStream) -> String {
    let chunks = store.task_output(id, 0).unwrap();
    chunks
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect()
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(marker) {
                found.push(text);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_to_completion_with_its_output_and_events() {
    let setup = setup();
    let mut events = setup.events.subscribe();
    let engine = engine(
        &setup,
        &[(BUILD, "echo hello; echo oops >&2; echo done".into())],
        0,
        config(2),
    );
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, Some("admin".into()))
        .await
        .unwrap();
    assert_eq!(task.state, TaskState::Pending);
    assert_eq!(task.kind, BUILD);
    assert_eq!(task.submission_data["type"], BUILD);
    let done = wait_until_finished(&engine, task.id).await;
    assert_eq!(done.state, TaskState::Completed, "{done:?}");
    assert!(done.started_at.is_some() && done.ended_at.is_some());
    assert_eq!(done.submitted_by.as_deref(), Some("admin"));
    assert_eq!(
        output_text(&setup.store, task.id, OutputStream::Stdout),
        "hello\ndone\n"
    );
    assert_eq!(
        output_text(&setup.store, task.id, OutputStream::Stderr),
        "oops\n"
    );
    let processes = setup.store.list_task_processes(task.id).unwrap();
    assert_eq!(processes.len(), 1);
    assert_eq!(processes[0].program, "/bin/sh");
    assert_eq!(processes[0].exit_code, Some(0));
    assert!(processes[0].ended_at.is_some());

    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    assert_eq!(seen.first(), Some(&Event::TaskSubmitted(task.id)));
    assert!(seen.contains(&Event::TaskChanged(task.id)));
    assert!(seen.contains(&Event::TaskOutput(task.id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_fails_the_task_with_its_reason() {
    let setup = setup();
    let engine = engine(
        &setup,
        &[(BUILD, "echo 'error: it broke' >&2; exit 3".into())],
        0,
        config(2),
    );
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let done = wait_until_finished(&engine, task.id).await;
    assert_eq!(done.state, TaskState::Failed);
    let exception = done.exception.unwrap();
    assert!(exception.contains("exited with code 3"), "{exception}");
    assert!(exception.contains("error: it broke"), "{exception}");
    assert_eq!(
        setup.store.list_task_processes(task.id).unwrap()[0].exit_code,
        Some(3)
    );
}

/// Each task appends "start" and "end" to `log`; returns the most that ran at once.
fn max_overlap(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap();
    let (mut now, mut most) = (0usize, 0usize);
    for line in text.lines() {
        match line {
            "start" => {
                now += 1;
                most = most.max(now);
            }
            "end" => now -= 1,
            other => panic!("unexpected line {other}"),
        }
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_holds_with_many_queued_tasks() {
    let setup = setup();
    let log = setup.path.with_file_name("overlap.log");
    let script = format!(
        "echo start >> {0}; sleep 0.2; echo end >> {0}",
        log.display()
    );
    let engine = engine(&setup, &[(BUILD, script)], 0, config(3));
    engine.start().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(
            engine
                .submit(TaskSubmission::BuildProject {}, None)
                .await
                .unwrap()
                .id,
        );
    }
    let (running, queued) = engine.load();
    assert!(running <= 3 && running + queued >= 9, "{running} {queued}");
    for id in &ids {
        assert_eq!(
            wait_until_finished(&engine, *id).await.state,
            TaskState::Completed
        );
    }
    let most = max_overlap(&log);
    assert_eq!(most, 3, "at most 3 at once, and the slots were used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flake_lock_writer_at_a_time() {
    let setup = setup();
    let log = setup.path.with_file_name("flake.log");
    let script = format!(
        "echo start >> {0}; sleep 0.2; echo end >> {0}",
        log.display()
    );
    let engine = engine(
        &setup,
        &[
            (UPDATE, script.clone()),
            (LOCK, script),
            (BUILD, "sleep 0.3".into()),
        ],
        0,
        config(4),
    );
    engine.start().await.unwrap();
    let mut ids = Vec::new();
    for submission in [
        TaskSubmission::ProjectFlakeUpdate {},
        TaskSubmission::ProjectFlakeLock {},
        TaskSubmission::BuildProject {},
        TaskSubmission::ProjectFlakeUpdate {},
    ] {
        ids.push(engine.submit(submission, None).await.unwrap().id);
    }
    // The build is not held back by the flake tasks queued before it.
    wait_for_state(&engine, ids[2], TaskState::Running).await;
    for id in &ids {
        assert_eq!(
            wait_until_finished(&engine, *id).await.state,
            TaskState::Completed
        );
    }
    assert_eq!(max_overlap(&log), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_task_kills_its_whole_process_group() {
    let setup = setup();
    let marker = format!("{}.{}", 31, std::process::id());
    // A command with helpers of its own, as nix has.
    let script = format!("sleep {marker} & sleep {marker} & echo started; wait");
    let engine = engine(&setup, &[(BUILD, script)], 0, config(2));
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&format!("sleep {marker}")).len() < 2 {
        assert!(Instant::now() < deadline, "the helpers never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled_at = Instant::now();
    engine.cancel(task.id).await.unwrap();
    let done = wait_until_finished(&engine, task.id).await;
    assert_eq!(done.state, TaskState::Cancelled);
    assert!(done.exception.unwrap().contains("cancelled"));
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(3),
        "SIGTERM suffices here"
    );
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
    assert!(matches!(
        engine.cancel(task.id).await,
        Err(TaskError::AlreadyFinished(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_ignoring_sigterm_is_killed_after_the_grace_period() {
    let setup = setup();
    let marker = format!("{}.{}", 32, std::process::id());
    let script = format!("trap '' TERM; sleep {marker} & trap '' TERM; wait; wait");
    let engine = engine(
        &setup,
        &[(BUILD, script)],
        0,
        TaskEngineConfig {
            kill_grace: Duration::from_millis(500),
            ..config(2)
        },
    );
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&format!("sleep {marker}")).is_empty() {
        assert!(Instant::now() < deadline, "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.cancel(task.id).await.unwrap();
    assert_eq!(
        wait_until_finished(&engine, task.id).await.state,
        TaskState::Cancelled
    );
    assert_eq!(
        processes_with(&format!("sleep {marker}")),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_task_is_cancelled_without_running_and_can_be_retried() {
    let setup = setup();
    let log = setup.path.with_file_name("ran.log");
    let engine = engine(
        &setup,
        &[
            (UPDATE, "sleep 1".into()),
            (LOCK, format!("echo ran >> {}", log.display())),
        ],
        0,
        config(1),
    );
    engine.start().await.unwrap();
    let first = engine
        .submit(TaskSubmission::ProjectFlakeUpdate {}, None)
        .await
        .unwrap();
    let queued = engine
        .submit(TaskSubmission::ProjectFlakeLock {}, Some("alice".into()))
        .await
        .unwrap();
    let cancelled = engine.cancel(queued.id).await.unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert!(cancelled.started_at.is_none());
    assert_eq!(
        wait_until_finished(&engine, first.id).await.state,
        TaskState::Completed
    );
    assert!(!log.exists(), "the cancelled task never ran");

    assert!(matches!(
        engine.retry(first.id, None).await.map(|_| ()),
        Ok(())
    ));
    let retried = engine.retry(queued.id, Some("bob".into())).await.unwrap();
    assert_ne!(retried.id, queued.id);
    assert_eq!(retried.submission_data, queued.submission_data);
    assert_eq!(retried.submitted_by.as_deref(), Some("bob"));
    assert_eq!(
        wait_until_finished(&engine, retried.id).await.state,
        TaskState::Completed
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "ran\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_an_unfinished_task_and_unknown_ids_are_refused() {
    let setup = setup();
    let engine = engine(&setup, &[(BUILD, "sleep 5".into())], 0, config(1));
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    assert!(matches!(
        engine.retry(task.id, None).await,
        Err(TaskError::NotFinished(_))
    ));
    let unknown = uuid::Uuid::new_v4();
    assert!(matches!(
        engine.cancel(unknown).await,
        Err(TaskError::NotFound(_))
    ));
    assert!(matches!(
        engine.retry(unknown, None).await,
        Err(TaskError::NotFound(_))
    ));
    engine.cancel(task.id).await.unwrap();
    wait_until_finished(&engine, task.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_ends_when_its_children_end() {
    let setup = setup();
    let engine = engine(
        &setup,
        &[(BUILD, "true".into()), (LOCK, "sleep 0.3".into())],
        2,
        config(4),
    );
    engine.start().await.unwrap();
    let parent = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let parent_id = parent.id;
    // The parent's own work is quick; it stays running while its children run.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let task = engine.get(parent_id).await.unwrap();
        if task.children.len() == 2 {
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        engine.get(parent_id).await.unwrap().state,
        TaskState::Running
    );
    let done = wait_until_finished(&engine, parent_id).await;
    assert_eq!(done.state, TaskState::Completed);
    for child in &done.children {
        let child = engine.get(*child).await.unwrap();
        assert_eq!(child.state, TaskState::Completed);
        assert_eq!(child.parent_id, Some(parent_id));
        assert!(child.ended_at.unwrap() <= done.ended_at.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_child_fails_its_parent() {
    let setup = setup();
    let engine = engine(
        &setup,
        &[(BUILD, "true".into()), (LOCK, "exit 1".into())],
        1,
        config(2),
    );
    engine.start().await.unwrap();
    let parent = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let done = wait_until_finished(&engine, parent.id).await;
    assert_eq!(done.state, TaskState::Failed);
    assert!(done
        .exception
        .unwrap()
        .contains(&format!("Child task {} failed", done.children[0])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_bounded_per_task_keeping_the_newest() {
    let setup = setup();
    // 2,000 lines of ~51 bytes ≈ 100 KiB, printed in bursts.
    let script = "i=0; while [ $i -lt 2000 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; echo last-line";
    let engine = engine(
        &setup,
        &[(BUILD, script.into())],
        0,
        TaskEngineConfig {
            max_output_bytes: 10_000,
            ..config(1)
        },
    );
    engine.start().await.unwrap();
    let task = engine
        .submit(TaskSubmission::BuildProject {}, None)
        .await
        .unwrap();
    let done = wait_until_finished(&engine, task.id).await;
    assert_eq!(done.state, TaskState::Completed);
    let kept = output_text(&setup.store, task.id, OutputStream::Stdout);
    assert!(kept.ends_with("last-line\n"));
    assert!(!kept.contains("line 0 "), "the oldest output was dropped");
    assert_eq!(done.output_bytes, kept.len() as u64);
    assert!(done.output_bytes <= 10_000, "{}", done.output_bytes);
    assert!(done.output_dropped_bytes > 0);
    let produced: usize = (0..2000)
        .map(|i| format!("line {i} xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n").len())
        .sum::<usize>()
        + "last-line\n".len();
    assert_eq!(
        done.output_bytes + done.output_dropped_bytes,
        produced as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_fails_running_tasks_and_requeues_pending_ones() {
    let setup = setup();
    // What a controller killed mid-task leaves behind.
    let running = setup
        .store
        .insert_task(&NewTask {
            kind: BUILD.into(),
            submission_data: TaskSubmission::BuildProject {}.to_json(),
            submitted_by: None,
            parent_id: None,
        })
        .unwrap();
    setup
        .store
        .update_task(
            running.id,
            &TaskUpdate {
                state: Some(TaskState::Running),
                ..TaskUpdate::default()
            },
        )
        .unwrap();
    let pending = setup
        .store
        .insert_task(&NewTask {
            kind: LOCK.into(),
            submission_data: serde_json::json!({"type": LOCK, "project_path": "/old/upstream/field"}),
            submitted_by: None,
            parent_id: None,
        })
        .unwrap();
    let unreadable = setup
        .store
        .insert_task(&NewTask {
            kind: "run_nixos_vm_task".into(),
            submission_data: serde_json::json!({"type": "run_nixos_vm_task"}),
            submitted_by: None,
            parent_id: None,
        })
        .unwrap();

    let engine = engine(&setup, &[(LOCK, "echo locked".into())], 0, config(2));
    engine.start().await.unwrap();
    let interrupted = engine.get(running.id).await.unwrap();
    assert_eq!(interrupted.state, TaskState::Failed);
    assert!(interrupted
        .exception
        .unwrap()
        .contains("interrupted by a restart"));
    assert_eq!(
        wait_until_finished(&engine, pending.id).await.state,
        TaskState::Completed
    );
    let rejected = wait_until_finished(&engine, unreadable.id).await;
    assert_eq!(rejected.state, TaskState::Failed);
    assert!(rejected.exception.unwrap().contains("not understood"));
    let (all, total) = setup
        .store
        .list_tasks(&TaskFilter::default(), 10, 0)
        .unwrap();
    assert_eq!(total, 3);
    assert_eq!(all[0].id, unreadable.id, "newest first");
}
