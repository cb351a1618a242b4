//! Project rendering: a full render of N configs, and a save after one setting of one config
//! changed (render with cache, write, stage in git), for N = 10 … 10,000.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use serde_json::json;
use thymis::module::ModuleRegistry;
use thymis::repository::{DiskMirror, GitRepository, ProjectRenderer, RenderOptions, Repository};
use thymis_benches::fleet;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn full_render(c: &mut Criterion) {
    let registry = ModuleRegistry::with_builtins();
    let options = RenderOptions::default();
    let mut group = c.benchmark_group("full_render");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for size in SIZES {
        let state = fleet(size);
        group.bench_with_input(BenchmarkId::new("in_memory", size), &state, |b, state| {
            b.iter(|| {
                ProjectRenderer::new()
                    .render(state, &registry, &options)
                    .unwrap()
            })
        });
        // Writing 60,000 files measures the file system more than this code; stop at 1,000.
        if size > 1_000 {
            continue;
        }
        group.bench_with_input(
            BenchmarkId::new("to_empty_dir", size),
            &state,
            |b, state| {
                b.iter_batched(
                    || tempfile::tempdir().unwrap(),
                    |dir| {
                        let files = ProjectRenderer::new()
                            .render(state, &registry, &options)
                            .unwrap();
                        DiskMirror::default().sync(dir.path(), &files).unwrap();
                        dir
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    group.finish();
}

fn save_one_change(c: &mut Criterion) {
    let registry = ModuleRegistry::with_builtins();
    let mut group = c.benchmark_group("save_one_setting_changed");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    for size in SIZES {
        let dir = tempfile::tempdir().unwrap();
        let mut state = fleet(size);
        let mut repo =
            GitRepository::open_or_init(dir.path(), &registry, RenderOptions::default()).unwrap();
        repo.save_state(&state, &registry).unwrap();
        repo.commit("fleet", None).unwrap();
        let mut volume = 0;
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| {
                volume = (volume + 1) % 100;
                state.configs[size / 2].modules[2]
                    .settings
                    .insert("volume".into(), json!(volume));
                let report = repo.save_state(&state, &registry).unwrap();
                assert_eq!(report.files.written.len(), 2);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, full_render, save_one_change);
criterion_main!(benches);
