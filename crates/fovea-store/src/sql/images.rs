//! Images and the filtered listing the browse page pages through.

use sqlx::{QueryBuilder, Row};

use super::{parse_text, sql_limit, Db, DbConnection, DbPool, DbRow, Query};
use crate::error::{Result, StoreError};
use crate::model::*;

pub(crate) const IMAGE_COLUMNS: &str = "i.id, i.blob_key, i.width, i.height, i.format, i.source, i.split, i.created_at";

pub(crate) fn image_from_row(row: &DbRow) -> Result<ImageRecord> {
    let dimension = |column: &str| -> Result<u32> {
        let value: i64 = row.try_get(column)?;
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("image {column} {value}")))
    };
    Ok(ImageRecord {
        id: row.try_get("id")?,
        blob_key: row.try_get("blob_key")?,
        width: dimension("width")?,
        height: dimension("height")?,
        format: row.try_get("format")?,
        source: row.try_get("source")?,
        split: parse_text(row.try_get("split")?)?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts an image unless its id is stored: ON CONFLICT DO NOTHING (portable to PostgreSQL) makes a duplicate upload
/// a no-op instead of an error, and keeps the first upload's source and timestamp. Parameters `$1..$10`, bound by
/// [`bind_image`].
pub(crate) const INSERT_IMAGE: &str =
    "INSERT INTO images (id, blob_key, width, height, format, source, split, created_at, brightness, grayscale)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING";

/// Binds [`INSERT_IMAGE`]'s parameters, after whatever `query` already holds; refuses an image the catalog must
/// never hold (a malformed id, no blob).
pub(crate) fn bind_image<'q>(query: Query<'q>, image: &'q NewImage) -> Result<Query<'q>> {
    validate_image_id(&image.id)?;
    if image.blob_key.is_empty() {
        return Err(StoreError::Invalid("image blob_key is empty".into()));
    }
    Ok(query
        .bind(&image.id)
        .bind(&image.blob_key)
        .bind(i64::from(image.width))
        .bind(i64::from(image.height))
        .bind(&image.format)
        .bind(&image.source)
        .bind(Split::Unassigned.as_str())
        .bind(now_millis())
        .bind(image.brightness.filter(|b| b.is_finite()))
        .bind(image.grayscale))
}

pub(crate) async fn put_image(conn: &mut DbConnection, image: NewImage) -> Result<(ImageRecord, bool)> {
    // RETURNING answers a new image in the same round trip; only a duplicate needs the SELECT.
    let sql = format!("{INSERT_IMAGE} RETURNING id, blob_key, width, height, format, source, split, created_at");
    let inserted = bind_image(sqlx::query(&sql), &image)?.fetch_optional(&mut *conn).await?;
    if let Some(row) = inserted {
        return Ok((image_from_row(&row)?, true));
    }
    let record = get_image(&mut *conn, &image.id).await?.ok_or_else(|| StoreError::not_found("image", &image.id))?;
    Ok((record, false))
}

pub(crate) async fn get_image<'e>(ex: impl sqlx::Executor<'e, Database = Db>, id: &str) -> Result<Option<ImageRecord>> {
    let row = sqlx::query(&format!("SELECT {IMAGE_COLUMNS} FROM images i WHERE i.id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?;
    row.as_ref().map(image_from_row).transpose()
}

pub(crate) async fn set_split(pool: &DbPool, id: &str, split: Split) -> Result<()> {
    let updated = sqlx::query("UPDATE images SET split = $1 WHERE id = $2")
        .bind(split.as_str())
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    if updated == 0 {
        return Err(StoreError::not_found("image", id));
    }
    Ok(())
}

/// The FROM clause shared by listing and counting: each image joined to its newest label and its
/// newest prediction. Correlated MAX(id) subqueries use the (image_id, id) indexes and are portable.
const FROM_CURRENT: &str = "
    FROM images i
    LEFT JOIN labels cur ON cur.id = (SELECT MAX(l.id) FROM labels l WHERE l.image_id = i.id)
    LEFT JOIN classes c ON c.id = cur.class_id
    LEFT JOIN transactions p ON p.id =
        (SELECT MAX(t.id) FROM transactions t WHERE t.image_id = i.id AND t.kind = 'predict')
    WHERE 1 = 1";

fn push_filter(query: &mut QueryBuilder<'_, Db>, filter: &ImageFilter) -> Result<()> {
    for bound in [filter.min_conf, filter.max_conf].into_iter().flatten() {
        if !bound.is_finite() {
            return Err(StoreError::Invalid(format!("confidence bound {bound} is not finite")));
        }
    }
    if let Some(class) = &filter.class {
        query.push(" AND c.name_key = ").push_bind(class_name_key(class));
    }
    if let Some(labelled) = filter.labelled {
        query.push(if labelled { " AND cur.id IS NOT NULL" } else { " AND cur.id IS NULL" });
    }
    if let Some(min) = filter.min_conf {
        query.push(" AND p.top1_probability >= ").push_bind(min);
    }
    if let Some(max) = filter.max_conf {
        query.push(" AND p.top1_probability <= ").push_bind(max);
    }
    if let Some(split) = filter.split {
        query.push(" AND i.split = ").push_bind(split.as_str());
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        if search.chars().count() > 200 {
            return Err(StoreError::Invalid("a search is at most 200 characters".into()));
        }
        // LIKE's wildcards in the text are matched literally.
        let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let anywhere = format!("%{escaped}%");
        query
            .push(" AND (i.id LIKE ")
            .push_bind(format!("{escaped}%"))
            .push(" ESCAPE '\\' OR lower(i.source) LIKE ")
            .push_bind(anywhere.clone())
            .push(" ESCAPE '\\' OR c.name_key LIKE ")
            .push_bind(anywhere.clone())
            .push(" ESCAPE '\\' OR EXISTS (SELECT 1 FROM collection_items ci WHERE ci.image_id = i.id AND lower(ci.path) LIKE ")
            .push_bind(anywhere)
            .push(" ESCAPE '\\'))");
    }
    Ok(())
}

pub(crate) async fn list_images(pool: &DbPool, filter: &ImageFilter) -> Result<Vec<ImageRow>> {
    let mut query = QueryBuilder::<Db>::new(format!(
        "SELECT {IMAGE_COLUMNS}, c.name AS current_class, p.top1_class, p.top1_probability {FROM_CURRENT}"
    ));
    push_filter(&mut query, filter)?;
    query
        .push(match filter.sort {
            ImageSort::Newest => " ORDER BY i.created_at DESC, i.id LIMIT ",
            ImageSort::LowestConfidence => {
                " ORDER BY p.top1_probability IS NULL, p.top1_probability ASC, i.created_at DESC, i.id LIMIT "
            }
            ImageSort::Oldest => " ORDER BY i.created_at ASC, i.id LIMIT ",
            ImageSort::Class => " ORDER BY c.name_key IS NULL, c.name_key, i.created_at DESC, i.id LIMIT ",
        })
        .push_bind(sql_limit(filter.limit))
        .push(" OFFSET ")
        .push_bind(i64::from(filter.offset));
    let rows = query.build().fetch_all(pool).await?;
    rows.iter()
        .map(|row| {
            let top1_class: Option<String> = row.try_get("top1_class")?;
            let top1_probability: Option<f64> = row.try_get("top1_probability")?;
            Ok(ImageRow {
                image: image_from_row(row)?,
                current_class: row.try_get("current_class")?,
                last_top1: top1_class.zip(top1_probability),
            })
        })
        .collect()
}

pub(crate) async fn count_images(pool: &DbPool, filter: &ImageFilter) -> Result<u64> {
    let mut query = QueryBuilder::<Db>::new(format!("SELECT COUNT(*) {FROM_CURRENT}"));
    push_filter(&mut query, filter)?;
    let count: i64 = query.build().fetch_one(pool).await?.try_get(0)?;
    Ok(u64::try_from(count).unwrap_or(0))
}
