//! Group commit for classifications. Every classification is acknowledged only after it is fsynced, and with
//! `synchronous=FULL` each commit costs an fsync (about a millisecond here, far more on network disks). When
//! several classifications arrive together (bulk identify, concurrent uploads), the first to take the writer's
//! turn commits everything queued by then in one transaction, each in its own savepoint so one bad row fails
//! alone (a group of one needs none), and answers every caller once that single commit is durable.
//!
//! The turn runs in a spawned task: a caller that goes away mid-commit (a closed connection drops its future)
//! cannot abandon the rows it took from the queue for others.

use std::sync::{Arc, LazyLock, Mutex};

use futures_util::TryStreamExt;
use sqlx::{Either, Row, SqliteConnection, SqlitePool};
use tokio::sync::oneshot;

use super::{embeddings, images, transactions, BEGIN_IMMEDIATE};
use crate::error::{Result, StoreError};
use crate::model::{ImageRecord, NewImage, NewTransaction};

/// The image, whether it was new, and the transaction id.
pub(super) type Recorded = (ImageRecord, bool, i64);

pub(super) struct Classification {
    pub image: NewImage,
    pub embedding: Option<(String, Vec<f32>)>,
    pub txn: NewTransaction,
}

type Waiting = (Classification, oneshot::Sender<Result<Recorded>>);

#[derive(Default)]
pub(super) struct GroupCommit {
    queue: Mutex<Vec<Waiting>>,
    /// Held by the task committing a group; the next group forms while it waits.
    turn: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    pub(super) async fn record(
        self: &Arc<Self>,
        pool: &SqlitePool,
        classification: Classification,
    ) -> Result<Recorded> {
        let (reply, answer) = oneshot::channel();
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push((classification, reply));
        let (group, pool) = (self.clone(), pool.clone());
        // Turns are taken in order (tokio's mutex is fair), and a turn takes everything queued: by the end of this
        // caller's turn its row has been committed, by this turn or an earlier one.
        let turn = tokio::spawn(async move {
            let _turn = group.turn.lock().await;
            let batch = std::mem::take(&mut *group.queue.lock().unwrap_or_else(|p| p.into_inner()));
            if !batch.is_empty() {
                commit(&pool, batch).await;
            }
        });
        if let Err(e) = turn.await {
            return Err(StoreError::io("group commit", std::io::Error::other(e.to_string())));
        }
        answer.await.map_err(|_| StoreError::io("group commit", std::io::Error::other("the commit was abandoned")))?
    }
}

async fn commit(pool: &SqlitePool, batch: Vec<Waiting>) {
    let committed = async {
        // Alone in its group (the common, sequential path), a row needs no savepoint and goes in one round trip.
        if let [(c, _)] = batch.as_slice() {
            return Ok(vec![commit_alone(pool, c).await]);
        }
        let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for (c, _) in &batch {
            // A savepoint per row, in the row's one round trip: a row the catalog refuses is rolled back alone and
            // answered with its error.
            outcomes.push(run_statements(&mut tx, c, Scope::Savepoint).await?);
        }
        tx.commit().await?;
        Ok::<_, StoreError>(outcomes)
    }
    .await;
    match committed {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            // Nothing of the group is durable: every caller hears so (sqlx errors cannot be cloned; the text can).
            let text = e.to_string();
            for (_, reply) in batch {
                let _ =
                    reply.send(Err(StoreError::io("committing classifications", std::io::Error::other(text.clone()))));
            }
        }
    }
}

/// What one classification's statements are wrapped in: a transaction of its own, or a savepoint inside a group's.
/// The discriminants index [`STATEMENTS`].
#[derive(Clone, Copy)]
enum Scope {
    Transaction = 0,
    Savepoint = 1,
}

impl Scope {
    fn open_and_close(self) -> (&'static str, &'static str) {
        match self {
            Scope::Transaction => (BEGIN_IMMEDIATE, "COMMIT"),
            Scope::Savepoint => ("SAVEPOINT classification", "RELEASE classification"),
        }
    }

    /// Undoes what ran of the statements after one of them failed, leaving a group's transaction open.
    fn undo(self) -> &'static str {
        match self {
            Scope::Transaction => "ROLLBACK",
            Scope::Savepoint => "ROLLBACK TO classification; RELEASE classification",
        }
    }
}

/// The statements of [`run_statements`], by scope and with the embedding's upsert or without it.
static STATEMENTS: LazyLock<[[String; 2]; 2]> = LazyLock::new(|| {
    let select_image = format!("SELECT {} FROM images i WHERE i.id = $1", images::IMAGE_COLUMNS);
    let with = |scope: Scope, embedding: bool| {
        let (upsert, shift) = match embedding {
            true => (format!("{};", renumbered(embeddings::UPSERT_EMBEDDING, 10)), 15),
            false => (String::new(), 10),
        };
        let log = renumbered(transactions::INSERT_TRANSACTION, shift);
        let (open, close) = scope.open_and_close();
        format!("{open}; {}; {upsert} {log}; {select_image}; {close}", images::INSERT_IMAGE)
    };
    // In discriminant order.
    [Scope::Transaction, Scope::Savepoint].map(|scope| [with(scope, false), with(scope, true)])
});

/// Which statement of [`STATEMENTS`] answers what (counting from 0, the BEGIN or SAVEPOINT).
const INSERT_IMAGE_AT: usize = 1;

async fn commit_alone(pool: &SqlitePool, c: &Classification) -> Result<Recorded> {
    let mut conn = pool.acquire().await?;
    match run_statements(&mut conn, c, Scope::Transaction).await {
        Ok(outcome) => outcome,
        // Even the rollback failed: the connection goes, and the transaction with it.
        Err(e) => {
            conn.close_on_drop();
            Err(e)
        }
    }
}

/// One classification in one round trip to the database thread. sqlx runs a multi-statement query on its thread
/// from start to end, streaming the results back, so opening the scope, the inserts, reading back the stored image
/// row and closing it cost one hop there and back instead of five or more (each hop two thread switches, about
/// 0.1 ms on a 2-core machine, against a 1 ms fsync). Numbered placeholders count across the statements, hence
/// the renumbered copies of the shared SQL. An outer `Err` is a failure after which the scope could not be undone.
async fn run_statements(conn: &mut SqliteConnection, c: &Classification, scope: Scope) -> Result<Result<Recorded>> {
    let statements = &STATEMENTS[scope as usize][usize::from(c.embedding.is_some())];
    let bound = (|| {
        let mut query = images::bind_image(sqlx::query(statements), &c.image)?;
        if let Some((backbone, vector)) = &c.embedding {
            query = embeddings::bind_embedding(query, &c.image.id, backbone, vector)?;
        }
        transactions::bind_transaction(query, &c.txn)
    })();
    // Refused before anything ran: nothing to undo.
    let query = match bound {
        Ok(query) => query,
        Err(e) => return Ok(Err(e)),
    };
    // Deprecated because only SQLite runs several statements in one prepared query; this is the SQLite backend, and
    // `raw_sql`, the suggested replacement, binds no parameters (the version is pinned in Cargo.lock).
    #[allow(deprecated)]
    let results: std::result::Result<Vec<_>, _> = query.fetch_many(&mut *conn).try_collect().await;
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            // The statements stopped at the failing one, inside the scope: undo it here.
            let undone = sqlx::query(scope.undo()).execute(&mut *conn).await;
            let refused = super::sql::missing_image(e, &c.image.id);
            return if undone.is_ok() { Ok(Err(refused)) } else { Err(refused) };
        }
    };
    let log_at = INSERT_IMAGE_AT + 1 + usize::from(c.embedding.is_some());
    let (mut statement, mut created, mut id, mut record) = (0, false, None, None);
    for result in results {
        match result {
            Either::Left(done) => {
                created |= statement == INSERT_IMAGE_AT && done.rows_affected() > 0;
                statement += 1;
            }
            Either::Right(row) if statement == log_at => id = Some(row.try_get::<i64, _>(0)?),
            Either::Right(row) if statement == log_at + 1 => record = Some(images::image_from_row(&row)?),
            Either::Right(_) => {}
        }
    }
    Ok(match (record, id) {
        (Some(record), Some(id)) => Ok((record, created, id)),
        _ => Err(StoreError::Corrupt("a committed classification answered no image row or log id".into())),
    })
}

/// `sql` with every placeholder `$n` numbered `$(n + by)`.
fn renumbered(sql: &str, by: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + by).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renumbering_shifts_every_placeholder_and_nothing_else() {
        assert_eq!(renumbered("VALUES ($1, $2, $10) -- $ $x", 5), "VALUES ($6, $7, $15) -- $ $x");
        let statements = &STATEMENTS[1][1];
        for n in 1..=26 {
            assert!(statements.contains(&format!("${n},")) || statements.contains(&format!("${n})")), "${n}");
        }
        assert!(!statements.contains("$27"));
    }
}
