//! A team of threads that stays awake for the length of one batch-1 forward pass.
//!
//! A batch-1 pass splits each of its ~40 layers across the threads. Through rayon, the other worker has often gone
//! to sleep by the time the next layer is handed out (a layer's halves never finish together), and waking it took
//! 5-15 us per layer: 0.2-0.3 ms per image on a 2-core machine, measured. Here the helpers spin between layers, so a
//! hand-off costs well under a microsecond, and stop when the pass ends.
//!
//! Work is claimed, never assigned: the caller takes chunks too, and waits only for chunks a helper has actually
//! started. A helper that never gets a thread (the pool busy with another caller) therefore cannot stall a pass.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// The job of the current round: a pointer to the caller's `&dyn Fn(usize)`, valid until the round is done.
type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// Shared state of one forward pass. `claim` packs the round number (high 32 bits) with the next unclaimed chunk
/// (low 32 bits), so a helper that read one round's job can never claim a chunk of the next.
pub(crate) struct Team {
    claim: AtomicU64,
    chunks: AtomicUsize,
    done: AtomicUsize,
    job: AtomicPtr<()>,
    quit: AtomicBool,
    panicked: AtomicBool,
}

impl Team {
    pub(crate) fn new() -> Self {
        Team {
            claim: AtomicU64::new(0),
            chunks: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            quit: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
        }
    }

    /// Runs `job(0..chunks)` on the caller and whichever helpers are awake; returns when every chunk has run.
    pub(crate) fn run(&self, chunks: usize, job: Job<'_>) {
        assert!(chunks < u32::MAX as usize, "too many chunks");
        self.done.store(0, Ordering::Relaxed);
        self.chunks.store(chunks, Ordering::Relaxed);
        self.job.store(&job as *const Job<'_> as *mut (), Ordering::Relaxed);
        // Opening the round publishes the job (Release); chunks count from 0 again.
        let round = (self.claim.load(Ordering::Relaxed) >> 32) + 1;
        self.claim.store(round << 32, Ordering::Release);
        while self.work_on(round) {}
        while self.done.load(Ordering::Acquire) < chunks {
            std::hint::spin_loop();
        }
        // Chunks catch their panics (unwinding out of here while a helper still ran the job would leave it a
        // dangling closure); the caller raises one once every chunk is accounted for.
        assert!(!self.panicked.swap(false, Ordering::Relaxed), "a kernel chunk panicked");
    }

    /// Claims and runs one chunk of `round`; false once none is left.
    fn work_on(&self, round: u64) -> bool {
        let mut seen = self.claim.load(Ordering::Acquire);
        loop {
            let (r, next) = (seen >> 32, (seen & u64::from(u32::MAX)) as usize);
            if r != round || next >= self.chunks.load(Ordering::Relaxed) {
                return false;
            }
            match self.claim.compare_exchange_weak(seen, seen + 1, Ordering::Acquire, Ordering::Acquire) {
                Ok(_) => {
                    // SAFETY: `run` keeps the job alive until `done` counts this chunk, which happens below.
                    let job = unsafe { *(self.job.load(Ordering::Relaxed) as *const Job<'_>) };
                    if catch_unwind(AssertUnwindSafe(|| job(next))).is_err() {
                        self.panicked.store(true, Ordering::Relaxed);
                    }
                    self.done.fetch_add(1, Ordering::Release);
                    return true;
                }
                Err(now) => seen = now,
            }
        }
    }

    /// A helper's loop: spin until a round opens, take its chunks, repeat until [`Team::finish`].
    pub(crate) fn help(&self) {
        let mut last = 0;
        while !self.quit.load(Ordering::Acquire) {
            let round = self.claim.load(Ordering::Acquire) >> 32;
            if round != last {
                while self.work_on(round) {}
                last = round;
            }
            std::hint::spin_loop();
        }
    }

    /// Ends the pass: helpers return.
    pub(crate) fn finish(&self) {
        self.quit.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn every_chunk_runs_once_per_round_with_or_without_helpers() {
        for helpers in [0, 1, 3] {
            let team = Team::new();
            let hits: Vec<AtomicU32> = (0..37).map(|_| AtomicU32::new(0)).collect();
            std::thread::scope(|s| {
                for _ in 0..helpers {
                    s.spawn(|| team.help());
                }
                for round in 1..=200u32 {
                    let n = (round as usize % 37) + 1;
                    team.run(n, &|i| {
                        hits[i].fetch_add(1, Ordering::Relaxed);
                    });
                    let total: u32 = hits.iter().map(|h| h.swap(0, Ordering::Relaxed)).sum();
                    assert_eq!(total as usize, n, "round {round}, {helpers} helpers");
                }
                team.finish();
            });
        }
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller() {
        let team = Team::new();
        std::thread::scope(|s| {
            s.spawn(|| team.help());
            let caught = catch_unwind(AssertUnwindSafe(|| {
                team.run(64, &|i| assert!(i != 40, "chunk 40 fails"));
            }));
            assert!(caught.is_err());
            // The team is still usable afterwards.
            let count = AtomicU32::new(0);
            team.run(8, &|_| {
                count.fetch_add(1, Ordering::Relaxed);
            });
            assert_eq!(count.load(Ordering::Relaxed), 8);
            team.finish();
        });
    }
}
