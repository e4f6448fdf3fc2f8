//! Batch 1 on several threads: a team that runs the whole forward pass together.
//!
//! Splitting every layer's rows with a rayon fork-join costs a job hand-off per layer (about 45 for Lite0). Instead
//! one helper job per extra thread is spawned per image, and every member walks the same sequence of layers: each
//! layer's rows are cut into one chunk per member, members claim chunks from an atomic counter, and a layer is
//! finished when all its chunks are, at which point everyone moves on.
//!
//! Claiming rather than a fixed share per thread is what keeps this robust on a busy machine: a member that is
//! descheduled (or whose job nobody has picked up yet) is simply not waited for — the others take its chunks, and
//! when it runs it finds the layers done and skips through. A fixed share with a barrier measured 25 % slower than
//! per-layer fork-joins on a loaded 2-core machine, for exactly that reason.
//!
//! Buffers are shared through raw pointers ([`Buf`]). A chunk reads only buffers that no chunk of its layer writes,
//! and writes only its own rows of one buffer; no member starts a layer before the previous one is finished, and the
//! Release/Acquire pair on the `done` counter orders one layer's writes before the next layer's reads. Slices of
//! shared buffers are only formed inside a chunk, never by a member skipping a finished layer.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins this many times before yielding while a layer's last chunks finish: long enough to cover another member
/// finishing its chunk a little later, short enough not to hold a core from other processes on a busy machine.
const SPINS: u32 = 2_000;

/// One layer's progress.
#[derive(Default)]
struct Layer {
    claimed: AtomicUsize,
    done: AtomicUsize,
}

/// What the members of one image's team share.
pub(crate) struct Crew {
    count: usize,
    layers: Vec<Layer>,
    /// Set when a member panicked: the others would otherwise wait for its chunk forever.
    poisoned: AtomicBool,
}

impl Crew {
    /// A crew of `count` members for a pass of at most `layers` layers.
    pub(crate) fn new(count: usize, layers: usize) -> Self {
        Crew { count, layers: (0..layers).map(|_| Layer::default()).collect(), poisoned: AtomicBool::new(false) }
    }

    /// Runs `f`; if it panics, makes every member waiting now or later panic too, and re-raises, so a panic reaches
    /// the caller instead of leaving the others waiting forever.
    pub(crate) fn guard<R>(&self, f: impl FnOnce() -> R) -> R {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(r) => r,
            Err(panic) => {
                self.poisoned.store(true, Ordering::Release);
                std::panic::resume_unwind(panic)
            }
        }
    }
}

/// One member's view of its crew: which layer it reaches next (a team of one runs everything itself).
pub(crate) struct Team<'a> {
    crew: Option<&'a Crew>,
    next: usize,
}

impl<'a> Team<'a> {
    pub(crate) fn solo() -> Team<'static> {
        Team { crew: None, next: 0 }
    }

    pub(crate) fn new(crew: &'a Crew) -> Self {
        Team { crew: Some(crew), next: 0 }
    }

    pub(crate) fn is_solo(&self) -> bool {
        self.crew.is_none()
    }

    /// Runs `f` on every chunk of the next layer's `n` rows that this member claims (the chunks of [`share`]), then
    /// waits until the whole layer is done.
    pub(crate) fn layer(&mut self, n: usize, align: usize, mut f: impl FnMut(Range<usize>)) {
        let Some(crew) = self.crew else {
            if n > 0 {
                f(0..n);
            }
            return;
        };
        let layer = &crew.layers[self.next];
        self.next += 1;
        loop {
            let chunk = layer.claimed.fetch_add(1, Ordering::Relaxed);
            if chunk >= crew.count {
                break;
            }
            let rows = share(chunk, crew.count, n, align);
            if !rows.is_empty() {
                f(rows);
            }
            layer.done.fetch_add(1, Ordering::Release);
        }
        let mut spins = 0;
        while layer.done.load(Ordering::Acquire) < crew.count {
            assert!(!crew.poisoned.load(Ordering::Acquire), "another thread of the team panicked");
            if spins < SPINS {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Chunk `index` of `count` over `n` rows: whole tiles of `align` rows each unless that would unbalance a small
/// layer (49 rows would split 30/19); layers of at most `align` rows are one chunk.
pub(crate) fn share(index: usize, count: usize, n: usize, align: usize) -> Range<usize> {
    if count == 1 || n <= align {
        return if index == 0 { 0..n } else { n..n };
    }
    let even = n.div_ceil(count);
    let per = if even >= 8 * align { even.div_ceil(align) * align } else { even };
    let start = (index * per).min(n);
    start..(start + per).min(n)
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
            for (n, align) in [(0, 1), (1, 1), (5, 6), (49, 6), (112, 1), (3136, 6), (12544, 6), (7, 1)] {
                let mut next = 0;
                for index in 0..count {
                    let r = share(index, count, n, align);
                    assert_eq!(r.start, next.min(n), "count {count} n {n} chunk {index}");
                    next = r.end.max(next);
                    if r.end < n && n >= 8 * align * count {
                        assert_eq!(r.len() % align, 0, "count {count} n {n}: chunk not whole tiles");
                    }
                }
                assert_eq!(next, n, "count {count} n {n}");
            }
        }
    }

    /// Members run `layers` layers; each chunk adds its row indices to a shared total after checking that the
    /// previous layer's total is complete, so a member that moved on early, or a chunk run twice or never, fails.
    fn run_crew(members: usize, layers: usize, late: Option<usize>) {
        let rows = 37;
        let crew = Crew::new(members, layers);
        let totals: Vec<AtomicUsize> = (0..layers).map(|_| AtomicUsize::new(0)).collect();
        let want = rows * (rows - 1) / 2;
        std::thread::scope(|s| {
            for m in 0..members {
                let (crew, totals) = (&crew, &totals);
                s.spawn(move || {
                    if late == Some(m) {
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    let mut team = Team::new(crew);
                    for l in 0..layers {
                        team.layer(rows, 1, |r| {
                            if l > 0 {
                                assert_eq!(totals[l - 1].load(Ordering::Relaxed), want, "layer {l} started early");
                            }
                            totals[l].fetch_add(r.sum::<usize>(), Ordering::Relaxed);
                        });
                    }
                });
            }
        });
        assert!(totals.iter().all(|t| t.load(Ordering::Relaxed) == want));
    }

    #[test]
    fn members_finish_every_layer_before_the_next() {
        run_crew(3, 300, None);
        run_crew(2, 50, None);
    }

    #[test]
    fn a_late_member_is_not_waited_for() {
        // The punctual members do every chunk of all 200 layers while the late one sleeps; it then skips through.
        let start = std::time::Instant::now();
        run_crew(2, 200, Some(1));
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn a_panicking_member_releases_the_others() {
        let crew = Crew::new(2, 1);
        let claimed = AtomicBool::new(false);
        let outcomes: Vec<bool> = std::thread::scope(|s| {
            let (c, claimed) = (&crew, &claimed);
            // Claims chunk 0 and panics in it, so the layer can never finish.
            let quitter = s.spawn(move || {
                c.guard(|| {
                    Team::new(c).layer(10, 1, |_| {
                        claimed.store(true, Ordering::Release);
                        panic!("chunk fails")
                    })
                })
            });
            while !claimed.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            let waiter = s.spawn(move || c.guard(|| Team::new(c).layer(10, 1, |_| {})));
            [quitter.join().is_err(), waiter.join().is_err()].to_vec()
        });
        assert_eq!(outcomes, [true, true], "both members must end, in a panic");
    }
}
