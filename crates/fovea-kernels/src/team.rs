//! Batch 1 on several threads: a team that runs the whole forward pass together.
//!
//! Splitting every layer's rows with a rayon fork-join costs a job hand-off per layer (about 45 for Lite0), and
//! at each one a worker may be late to steal its half. Instead every thread of the pool runs the same sequence of
//! layers, computes its fixed share of each layer's output rows, and waits at a spin barrier before the next layer
//! reads what the others wrote: one hand-off per image, then a barrier per layer that costs well under a
//! microsecond while both threads are running.
//!
//! Buffers are shared through raw pointers ([`Buf`]): within a layer each thread writes only its own rows of the
//! output buffer and only reads other buffers, and the barrier orders each layer's writes before the next layer's
//! reads.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins this many times before yielding at a barrier: long enough to cover one thread finishing a layer a little
/// later than the other, short enough not to hold a core from other processes on a busy machine.
const SPINS: u32 = 2_000;

/// A reusable barrier for a fixed number of threads that spins, then yields, instead of sleeping.
pub(crate) struct SpinBarrier {
    count: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    /// Set when a member panicked: the others would otherwise wait for it forever.
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub(crate) fn new(count: usize) -> Self {
        SpinBarrier {
            count,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Runs `f`; if it panics, releases every member waiting now or later (each then panics too) and re-raises, so
    /// a panic reaches the caller instead of leaving the team waiting forever.
    pub(crate) fn guard<R>(&self, f: impl FnOnce() -> R) -> R {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(panic) => {
                self.poisoned.store(true, Ordering::Release);
                std::panic::resume_unwind(panic)
            }
        }
    }

    /// Returns once all `count` threads have called `wait` for this round; what each wrote before is visible to
    /// all after.
    pub(crate) fn wait(&self) {
        let round = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.count {
            // Reset before releasing the others, so a thread racing ahead to the next round counts from zero.
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.store(round.wrapping_add(1), Ordering::Release);
            return;
        }
        let mut spins = 0;
        while self.generation.load(Ordering::Acquire) == round {
            assert!(!self.poisoned.load(Ordering::Acquire), "another thread of the team panicked");
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// One thread's place in a team of `count` (a team of one runs everything and never waits).
#[derive(Clone, Copy)]
pub(crate) struct Team<'a> {
    pub(crate) index: usize,
    pub(crate) count: usize,
    barrier: Option<&'a SpinBarrier>,
}

impl<'a> Team<'a> {
    pub(crate) const SOLO: Team<'static> = Team { index: 0, count: 1, barrier: None };

    pub(crate) fn new(index: usize, count: usize, barrier: &'a SpinBarrier) -> Self {
        Team { index, count, barrier: Some(barrier) }
    }

    /// Whether this thread does the team's serial work (pooling, profiling).
    pub(crate) fn lead(&self) -> bool {
        self.index == 0
    }

    /// This thread's rows of `n`: whole tiles of `align` rows each unless that would unbalance a small layer (49 rows
    /// would split 30/19); layers of at most `align` rows go to the lead alone.
    pub(crate) fn share(&self, n: usize, align: usize) -> Range<usize> {
        if self.count == 1 || n <= align {
            return if self.lead() { 0..n } else { n..n };
        }
        let even = n.div_ceil(self.count);
        let per = if even >= 8 * align { even.div_ceil(align) * align } else { even };
        let start = (self.index * per).min(n);
        start..(start + per).min(n)
    }

    /// Waits until every thread of the team got here.
    pub(crate) fn sync(&self) {
        if let Some(b) = self.barrier {
            b.wait();
        }
    }
}

/// A float buffer shared by a team (see the module notes for the rules that make its accessors sound).
#[derive(Clone, Copy)]
pub(crate) struct Buf {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: a `Buf` is only dereferenced under the team discipline described in the module notes.
unsafe impl Send for Buf {}
unsafe impl Sync for Buf {}

impl Buf {
    pub(crate) fn of(v: &mut [f32]) -> Self {
        Buf { ptr: v.as_mut_ptr(), len: v.len() }
    }

    /// The buffer from float `start` on.
    pub(crate) fn from(self, start: usize) -> Self {
        assert!(start <= self.len, "buffer offset past the end");
        // SAFETY: in bounds, checked above.
        Buf { ptr: unsafe { self.ptr.add(start) }, len: self.len - start }
    }

    /// The whole buffer, read-only.
    ///
    /// # Safety
    /// No thread may write the buffer while the slice lives.
    pub(crate) unsafe fn all<'b>(self) -> &'b [f32] {
        std::slice::from_raw_parts(self.ptr, self.len)
    }

    /// Floats `range`, writable.
    ///
    /// # Safety
    /// No other reference to any of these floats may exist while the slice lives.
    pub(crate) unsafe fn part<'b>(self, range: Range<usize>) -> &'b mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len, "buffer range out of bounds");
        std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len())
    }
}

/// The four activation buffers of a forward pass plus the stack of a group's front outputs.
#[derive(Clone, Copy)]
pub(crate) struct Bufs {
    pub(crate) x: Buf,
    pub(crate) e: Buf,
    pub(crate) d: Buf,
    pub(crate) y: Buf,
    pub(crate) group: Buf,
}

/// Per-thread temporary buffers of a team, one `Vec` per thread index.
#[derive(Clone, Copy)]
pub(crate) struct Tmps(pub(crate) *mut Vec<f32>);

// SAFETY: thread `i` of a team only ever touches entry `i`.
unsafe impl Send for Tmps {}
unsafe impl Sync for Tmps {}

impl Tmps {
    /// Entry `i`.
    ///
    /// # Safety
    /// `i` is within the vector the pointer came from, and no other reference to entry `i` exists meanwhile.
    pub(crate) unsafe fn get<'b>(self, i: usize) -> &'b mut Vec<f32> {
        &mut *self.0.add(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_every_row_once_in_aligned_chunks() {
        for count in 1..=4 {
            let barrier = SpinBarrier::new(count);
            for (n, align) in [(0, 1), (1, 1), (5, 6), (49, 6), (112, 1), (3136, 6), (12544, 6), (7, 1)] {
                let mut next = 0;
                for index in 0..count {
                    let r = Team::new(index, count, &barrier).share(n, align);
                    assert_eq!(r.start, next.min(n), "count {count} n {n} thread {index}");
                    next = r.end.max(next);
                    if r.end < n && n >= 8 * align * count {
                        assert_eq!(r.len() % align, 0, "count {count} n {n}: chunk not whole tiles");
                    }
                }
                assert_eq!(next, n, "count {count} n {n}");
            }
        }
    }

    #[test]
    fn a_panicking_member_releases_the_others() {
        let barrier = SpinBarrier::new(2);
        let outcomes: Vec<bool> = std::thread::scope(|s| {
            let b = &barrier;
            let quitter = s.spawn(move || b.guard(|| panic!("member fails before the barrier")));
            let waiter = s.spawn(move || b.guard(|| b.wait()));
            [quitter.join().is_err(), waiter.join().is_err()].to_vec()
        });
        assert_eq!(outcomes, [true, true], "both members must end, in a panic");
    }

    #[test]
    fn barrier_orders_writes_between_rounds() {
        // Each round every thread writes its slot, waits, then checks it sees every other thread's write of the
        // same round: a barrier that let a thread through early would fail this.
        let threads = 3;
        let rounds = 300;
        let barrier = SpinBarrier::new(threads);
        let slots: Vec<AtomicUsize> = (0..threads).map(|_| AtomicUsize::new(0)).collect();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (barrier, slots) = (&barrier, &slots);
                s.spawn(move || {
                    for round in 1..=rounds {
                        slots[t].store(round, Ordering::Relaxed);
                        barrier.wait();
                        for slot in slots {
                            assert!(slot.load(Ordering::Relaxed) >= round, "a thread passed the barrier early");
                        }
                        barrier.wait();
                    }
                });
            }
        });
    }
}
