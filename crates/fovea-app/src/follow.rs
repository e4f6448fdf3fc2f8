//! Keeping one process in step with the others that share its catalog (replicas behind a load balancer, workers):
//! every process folds the shared label log into its own online head, and serves whichever model the registry says
//! is promoted. Both are cheap polls of the catalog (the newest label id, the promoted row), so a correction made on
//! one replica changes predictions on another within one poll interval, on SQLite or PostgreSQL alike.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::App;

/// How often the label log is checked for labels written by other processes.
const LABEL_POLL: Duration = Duration::from_millis(200);
/// How often the registry is checked for a promotion or rollback made by another process.
const MODEL_POLL: Duration = Duration::from_secs(1);

impl App {
    /// Folds labels that other processes logged since this head's last fold; returns how many.
    pub async fn follow_labels(&self) -> crate::Result<usize> {
        let newest = self.catalog.last_label_seq().await?;
        let epoch = self.catalog.label_log_epoch().await?;
        let mut head = self.head.lock().await;
        if newest == head.seq && epoch == head.epoch() {
            return Ok(0);
        }
        let folded = head.catch_up(self.catalog.as_ref()).await?;
        if head.since_snapshot >= self.cfg.snapshot_every {
            head.save(self.catalog.as_ref()).await?;
        }
        Ok(folded)
    }
}

/// Starts the follower; it ends when the app is dropped.
pub(crate) fn spawn(app: &Arc<App>) {
    let app: Weak<App> = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut last_model_check = Instant::now();
        loop {
            tokio::time::sleep(LABEL_POLL).await;
            let Some(app) = app.upgrade() else { return };
            match app.follow_labels().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(labels = n, "folded labels logged elsewhere"),
                Err(e) => tracing::warn!(error = %e, "could not follow the label log"),
            }
            if last_model_check.elapsed() >= MODEL_POLL {
                last_model_check = Instant::now();
                if let Err(e) = app.sync_model().await {
                    tracing::warn!(error = %e, "could not switch to the promoted model");
                }
            }
        }
    });
}
