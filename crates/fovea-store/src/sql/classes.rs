//! Classes: creation with case-insensitive unique names, renaming, merging.

use sqlx::Row;

use super::labels::bump_label_log_epoch;
use super::{begin_write, DbPool, DbRow};
use crate::error::{is_unique_violation, Result, StoreError};
use crate::model::*;

const CLASS_COLUMNS: &str = "id, name, is_unknown, created_at";

fn class_from_row(row: &DbRow) -> Result<ClassRecord> {
    Ok(ClassRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        is_unknown: row.try_get("is_unknown")?,
        created_at: row.try_get("created_at")?,
    })
}

async fn fetch_class<'e, E>(executor: E, id: ClassId) -> Result<Option<ClassRecord>>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    let row = sqlx::query(&format!("SELECT {CLASS_COLUMNS} FROM classes WHERE id = $1"))
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.as_ref().map(class_from_row).transpose()
}

pub(crate) async fn create_class(pool: &DbPool, name: &str) -> Result<ClassRecord> {
    let name = validate_class_name(name)?;
    let row = sqlx::query(&format!(
        "INSERT INTO classes (name, name_key, is_unknown, created_at) VALUES ($1, $2, FALSE, $3)
         RETURNING {CLASS_COLUMNS}"
    ))
    .bind(&name)
    .bind(class_name_key(&name))
    .bind(now_millis())
    .fetch_one(pool)
    .await
    .map_err(|e| match is_unique_violation(&e) {
        true => StoreError::already_exists("class", &name),
        false => e.into(),
    })?;
    class_from_row(&row)
}

pub(crate) async fn get_class(pool: &DbPool, id: ClassId) -> Result<Option<ClassRecord>> {
    fetch_class(pool, id).await
}

pub(crate) async fn class_by_name(pool: &DbPool, name: &str) -> Result<Option<ClassRecord>> {
    let row = sqlx::query(&format!("SELECT {CLASS_COLUMNS} FROM classes WHERE name_key = $1"))
        .bind(class_name_key(name))
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(class_from_row).transpose()
}

pub(crate) async fn unknown_class(pool: &DbPool) -> Result<ClassRecord> {
    let row = sqlx::query(&format!("SELECT {CLASS_COLUMNS} FROM classes WHERE is_unknown"))
        .fetch_optional(pool)
        .await?
        .ok_or_else(|| StoreError::Corrupt("the Unknown class is missing".into()))?;
    class_from_row(&row)
}

pub(crate) async fn list_classes(pool: &DbPool) -> Result<Vec<ClassStats>> {
    // Counts images by their newest label only, so a relabelled image counts once, in its new class.
    let rows = sqlx::query(
        "SELECT c.id, c.name, c.is_unknown, c.created_at, COUNT(cur.id) AS image_count
         FROM classes c
         LEFT JOIN labels cur ON cur.class_id = c.id
             AND cur.id = (SELECT MAX(l.id) FROM labels l WHERE l.image_id = cur.image_id)
         GROUP BY c.id, c.name, c.is_unknown, c.created_at
         ORDER BY c.id",
    )
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let count: i64 = row.try_get("image_count")?;
            Ok(ClassStats { class: class_from_row(row)?, image_count: u64::try_from(count).unwrap_or(0) })
        })
        .collect()
}

pub(crate) async fn rename_class(pool: &DbPool, id: ClassId, new_name: &str) -> Result<ClassRecord> {
    let name = validate_class_name(new_name)?;
    let mut tx = begin_write(pool).await?;
    let class = fetch_class(&mut *tx, id).await?.ok_or_else(|| StoreError::not_found("class", id))?;
    if class.is_unknown {
        return Err(StoreError::Invalid("the Unknown class cannot be renamed".into()));
    }
    // The unique name_key index is the arbiter of collisions, so two racing renames cannot both win.
    let row =
        sqlx::query(&format!("UPDATE classes SET name = $1, name_key = $2 WHERE id = $3 RETURNING {CLASS_COLUMNS}"))
            .bind(&name)
            .bind(class_name_key(&name))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| match is_unique_violation(&e) {
                true => StoreError::already_exists("class", &name),
                false => e.into(),
            })?
            .ok_or_else(|| StoreError::not_found("class", id))?;
    if class.name != name {
        sqlx::query("INSERT INTO class_renames (class_id, old_name, new_name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(&class.name)
            .bind(&name)
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
    }
    // Every past label of this class now reads under the new name: heads folded before are void.
    bump_label_log_epoch(&mut tx).await?;
    tx.commit().await?;
    class_from_row(&row)
}

/// Renames, newest first.
pub(crate) async fn list_renames(pool: &DbPool, limit: u32) -> Result<Vec<RenameRecord>> {
    let rows = sqlx::query("SELECT * FROM class_renames ORDER BY id DESC LIMIT $1")
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(RenameRecord {
                id: r.try_get("id")?,
                class_id: r.try_get("class_id")?,
                old_name: r.try_get("old_name")?,
                new_name: r.try_get("new_name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}

pub(crate) async fn merge_classes(pool: &DbPool, from: ClassId, into: ClassId) -> Result<MergeOutcome> {
    if from == into {
        return Err(StoreError::Invalid("cannot merge a class into itself".into()));
    }
    let mut tx = begin_write(pool).await?;
    let from_class = fetch_class(&mut *tx, from).await?.ok_or_else(|| StoreError::not_found("class", from))?;
    let into_class = fetch_class(&mut *tx, into).await?.ok_or_else(|| StoreError::not_found("class", into))?;
    if from_class.is_unknown {
        return Err(StoreError::Invalid("the Unknown class cannot be merged away".into()));
    }
    // The rows about to be rewritten are recorded first, so the merge can be undone exactly.
    let moved: Vec<i64> = sqlx::query_scalar("SELECT id FROM labels WHERE class_id = $1 ORDER BY id")
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
    let moved_previous: Vec<i64> = sqlx::query_scalar("SELECT id FROM labels WHERE previous_class_id = $1 ORDER BY id")
        .bind(from)
        .fetch_all(&mut *tx)
        .await?;
    let merge_id: i64 = sqlx::query_scalar(
        "INSERT INTO class_merges (from_id, from_name, from_created_at, into_id, moved, moved_previous, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(from)
    .bind(&from_class.name)
    .bind(from_class.created_at)
    .bind(into)
    .bind(serde_json::to_string(&moved).unwrap_or_default())
    .bind(serde_json::to_string(&moved_previous).unwrap_or_default())
    .bind(now_millis())
    .fetch_one(&mut *tx)
    .await?;
    let labels_moved = sqlx::query("UPDATE labels SET class_id = $1 WHERE class_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // previous_class_id must follow too, or replaying the log would unlearn a class that no longer exists.
    sqlx::query("UPDATE labels SET previous_class_id = $1 WHERE previous_class_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM classes WHERE id = $1").bind(from).execute(&mut *tx).await?;
    bump_label_log_epoch(&mut tx).await?;
    tx.commit().await?;
    Ok(MergeOutcome { from: from_class, into: into_class, labels_moved, merge_id })
}

/// Brings a merged-away class back (same id and name) and points the label rows the merge rewrote at it again,
/// where they still point at the class it was merged into. Bumps the label log's epoch, like the merge did.
pub(crate) async fn undo_merge(pool: &DbPool, merge_id: i64) -> Result<ClassRecord> {
    let mut tx = begin_write(pool).await?;
    let row = sqlx::query("SELECT * FROM class_merges WHERE id = $1")
        .bind(merge_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::not_found("merge", merge_id))?;
    let undone: Option<i64> = row.try_get("undone_at")?;
    if undone.is_some() {
        return Err(StoreError::Invalid(format!("merge {merge_id} was already undone")));
    }
    let (from, into): (i64, i64) = (row.try_get("from_id")?, row.try_get("into_id")?);
    let name: String = row.try_get("from_name")?;
    if fetch_class(&mut *tx, into).await?.is_none() {
        return Err(StoreError::Invalid(format!("the class {name:?} was merged into no longer exists")));
    }
    let key = class_name_key(&name);
    let taken: Option<i64> =
        sqlx::query_scalar("SELECT id FROM classes WHERE name_key = $1").bind(&key).fetch_optional(&mut *tx).await?;
    if taken.is_some() {
        return Err(StoreError::AlreadyExists { what: "class", name });
    }
    sqlx::query("INSERT INTO classes (id, name, name_key, is_unknown, created_at) VALUES ($1, $2, $3, FALSE, $4)")
        .bind(from)
        .bind(&name)
        .bind(&key)
        .bind(row.try_get::<i64, _>("from_created_at")?)
        .execute(&mut *tx)
        .await?;
    let ids = |column: &str| -> Result<Vec<i64>> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("class_merges.{column}: {e}")))
    };
    for id in ids("moved")? {
        sqlx::query("UPDATE labels SET class_id = $1 WHERE id = $2 AND class_id = $3")
            .bind(from)
            .bind(id)
            .bind(into)
            .execute(&mut *tx)
            .await?;
    }
    for id in ids("moved_previous")? {
        sqlx::query("UPDATE labels SET previous_class_id = $1 WHERE id = $2 AND previous_class_id = $3")
            .bind(from)
            .bind(id)
            .bind(into)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE class_merges SET undone_at = $1 WHERE id = $2")
        .bind(now_millis())
        .bind(merge_id)
        .execute(&mut *tx)
        .await?;
    bump_label_log_epoch(&mut tx).await?;
    let class = fetch_class(&mut *tx, from).await?.ok_or_else(|| StoreError::not_found("class", from))?;
    tx.commit().await?;
    Ok(class)
}

/// Deletes a class no label has ever named (undoing its creation); a class with history is refused.
pub(crate) async fn delete_unused_class(pool: &DbPool, id: ClassId) -> Result<ClassRecord> {
    let mut tx = begin_write(pool).await?;
    let class = fetch_class(&mut *tx, id).await?.ok_or_else(|| StoreError::not_found("class", id))?;
    if class.is_unknown {
        return Err(StoreError::Invalid("the Unknown class cannot be deleted".into()));
    }
    let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM labels WHERE class_id = $1 OR previous_class_id = $2")
        .bind(id)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if used > 0 {
        return Err(StoreError::Invalid(format!(
            "class {:?} has {used} labels in its history; merge or rename it instead",
            class.name
        )));
    }
    sqlx::query("DELETE FROM classes WHERE id = $1").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(class)
}

/// Merges, newest first.
pub(crate) async fn list_merges(pool: &DbPool, limit: u32) -> Result<Vec<MergeRecord>> {
    let rows = sqlx::query(
        "SELECT m.id, m.from_name, c.name AS into_name, m.moved, m.created_at, m.undone_at
           FROM class_merges m LEFT JOIN classes c ON c.id = m.into_id ORDER BY m.id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let moved: String = r.try_get("moved")?;
            let moved: Vec<i64> =
                serde_json::from_str(&moved).map_err(|e| StoreError::Corrupt(format!("class_merges.moved: {e}")))?;
            Ok(MergeRecord {
                id: r.try_get("id")?,
                from_name: r.try_get("from_name")?,
                into_name: r.try_get("into_name")?,
                labels_moved: moved.len() as u64,
                created_at: r.try_get("created_at")?,
                undone_at: r.try_get("undone_at")?,
            })
        })
        .collect()
}
