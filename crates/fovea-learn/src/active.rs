//! Uncertainty scores for a review queue: higher always means "a human should look at this sooner".

use serde::{Deserialize, Serialize};

use crate::head::Prediction;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Uncertainty {
    #[default]
    Margin,
    Entropy,
    LeastConfidence,
}

/// `1 - (p1 - p2)`: near 1 when the top two classes are tied. One class gives 0 (nothing to confuse).
pub fn margin(probabilities: &[f64]) -> f64 {
    let (mut p1, mut p2) = (0.0f64, 0.0f64);
    for &p in probabilities {
        if p > p1 {
            p2 = p1;
            p1 = p;
        } else if p > p2 {
            p2 = p;
        }
    }
    if p1 == 0.0 {
        return 1.0;
    }
    1.0 - (p1 - p2)
}

/// Shannon entropy in nats, normalised by `ln(#classes with p > 0)` to land in `[0, 1]`.
pub fn entropy(probabilities: &[f64]) -> f64 {
    let support = probabilities.iter().filter(|&&p| p > 0.0).count();
    if support == 0 {
        return 1.0;
    }
    if support == 1 {
        return 0.0;
    }
    let h: f64 = probabilities.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.ln()).sum();
    (h / (support as f64).ln()).clamp(0.0, 1.0)
}

/// `1 - max p`.
pub fn least_confidence(probabilities: &[f64]) -> f64 {
    1.0 - probabilities.iter().copied().fold(0.0, f64::max)
}

impl Uncertainty {
    pub fn score(self, probabilities: &[f64]) -> f64 {
        match self {
            Uncertainty::Margin => margin(probabilities),
            Uncertainty::Entropy => entropy(probabilities),
            Uncertainty::LeastConfidence => least_confidence(probabilities),
        }
    }
}

impl Prediction {
    /// Review priority; an unknown verdict is maximally uncertain.
    pub fn uncertainty(&self, kind: Uncertainty) -> f64 {
        if self.unknown {
            1.0
        } else {
            kind.score(&self.probabilities)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_order_confident_before_confused() {
        let sure = [0.98, 0.01, 0.01];
        let torn = [0.45, 0.45, 0.10];
        for u in [Uncertainty::Margin, Uncertainty::Entropy, Uncertainty::LeastConfidence] {
            assert!(u.score(&torn) > u.score(&sure), "{u:?}");
            for p in [&sure[..], &torn[..], &[], &[1.0], &[0.0, 0.0]] {
                let s = u.score(p);
                assert!((0.0..=1.0).contains(&s), "{u:?} {p:?} {s}");
            }
        }
        assert!((margin(&torn) - 1.0).abs() < 1e-12);
        assert_eq!(entropy(&[1.0, 0.0]), 0.0);
        assert!((entropy(&[0.5, 0.5]) - 1.0).abs() < 1e-12);
    }
}
