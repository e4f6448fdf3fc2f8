//! Collections and their results: written in walk-order batches, listed through combinable filters.

use sqlx::{QueryBuilder, Row};

use super::{begin_write, parse_json, sql_limit, to_json, Db, DbPool, DbRow};
use crate::collections::*;
use crate::error::{Result, StoreError};
use crate::model::{class_name_key, now_millis, ScoredClass};

const COLLECTION_SELECT: &str = "
    SELECT c.id, c.name, c.source, c.model, c.job_id, c.total, c.created_by, c.created_at,
           COUNT(ci.seq) AS processed,
           COALESCE(SUM(CASE WHEN ci.error IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed,
           COALESCE(SUM(CASE WHEN ci.is_unknown THEN 1 ELSE 0 END), 0) AS unknown,
           COALESCE(SUM(CASE WHEN ci.discarded THEN 1 ELSE 0 END), 0) AS discarded
    FROM collections c LEFT JOIN collection_items ci ON ci.collection_id = c.id";
const COLLECTION_GROUP: &str =
    " GROUP BY c.id, c.name, c.source, c.model, c.job_id, c.total, c.created_by, c.created_at";

fn count(row: &DbRow, column: &str) -> Result<u64> {
    let n: i64 = row.try_get(column)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

fn collection_from_row(row: &DbRow) -> Result<CollectionRecord> {
    let total: Option<i64> = row.try_get("total")?;
    Ok(CollectionRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        source: row.try_get("source")?,
        model: row.try_get("model")?,
        job_id: row.try_get("job_id")?,
        total: total.and_then(|t| u64::try_from(t).ok()),
        processed: count(row, "processed")?,
        failed: count(row, "failed")?,
        unknown: count(row, "unknown")?,
        discarded: count(row, "discarded")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) async fn create_collection(pool: &DbPool, c: NewCollection) -> Result<CollectionRecord> {
    let name = c.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(StoreError::Invalid("a collection needs a name of 1 to 200 characters".into()));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO collections (name, source, model, created_by, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(&c.source)
    .bind(&c.model)
    .bind(&c.created_by)
    .bind(now_millis())
    .fetch_one(pool)
    .await?;
    get_collection(pool, id).await?.ok_or_else(|| StoreError::not_found("collection", id))
}

pub(crate) async fn get_collection(pool: &DbPool, id: i64) -> Result<Option<CollectionRecord>> {
    let row = sqlx::query(&format!("{COLLECTION_SELECT} WHERE c.id = $1 {COLLECTION_GROUP}"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(collection_from_row).transpose()
}

pub(crate) async fn list_collections(pool: &DbPool) -> Result<Vec<CollectionRecord>> {
    let rows =
        sqlx::query(&format!("{COLLECTION_SELECT} {COLLECTION_GROUP} ORDER BY c.id DESC")).fetch_all(pool).await?;
    rows.iter().map(collection_from_row).collect()
}

pub(crate) async fn set_collection_field(pool: &DbPool, id: i64, column: &str, value: i64) -> Result<()> {
    // `column` is one of two literals chosen by the caller, never user input.
    debug_assert!(column == "job_id" || column == "total");
    let updated = sqlx::query(&format!("UPDATE collections SET {column} = $1 WHERE id = $2"))
        .bind(value)
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(StoreError::not_found("collection", id));
    }
    Ok(())
}

/// The best and second-best entries, whatever order `top_k` is in.
fn top_two(top_k: &[ScoredClass]) -> (Option<&ScoredClass>, Option<&ScoredClass>) {
    let mut sorted: Vec<&ScoredClass> = top_k.iter().collect();
    sorted.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    (sorted.first().copied(), sorted.get(1).copied())
}

pub(crate) async fn add_collection_items(pool: &DbPool, collection: i64, items: &[NewCollectionItem]) -> Result<u64> {
    let mut tx = begin_write(pool).await?;
    let mut added = 0;
    let now = now_millis();
    for item in items {
        let seq = i64::try_from(item.seq).map_err(|_| StoreError::Invalid("sequence number too large".into()))?;
        let query = sqlx::query(
            "INSERT INTO collection_items (collection_id, seq, path, image_id, error, model_version, backbone, top_k,
                 top1_class, top1_probability, top2_class, margin, is_unknown, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
        )
        .bind(collection)
        .bind(seq)
        .bind(&item.path);
        let query = match &item.outcome {
            Ok(p) => {
                let (first, second) = top_two(&p.top_k);
                let margin = first.map(|f| f.probability - second.map_or(0.0, |s| s.probability));
                query
                    .bind(Some(&p.image_id))
                    .bind(None::<String>)
                    .bind(Some(&p.model_version))
                    .bind(Some(&p.backbone))
                    .bind(Some(to_json(&p.top_k)?))
                    .bind(first.map(|f| f.class.clone()))
                    .bind(first.map(|f| f.probability))
                    .bind(second.map(|s| s.class.clone()))
                    .bind(margin)
                    .bind(p.unknown)
            }
            Err(e) => query
                .bind(None::<String>)
                .bind(Some(e))
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(None::<f64>)
                .bind(None::<String>)
                .bind(None::<f64>)
                .bind(false),
        };
        added += query.bind(now).execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(added)
}

const ITEM_FROM: &str = "
    FROM collection_items ci
    LEFT JOIN labels cur ON cur.id = (SELECT MAX(l.id) FROM labels l WHERE l.image_id = ci.image_id)
    LEFT JOIN classes lc ON lc.id = cur.class_id
    WHERE 1 = 1";

/// Names of the classes (Unknown excluded) whose current labelled count is below `n`.
const CLASSES_BELOW: &str = "
    SELECT c2.name FROM classes c2 WHERE NOT c2.is_unknown AND (
        SELECT COUNT(*) FROM labels l2
        WHERE l2.class_id = c2.id AND l2.id = (SELECT MAX(l3.id) FROM labels l3 WHERE l3.image_id = l2.image_id)
    ) < ";

fn push_item_filter(q: &mut QueryBuilder<'_, Db>, f: &ItemFilter) -> Result<()> {
    for bound in [f.min_conf, f.max_conf, f.max_margin].into_iter().flatten() {
        if !bound.is_finite() {
            return Err(StoreError::Invalid(format!("bound {bound} is not finite")));
        }
    }
    if let Some(c) = f.collection {
        q.push(" AND ci.collection_id = ").push_bind(c);
    }
    q.push(if f.failed { " AND ci.error IS NOT NULL" } else { " AND ci.error IS NULL" });
    if !f.include_discarded {
        q.push(" AND NOT ci.discarded");
    }
    if let Some(class) = &f.class {
        // Matched through the classes table too, so the filter is case-insensitive like every class lookup.
        q.push(" AND (lower(ci.top1_class) = lower(")
            .push_bind(class.trim().to_owned())
            .push(")")
            .push(" OR ci.top1_class IN (SELECT name FROM classes WHERE name_key = ")
            .push_bind(class_name_key(class))
            .push("))");
    }
    if let Some(min) = f.min_conf {
        q.push(" AND ci.top1_probability >= ").push_bind(min);
    }
    if let Some(max) = f.max_conf {
        q.push(" AND ci.top1_probability <= ").push_bind(max);
    }
    if let Some(n) = f.below_count {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        q.push(" AND NOT ci.is_unknown AND ci.top1_class IN (").push(CLASSES_BELOW).push_bind(n).push(")");
    }
    if let Some((a, b)) = &f.pair {
        q.push(" AND ((ci.top1_class = ")
            .push_bind(a.clone())
            .push(" AND ci.top2_class = ")
            .push_bind(b.clone())
            .push(") OR (ci.top1_class = ")
            .push_bind(b.clone())
            .push(" AND ci.top2_class = ")
            .push_bind(a.clone())
            .push("))");
    }
    if let Some(m) = f.max_margin {
        q.push(" AND ci.margin <= ").push_bind(m);
    }
    if let Some(u) = f.unknown {
        q.push(" AND ci.is_unknown = ").push_bind(u);
    }
    if let Some(tag) = &f.tag {
        q.push(" AND EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = ci.image_id AND t.tag = ")
            .push_bind(normalise_tag(tag)?)
            .push(")");
    }
    if let Some(labelled) = f.labelled {
        q.push(if labelled { " AND cur.id IS NOT NULL" } else { " AND cur.id IS NULL" });
    }
    if let Some(model) = &f.model {
        q.push(" AND ci.backbone = ").push_bind(model.clone());
    }
    Ok(())
}

fn item_from_row(row: &DbRow) -> Result<CollectionItem> {
    let seq: i64 = row.try_get("seq")?;
    let top_k: Option<String> = row.try_get("top_k")?;
    let tags: Option<String> = row.try_get("tags")?;
    Ok(CollectionItem {
        collection_id: row.try_get("collection_id")?,
        seq: u64::try_from(seq).unwrap_or(0),
        path: row.try_get("path")?,
        image_id: row.try_get("image_id")?,
        error: row.try_get("error")?,
        model_version: row.try_get("model_version")?,
        top_k: top_k.as_deref().map(parse_json).transpose()?.unwrap_or_default(),
        unknown: row.try_get("is_unknown")?,
        margin: row.try_get("margin")?,
        discarded: row.try_get("discarded")?,
        label: row.try_get("label")?,
        tags: tags.map(|t| t.split(',').map(str::to_owned).collect()).unwrap_or_default(),
    })
}

const ITEM_SELECT: &str = "
    SELECT ci.collection_id, ci.seq, ci.path, ci.image_id, ci.error, ci.model_version, ci.top_k,
           ci.is_unknown, ci.margin, ci.discarded, lc.name AS label,
           (SELECT string_agg(t.tag, ',' ORDER BY t.tag) FROM image_tags t WHERE t.image_id = ci.image_id) AS tags";

pub(crate) async fn collection_item(pool: &DbPool, collection: i64, seq: u64) -> Result<Option<CollectionItem>> {
    let row = sqlx::query(&format!("{ITEM_SELECT} {ITEM_FROM} AND ci.collection_id = $1 AND ci.seq = $2"))
        .bind(collection)
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(item_from_row).transpose()
}

pub(crate) async fn list_collection_items(pool: &DbPool, f: &ItemFilter) -> Result<Vec<CollectionItem>> {
    let mut q = QueryBuilder::<Db>::new(ITEM_SELECT);
    q.push(ITEM_FROM);
    push_item_filter(&mut q, f)?;
    q.push(match f.sort {
        ItemSort::Walk => " ORDER BY ci.collection_id DESC, ci.seq",
        ItemSort::LowestConfidence => {
            " ORDER BY ci.top1_probability IS NULL, ci.top1_probability, ci.collection_id DESC, ci.seq"
        }
        ItemSort::SmallestMargin => " ORDER BY ci.margin IS NULL, ci.margin, ci.collection_id DESC, ci.seq",
    });
    q.push(" LIMIT ").push_bind(sql_limit(f.limit)).push(" OFFSET ").push_bind(i64::from(f.offset));
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(item_from_row).collect()
}

pub(crate) async fn count_collection_items(pool: &DbPool, f: &ItemFilter) -> Result<u64> {
    let mut q = QueryBuilder::<Db>::new("SELECT COUNT(*)");
    q.push(ITEM_FROM);
    push_item_filter(&mut q, f)?;
    let n: i64 = q.build().fetch_one(pool).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn count_results_between(pool: &DbPool, collection: i64, start: u64, end: u64) -> Result<u64> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM collection_items WHERE collection_id = $1 AND seq >= $2 AND seq < $3")
            .bind(collection)
            .bind(clamp(start))
            .bind(clamp(end))
            .fetch_one(pool)
            .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(crate) async fn confused_pairs(
    pool: &DbPool,
    collection: Option<i64>,
    max_margin: f64,
    limit: u32,
) -> Result<Vec<ConfusedPair>> {
    if !max_margin.is_finite() {
        return Err(StoreError::Invalid("max_margin must be finite".into()));
    }
    let mut q = QueryBuilder::<Db>::new(
        "SELECT CASE WHEN top1_class < top2_class THEN top1_class ELSE top2_class END AS a,
                CASE WHEN top1_class < top2_class THEN top2_class ELSE top1_class END AS b,
                COUNT(*) AS n
         FROM collection_items
         WHERE error IS NULL AND NOT discarded AND NOT is_unknown AND top2_class IS NOT NULL AND margin <= ",
    );
    q.push_bind(max_margin);
    if let Some(c) = collection {
        q.push(" AND collection_id = ").push_bind(c);
    }
    q.push(" GROUP BY a, b ORDER BY n DESC, a, b LIMIT ").push_bind(i64::from(limit));
    let rows = q.build().fetch_all(pool).await?;
    rows.iter().map(|r| Ok(ConfusedPair { a: r.try_get("a")?, b: r.try_get("b")?, count: count(r, "n")? })).collect()
}

pub(crate) async fn coverage(pool: &DbPool, tags: &[String]) -> Result<Vec<CoverageRow>> {
    let tags: Vec<String> = tags.iter().map(|t| normalise_tag(t)).collect::<Result<_>>()?;
    let mut q = QueryBuilder::<Db>::new(
        "SELECT c.id, c.name,
            (SELECT COUNT(*) FROM labels l
             WHERE l.class_id = c.id AND l.id = (SELECT MAX(l2.id) FROM labels l2 WHERE l2.image_id = l.image_id))
                AS labelled,
            (SELECT COUNT(*) FROM labels l
             WHERE l.class_id = c.id AND l.id = (SELECT MAX(l2.id) FROM labels l2 WHERE l2.image_id = l.image_id)
               AND EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = l.image_id AND t.tag IN (",
    );
    if tags.is_empty() {
        q.push("NULL");
    } else {
        let mut list = q.separated(", ");
        for t in &tags {
            list.push_bind(t.clone());
        }
    }
    q.push(
        "))) AS tagged,
            (SELECT COUNT(DISTINCT ci.image_id) FROM collection_items ci
             WHERE ci.top1_class = c.name AND ci.error IS NULL AND NOT ci.discarded AND NOT ci.is_unknown
               AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.image_id = ci.image_id)) AS candidates
         FROM classes c WHERE NOT c.is_unknown ORDER BY c.id",
    );
    let rows = q.build().fetch_all(pool).await?;
    rows.iter()
        .map(|r| {
            Ok(CoverageRow {
                class_id: r.try_get("id")?,
                class: r.try_get("name")?,
                labelled: count(r, "labelled")?,
                tagged: count(r, "tagged")?,
                candidates: count(r, "candidates")?,
            })
        })
        .collect()
}

pub(crate) async fn list_tags(pool: &DbPool) -> Result<Vec<(String, u64)>> {
    let rows =
        sqlx::query("SELECT tag, COUNT(*) AS n FROM image_tags GROUP BY tag ORDER BY tag").fetch_all(pool).await?;
    rows.iter().map(|r| Ok((r.try_get("tag")?, count(r, "n")?))).collect()
}

pub(crate) async fn image_tags(pool: &DbPool, image_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT tag FROM image_tags WHERE image_id = $1 ORDER BY tag")
        .bind(image_id)
        .fetch_all(pool)
        .await?)
}
