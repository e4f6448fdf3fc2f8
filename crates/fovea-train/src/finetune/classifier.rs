//! Warm-starting the classifier for a (possibly grown) class list.

use crate::{Result, TrainError};

/// An existing classifier: class names, row-major `[n, dim]` weights (PyTorch `[out, in]` layout) and biases.
pub type ClassifierRows<'a> = (&'a [String], &'a [f32], &'a [f32]);

/// Logit gap, at a class mean, between its class and a typical other class under the class-mean rows
/// (see [`extended_classifier`]). 3 nats (≈ 95 % softmax confidence on a mean against one rival): decisive enough
/// to be a useful start, soft enough that images far from their mean — real classes overlap — cost a moderate
/// loss rather than a huge one, which would make the first backbone steps large and erratic.
const MEAN_MARGIN: f32 = 3.0;

/// The classifier for `classes`: rows of classes already in `old` are copied bit-for-bit (matched by name, so
/// reordering is harmless), the rest are built from `class_means` (per class, the mean embedding of its training
/// images under the serving backbone; only consulted for classes without an old row, may be empty for those).
///
/// New rows are the nearest-class-mean classifier written as a linear layer. With `μ` the mean of all class
/// means, `w_c = α(μ_c − μ)` and `b_c = −½α(|μ_c|² − |μ|²)`: then `w_c·x + b_c = −½α|x − μ_c|² + (terms equal for
/// every class)`, so the argmax is exactly the nearest class mean. Centring on `μ` keeps the rows small and the
/// biases well conditioned (the raw embeddings share a large common component). `α` is chosen so that at a class
/// mean the logit gap to a typical other class is [`MEAN_MARGIN`]: that gap is `½α|μ_c − μ_k|²`, whose mean over
/// pairs is `α·K/(K−1)·s` with `s = mean_c |μ_c − μ|²`, so `α = MEAN_MARGIN·(K−1)/(K·s)` (K counts the classes
/// whose means are known). Random rows would start at chance and spend the first epochs rediscovering what the
/// means already say.
///
/// Old and new rows live in slightly different logit "gauges" (the old biases were trained, the new ones are
/// analytic); fine-tuning the classifier reconciles them, and without training the mix still ranks sensibly
/// because both are calibrated to comparable margins.
///
/// Returns `(weights [classes.len(), dim] row-major, biases [classes.len()])`.
pub fn extended_classifier(
    old: Option<ClassifierRows<'_>>,
    classes: &[String],
    class_means: &[Vec<f32>],
) -> Result<(Vec<f32>, Vec<f32>)> {
    if classes.is_empty() {
        return Err(TrainError::NotEnoughData("the classifier needs at least one class".into()));
    }
    let old_dim = match old {
        Some((names, w, b)) => {
            if names.is_empty() || b.len() != names.len() || w.len() % names.len() != 0 {
                return Err(TrainError::Config(format!(
                    "old classifier has {} classes, {} biases and {} weights, which do not fit together",
                    names.len(),
                    b.len(),
                    w.len()
                )));
            }
            Some(w.len() / names.len())
        }
        None => None,
    };
    let old_row =
        |class: &str| -> Option<usize> { old.and_then(|(names, _, _)| names.iter().position(|n| n == class)) };
    let needs_mean: Vec<usize> = (0..classes.len()).filter(|&c| old_row(&classes[c]).is_none()).collect();

    // The embedding width: from the old rows, else from the means.
    let dim = match old_dim.or_else(|| class_means.iter().map(Vec::len).find(|&d| d > 0)) {
        Some(d) if d > 0 => d,
        _ => return Err(TrainError::NotEnoughData("no class mean and no old classifier to size the rows".into())),
    };
    for &c in &needs_mean {
        match class_means.get(c) {
            Some(m) if m.len() == dim => {}
            Some(m) if m.is_empty() => {
                return Err(TrainError::NotEnoughData(format!(
                    "class {:?} is new but has no training images to initialise it from",
                    classes[c]
                )))
            }
            Some(m) => {
                return Err(TrainError::Config(format!(
                    "class {:?} mean has {} values, the embedding has {dim}",
                    classes[c],
                    m.len()
                )))
            }
            None => {
                return Err(TrainError::Config(format!(
                    "{} class means given for {} classes",
                    class_means.len(),
                    classes.len()
                )))
            }
        }
    }

    // Centre on the mean of every available class mean (old classes included when their mean is known), so a
    // new class is placed relative to the whole problem, not only to the other new classes.
    let known: Vec<&Vec<f32>> = class_means.iter().filter(|m| m.len() == dim).collect();
    let mut centre = vec![0f32; dim];
    for m in &known {
        for (c, v) in centre.iter_mut().zip(m.iter()) {
            *c += v / known.len() as f32;
        }
    }
    let sq = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
    let spread = known.iter().map(|m| m.iter().zip(&centre).map(|(a, b)| (a - b) * (a - b)).sum::<f32>()).sum::<f32>()
        / known.len().max(1) as f32;
    let k = known.len() as f32;
    let alpha = if spread > 1e-12 && known.len() > 1 { MEAN_MARGIN * (k - 1.0) / (k * spread) } else { 1.0 };
    let centre_sq = sq(&centre);

    let mut weights = vec![0f32; classes.len() * dim];
    let mut biases = vec![0f32; classes.len()];
    for (c, class) in classes.iter().enumerate() {
        let row = &mut weights[c * dim..(c + 1) * dim];
        match (old, old_row(class)) {
            (Some((_, w, b)), Some(r)) => {
                row.copy_from_slice(&w[r * dim..(r + 1) * dim]);
                biases[c] = b[r];
            }
            _ => {
                let mean = &class_means[c];
                for ((x, m), mu) in row.iter_mut().zip(mean).zip(&centre) {
                    *x = alpha * (m - mu);
                }
                biases[c] = -0.5 * alpha * (sq(mean) - centre_sq);
            }
        }
    }
    Ok((weights, biases))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn argmax(v: &[f32]) -> usize {
        v.iter().enumerate().fold(0, |best, (i, x)| if *x > v[best] { i } else { best })
    }

    fn logits(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
        let d = x.len();
        b.iter()
            .enumerate()
            .map(|(c, bc)| bc + w[c * d..(c + 1) * d].iter().zip(x).map(|(a, b)| a * b).sum::<f32>())
            .collect()
    }

    #[test]
    fn old_rows_are_kept_bit_for_bit_and_new_rows_classify_their_means() {
        let dim = 6;
        // Means with a large shared component, as real embeddings have.
        let means: Vec<Vec<f32>> =
            (0..4).map(|c| (0..dim).map(|i| 5.0 + if i == c { 1.5 } else { 0.1 * (i * c) as f32 }).collect()).collect();
        let old_names = names(&["cat", "dog"]);
        let old_w: Vec<f32> = (0..2 * dim).map(|i| (i as f32 * 0.37).sin() * 1e-3 + f32::EPSILON).collect();
        let old_b = vec![0.25, -1.0e-7];
        let classes = names(&["dog", "owl", "cat", "emu"]);
        let (w, b) = extended_classifier(Some((&old_names, &old_w, &old_b)), &classes, &means).unwrap();
        assert_eq!(w.len(), 4 * dim);
        assert_eq!(
            w[0..dim].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            old_w[dim..].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(
            w[2 * dim..3 * dim].iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
            old_w[..dim].iter().map(|x| x.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!((b[0].to_bits(), b[2].to_bits()), (old_b[1].to_bits(), old_b[0].to_bits()));

        // Without old rows every class comes from its mean, and each mean is classified as its own class.
        let (w, b) = extended_classifier(None, &classes, &means).unwrap();
        for (c, m) in means.iter().enumerate() {
            let l = logits(&w, &b, m);
            assert_eq!(argmax(&l), c, "mean of class {c} → {l:?}");
        }
        // The new-row margin is the documented one, give or take the spread between pairs.
        let l = logits(&w, &b, &means[1]);
        let gap = l[1] - l.iter().enumerate().filter(|(i, _)| *i != 1).map(|(_, x)| *x).fold(f32::MIN, f32::max);
        assert!(gap > 0.5 && gap < 4.0 * MEAN_MARGIN, "gap {gap}");
    }

    #[test]
    fn new_classes_need_means_of_the_right_width() {
        let classes = names(&["a", "b"]);
        let err = extended_classifier(None, &classes, &[vec![1.0, 2.0], vec![]]).unwrap_err();
        assert!(err.to_string().contains("no training images"), "{err}");
        let err = extended_classifier(None, &classes, &[vec![1.0, 2.0], vec![1.0]]).unwrap_err();
        assert!(err.to_string().contains("has 1 values"), "{err}");
        let old = names(&["a"]);
        let err = extended_classifier(Some((&old, &[1.0, 2.0], &[])), &classes, &[]).unwrap_err();
        assert!(err.to_string().contains("do not fit"), "{err}");
        // A single known class with an old row needs no mean at all.
        let (w, b) = extended_classifier(Some((&old, &[1.0, 2.0], &[3.0])), &old, &[]).unwrap();
        assert_eq!((w, b), (vec![1.0, 2.0], vec![3.0]));
        // One lonely new class: zero row (nothing to separate from), no panic.
        let (w, _) = extended_classifier(None, &old, &[vec![4.0, 4.0]]).unwrap();
        assert_eq!(w, vec![0.0, 0.0]);
    }
}
