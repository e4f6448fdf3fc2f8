//! The network never runs on async workers: one dedicated thread owns the backbone and is fed by a channel.
//! Requests that arrive while it is busy are run together as one batch; a bounded number may wait, and the
//! rest are refused at once (HTTP 429) instead of queueing without limit.

use std::sync::mpsc;
use std::sync::Arc;

use fovea_model::Backbone;
use tokio::sync::{oneshot, Semaphore};

use crate::{AppError, Result};

const MAX_BATCH: usize = 16;

struct Job {
    input: Vec<f32>,
    reply: oneshot::Sender<Result<Vec<f32>>>,
}

#[derive(Clone)]
pub struct Compute {
    tx: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    input_size: usize,
    dim: usize,
    backbone_name: String,
}

impl Compute {
    pub fn start(backbone: Box<dyn Backbone>, max_waiting: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let input_size = backbone.input_size();
        let dim = backbone.embedding_dim();
        let backbone_name = backbone.variant().name();
        std::thread::Builder::new()
            .name("fovea-compute".into())
            .spawn(move || worker(backbone, rx))
            .expect("spawn compute thread");
        Compute { tx, permits: Arc::new(Semaphore::new(max_waiting.max(1))), input_size, dim, backbone_name }
    }

    pub fn input_size(&self) -> usize {
        self.input_size
    }
    pub fn embedding_dim(&self) -> usize {
        self.dim
    }
    /// Identifies the weights embeddings were made with (the embedding cache's key).
    pub fn backbone_name(&self) -> &str {
        &self.backbone_name
    }

    /// Embeds one preprocessed image (3×size×size floats).
    pub async fn embed(&self, input: Vec<f32>) -> Result<Vec<f32>> {
        let _permit = self.permits.clone().try_acquire_owned().map_err(|_| AppError::Overloaded)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Job { input, reply }).map_err(|_| AppError::Internal("compute thread stopped".into()))?;
        rx.await.map_err(|_| AppError::Internal("compute thread dropped a request".into()))?
    }
}

fn worker(backbone: Box<dyn Backbone>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let input: Vec<f32> = jobs.iter().flat_map(|j| j.input.iter().copied()).collect();
        match backbone.run(&input, jobs.len()) {
            Ok(out) => {
                for (i, job) in jobs.into_iter().enumerate() {
                    let _ = job.reply.send(Ok(out.embedding(i).to_vec()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(AppError::Internal(msg.clone())));
                }
            }
        }
    }
}
