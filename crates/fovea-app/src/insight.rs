//! Reports and manual evaluations over the log, computed by `fovea-insight`.

use fovea_insight::evaluation::{estimate, plan, Answer, Candidate};
use fovea_insight::{EvaluationEstimate, Report};
use fovea_store::{now_millis, EvaluationItem, EvaluationRound, LabelOrigin, Verdict};
use serde::Serialize;

use crate::{App, AppError, Result};

/// Most predictions one round may sample.
pub const MAX_EVALUATION: usize = 500;

/// A round with its estimate so far and the next item to judge.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EvaluationView {
    pub round: EvaluationRound,
    #[schema(value_type = Object)]
    pub estimate: EvaluationEstimate,
    pub next: Option<EvaluationItem>,
    pub items: Vec<EvaluationItem>,
}

fn estimate_round(round: &EvaluationRound, items: &[EvaluationItem]) -> EvaluationEstimate {
    let answers: Vec<Answer> = items
        .iter()
        .filter_map(|i| match i.verdict? {
            Verdict::Skip => None,
            v => Some(Answer { stratum: i.stratum.clone(), correct: v == Verdict::Right }),
        })
        .collect();
    let (accuracy, ci, covered) = estimate(&round.strata, &answers);
    EvaluationEstimate {
        round: round.id,
        model_version: round.model_version.clone(),
        created_at: round.created_at,
        population: round.population,
        sampled: items.len() as u64,
        answered: answers.len() as u64,
        correct: answers.iter().filter(|a| a.correct).count() as u64,
        accuracy,
        low: ci.map(|c| c.0),
        high: ci.map(|c| c.1),
        covered,
    }
}

impl App {
    /// The report over predictions since `since` (milliseconds; everything when `None`).
    pub async fn report(&self, since: Option<i64>) -> Result<Report> {
        let log = self.catalog.insight_log(since).await?;
        let evaluations = self.evaluations().await?;
        let since = since.map(|s| fovea_insight::time::date_string(fovea_insight::time::day_of(s)));
        Ok(fovea_insight::report(&log, since, evaluations, now_millis()))
    }

    /// Samples about `size` of the predictions registry model `model` (the served one when `None`) made in the last
    /// `days` days,
    /// stratified by served class and confidence band, for reviewers to judge.
    pub async fn start_evaluation(
        &self,
        size: usize,
        days: u32,
        model: Option<&str>,
        user: &str,
    ) -> Result<EvaluationView> {
        if size == 0 || size > MAX_EVALUATION {
            return Err(AppError::Invalid(format!(
                "an evaluation samples 1 to {MAX_EVALUATION} predictions, not {size}"
            )));
        }
        if days == 0 || days > 3650 {
            return Err(AppError::Invalid(format!("days must be 1 to 3650, not {days}")));
        }
        // Rounds judge a registry model: its online head renames itself with every label.
        let model = match model {
            Some(m) => fovea_insight::report::registry_version(m).to_owned(),
            None => self.served_model().await,
        };
        let since = now_millis() - i64::from(days) * fovea_insight::time::DAY_MS;
        let log = self.catalog.insight_log(Some(since)).await?;
        let candidates: Vec<Candidate> = log
            .predictions
            .iter()
            .filter(|p| fovea_insight::report::registry_version(&p.model_version) == model && p.class.is_some())
            .map(|p| Candidate {
                transaction_id: p.id,
                class: p.class.clone(),
                confidence: p.confidence.unwrap_or(0.0),
            })
            .collect();
        if candidates.is_empty() {
            return Err(AppError::Invalid(format!(
                "model {model} served no prediction in the last {days} days to evaluate"
            )));
        }
        // Seeded by the round's number, so the same log gives the same sample.
        let seed = self.catalog.list_evaluations().await?.len() as u64 + 1;
        let (strata, items) = plan(&candidates, size, seed);
        let round = self.catalog.create_evaluation(&model, since, &strata, &items, user).await?;
        self.evaluation(round.id).await
    }

    /// Every round with its estimate, newest first.
    pub async fn evaluations(&self) -> Result<Vec<EvaluationEstimate>> {
        let mut out = Vec::new();
        for round in self.catalog.list_evaluations().await? {
            let items = self.catalog.evaluation_items(round.id).await?;
            out.push(estimate_round(&round, &items));
        }
        Ok(out)
    }

    pub async fn evaluation(&self, id: i64) -> Result<EvaluationView> {
        let round = self
            .catalog
            .get_evaluation(id)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "evaluation", id: id.to_string() })?;
        let items = self.catalog.evaluation_items(id).await?;
        let estimate = estimate_round(&round, &items);
        let next = items.iter().find(|i| i.verdict.is_none()).cloned();
        Ok(EvaluationView { round, estimate, next, items })
    }

    /// Records a reviewer's verdict. A verdict is also a label: "right" accepts the served class, "wrong" with the
    /// right class corrects it, so the model learns from the review too.
    pub async fn answer_evaluation(
        &self,
        item: i64,
        verdict: Verdict,
        class: Option<&str>,
        user: &str,
    ) -> Result<EvaluationView> {
        let current = self
            .catalog
            .get_evaluation_item(item)
            .await?
            .ok_or_else(|| AppError::NotFound { what: "evaluation item", id: item.to_string() })?;
        let class = class.map(str::trim).filter(|c| !c.is_empty());
        match (verdict, class) {
            (Verdict::Right, Some(_)) => {
                return Err(AppError::Invalid("a right answer takes no class: the served one was right".into()))
            }
            (Verdict::Skip, Some(_)) => return Err(AppError::Invalid("a skipped item takes no class".into())),
            (Verdict::Wrong, Some(c)) if current.served_class.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(c)) => {
                return Err(AppError::Invalid(format!("{c:?} is the class that was served; answer right instead")))
            }
            _ => {}
        }
        match (verdict, class, current.served_class.as_deref()) {
            (Verdict::Right, _, Some(served)) => {
                self.label(&current.image_id, served, user, LabelOrigin::Accepted).await?;
            }
            (Verdict::Wrong, Some(c), _) => {
                self.label(&current.image_id, c, user, LabelOrigin::Human).await?;
            }
            _ => {}
        }
        self.catalog.answer_evaluation(item, verdict, class, user).await?;
        self.evaluation(current.round_id).await
    }
}
