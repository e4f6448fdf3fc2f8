//! Latency of one learn and one predict for 100 classes at D = 1280 (EfficientNet-Lite embedding size).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use fovea_learn::synthetic::gaussian_clusters;
use fovea_learn::{AnyHead, Head, HeadKind};

const DIM: usize = 1280;
const CLASSES: usize = 100;
const PER_CLASS: usize = 10;

fn bench_heads(c: &mut Criterion) {
    let (_, data) = gaussian_clusters(42, CLASSES, PER_CLASS + 5, DIM, 1.0, 0.5);
    let (train, probe) = data.split_at(CLASSES * PER_CLASS);
    for kind in [HeadKind::Slda, HeadKind::Ncm, HeadKind::NcmCosine] {
        let mut head = AnyHead::new(kind, DIM).unwrap();
        for e in train {
            head.learn_named(&e.x, &e.class).unwrap();
        }
        let mut group = c.benchmark_group(kind.as_str());
        group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
        let mut i = 0usize;
        group.bench_function("predict", |b| {
            b.iter(|| {
                i = (i + 1) % probe.len();
                black_box(head.predict(black_box(&probe[i].x)).unwrap())
            })
        });
        // Learn then unlearn keeps the head's size fixed however many iterations criterion picks;
        // the reported time is for the pair, i.e. two updates.
        let mut learner = head.clone();
        group.bench_function("learn+unlearn", |b| {
            b.iter(|| {
                i = (i + 1) % probe.len();
                let e = &probe[i];
                learner.learn_named(black_box(&e.x), &e.class).unwrap();
                learner.unlearn_named(black_box(&e.x), &e.class).unwrap();
            })
        });
        let mut grower = head.clone();
        group.bench_function("learn", |b| {
            b.iter(|| {
                i = (i + 1) % probe.len();
                let e = &probe[i];
                grower.learn_named(black_box(&e.x), &e.class).unwrap();
            })
        });
        group.finish();
    }
    let mut slda = AnyHead::new(HeadKind::Slda, DIM).unwrap();
    for e in train {
        slda.learn_named(&e.x, &e.class).unwrap();
    }
    let mut group = c.benchmark_group("slda");
    group.sample_size(10);
    if let AnyHead::Slda(h) = &mut slda {
        group.bench_function("exact-recompute", |b| b.iter(|| h.recompute().unwrap()));
    }
    group.finish();
}

criterion_group!(benches, bench_heads);
criterion_main!(benches);
