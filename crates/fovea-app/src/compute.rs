//! The network never runs on async workers: one dedicated thread owns the backbone and is fed by a channel.
//! Requests that arrive while it is busy are run together as one batch; a bounded number may wait, and the
//! rest are refused at once (HTTP 429) instead of queueing without limit. A promotion swaps the backbone
//! between two batches, so no request ever sees half of one model and half of another.
//!
//! A panic inside the network (a kernel bug, a malformed fine-tune) must not kill the thread and leave every
//! later request failing while the service looks alive: the batch that hit it is answered with an error, the
//! worker marks itself unhealthy, and probes the backbone with a blank image (at once, then every second while
//! idle) until a run succeeds again. `/healthz` reports the flag. Every backbone is probed once before it serves
//! (at start and on a swap), which also takes its slow first pass off the first request.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use fovea_model::Backbone;
use tokio::sync::{oneshot, Semaphore};

use crate::{AppError, Result};

const MAX_BATCH: usize = 16;
/// While unhealthy and idle, the worker probes the backbone this often.
const PROBE_EVERY: Duration = Duration::from_secs(1);

/// An embedding with the name of the backbone that computed it (the embedding cache's key).
pub type Embedding = (Vec<f32>, String);

enum Msg {
    Embed { input: Vec<f32>, reply: oneshot::Sender<Result<(Embedding, Instant)>> },
    Swap { backbone: Box<dyn Backbone>, name: String, done: oneshot::Sender<()> },
}

#[derive(Clone)]
pub struct Compute {
    tx: mpsc::Sender<Msg>,
    permits: Arc<Semaphore>,
    input_size: usize,
    dim: usize,
    backbone_name: Arc<RwLock<String>>,
    engine: Arc<RwLock<&'static str>>,
    healthy: Arc<AtomicBool>,
}

impl Compute {
    /// Starts the compute thread; `name` identifies the weights (a model version id, or the variant's name).
    pub fn start(backbone: Box<dyn Backbone>, name: String, max_waiting: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Msg>();
        let input_size = backbone.input_size();
        let dim = backbone.embedding_dim();
        let backbone_name = Arc::new(RwLock::new(name.clone()));
        let engine = Arc::new(RwLock::new(backbone.engine()));
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        std::thread::Builder::new()
            .name("fovea-compute".into())
            .spawn(move || worker(backbone, name, rx, &flag))
            .expect("spawn compute thread");
        let permits = Arc::new(Semaphore::new(max_waiting.max(1)));
        Compute { tx, permits, input_size, dim, backbone_name, engine, healthy }
    }

    /// False while the network is down: its last run panicked and no run or probe has succeeded since.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// The engine running the served backbone (`fast`, `burn`, `ort`).
    pub fn engine(&self) -> &'static str {
        *self.engine.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves `backbone` from the next batch on. Returns once the swap happened.
    pub async fn swap(&self, backbone: Box<dyn Backbone>, name: String) -> Result<()> {
        if backbone.input_size() != self.input_size || backbone.embedding_dim() != self.dim {
            return Err(AppError::Invalid("a swapped-in backbone must keep the input size and embedding size".into()));
        }
        let engine = backbone.engine();
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Msg::Swap { backbone, name: name.clone(), done })
            .map_err(|_| AppError::Internal("compute thread stopped".into()))?;
        rx.await.map_err(|_| AppError::Internal("compute thread dropped a swap".into()))?;
        *self.backbone_name.write().unwrap_or_else(|p| p.into_inner()) = name;
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = engine;
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
        self.submit(input)?.answer().await
    }

    /// Hands one preprocessed image to the compute thread without waiting. It works from any thread, so the task
    /// that decoded an upload passes it straight on: no hop back through the async runtime first.
    pub fn submit(&self, input: Vec<f32>) -> Result<PendingEmbedding> {
        let permit = self.permits.clone().try_acquire_owned().map_err(|_| AppError::Overloaded)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Embed { input, reply }).map_err(|_| AppError::Internal("compute thread stopped".into()))?;
        Ok(PendingEmbedding { rx, _permit: permit })
    }
}

/// An image handed to the compute thread; it counts against the waiting limit until answered.
pub struct PendingEmbedding {
    rx: oneshot::Receiver<Result<(Embedding, Instant)>>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl PendingEmbedding {
    /// The embedding, once the compute thread has run it.
    pub async fn answer(self) -> Result<Embedding> {
        Ok(self.answer_timed().await?.0)
    }

    /// The embedding and when the compute thread finished it (the wait since then is the hand-back's).
    pub async fn answer_timed(self) -> Result<(Embedding, Instant)> {
        self.rx.await.map_err(|_| AppError::Internal("compute thread dropped a request".into()))?
    }
}

/// Why a batch produced no embeddings.
enum Failure {
    /// The backbone returned an error: the input's fault, the worker is fine.
    Error(String),
    /// The backbone panicked: the worker is suspect until a probe succeeds.
    Panic(String),
}

/// Runs a batch with panics caught; answers one embedding per image, or why not.
fn run_caught(backbone: &dyn Backbone, input: &[f32], batch: usize) -> std::result::Result<Vec<Vec<f32>>, Failure> {
    let run = catch_unwind(AssertUnwindSafe(|| -> std::result::Result<Vec<Vec<f32>>, Failure> {
        let out = backbone.embed(input, batch).map_err(|e| Failure::Error(e.to_string()))?;
        let dim = backbone.embedding_dim();
        if out.len() != batch * dim {
            return Err(Failure::Error(format!("the network answered {} floats for {batch} x {dim}", out.len())));
        }
        Ok(out.chunks_exact(dim).map(<[f32]>::to_vec).collect())
    }));
    match run {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(Failure::Panic(format!("the network failed on this batch ({what}); the worker restarted")))
        }
    }
}

/// One blank image through the backbone: whether it runs at all.
fn probe(backbone: &dyn Backbone) -> bool {
    let size = backbone.input_size();
    run_caught(backbone, &vec![0.0; 3 * size * size], 1).is_ok()
}

fn worker(mut backbone: Box<dyn Backbone>, mut name: String, rx: mpsc::Receiver<Msg>, healthy: &AtomicBool) {
    // The first pass of a network is several times slower than the next (buffers allocated and faulted in, caches
    // cold: 24 ms against 5.5 for a classify over HTTP): the worker pays it before the first request, and learns
    // at once whether the backbone runs at all.
    healthy.store(probe(backbone.as_ref()), Ordering::SeqCst);
    let mut pending: Option<Msg> = None;
    let mut stacked: Vec<f32> = Vec::new();
    loop {
        let first = match pending.take() {
            Some(m) => m,
            None if healthy.load(Ordering::SeqCst) => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
            // Down: wait for work, but probe the backbone now and then, so health comes back without traffic.
            None => match rx.recv_timeout(PROBE_EVERY) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if probe(backbone.as_ref()) {
                        healthy.store(true, Ordering::SeqCst);
                        tracing::info!("compute worker healthy again");
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            },
        };
        let mut jobs = Vec::new();
        match first {
            Msg::Swap { backbone: b, name: n, done } => {
                (backbone, name) = (b, n);
                // Warmed before the swap is acknowledged, as at start; its health is the warm-up's outcome.
                healthy.store(probe(backbone.as_ref()), Ordering::SeqCst);
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
        // One image (every request that finds the thread idle) runs from its own buffer; a batch is stacked into
        // a buffer kept across batches (a fresh 10 MB one per batch was memory the kernel had to zero each time).
        let input: &[f32] = match jobs.as_slice() {
            [(image, _)] => image,
            _ => {
                stacked.clear();
                for (image, _) in &jobs {
                    stacked.extend_from_slice(image);
                }
                &stacked
            }
        };
        let result = run_caught(backbone.as_ref(), input, jobs.len());
        let finished = Instant::now();
        match result {
            Ok(rows) => {
                healthy.store(true, Ordering::SeqCst);
                for ((_, reply), row) in jobs.into_iter().zip(rows) {
                    let _ = reply.send(Ok(((row, name.clone()), finished)));
                }
            }
            Err(Failure::Error(msg)) => {
                for (_, reply) in jobs {
                    let _ = reply.send(Err(AppError::Internal(msg.clone())));
                }
            }
            Err(Failure::Panic(msg)) => {
                tracing::error!(error = %msg, "compute worker panicked");
                // Down before anyone hears of the failure, so health never lags an answered error.
                healthy.store(false, Ordering::SeqCst);
                for (_, reply) in jobs {
                    let _ = reply.send(Err(AppError::Internal(msg.clone())));
                }
                if probe(backbone.as_ref()) {
                    healthy.store(true, Ordering::SeqCst);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fovea_model::{Embedded, Variant};
    use std::sync::atomic::AtomicUsize;

    /// Counts its runs; panics on every run while `broken`.
    struct Counting {
        runs: Arc<AtomicUsize>,
        broken: bool,
    }

    impl Backbone for Counting {
        fn variant(&self) -> Variant {
            Variant::Lite0
        }
        fn embedding_dim(&self) -> usize {
            2
        }
        fn engine(&self) -> &'static str {
            "counting"
        }
        fn run(&self, _: &[f32], batch: usize) -> fovea_model::Result<Embedded> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            assert!(!self.broken, "injected failure");
            Ok(Embedded { batch, embeddings: vec![0.5; 2 * batch], logits: vec![0.0; batch] })
        }
    }

    fn started(broken: bool) -> (Compute, Arc<AtomicUsize>) {
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = Compute::start(Box::new(Counting { runs: runs.clone(), broken }), "counting".into(), 4);
        (compute, runs)
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "{what} never happened");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn the_backbone_runs_once_before_any_request_and_a_swapped_in_one_before_it_serves() {
        let (compute, runs) = started(false);
        wait_until("the warm-up pass", || runs.load(Ordering::SeqCst) == 1);
        assert!(compute.healthy());
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let next = Arc::new(AtomicUsize::new(0));
        rt.block_on(compute.swap(Box::new(Counting { runs: next.clone(), broken: false }), "next".into())).unwrap();
        assert_eq!(next.load(Ordering::SeqCst), 1, "the swap is acknowledged once the new backbone has run");
        let input = vec![0.0; 3 * 224 * 224];
        let (embedding, by) = rt.block_on(compute.submit(input).unwrap().answer()).unwrap();
        assert_eq!((embedding, by.as_str()), (vec![0.5, 0.5], "next"));
        assert_eq!(runs.load(Ordering::SeqCst), 1, "the old backbone ran only its warm-up");
    }

    #[test]
    fn a_backbone_that_cannot_run_is_unhealthy_before_any_request() {
        let (compute, runs) = started(true);
        wait_until("the failed warm-up", || runs.load(Ordering::SeqCst) >= 1 && !compute.healthy());
    }
}
