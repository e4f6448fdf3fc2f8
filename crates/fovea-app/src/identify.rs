//! Bulk identification of a collection: every image stored, embedded and predicted, with its prediction logged.
//!
//! Images are classified concurrently so decoding (blocking pool, all cores) overlaps the network (compute
//! thread, which batches whatever is waiting); the items between their read and their prediction (the window)
//! stay under the compute queue's limit, so a bulk run never starves interactive requests into 429s. An item's
//! log commit happens after it leaves the window: a batch of 16 results committing together took 25 ms, during
//! which a window still holding them started no decode, and the next batch reached the network half full.
//!
//! A collection may be far larger than memory: items are pulled from an iterator only when there is room,
//! each item's bytes are read inside its task and dropped once it is predicted (so at most `window` files are held
//! at once), and results leave in input order through a callback as soon as every earlier one is done, so nothing
//! grows with the collection.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::{App, AppError, ClassifyOutcome, Result};

/// One item's result, in input order.
pub type Identified = (String, Result<ClassifyOutcome>);

impl App {
    /// Items a bulk run reads, decodes and embeds at once: under the compute queue's limit, so interactive requests
    /// still fit.
    pub fn identify_window(&self) -> usize {
        (self.cfg.max_waiting / 2).clamp(1, 32)
    }

    /// Classifies `items` (name, bytes), calling `progress(done, total)` as they finish; results keep input order.
    /// Holds every result; for a collection of unknown size use [`App::identify_stream`].
    pub async fn identify(
        self: &Arc<Self>,
        items: Vec<(String, Bytes)>,
        user: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<Identified> {
        let total = items.len();
        let mut results = Vec::with_capacity(total);
        let loaders = items.into_iter().map(|(name, bytes)| (name, move || Ok::<_, String>(bytes)));
        self.identify_stream(loaders, user, |r| {
            results.push(r);
            progress(results.len(), total);
        })
        .await;
        results
    }

    /// Classifies the items of a lazy iterator of (name, loader). A loader reads the item's bytes; it runs on a
    /// blocking thread inside the item's task, and an `Err` from it becomes that item's error. At most
    /// [`App::identify_window`] items are loaded or being predicted at any time (as many again may be committing),
    /// and `sink` receives every result in input order.
    pub async fn identify_stream<K, I, F>(
        self: &Arc<Self>,
        items: I,
        user: &str,
        mut sink: impl FnMut((K, Result<ClassifyOutcome>)),
    ) where
        K: Clone + Send + 'static,
        I: IntoIterator<Item = (K, F)>,
        F: FnOnce() -> std::result::Result<Bytes, String> + Send + 'static,
    {
        // An item holds a slot from its read until its prediction; its log commit (an fsync, shared by the items
        // that finished together) waits outside the slots, so the next images decode meanwhile instead of the
        // network idling while a batch of results commits. Twice the slots bounds the items in flight.
        let slots = Arc::new(Semaphore::new(self.identify_window()));
        let window = 2 * self.identify_window();
        let mut pending = items.into_iter().enumerate().peekable();
        let mut running = JoinSet::new();
        // Finished results waiting for an earlier one; bounded because item `i` starts only while
        // `i < next + window`.
        let mut ready: BTreeMap<usize, (K, Result<ClassifyOutcome>)> = BTreeMap::new();
        // Which item each task runs, so a panicked task's item still gets its (error) result.
        let mut tasks: std::collections::HashMap<tokio::task::Id, (usize, K)> = Default::default();
        let mut next = 0;
        loop {
            while running.len() < window && pending.peek().is_some_and(|(i, _)| *i < next + window) {
                let Some((i, (name, load))) = pending.next() else { break };
                let (app, user, label, slots) = (self.clone(), user.to_owned(), name.clone(), slots.clone());
                let handle = running.spawn(async move {
                    let Ok(slot) = slots.acquire_owned().await else {
                        return (i, name, Err(AppError::Internal("the identify slots closed".into())));
                    };
                    let bytes = match tokio::task::spawn_blocking(load).await {
                        Ok(Ok(b)) => b,
                        Ok(Err(e)) => return (i, name, Err(AppError::Invalid(format!("cannot read: {e}")))),
                        Err(e) => return (i, name, Err(AppError::Internal(format!("reading: {e}")))),
                    };
                    let predicted = app.predict_upload(bytes).await;
                    drop(slot);
                    let outcome = match predicted {
                        Ok(p) => app.record_prediction(p, &user).await,
                        Err(e) => Err(e),
                    };
                    (i, name, outcome)
                });
                tasks.insert(handle.id(), (i, label));
            }
            let Some(joined) = running.join_next_with_id().await else { break };
            match joined {
                Ok((id, (i, name, outcome))) => {
                    tasks.remove(&id);
                    ready.insert(i, (name, outcome));
                }
                Err(e) => {
                    tracing::error!(error = %e, "identify task failed");
                    if let Some((i, name)) = tasks.remove(&e.id()) {
                        ready.insert(i, (name, Err(AppError::Internal("task panicked".into()))));
                    }
                }
            }
            while let Some(r) = ready.remove(&next) {
                sink(r);
                next += 1;
            }
        }
    }
}
