//! Property tests over the public API (small dimensions so they stay fast).

use fovea_learn::{AnyHead, Event, Head, HeadKind, HeadSnapshot, NcmHead, SldaHead};
use proptest::prelude::*;

const KINDS: [HeadKind; 3] = [HeadKind::Slda, HeadKind::Ncm, HeadKind::NcmCosine];

/// Up to `n` labelled vectors of dimension `dim` over at most 4 classes.
fn samples(dim: usize, n: usize) -> impl Strategy<Value = Vec<(u8, Vec<f32>)>> {
    prop::collection::vec((0u8..4, prop::collection::vec(-5.0f32..5.0, dim)), 1..n)
}

fn dims_and_samples() -> impl Strategy<Value = (usize, Vec<(u8, Vec<f32>)>)> {
    (4usize..=12).prop_flat_map(|d| (Just(d), samples(d, 40)))
}

fn fold(kind: HeadKind, dim: usize, data: &[(u8, Vec<f32>)]) -> AnyHead {
    let mut h = AnyHead::new(kind, dim).unwrap();
    for (c, x) in data {
        h.learn_named(x, &format!("k{c}")).unwrap();
    }
    h
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * 1f64.max(a.abs()).max(b.abs())
}

fn same_predictions(a: &AnyHead, b: &AnyHead, probes: &[(u8, Vec<f32>)], tol: f64) -> Result<(), TestCaseError> {
    for (_, x) in probes {
        let (pa, pb) = (a.raw_scores(x).unwrap(), b.raw_scores(x).unwrap());
        prop_assert_eq!(pa.logits.len(), pb.logits.len());
        for (la, lb) in pa.logits.iter().zip(&pb.logits) {
            prop_assert!(la == lb || close(*la, *lb, tol), "logit {} vs {}", la, lb);
        }
        match (pa.distance, pb.distance) {
            (Some(da), Some(db)) => prop_assert!(close(da, db, tol), "distance {} vs {}", da, db),
            (da, db) => prop_assert_eq!(da, db),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn learn_then_unlearn_is_identity((dim, data) in dims_and_samples(), extra_class in 0u8..5) {
        let extra: Vec<f32> = data[0].1.iter().map(|v| v * 0.5 + 1.0).collect();
        let name = format!("k{extra_class}");
        let mut slda = SldaHead::new(dim);
        let mut ncm = NcmHead::new(dim, fovea_learn::Metric::Euclidean);
        for (c, x) in &data {
            slda.learn_named(x, &format!("k{c}")).unwrap();
            ncm.learn_named(x, &format!("k{c}")).unwrap();
        }
        let (s0, n0) = (slda.clone(), ncm.clone());
        slda.learn_named(&extra, &name).unwrap();
        slda.unlearn_named(&extra, &name).unwrap();
        ncm.learn_named(&extra, &name).unwrap();
        ncm.unlearn_named(&extra, &name).unwrap();
        prop_assert_eq!(&slda.counts()[..s0.counts().len()], s0.counts());
        for (a, b) in slda.sums().iter().zip(s0.sums()) {
            prop_assert!(close(*a, *b, 1e-9), "sum {} vs {}", a, b);
        }
        for (a, b) in slda.scatter().iter().zip(s0.scatter()) {
            prop_assert!((a - b).abs() <= 1e-9 * 1f64.max(b.abs()) + 1e-9, "scatter {} vs {}", a, b);
        }
        prop_assert!((ncm.within_ss() - n0.within_ss()).abs() <= 1e-9 * 1f64.max(n0.within_ss()));
        for (a, b) in ncm.sums().iter().zip(n0.sums()) {
            prop_assert!(close(*a, *b, 1e-9));
        }
    }

    #[test]
    fn merge_of_two_halves_equals_whole((dim, data) in dims_and_samples(), cut in 0usize..40) {
        let cut = cut.min(data.len());
        for kind in KINDS {
            let whole = fold(kind, dim, &data);
            let mut left = fold(kind, dim, &data[..cut]);
            left.merge(&fold(kind, dim, &data[cut..])).unwrap();
            for (c, _) in &data {
                let name = format!("k{c}");
                prop_assert_eq!(left.count(left.class_id(&name).unwrap()), whole.count(whole.class_id(&name).unwrap()));
            }
            // Class ids may differ between the two heads; compare through names.
            let mut reordered = AnyHead::new(kind, dim).unwrap();
            for n in whole.classes().names() { reordered.add_class(n); }
            reordered.merge(&left).unwrap();
            same_predictions(&whole, &reordered, &data, 1e-7)?;
        }
    }

    #[test]
    fn snapshot_and_replay_equal_the_full_fold(
        (dim, data) in dims_and_samples(),
        cut in 0usize..80,
        unlearn_every in 2usize..6,
    ) {
        let mut events = Vec::new();
        for (i, (c, x)) in data.iter().enumerate() {
            events.push(Event::Learn { class: format!("k{c}"), embedding: x.clone() });
            if i % unlearn_every == 0 {
                events.push(Event::Unlearn { class: format!("k{c}"), embedding: x.clone() });
            }
        }
        let cut = cut.min(events.len());
        for kind in KINDS {
            let mut full = AnyHead::new(kind, dim).unwrap();
            full.replay(&events).unwrap();
            let mut early = AnyHead::new(kind, dim).unwrap();
            early.replay(&events[..cut]).unwrap();
            let bytes = early.snapshot().to_bytes().unwrap();
            let mut resumed = AnyHead::restore(HeadSnapshot::from_bytes(&bytes).unwrap()).unwrap();
            resumed.replay(&events[cut..]).unwrap();
            same_predictions(&full, &resumed, &data, 1e-9)?;
        }
    }

    #[test]
    fn predictions_are_finite_and_normalised((dim, data) in dims_and_samples(), probe in prop::collection::vec(-50.0f32..50.0, 12)) {
        for kind in KINDS {
            let h = fold(kind, dim, &data);
            let p = h.predict(&probe[..dim]).unwrap();
            let total: f64 = p.probabilities.iter().sum();
            prop_assert!((total - 1.0).abs() < 1e-9, "{} sums to {}", kind, total);
            prop_assert!(p.ranked.iter().all(|s| s.score.is_finite() && s.probability.is_finite()));
            prop_assert!(p.distance.is_some_and(f64::is_finite));
        }
    }
}
