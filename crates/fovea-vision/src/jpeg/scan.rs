//! Entropy decoding of a whole scan on several threads.
//!
//! Entropy decoding is the one part of a reduced decode that cannot be made smaller: every code of every block must
//! be read to find where the next one starts. It is also sequential by nature, and it is most of the time
//! (libjpeg-turbo at 1/8 scale spends nearly all of it there). Two ways to split it:
//!
//! - **Restart markers** (DRI), when the file has them: each interval starts byte-aligned with fresh DC predictors,
//!   so threads simply take a share of the intervals.
//! - **Speculation**, otherwise (most phones). Each thread but the first starts decoding at an arbitrary byte of
//!   the data, as if a block of the MCU's first component began there, and records where each block it decoded
//!   started. Its first blocks are nonsense, but JPEG's Huffman codes resynchronise: after a few blocks a decoder
//!   that started in the wrong place is reading the same codes at the same positions as the true decoder (Klein &
//!   Wiseman, "Parallel Huffman decoding with applications to JPEG files", 2003; Weißenberger & Schmidt 2021).
//!   Afterwards the decoder that finished the chunk before continues past its end, block by block, until it starts
//!   a block at a position some speculative block started at, with the same place in the MCU. From there on the two
//!   decoders' states are equal and so are their results, so the speculative blocks are taken as they are; DC
//!   values are stored as differences and summed afterwards, so their predictor does not matter. Nothing is
//!   guessed: a chunk that never matches is simply decoded again by that continuation, so the result is always
//!   what one sequential decoder gives (the tests check that bit for bit, at every split point of small files).

use super::header::{Frame, HuffmanSpec};
use super::huffman::{block, Bits, HuffmanTable, PADDING};

/// Below this much entropy-coded data per thread, splitting costs more than it saves.
const MIN_CHUNK_BYTES: usize = 96 * 1024;

/// Block starts a speculative decoder records. The continuation before it meets it within a few blocks (in the
/// tests and the bench's photos, at its second block), so the rest of the list would never be read; if no record
/// matches, the continuation decodes the whole chunk itself, which is slower but still exact.
const RECORDED: usize = 4096;

/// Invalid blocks after which a speculative decoder gives up its chunk.
const MAX_RESTARTS: usize = 1024;

/// Entropy-coded data with byte stuffing and restart markers removed, and where each restart interval starts.
pub(crate) struct Unstuffed {
    /// The data, then [`PADDING`] zero bytes.
    data: Vec<u8>,
    pub len: usize,
    /// Byte offsets in `data` where the second, third, ... restart interval starts.
    restarts: Vec<usize>,
}

/// Copies the scan starting at `start` up to its end marker, dropping the stuffed zero after each 0xFF and the
/// RSTn markers (their positions kept).
pub(crate) fn unstuff(bytes: &[u8], start: usize) -> Unstuffed {
    let mut data = Vec::with_capacity(bytes.len().saturating_sub(start) + PADDING);
    let mut restarts = Vec::new();
    let mut i = start;
    while let Some(off) = bytes.get(i..).and_then(|rest| memchr::memchr(0xFF, rest)) {
        data.extend_from_slice(&bytes[i..i + off]);
        i += off;
        match bytes.get(i + 1) {
            Some(0x00) => {
                data.push(0xFF);
                i += 2;
            }
            Some(0xD0..=0xD7) => {
                restarts.push(data.len());
                i += 2;
            }
            Some(0xFF) => i += 1,
            _ => {
                i = bytes.len();
                break;
            }
        }
    }
    if i < bytes.len() {
        data.extend_from_slice(&bytes[i..]);
    }
    let len = data.len();
    data.resize(len + PADDING, 0);
    Unstuffed { data, len, restarts }
}

/// Per block of an MCU (coding order): its DC and AC tables.
type Tables<'f> = Vec<(&'f HuffmanTable, &'f HuffmanTable)>;

/// The blocks one decoder produced: `per_block` coefficients each (DC difference first), where each started, and
/// the bit position after the last.
struct Run {
    coefficients: Vec<i16>,
    starts: Vec<usize>,
    end: usize,
}

struct Decoder<'a, 'f> {
    /// The data and its padding.
    data: &'a [u8],
    /// Where the data ends, in bits: no block starts at or after it.
    limit: usize,
    tables: &'a Tables<'f>,
    /// The component of each block of an MCU, in coding order.
    components: &'a [usize],
    per_block: usize,
}

impl Decoder<'_, '_> {
    /// Decodes blocks from bit `from` (MCU position `phase`) until `max_blocks` are done or a block would start at
    /// or after bit `stop`. A sequential decoder gives up on invalid data; a speculative one starts again one bit
    /// later, forgetting what it had.
    fn run(&self, from: usize, phase: usize, stop: usize, max_blocks: usize, speculative: bool) -> Option<Run> {
        // A bounded run (the first chunk, which may be the whole scan) gets zeroed room for all its blocks at once
        // (fresh pages, so no memset), and the other chunks append to it without moving it; the others grow it.
        let pb = self.per_block;
        let room = if max_blocks < usize::MAX { max_blocks } else { stop.saturating_sub(from) / 64 };
        let mut run = Run {
            coefficients: vec![0; room * pb],
            starts: Vec::with_capacity(if speculative { room.min(RECORDED) } else { 0 }),
            end: from,
        };
        let stop = stop.min(self.limit);
        let mut bits = Bits::at(self.data, from.min(self.limit));
        let (mut count, mut restarts) = (0, 0);
        let mut at_phase = phase;
        // DC predictors from zero at the run's start: exact for a run that starts the scan or a restart interval,
        // and off by a constant per component for any other (see `Stitch`).
        let mut predictor = [0i16; 4];
        while count < max_blocks {
            let start = bits.position();
            if start >= stop {
                break;
            }
            let (dc, ac) = self.tables[at_phase];
            let at = count * pb;
            if at + pb > run.coefficients.len() {
                run.coefficients.resize((run.coefficients.len() * 2).max(at + 4096 * pb), 0);
            }
            if block(&mut bits, dc, ac, &mut run.coefficients[at..at + pb]).is_none() {
                restarts += 1;
                // Real photos resynchronise within a few blocks; data that keeps failing is not a photo, and
                // the sequential continuation will say so faster.
                if !speculative || restarts > MAX_RESTARTS {
                    return None;
                }
                run.coefficients[..at + pb].fill(0);
                run.starts.clear();
                predictor = [0; 4];
                (count, at_phase) = (0, 0);
                bits = Bits::at(self.data, start + 1);
                continue;
            }
            let p = &mut predictor[self.components[at_phase]];
            *p = p.wrapping_add(run.coefficients[at]);
            run.coefficients[at] = *p;
            if speculative && count < RECORDED {
                run.starts.push(start);
            }
            count += 1;
            at_phase = if at_phase + 1 == self.tables.len() { 0 } else { at_phase + 1 };
        }
        run.coefficients.truncate(count * pb);
        run.end = bits.position();
        Some(run)
    }
}

/// Entropy-decodes the scan into `per_block` coefficients per block (zigzag order, DC values with the prediction applied),
/// blocks in coding order, using up to `threads` threads. `None` for data this decoder cannot make sense of.
pub(crate) fn decode(frame: &Frame, scan: &Unstuffed, per_block: usize, threads: usize) -> Option<Vec<i16>> {
    let parts = threads.min(scan.len / MIN_CHUNK_BYTES).max(1);
    let cuts: Vec<usize> = (1..parts).map(|t| scan.len * t / parts).collect();
    decode_cut(frame, scan, per_block, parts, &cuts)
}

/// [`decode`] on exactly `threads` threads when the data has restart markers, else with the data cut for
/// speculation at the byte offsets `cuts`.
pub(crate) fn decode_cut(
    frame: &Frame,
    scan: &Unstuffed,
    per_block: usize,
    threads: usize,
    cuts: &[usize],
) -> Option<Vec<i16>> {
    let layout = frame.mcu_layout();
    let build = |spec: &Option<HuffmanSpec>, dc: bool| {
        spec.as_ref().and_then(|s| HuffmanTable::new(&s.counts, &s.symbols, dc)).map(Box::new)
    };
    let dc: Vec<Option<Box<HuffmanTable>>> = frame.dc_tables.iter().map(|s| build(s, true)).collect();
    let ac: Vec<Option<Box<HuffmanTable>>> = frame.ac_tables.iter().map(|s| build(s, false)).collect();
    let tables: Tables = layout
        .iter()
        .map(|&(c, _, _)| {
            let comp = &frame.components[c];
            Some((dc[comp.dc].as_deref()?, ac[comp.ac].as_deref()?))
        })
        .collect::<Option<_>>()?;
    let (mx, my) = frame.mcus();
    let bpm = layout.len();
    let total = mx.checked_mul(my)?.checked_mul(bpm)?;
    let components: Vec<usize> = layout.iter().map(|&(c, _, _)| c).collect();
    let decoder =
        Decoder { data: &scan.data, limit: scan.len * 8, tables: &tables, components: &components, per_block };
    if frame.restart_interval > 0 {
        by_intervals(&decoder, scan, frame.restart_interval * bpm, total, threads)
    } else {
        speculative(&decoder, scan.len, total, cuts)
    }
}

/// Restart intervals shared out between threads; each interval decodes on its own from its first byte.
fn by_intervals(d: &Decoder, scan: &Unstuffed, blocks_per: usize, total: usize, threads: usize) -> Option<Vec<i16>> {
    let intervals = total.div_ceil(blocks_per);
    if scan.restarts.len() + 1 != intervals {
        return None;
    }
    let starts: Vec<usize> = std::iter::once(0).chain(scan.restarts.iter().copied()).collect();
    let decode_range = |range: std::ops::Range<usize>| -> Option<Vec<i16>> {
        let mut out = Vec::new();
        for m in range {
            let blocks = blocks_per.min(total - m * blocks_per);
            let run = d.run(starts[m] * 8, 0, usize::MAX, blocks, false)?;
            if run.coefficients.len() != blocks * d.per_block {
                return None;
            }
            out.extend_from_slice(&run.coefficients);
        }
        Some(out)
    };
    let threads = threads.clamp(1, intervals);
    let share = intervals.div_ceil(threads);
    let parts: Vec<Option<Vec<i16>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..threads)
            .map(|t| {
                let range = t * share..((t + 1) * share).min(intervals);
                s.spawn(move || decode_range(range))
            })
            .collect();
        let first = decode_range(0..share.min(intervals));
        std::iter::once(first).chain(handles.into_iter().map(|h| h.join().ok().flatten())).collect()
    });
    let mut out = Vec::with_capacity(total * d.per_block);
    for part in parts {
        out.extend_from_slice(&part?);
    }
    Some(out)
}

/// No restart markers: the `len` bytes of data are cut at the byte offsets `cuts` (ascending); the first range
/// decodes for real, the others speculatively on threads of their own, then the continuations stitch them (see the
/// module text).
fn speculative(d: &Decoder, len: usize, total: usize, cuts: &[usize]) -> Option<Vec<i16>> {
    let bpm = d.tables.len();
    let bits = len * 8;
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().map(|c| c * 8)).chain([bits]).collect();
    let bounds = &bounds;
    let runs: Vec<Option<Run>> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..bounds.len() - 1)
            .map(|t| s.spawn(move || d.run(bounds[t], 0, bounds[t + 1], usize::MAX, true)))
            .collect();
        let first = d.run(0, 0, bounds[1], total, false);
        std::iter::once(first).chain(handles.into_iter().map(|h| h.join().ok().flatten())).collect()
    });
    let mut runs = runs.into_iter();
    let first = runs.next()??;
    let mut stitch = Stitch::new(d, first, total);
    for run in runs.flatten() {
        let mut j = 0;
        while stitch.count < total {
            while run.starts.get(j).is_some_and(|&s| s < stitch.end) {
                j += 1;
            }
            let Some(&start) = run.starts.get(j) else { break };
            if start == stitch.end && j % bpm == stitch.count % bpm {
                // Taking fewer than all means the run went on past the last MCU: the scan is complete.
                stitch.append(&run, 0, j);
                break;
            }
            let one = d.run(stitch.end, stitch.count % bpm, usize::MAX, 1, false)?;
            if one.coefficients.is_empty() {
                return None;
            }
            stitch.append(&one, stitch.count % bpm, 0);
        }
    }
    if stitch.count < total {
        let phase = stitch.count % bpm;
        let rest = d.run(stitch.end, phase, bits, total - stitch.count, false)?;
        stitch.append(&rest, phase, 0);
    }
    (stitch.out.len() == total * d.per_block).then_some(stitch.out)
}

/// The blocks in coding order so far, with where the next starts and each component's last DC value.
struct Stitch<'d, 'a, 'f> {
    d: &'d Decoder<'a, 'f>,
    out: Vec<i16>,
    count: usize,
    total: usize,
    end: usize,
    predictor: [i16; 4],
}

impl<'d, 'a, 'f> Stitch<'d, 'a, 'f> {
    /// Starts from the run that began the scan, whose DC values are already right.
    fn new(d: &'d Decoder<'a, 'f>, first: Run, total: usize) -> Self {
        let count = first.coefficients.len() / d.per_block;
        let predictor = last_values(d, &first.coefficients, 0, count);
        Self { d, out: first.coefficients, count, total, end: first.end, predictor }
    }

    /// Appends `run`'s blocks from its `j`-th on (its first block at MCU place `phase`), up to the scan's last. The
    /// run predicted DC from zero where it started, so each component's values are off by the same amount: what
    /// this stitch's predictor holds minus what the run's held before block `j`.
    fn append(&mut self, run: &Run, phase: usize, j: usize) {
        let (pb, bpm) = (self.d.per_block, self.d.components.len());
        let take = (run.coefficients.len() / pb - j).min(self.total - self.count);
        let before = last_values(self.d, &run.coefficients, phase, j);
        let offset: [i16; 4] = std::array::from_fn(|c| self.predictor[c].wrapping_sub(before[c]));
        let from = self.out.len();
        self.out.extend_from_slice(&run.coefficients[j * pb..(j + take) * pb]);
        let mut place = (phase + j) % bpm;
        for block in self.out[from..].chunks_exact_mut(pb) {
            let c = self.d.components[place];
            block[0] = block[0].wrapping_add(offset[c]);
            self.predictor[c] = block[0];
            place = if place + 1 == bpm { 0 } else { place + 1 };
        }
        self.count += take;
        self.end = run.end;
    }
}

/// Each component's DC value in the last of the first `j` blocks of `coefficients` (the first at MCU place
/// `phase`) that belongs to it; 0 for a component with none.
fn last_values(d: &Decoder, coefficients: &[i16], phase: usize, j: usize) -> [i16; 4] {
    let bpm = d.components.len();
    let mut out = [0i16; 4];
    let mut seen = [false; 4];
    // Every MCU holds every component, so one MCU's worth of blocks back is enough.
    for i in (j.saturating_sub(bpm)..j).rev() {
        let c = d.components[(phase + i) % bpm];
        if !seen[c] {
            seen[c] = true;
            out[c] = coefficients[i * d.per_block];
        }
    }
    out
}
