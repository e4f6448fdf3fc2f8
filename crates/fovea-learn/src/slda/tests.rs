//! Behaviour every head kind must show; run for slda, ncm and ncm-cosine alike.

use super::*;
use crate::any::AnyHead;
use crate::calibrate::{calibrate_open_set, calibrate_temperature, OpenSetRule};
use crate::eval::{accuracy, Example};
use crate::head::Event;
use crate::synthetic::{gaussian_clusters, Gaussian};

const KINDS: [HeadKind; 3] = [HeadKind::Slda, HeadKind::Ncm, HeadKind::NcmCosine];

fn trained(kind: HeadKind, data: &[Example]) -> AnyHead {
    let mut h = AnyHead::new(kind, data[0].x.len()).unwrap();
    for e in data {
        h.learn_named(&e.x, &e.class).unwrap();
    }
    h
}

fn assert_close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = 1.0f64.max(x.abs()).max(y.abs());
        assert!((x - y).abs() <= tol * scale, "{what}[{i}]: {x} vs {y}");
    }
}

fn assert_same_predictions(a: &AnyHead, b: &AnyHead, probes: &[Example], tol: f64) {
    for e in probes {
        let (pa, pb) = (a.raw_scores(&e.x).unwrap(), b.raw_scores(&e.x).unwrap());
        assert_close(&pa.logits, &pb.logits, tol, "logits");
        assert_close(&[pa.distance.unwrap()], &[pb.distance.unwrap()], tol, "distance");
    }
}

#[test]
fn separates_gaussian_clusters() {
    let (_, train) = gaussian_clusters(7, 5, 40, 16, 3.0, 1.0);
    let (_, test) = gaussian_clusters(7, 5, 60, 16, 3.0, 1.0);
    let test = &test[200..]; // same centres (same seed), fresh points
    for kind in KINDS {
        let h = trained(kind, &train);
        let acc = accuracy(&h, test).unwrap();
        assert!(acc > 0.95, "{kind}: accuracy {acc}");
    }
}

#[test]
fn slda_beats_ncm_on_correlated_noise() {
    // Shared, strongly anisotropic within-class noise is exactly what LDA's pooled covariance fixes.
    let mut g = Gaussian::new(3);
    let dim = 8;
    let mut data = Vec::new();
    for i in 0..600 {
        let c = i % 2;
        let big = g.sample() * 10.0;
        let mut x: Vec<f32> = (0..dim).map(|_| (g.sample() * 0.3) as f32).collect();
        x[0] += big as f32 + if c == 0 { -1.0 } else { 1.0 };
        x[1] += big as f32;
        data.push(Example::new(x, format!("k{c}")));
    }
    let (train, test) = data.split_at(400);
    let slda = accuracy(&trained(HeadKind::Slda, train), test).unwrap();
    let ncm = accuracy(&trained(HeadKind::Ncm, train), test).unwrap();
    assert!(slda > 0.95 && slda > ncm + 0.2, "slda {slda} ncm {ncm}");
}

#[test]
fn learn_then_unlearn_restores_statistics() {
    let (_, data) = gaussian_clusters(11, 3, 10, 6, 2.0, 1.0);
    let mut h = SldaHead::new(6);
    for e in &data {
        h.learn_named(&e.x, &e.class).unwrap();
    }
    let before = h.clone();
    let extra: Vec<f32> = vec![0.3, -1.0, 2.0, 0.0, 5.0, -0.2];
    h.learn_named(&extra, "c1").unwrap();
    h.learn_named(&extra, "brand-new").unwrap();
    h.unlearn_named(&extra, "brand-new").unwrap();
    h.unlearn_named(&extra, "c1").unwrap();
    assert_eq!(h.counts()[..3], before.counts()[..]);
    assert_close(&h.sums()[..before.sums().len()], before.sums(), 1e-12, "sums");
    assert_close(&h.scatter(), &before.scatter(), 1e-9, "scatter");
    assert_close(&h.precision(), &before.precision(), 1e-9, "precision");
}

#[test]
fn incremental_precision_matches_exact_recompute() {
    let (_, data) = gaussian_clusters(5, 4, 50, 10, 2.0, 1.0);
    let mut h = SldaHead::with_config(10, SldaConfig { refresh_every: 0, ..SldaConfig::default() }).unwrap();
    for (i, e) in data.iter().enumerate() {
        h.learn_named(&e.x, &e.class).unwrap();
        if i % 3 == 0 {
            h.unlearn_named(&e.x, &e.class).unwrap();
        }
    }
    let mut exact = h.clone();
    exact.recompute().unwrap();
    assert_close(&h.precision(), &exact.precision(), 1e-9, "precision");
    assert_close(&h.weights, &exact.weights, 1e-9, "weights");
    assert_close(&h.quad, &exact.quad, 1e-9, "quad");
}

#[test]
fn merge_of_halves_equals_whole() {
    let (_, data) = gaussian_clusters(13, 4, 30, 8, 2.0, 1.0);
    for kind in KINDS {
        let whole = trained(kind, &data);
        let (a, b) = data.split_at(47);
        let mut left = trained(kind, a);
        // The right half names classes in a different order; merge must match by name.
        let mut rev: Vec<Example> = b.to_vec();
        rev.reverse();
        left.merge(&trained(kind, &rev)).unwrap();
        assert_same_predictions(&whole, &left, &data[..20], 1e-9);
        if let (AnyHead::Slda(w), AnyHead::Slda(m)) = (&whole, &left) {
            assert_close(&w.scatter(), &m.scatter(), 1e-9, "scatter");
        }
    }
}

#[test]
fn snapshot_then_replay_equals_full_fold() {
    let (_, data) = gaussian_clusters(17, 3, 40, 8, 2.0, 1.0);
    let events: Vec<Event> = data
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            let mut v = vec![Event::Learn { class: e.class.clone(), embedding: e.x.clone() }];
            if i % 5 == 4 {
                v.push(Event::Unlearn { class: e.class.clone(), embedding: e.x.clone() });
            }
            v
        })
        .collect();
    for kind in KINDS {
        let mut full = AnyHead::new(kind, 8).unwrap();
        full.replay(&events).unwrap();
        let mut early = AnyHead::new(kind, 8).unwrap();
        early.replay(&events[..60]).unwrap();
        for bytes_form in [false, true] {
            let snap = early.snapshot();
            let snap = if bytes_form {
                HeadSnapshot::from_bytes(&snap.to_bytes().unwrap()).unwrap()
            } else {
                HeadSnapshot::from_json(&snap.to_json().unwrap()).unwrap()
            };
            assert_eq!(snap, early.snapshot(), "{kind}: snapshot must roundtrip exactly");
            let mut resumed = AnyHead::restore(snap).unwrap();
            resumed.replay(&events[60..]).unwrap();
            assert_same_predictions(&full, &resumed, &data[..15], 1e-9);
        }
    }
}

#[test]
fn empty_and_one_class_heads_are_sane() {
    for kind in KINDS {
        let mut h = AnyHead::new(kind, 4).unwrap();
        let p = h.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(p.unknown && p.class().is_none() && p.ranked.is_empty());
        h.add_class("lonely");
        let p = h.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!(p.unknown && p.probabilities == vec![0.0]);
        h.learn_named(&[1.0, 0.0, 0.0, 0.0], "lonely").unwrap();
        let p = h.predict(&[0.0, 0.0, 5.0, 0.0]).unwrap();
        assert_eq!(p.class(), h.class_id("lonely"));
        assert_eq!(p.probabilities, vec![1.0]);
        assert!(p.distance.unwrap().is_finite());
        let mut cal = h.calibration().to_owned();
        cal.temperature = 0.01;
        h.set_calibration(cal);
        let p = h.predict(&[0.0, 0.0, 5.0, 0.0]).unwrap();
        assert!(p.ranked.iter().all(|s| s.score.is_finite() && s.probability.is_finite()));
        assert!(matches!(h.unlearn_named(&[1.0, 0.0, 0.0, 0.0], "nobody"), Err(Error::UnknownClass(_))));
        assert!(matches!(h.predict(&[1.0]), Err(Error::Dimension { .. })));
        assert!(matches!(h.learn_named(&[f32::NAN; 4], "x"), Err(Error::NonFinite)));
        h.unlearn_named(&[1.0, 0.0, 0.0, 0.0], "lonely").unwrap();
        assert!(h.predict(&[1.0, 2.0, 3.0, 4.0]).unwrap().unknown);
        assert!(matches!(h.unlearn_named(&[1.0, 0.0, 0.0, 0.0], "lonely"), Err(Error::NothingToUnlearn(_))));
    }
}

#[test]
fn single_correction_adds_a_new_class() {
    let (_, data) = gaussian_clusters(19, 5, 30, 12, 2.0, 1.0);
    let mut g = Gaussian::new(99);
    let novel = g.vector(12, 2.0);
    for kind in KINDS {
        let mut h = trained(kind, &data);
        let id = h.add_class("novel");
        h.learn(&novel, id).unwrap();
        let near: Vec<f32> = novel.iter().map(|v| v + (g.sample() * 0.05) as f32).collect();
        assert_eq!(h.predict(&near).unwrap().top_class(), Some(id), "{kind}");
        // The old classes still work.
        assert!(accuracy(&h, &data).unwrap() > 0.9, "{kind}");
    }
}

#[test]
fn calibration_and_open_set_work_through_the_head() {
    let (centres, train) = gaussian_clusters(23, 4, 50, 8, 1.0, 1.0);
    let (_, heldout) = gaussian_clusters(23, 4, 80, 8, 1.0, 1.0);
    let heldout = &heldout[200..];
    let far: Vec<f32> = centres[0].iter().map(|v| v + 40.0).collect();
    for kind in KINDS {
        let mut h = trained(kind, &train);
        let fit = calibrate_temperature(&mut h, heldout).unwrap();
        assert!(fit.nll_after <= fit.nll_before, "{kind}: {fit:?}");
        let open = calibrate_open_set(&mut h, heldout, 0.05, OpenSetRule::Distance).unwrap();
        assert!(open.false_unknown_rate <= 0.05, "{kind}: {open:?}");
        assert!(h.predict(&far).unwrap().unknown, "{kind}: far point must be unknown");
        assert!(!h.predict(&centres[1]).unwrap().unknown, "{kind}: a class centre is known");
    }
}

#[test]
fn head_kind_parses() {
    for kind in KINDS {
        assert_eq!(kind.as_str().parse::<HeadKind>().unwrap(), kind);
        assert_eq!(AnyHead::from_name(kind.as_str(), 3).unwrap().kind(), kind);
    }
    assert!("svm".parse::<HeadKind>().is_err());
}

/// Drift of the Sherman–Morrison path at a realistic size (2 500 updates at 256 dimensions; about half a second,
/// since test builds compile this crate at opt-level 3).
#[test]
fn drift_stays_small_at_scale() {
    let dim = 256;
    let (_, data) = gaussian_clusters(77, 50, 50, dim, 1.0, 0.5);
    let mut h =
        SldaHead::with_config(dim, SldaConfig { refresh_every: 0, prior_variance: 0.25, ..SldaConfig::default() })
            .unwrap();
    for (i, e) in data.iter().enumerate() {
        h.learn_named(&e.x, &e.class).unwrap();
        if i % 4 == 3 {
            h.unlearn_named(&e.x, &e.class).unwrap();
        }
    }
    let mut exact = h.clone();
    exact.recompute().unwrap();
    let (a, b) = (h.precision(), exact.precision());
    let max_abs = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let drift = a.iter().zip(&b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / max_abs;
    eprintln!("relative precision drift after {} updates: {drift:e}", data.len() * 5 / 4);
    assert!(drift < 1e-9, "{drift}");
    let ncm_acc = accuracy(&trained(HeadKind::Ncm, &data), &data).unwrap();
    let slda_acc = accuracy(&AnyHead::Slda(h), &data).unwrap();
    eprintln!("train accuracy slda {slda_acc} ncm {ncm_acc}");
    assert!(slda_acc > 0.9);
}

mod merge_property {
    use proptest::prelude::*;

    use super::*;

    /// Labelled points of a few named classes, in arbitrary order.
    fn examples() -> impl Strategy<Value = Vec<Example>> {
        (2usize..6).prop_flat_map(|dim| {
            prop::collection::vec(
                (0usize..4, prop::collection::vec(-5.0f32..5.0, dim))
                    .prop_map(|(c, x)| Example { x, class: ["cat", "dog", "owl", "fox"][c].to_owned() }),
                2..60,
            )
        })
    }

    fn fold(kind: HeadKind, dim: usize, data: &[Example]) -> AnyHead {
        let mut h = AnyHead::new(kind, dim).unwrap();
        for e in data {
            h.learn_named(&e.x, &e.class).unwrap();
        }
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// What replicas rely on: the head's statistics merge exactly, so fold(A ∪ B) = merge(fold A, fold B) for
        /// any split of the log and any order of classes in either part.
        #[test]
        fn fold_of_a_union_is_the_merge_of_the_folds(data in examples(), cut in 0usize..60, reverse in any::<bool>()) {
            let dim = data[0].x.len();
            let cut = cut.min(data.len());
            let (a, b) = data.split_at(cut);
            let mut b = b.to_vec();
            if reverse {
                b.reverse();
            }
            for kind in KINDS {
                let whole = fold(kind, dim, &data);
                let mut merged = fold(kind, dim, a);
                merged.merge(&fold(kind, dim, &b)).unwrap();
                for name in ["cat", "dog", "owl", "fox"] {
                    let count = |h: &AnyHead| h.class_id(name).map(|c| h.count(c));
                    prop_assert_eq!(count(&whole), count(&merged), "{:?} count of {}", kind, name);
                }
                if let (AnyHead::Slda(w), AnyHead::Slda(m)) = (&whole, &merged) {
                    assert_close(&w.scatter(), &m.scatter(), 1e-8, "scatter");
                }
                // Class ids follow first appearance, which differs between the two; compare by name.
                for e in &data {
                    let (pw, pm) = (whole.raw_scores(&e.x).unwrap(), merged.raw_scores(&e.x).unwrap());
                    for name in ["cat", "dog", "owl", "fox"] {
                        if let (Some(cw), Some(cm)) = (whole.class_id(name), merged.class_id(name)) {
                            assert_close(&[pw.logits[cw.index()]], &[pm.logits[cm.index()]], 1e-7, name);
                        }
                    }
                    assert_close(&[pw.distance.unwrap()], &[pm.distance.unwrap()], 1e-7, "distance");
                }
            }
        }
    }
}
