//! The network never runs on async workers: one dedicated thread owns the backbone and is fed by a channel.
//! Requests that arrive while it is busy are run together as one batch; a bounded number may wait, and the
//! rest are refused at once (HTTP 429) instead of queueing without limit. A promotion swaps the backbone
//! between two batches, so no request ever sees half of one model and half of another.

use std::sync::mpsc;
use std::sync::{Arc, RwLock};

use fovea_model::Backbone;
use tokio::sync::{oneshot, Semaphore};

use crate::{AppError, Result};

const MAX_BATCH: usize = 16;

/// An embedding with the name of the backbone that computed it (the embedding cache's key).
pub type Embedding = (Vec<f32>, String);

enum Msg {
    Embed { input: Vec<f32>, reply: oneshot::Sender<Result<Embedding>> },
    Swap { backbone: Box<dyn Backbone>, name: String, done: oneshot::Sender<()> },
}

#[derive(Clone)]
pub struct Compute {
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    input_size: usize,
    dim: usize,
    backbone_name: Arc<RwLock<String>>,
}

impl Compute {
    /// Starts the compute thread; `name` identifies the weights (a model version id, or the variant's name).
    pub fn start(backbone: Box<dyn Backbone>, name: String, max_waiting: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>();
        let input_size = backbone.input_size();
        let dim = backbone.embedding_dim();
        let backbone_name = Arc::new(RwLock::new(name.clone()));
        std::thread::Builder::new()
            .name("fovea-compute".into())
            .spawn(move || worker(backbone, name, rx))
            .expect("spawn compute thread");
        Compute { tx, permits: Arc::new(Semaphore::new(max_waiting.max(1))), input_size, dim, backbone_name }
    }

    /// Serves `backbone` from the next batch on. Returns once the swap happened.
    pub async fn swap(&self, backbone: Box<dyn Backbone>, name: String) -> Result<()> {
        if backbone.input_size() != self.input_size || backbone.embedding_dim() != self.dim {
            return Err(AppError::Invalid("a swapped-in backbone must keep the input size and embedding size".into()));
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Swap { backbone, name: name.clone(), done })
            .map_err(|_| AppError::Internal("compute thread stopped".into()))?;
        rx.await.map_err(|_| AppError::Internal("compute thread dropped a swap".into()))?;
        *self.backbone_name.write().unwrap_or_else(|p| p.into_inner()) = name;
        Ok(())
    }

    pub fn input_size(&self) -> usize {
        self.input_size
    }
    pub fn embedding_dim(&self) -> usize {
        self.dim
    }
    /// Identifies the weights embeddings were made with (the embedding cache's key).
    pub fn backbone_name(&self) -> String {
        self.backbone_name.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Embeds one preprocessed image (3×size×size floats); answers with the name of the backbone that did it.
    pub async fn embed(&self, input: Vec<f32>) -> Result<Embedding> {
        let _permit = self.permits.clone().try_acquire_owned().map_err(|_| AppError::Overloaded)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Embed { input, reply }).map_err(|_| AppError::Internal("compute thread stopped".into()))?;
        rx.await.map_err(|_| AppError::Internal("compute thread dropped a request".into()))?
    }
}

fn worker(mut backbone: Box<dyn Backbone>, mut name: String, rx: mpsc::Receiver<Msg>) {
    let mut pending: Option<Msg> = None;
    loop {
        let first = match pending.take() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let mut jobs = Vec::new();
        match first {
            Msg::Swap { backbone: b, name: n, done } => {
                (backbone, name) = (b, n);
                let _ = done.send(());
                continue;
            }
            Msg::Embed { input, reply } => jobs.push((input, reply)),
        }
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Embed { input, reply }) => jobs.push((input, reply)),
                // A swap ends the batch: what came before it runs on the old backbone.
                Ok(swap) => {
                    pending = Some(swap);
                    break;
                }
                Err(_) => break,
            }
        }
        let input: Vec<f32> = jobs.iter().flat_map(|j| j.0.iter().copied()).collect();
        match backbone.run(&input, jobs.len()) {
            Ok(out) => {
                for (i, (_, reply)) in jobs.into_iter().enumerate() {
                    let _ = reply.send(Ok((out.embedding(i).to_vec(), name.clone())));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for (_, reply) in jobs {
                    let _ = reply.send(Err(AppError::Internal(msg.clone())));
                }
            }
        }
    }
}
