//! Group commit for classifications. Every classification is acknowledged only after it is fsynced, and with
//! `synchronous=FULL` each commit costs an fsync (about a millisecond here, far more on network disks). When
//! several classifications arrive together (bulk identify, concurrent uploads), the first to take the writer's
//! turn commits everything queued by then in one transaction, each in its own savepoint so one bad row fails
//! alone (a group of one needs none), and answers every caller once that single commit is durable.
//!
//! The turn runs in a spawned task: a caller that goes away mid-commit (a closed connection drops its future)
//! cannot abandon the rows it took from the queue for others.

use std::sync::{Arc, Mutex};

use sqlx::{Connection, SqliteConnection, SqlitePool};
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

async fn record_one(conn: &mut SqliteConnection, c: &Classification) -> Result<Recorded> {
    let (record, created) = images::put_image(conn, c.image.clone()).await?;
    if let Some((backbone, vector)) = &c.embedding {
        embeddings::put_embedding(conn, &c.image.id, backbone, vector).await?;
    }
    let id = transactions::log_transaction(conn, c.txn.clone()).await?;
    Ok((record, created, id))
}

async fn commit(pool: &SqlitePool, batch: Vec<Waiting>) {
    let committed = async {
        let mut tx = pool.begin_with(BEGIN_IMMEDIATE).await?;
        // Alone in its group, a row needs no savepoint: its error rolls back the whole (one-row) transaction, which
        // saves two of its round trips to the database thread on the common, sequential path.
        if let [(c, _)] = batch.as_slice() {
            let outcome = record_one(&mut tx, c).await;
            if outcome.is_ok() {
                tx.commit().await?;
            }
            return Ok(vec![outcome]);
        }
        let mut outcomes = Vec::with_capacity(batch.len());
        for (c, _) in &batch {
            // A savepoint per row: a row the catalog refuses is rolled back alone and answered with its error.
            let mut row = Connection::begin(&mut *tx).await?;
            match record_one(&mut row, c).await {
                Ok(recorded) => {
                    row.commit().await?;
                    outcomes.push(Ok(recorded));
                }
                Err(e) => {
                    row.rollback().await?;
                    outcomes.push(Err(e));
                }
            }
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
