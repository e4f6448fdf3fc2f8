//! Judges the embeddings `fovea eval label-errors --embeddings-out FILE` wrote, with every round count, against the
//! truth that `scripts/bench_label_errors.py` encodes in moved files' names (`<class>/from<true class>-…`):
//! `cargo run --example label_errors -p fovea-learn -- FILE` (with `DIAGNOSE=1`: thresholds, the leave-one-out
//! disagreements and the best F1 any cut of the ranking reaches).

use fovea_learn::{find_label_errors, Head, LabelErrorConfig, SldaConfig, SldaHead};

fn main() {
    let path = std::env::args().nth(1).expect("usage: label_errors EMBEDDINGS.json");
    let data: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
    let paths: Vec<String> = serde_json::from_value(data["paths"].clone()).expect("paths");
    let labels: Vec<String> = serde_json::from_value(data["labels"].clone()).expect("labels");
    let xs: Vec<Vec<f32>> = serde_json::from_value(data["embeddings"].clone()).expect("embeddings");
    let truth: Vec<bool> = paths.iter().map(|p| p.contains("/from") || p.starts_with("from")).collect();
    // The app's head: SLDA with its prior scale of 0.1 per dimension.
    let cfg = SldaConfig { prior_variance: 0.1, ..Default::default() };
    let mut head = SldaHead::with_config(xs[0].len(), cfg).expect("head");
    for (x, c) in xs.iter().zip(&labels) {
        head.learn_named(x, c).expect("learn");
    }
    let samples: Vec<(&[f32], &str)> = xs.iter().zip(&labels).map(|(x, c)| (x.as_slice(), c.as_str())).collect();
    let wrong = truth.iter().filter(|&&t| t).count();
    println!("{} images, {wrong} wrong labels", samples.len());
    if std::env::var_os("DIAGNOSE").is_some() {
        diagnose(&head, &samples, &truth);
    }
    for rounds in 1..=3 {
        let start = std::time::Instant::now();
        let found = find_label_errors(&head, &samples, &LabelErrorConfig { rounds }).expect("search");
        let hits = found.suspects.iter().filter(|s| truth[s.index]).count();
        let precision = hits as f64 / found.suspects.len().max(1) as f64;
        let recall = hits as f64 / wrong.max(1) as f64;
        let f1 = 2.0 * precision * recall / (precision + recall).max(1e-12);
        println!(
            "rounds {rounds}: flagged {:>4}, right {hits:>4}, precision {precision:.3}, recall {recall:.3}, F1 {f1:.3} ({:.1} s)",
            found.suspects.len(),
            start.elapsed().as_secs_f64()
        );
    }
}

fn diagnose(head: &SldaHead, samples: &[(&[f32], &str)], truth: &[bool]) {
    use fovea_learn::{fit_temperature, leave_one_out, softmax_scaled};
    let held = leave_one_out(head, samples).unwrap();
    let ev: Vec<(Vec<f64>, usize)> = held.iter().map(|h| (h.logits.clone(), h.truth)).collect();
    let t = fit_temperature(&ev).temperature;
    let probs: Vec<Vec<f64>> = ev.iter().map(|(l, _)| softmax_scaled(l, 1.0 / t)).collect();
    let k = probs[0].len();
    let mut thr = vec![0.0; k];
    let mut cnt = vec![0.0; k];
    for (p, (_, y)) in probs.iter().zip(&ev) {
        thr[*y] += p[*y];
        cnt[*y] += 1.0;
    }
    for j in 0..k {
        thr[j] /= cnt[j];
    }
    println!("temperature {t:.2}, thresholds {:?}", thr.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>());
    let argmax = |p: &Vec<f64>| (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
    let (mut dis_w, mut dis_c, mut thr_w, mut thr_c) = (0, 0, 0, 0);
    for (i, (p, (_, y))) in probs.iter().zip(&ev).enumerate() {
        let a = argmax(p);
        if a != *y {
            if truth[i] {
                dis_w += 1
            } else {
                dis_c += 1
            }
            if p[a] >= thr[a] {
                if truth[i] {
                    thr_w += 1
                } else {
                    thr_c += 1
                }
            }
        }
    }
    println!("argmax disagrees: {dis_w} wrong + {dis_c} right labels; of them above threshold: {thr_w} + {thr_c}");
    // Ranked by margin: the best F1 any cut of this ranking reaches.
    let mut ranked: Vec<(f64, bool)> = probs
        .iter()
        .zip(&ev)
        .enumerate()
        .map(|(i, (p, (_, y)))| {
            let best_other = (0..p.len()).filter(|&j| j != *y).map(|j| p[j]).fold(0.0, f64::max);
            (best_other - p[*y], truth[i])
        })
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let wrong = truth.iter().filter(|&&t| t).count() as f64;
    let (mut hits, mut best) = (0.0, (0.0, 0));
    for (n, (_, t)) in ranked.iter().enumerate() {
        if *t {
            hits += 1.0;
        }
        let (p, r) = (hits / (n + 1) as f64, hits / wrong);
        let f = 2.0 * p * r / (p + r).max(1e-12);
        if f > best.0 {
            best = (f, n + 1);
        }
    }
    println!("best F1 of the margin ranking: {:.3} at {} flagged", best.0, best.1);
    // Noise-aware posterior: P(label wrong | x, y) with a uniform flip rate eps fitted by EM.
    let kk = (k - 1) as f64;
    let mut eps = 0.1;
    let mut pw = vec![0.0; probs.len()];
    for _ in 0..50 {
        for (i, (p, (_, y))) in probs.iter().zip(&ev).enumerate() {
            let q = p[*y];
            let flip = (1.0 - q) * eps / kk;
            pw[i] = flip / (q * (1.0 - eps) + flip);
        }
        eps = pw.iter().sum::<f64>() / pw.len() as f64;
    }
    for cut in [0.3, 0.4, 0.5, 0.6, 0.7] {
        let flagged: Vec<usize> = (0..pw.len()).filter(|&i| pw[i] > cut).collect();
        let h = flagged.iter().filter(|&&i| truth[i]).count() as f64;
        let (p, r) = (h / flagged.len().max(1) as f64, h / wrong);
        println!(
            "eps {eps:.3} cut {cut}: flagged {} precision {p:.3} recall {r:.3} F1 {:.3}",
            flagged.len(),
            2.0 * p * r / (p + r).max(1e-12)
        );
    }
}
