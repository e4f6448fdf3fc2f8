//! Bulk identification of a collection: every image stored, embedded and predicted, with its prediction logged.
//!
//! Images are classified concurrently so decoding (blocking pool, all cores) overlaps the network (compute
//! thread, which batches whatever is waiting); the window stays under the compute queue's limit, so a bulk run
//! never starves interactive requests into 429s.

use std::sync::Arc;

use bytes::Bytes;
use tokio::task::JoinSet;

use crate::{App, AppError, ClassifyOutcome, Result};

/// One item's result, in input order.
pub type Identified = (String, Result<ClassifyOutcome>);

impl App {
    /// Classifies `items` (name, bytes), calling `progress(done, total)` as they finish; results keep input order.
    pub async fn identify(
        self: &Arc<Self>,
        items: Vec<(String, Bytes)>,
        user: &str,
        mut progress: impl FnMut(usize, usize),
    ) -> Vec<Identified> {
        let total = items.len();
        let window = (self.cfg.max_waiting / 2).clamp(1, 32);
        let mut results: Vec<Option<Identified>> = (0..total).map(|_| None).collect();
        let mut pending = items.into_iter().enumerate();
        let mut running = JoinSet::new();
        let mut done = 0;
        loop {
            while running.len() < window {
                let Some((i, (name, bytes))) = pending.next() else { break };
                let (app, user) = (self.clone(), user.to_owned());
                running.spawn(async move { (i, name, app.classify(bytes, &user).await) });
            }
            let Some(joined) = running.join_next().await else { break };
            let (i, name, outcome) = match joined {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "identify task failed");
                    continue;
                }
            };
            results[i] = Some((name, outcome));
            done += 1;
            progress(done, total);
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|| (format!("#{i}"), Err(AppError::Internal("task panicked".into())))))
            .collect()
    }
}
