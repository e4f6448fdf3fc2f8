//! Split leakage: near-duplicate groups whose members a training run put in different splits. A copy of a
//! benchmark image in the training data makes the gate measure memory instead of skill, so a run whose benchmark
//! leaked into its training or validation data (validation is trained on by a final fit) is never promoted. The
//! report is made when a run's splits are drawn and kept with the run, so it can be read for any run later.
//!
//! The dataset builder already keeps exact copies and close hash matches in one split; what leaks is what only the
//! broader finder links (crops, found through the embeddings) and groups that a frozen benchmark image pulls apart.

use std::collections::{BTreeSet, HashMap};

use fovea_train::dataset::{DatasetPlan, Split};
use fovea_train::duplicates::DuplicateConfig;
use serde::{Deserialize, Serialize};

use crate::{App, AppError, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakMember {
    pub image_id: String,
    /// train, validation, test or benchmark.
    pub split: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakGroup {
    /// The splits the group's members landed in, sorted.
    pub splits: Vec<String>,
    pub members: Vec<LeakMember>,
    /// A benchmark member has a copy in the training or validation data.
    pub benchmark_leaked: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LeakageReport {
    /// The run the report belongs to (filled in when read back).
    #[serde(default)]
    pub model: Option<String>,
    /// Images in the run's splits.
    pub images: usize,
    /// Groups that cross splits, benchmark leaks first.
    pub groups: Vec<LeakGroup>,
    /// Benchmark images with a copy in the training or validation data; any blocks promotion.
    pub benchmark_images_leaked: usize,
    pub benchmark_leaked: bool,
}

/// The crossing groups among `groups` of (image id, split, label); pure, so it is tested on constructed splits.
pub(crate) fn crossing(groups: Vec<Vec<(String, Split, String)>>, images: usize) -> LeakageReport {
    let mut out = Vec::new();
    let mut leaked_images = 0;
    for members in groups {
        let splits: BTreeSet<Split> = members.iter().map(|m| m.1).collect();
        if splits.len() < 2 {
            continue;
        }
        let trained = splits.contains(&Split::Train) || splits.contains(&Split::Validation);
        let benchmark_leaked = splits.contains(&Split::Benchmark) && trained;
        if benchmark_leaked {
            leaked_images += members.iter().filter(|m| m.1 == Split::Benchmark).count();
        }
        out.push(LeakGroup {
            splits: splits.iter().map(|s| s.to_string()).collect(),
            members: members
                .into_iter()
                .map(|(image_id, split, label)| LeakMember { image_id, split: split.to_string(), label })
                .collect(),
            benchmark_leaked,
        });
    }
    out.sort_by(|a, b| b.benchmark_leaked.cmp(&a.benchmark_leaked).then(b.members.len().cmp(&a.members.len())));
    LeakageReport {
        model: None,
        images,
        groups: out,
        benchmark_images_leaked: leaked_images,
        benchmark_leaked: leaked_images > 0,
    }
}

impl App {
    /// The leakage of a plan's splits, from the duplicate groups over every stored image (links through an image
    /// outside the plan count: copies of copies are copies).
    pub(crate) async fn split_leakage(&self, plan: &DatasetPlan) -> Result<LeakageReport> {
        let mut split_of: HashMap<&str, (Split, &str)> = HashMap::new();
        for split in Split::ALL {
            for s in plan.split(split) {
                split_of.insert(s.sha256.as_str(), (split, s.class.as_str()));
            }
        }
        let found = self.find_duplicates(&DuplicateConfig::strict()).await?;
        let groups = found
            .groups
            .iter()
            .map(|g| {
                g.members
                    .iter()
                    .filter_map(|&i| {
                        let id = found.rows[i].image.id.as_str();
                        split_of.get(id).map(|&(split, label)| (id.to_owned(), split, label.to_owned()))
                    })
                    .collect()
            })
            .collect();
        Ok(crossing(groups, split_of.len()))
    }

    /// The leakage report of training run `model`, or of the newest run that has one.
    pub async fn leakage(&self, model: Option<&str>) -> Result<LeakageReport> {
        let record = match model {
            Some(id) => self.model(id).await?,
            None => self
                .catalog
                .list_model_versions()
                .await?
                .into_iter()
                .find(|m| m.metrics.get("leakage").is_some())
                .ok_or_else(|| AppError::NotFound { what: "training run with a leakage report", id: String::new() })?,
        };
        let stored = record.metrics.get("leakage").cloned().ok_or_else(|| {
            AppError::Invalid(format!(
                "{} has no leakage report (only fine-tune runs drawn since it exists do)",
                record.id
            ))
        })?;
        let mut report: LeakageReport = serde_json::from_value(stored)
            .map_err(|e| AppError::Internal(format!("leakage report of {}: {e}", record.id)))?;
        report.model = Some(record.id);
        Ok(report)
    }
}

/// Adds the leakage rule to a gate verdict: a benchmark with copies in the training data fails the run.
pub(crate) fn judge_leakage(verdict: &mut fovea_train::gate::GateVerdict, leakage: &LeakageReport) {
    if leakage.benchmark_leaked {
        verdict.passed = false;
        verdict.reasons.push(format!(
            "FAIL: {} benchmark images have a near duplicate in the training or validation data \
             (`fovea hygiene leakage`; resolve the duplicates and train again)",
            leakage.benchmark_images_leaked
        ));
    } else {
        verdict.reasons.push("no benchmark image has a near duplicate in the training or validation data".into());
    }
}

/// Whether a registry row's recorded leakage forbids promoting it.
pub(crate) fn blocks_promotion(metrics: &serde_json::Value) -> Option<usize> {
    let leakage = metrics.get("leakage")?;
    (leakage.get("benchmark_leaked")? == true)
        .then(|| leakage.get("benchmark_images_leaked").and_then(|n| n.as_u64()).unwrap_or(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, split: Split) -> (String, Split, String) {
        (id.to_owned(), split, "cat".to_owned())
    }

    #[test]
    fn only_groups_across_splits_are_reported_and_a_benchmark_copy_in_training_blocks() {
        let groups = vec![
            vec![member("a", Split::Train), member("b", Split::Train)],
            vec![member("c", Split::Test), member("d", Split::Train)],
            vec![member("e", Split::Benchmark), member("f", Split::Validation), member("g", Split::Benchmark)],
            vec![member("h", Split::Benchmark), member("i", Split::Test)],
        ];
        let r = crossing(groups, 20);
        assert_eq!(r.images, 20);
        assert_eq!(r.groups.len(), 3, "a group inside one split does not leak");
        assert!(r.benchmark_leaked);
        assert_eq!(r.benchmark_images_leaked, 2);
        assert!(r.groups[0].benchmark_leaked, "benchmark leaks come first");
        assert_eq!(r.groups[0].splits, vec!["validation", "benchmark"]);
        assert!(!r.groups[1].benchmark_leaked && !r.groups[2].benchmark_leaked, "test or benchmark against test only");
        let metrics = serde_json::json!({ "leakage": r });
        assert_eq!(blocks_promotion(&metrics), Some(2));
    }

    #[test]
    fn a_clean_split_blocks_nothing() {
        let r = crossing(vec![vec![member("a", Split::Benchmark), member("b", Split::Benchmark)]], 2);
        assert!(r.groups.is_empty() && !r.benchmark_leaked);
        assert_eq!(blocks_promotion(&serde_json::json!({ "leakage": r })), None);
        assert_eq!(blocks_promotion(&serde_json::json!({})), None);
    }
}
