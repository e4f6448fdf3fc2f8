//! Report rows, drift windows, evaluation rounds and drift alerts.

use fovea_insight::report::{CorrectionRow, LabelRow};
use fovea_insight::{Log, PlannedItem, PredictionRow, Stratum};
use sqlx::Row;

use super::{begin_write, parse_json, to_json, DbPool, DbRow};
use crate::error::{Result, StoreError};
use crate::insight::*;
use crate::model::{now_millis, Millis};

pub(crate) async fn insight_log(pool: &DbPool, since: Option<Millis>) -> Result<Log> {
    let since = since.unwrap_or(i64::MIN);
    // The verdict on a prediction is the newest label a person gave the image after it, counted only when the
    // image had no label at all when predicted: otherwise the model had learned the answer.
    let rows = sqlx::query(
        "SELECT t.id, t.image_id, t.created_at, t.user_name, t.model_version, t.top1_class, t.top1_probability,
                t.unknown,
                (SELECT CASE WHEN c.is_unknown THEN NULL ELSE c.name END
                   FROM labels l JOIN classes c ON c.id = l.class_id
                  WHERE l.image_id = t.image_id AND l.origin <> 'import' AND l.created_at >= t.created_at
                  ORDER BY l.id DESC LIMIT 1) AS truth,
                EXISTS (SELECT 1 FROM labels l WHERE l.image_id = t.image_id AND l.created_at < t.created_at)
                  AS was_labelled
           FROM transactions t WHERE t.kind = 'predict' AND t.created_at >= $1 ORDER BY t.id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?;
    let predictions = rows
        .iter()
        .map(|r| -> Result<PredictionRow> {
            let was_labelled: bool = r.try_get("was_labelled")?;
            let truth: Option<String> = r.try_get("truth")?;
            Ok(PredictionRow {
                id: r.try_get("id")?,
                image_id: r.try_get("image_id")?,
                at: r.try_get("created_at")?,
                user: r.try_get("user_name")?,
                model_version: r.try_get("model_version")?,
                class: r.try_get("top1_class")?,
                confidence: r.try_get("top1_probability")?,
                unknown: r.try_get("unknown")?,
                truth: if was_labelled { None } else { truth },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let corrections = sqlx::query(
        "SELECT created_at, user_name FROM transactions
          WHERE kind = 'correct' AND created_at >= $1 AND user_name <> $2 ORDER BY id",
    )
    .bind(since)
    .bind(IMPORT_USER)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok(CorrectionRow { at: r.try_get("created_at")?, user: r.try_get("user_name")? }))
    .collect::<Result<Vec<_>>>()?;
    let labels = sqlx::query(
        "SELECT created_at, user_name FROM labels WHERE origin <> 'import' AND created_at >= $1 ORDER BY id",
    )
    .bind(since)
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok(LabelRow { at: r.try_get("created_at")?, user: r.try_get("user_name")? }))
    .collect::<Result<Vec<_>>>()?;
    Ok(Log { predictions, corrections, labels })
}

fn look_from_row(r: &DbRow) -> Result<ImageLook> {
    let dim = |c: &str| -> Result<u32> { Ok(u32::try_from(r.try_get::<i64, _>(c)?).unwrap_or(0)) };
    Ok(ImageLook {
        width: dim("width")?,
        height: dim("height")?,
        brightness: r.try_get("brightness")?,
        grayscale: r.try_get("grayscale")?,
    })
}

pub(crate) async fn recent_predictions(
    pool: &DbPool,
    limit: u32,
    period: Option<(Millis, Millis)>,
) -> Result<Vec<DriftRow>> {
    let (from, to) = period.unwrap_or((i64::MIN, i64::MAX));
    let rows = sqlx::query(
        "SELECT t.id, t.image_id, t.created_at, t.model_version, t.top1_class, t.top1_probability, t.unknown,
                i.width, i.height, i.brightness, i.grayscale
           FROM transactions t JOIN images i ON i.id = t.image_id
          WHERE t.kind = 'predict' AND t.created_at >= $1 AND t.created_at < $2 AND t.user_name <> $3
          ORDER BY t.id DESC LIMIT $4",
    )
    .bind(from)
    .bind(to)
    .bind(IDENTIFY_USER)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut out = rows.iter().map(drift_row).collect::<Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

fn drift_row(r: &DbRow) -> Result<DriftRow> {
    Ok(DriftRow {
        transaction_id: r.try_get("id")?,
        image_id: r.try_get("image_id")?,
        at: r.try_get("created_at")?,
        model_version: r.try_get("model_version")?,
        class: r.try_get("top1_class")?,
        confidence: r.try_get("top1_probability")?,
        unknown: r.try_get("unknown")?,
        look: look_from_row(r)?,
    })
}

pub(crate) async fn predictions_after(pool: &DbPool, after: i64, limit: u32) -> Result<Vec<DriftRow>> {
    let rows = sqlx::query(
        "SELECT t.id, t.image_id, t.created_at, t.model_version, t.top1_class, t.top1_probability, t.unknown,
                i.width, i.height, i.brightness, i.grayscale
           FROM transactions t JOIN images i ON i.id = t.image_id
          WHERE t.kind = 'predict' AND t.id > $1 AND t.user_name <> $2
          ORDER BY t.id LIMIT $3",
    )
    .bind(after)
    .bind(IDENTIFY_USER)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(drift_row).collect()
}

pub(crate) async fn image_look(pool: &DbPool, id: &str) -> Result<Option<ImageLook>> {
    let row = sqlx::query("SELECT width, height, brightness, grayscale FROM images WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(look_from_row).transpose()
}

pub(crate) async fn set_image_look(pool: &DbPool, id: &str, brightness: f64, grayscale: bool) -> Result<()> {
    if !(0.0..=1.0).contains(&brightness) {
        return Err(StoreError::Invalid(format!("brightness {brightness} is outside 0..1")));
    }
    let done = sqlx::query("UPDATE images SET brightness = $1, grayscale = $2 WHERE id = $3")
        .bind(brightness)
        .bind(grayscale)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    if done == 0 {
        return Err(StoreError::not_found("image", id));
    }
    Ok(())
}

fn round_from_row(r: &DbRow) -> Result<EvaluationRound> {
    Ok(EvaluationRound {
        id: r.try_get("id")?,
        model_version: r.try_get("model_version")?,
        since: r.try_get("since")?,
        population: u64::try_from(r.try_get::<i64, _>("population")?).unwrap_or(0),
        strata: parse_json(r.try_get("strata")?)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

pub(crate) async fn create_evaluation(
    pool: &DbPool,
    model_version: &str,
    since: Millis,
    strata: &[Stratum],
    items: &[PlannedItem],
    user: &str,
) -> Result<EvaluationRound> {
    if items.is_empty() {
        return Err(StoreError::Invalid("an evaluation round needs at least one prediction to review".into()));
    }
    let population: u64 = strata.iter().map(|s| s.population).sum();
    let mut tx = begin_write(pool).await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO evaluation_rounds (model_version, since, population, strata, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(model_version)
    .bind(since)
    .bind(i64::try_from(population).unwrap_or(i64::MAX))
    .bind(to_json(&strata)?)
    .bind(user)
    .bind(now_millis())
    .fetch_one(&mut *tx)
    .await?;
    for item in items {
        sqlx::query("INSERT INTO evaluation_items (round_id, transaction_id, stratum) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(item.transaction_id)
            .bind(&item.stratum)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::not_found("transaction", item.transaction_id.to_string())
                }
                _ => e.into(),
            })?;
    }
    let row = sqlx::query("SELECT * FROM evaluation_rounds WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    round_from_row(&row)
}

pub(crate) async fn list_evaluations(pool: &DbPool) -> Result<Vec<EvaluationRound>> {
    sqlx::query("SELECT * FROM evaluation_rounds ORDER BY id DESC")
        .fetch_all(pool)
        .await?
        .iter()
        .map(round_from_row)
        .collect()
}

pub(crate) async fn get_evaluation(pool: &DbPool, id: i64) -> Result<Option<EvaluationRound>> {
    sqlx::query("SELECT * FROM evaluation_rounds WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(round_from_row)
        .transpose()
}

const ITEM_SELECT: &str = "SELECT e.id, e.round_id, e.transaction_id, e.stratum, e.verdict, e.correct_class,
        e.answered_by, e.answered_at, t.image_id, t.top1_class, t.top1_probability
   FROM evaluation_items e JOIN transactions t ON t.id = e.transaction_id";

fn item_from_row(r: &DbRow) -> Result<EvaluationItem> {
    let verdict: Option<String> = r.try_get("verdict")?;
    let verdict = match verdict.as_deref() {
        None => None,
        Some("right") => Some(Verdict::Right),
        Some("wrong") => Some(Verdict::Wrong),
        Some("skip") => Some(Verdict::Skip),
        Some(other) => return Err(StoreError::Corrupt(format!("evaluation verdict {other:?}"))),
    };
    Ok(EvaluationItem {
        id: r.try_get("id")?,
        round_id: r.try_get("round_id")?,
        transaction_id: r.try_get("transaction_id")?,
        image_id: r.try_get("image_id")?,
        stratum: r.try_get("stratum")?,
        served_class: r.try_get("top1_class")?,
        served_probability: r.try_get("top1_probability")?,
        verdict,
        correct_class: r.try_get("correct_class")?,
        answered_by: r.try_get("answered_by")?,
        answered_at: r.try_get("answered_at")?,
    })
}

pub(crate) async fn evaluation_items(pool: &DbPool, round: i64) -> Result<Vec<EvaluationItem>> {
    sqlx::query(&format!("{ITEM_SELECT} WHERE e.round_id = $1 ORDER BY e.id"))
        .bind(round)
        .fetch_all(pool)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
}

pub(crate) async fn get_evaluation_item(pool: &DbPool, id: i64) -> Result<Option<EvaluationItem>> {
    sqlx::query(&format!("{ITEM_SELECT} WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(item_from_row)
        .transpose()
}

pub(crate) async fn answer_evaluation(
    pool: &DbPool,
    item: i64,
    verdict: Verdict,
    correct_class: Option<&str>,
    user: &str,
) -> Result<EvaluationItem> {
    let done = sqlx::query(
        "UPDATE evaluation_items SET verdict = $1, correct_class = $2, answered_by = $3, answered_at = $4 WHERE id = $5",
    )
    .bind(verdict.as_str())
    .bind(correct_class)
    .bind(user)
    .bind(now_millis())
    .bind(item)
    .execute(pool)
    .await?
    .rows_affected();
    if done == 0 {
        return Err(StoreError::not_found("evaluation item", item.to_string()));
    }
    get_evaluation_item(pool, item).await?.ok_or_else(|| StoreError::not_found("evaluation item", item.to_string()))
}

fn alert_from_row(r: &DbRow) -> Result<DriftAlertRecord> {
    Ok(DriftAlertRecord {
        id: r.try_get("id")?,
        alert: NewDriftAlert {
            signal: r.try_get("signal")?,
            statistic: r.try_get("statistic")?,
            threshold: r.try_get("threshold")?,
            reference: r.try_get("reference")?,
            current: r.try_get("current")?,
            detail: r.try_get("detail")?,
            since: r.try_get("since")?,
            examples: parse_json(r.try_get("examples")?)?,
            model_version: r.try_get("model_version")?,
        },
        raised_at: r.try_get("raised_at")?,
        cleared_at: r.try_get("cleared_at")?,
    })
}

pub(crate) async fn raise_drift_alert(pool: &DbPool, a: NewDriftAlert) -> Result<Option<DriftAlertRecord>> {
    let finite = [a.statistic, a.threshold, a.reference, a.current].iter().all(|x| x.is_finite());
    if !finite {
        return Err(StoreError::Invalid("drift alert figures must be finite".into()));
    }
    // Serialised with the other writes: of replicas raising the same signal at once, one inserts.
    let mut tx = super::begin_write(pool).await?;
    let row = sqlx::query(
        "INSERT INTO drift_alerts (signal, statistic, threshold, reference, current, detail, since, examples,
                                   model_version, raised_at)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
         WHERE NOT EXISTS (SELECT 1 FROM drift_alerts WHERE signal = $1 AND cleared_at IS NULL) RETURNING *",
    )
    .bind(&a.signal)
    .bind(a.statistic)
    .bind(a.threshold)
    .bind(a.reference)
    .bind(a.current)
    .bind(&a.detail)
    .bind(a.since)
    .bind(to_json(&a.examples)?)
    .bind(&a.model_version)
    .bind(now_millis())
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    row.as_ref().map(alert_from_row).transpose()
}

pub(crate) async fn clear_drift_alerts(pool: &DbPool, signal: &str) -> Result<u64> {
    Ok(sqlx::query("UPDATE drift_alerts SET cleared_at = $1 WHERE signal = $2 AND cleared_at IS NULL")
        .bind(now_millis())
        .bind(signal)
        .execute(pool)
        .await?
        .rows_affected())
}

pub(crate) async fn list_drift_alerts(pool: &DbPool, open_only: bool, limit: u32) -> Result<Vec<DriftAlertRecord>> {
    let sql = if open_only {
        "SELECT * FROM drift_alerts WHERE cleared_at IS NULL ORDER BY id DESC LIMIT $1"
    } else {
        "SELECT * FROM drift_alerts ORDER BY id DESC LIMIT $1"
    };
    sqlx::query(sql).bind(i64::from(limit)).fetch_all(pool).await?.iter().map(alert_from_row).collect()
}
