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

use super::header::Frame;
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
    per_block: usize,
}

impl Decoder<'_, '_> {
    /// Decodes blocks from bit `from` (MCU position `phase`) until `max_blocks` are done or a block would start at
    /// or after bit `stop`. A sequential decoder gives up on invalid data; a speculative one starts again one bit
    /// later, forgetting what it had.
    fn run(&self, from: usize, phase: usize, stop: usize, max_blocks: usize, speculative: bool) -> Option<Run> {
        // A bounded run (the first chunk, which may be the whole scan) gets room for all its blocks at once, so the
        // other chunks append without moving it.
        let estimate = if max_blocks < usize::MAX { max_blocks } else { stop.saturating_sub(from) / 64 };
        let mut run = Run {
            coefficients: Vec::with_capacity(estimate * self.per_block),
            starts: Vec::with_capacity(if speculative { estimate.min(RECORDED) } else { 0 }),
            end: from,
        };
        let stop = stop.min(self.limit);
        let mut bits = Bits::at(self.data, from.min(self.limit));
        let (mut count, mut restarts) = (0, 0);
        let mut at_phase = phase;
        while count < max_blocks {
            let start = bits.position();
            if start >= stop {
                break;
            }
            let (dc, ac) = self.tables[at_phase];
            let at = run.coefficients.len();
            run.coefficients.resize(at + self.per_block, 0);
            if block(&mut bits, dc, ac, &mut run.coefficients[at..]).is_none() {
                restarts += 1;
                // Real photos resynchronise within a few blocks; data that keeps failing is not a photo, and
                // the sequential continuation will say so faster.
                if !speculative || restarts > MAX_RESTARTS {
                    return None;
                }
                run.coefficients.clear();
                run.starts.clear();
                (count, at_phase) = (0, 0);
                bits = Bits::at(self.data, start + 1);
                continue;
            }
            if speculative && count < RECORDED {
                run.starts.push(start);
            }
            count += 1;
            at_phase = if at_phase + 1 == self.tables.len() { 0 } else { at_phase + 1 };
        }
        run.end = bits.position();
        Some(run)
    }
}

/// Entropy-decodes the scan into `per_block` coefficients per block (zigzag order, DC with its prediction applied),
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
    let tables: Tables = layout
        .iter()
        .map(|&(c, _, _)| {
            let comp = &frame.components[c];
            Some((frame.dc_tables[comp.dc].as_ref()?, frame.ac_tables[comp.ac].as_ref()?))
        })
        .collect::<Option<_>>()?;
    let (mx, my) = frame.mcus();
    let bpm = layout.len();
    let total = mx.checked_mul(my)?.checked_mul(bpm)?;
    let decoder = Decoder { data: &scan.data, limit: scan.len * 8, tables: &tables, per_block };
    let mut coefficients = if frame.restart_interval > 0 {
        by_intervals(&decoder, scan, frame.restart_interval * bpm, total, threads)?
    } else {
        speculative(&decoder, scan.len, total, cuts)?
    };
    // DC differences to values, each component on its own predictor, reset at each restart interval.
    let components: Vec<usize> = layout.iter().map(|&(c, _, _)| c).collect();
    let interval = if frame.restart_interval > 0 { frame.restart_interval * bpm } else { usize::MAX };
    for interval in coefficients.chunks_mut(interval.saturating_mul(per_block)) {
        let mut predictor = [0i32; 4];
        for mcu in interval.chunks_mut(bpm * per_block) {
            for (block, &c) in mcu.chunks_mut(per_block).zip(&components) {
                predictor[c] = predictor[c].wrapping_add(i32::from(block[0]));
                block[0] = predictor[c] as i16;
            }
        }
    }
    Some(coefficients)
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
    let (mut count, mut end) = (first.coefficients.len() / d.per_block, first.end);
    let mut out = first.coefficients;
    out.reserve(total.saturating_sub(count) * d.per_block);
    for run in runs.flatten() {
        let mut j = 0;
        while count < total {
            while run.starts.get(j).is_some_and(|&s| s < end) {
                j += 1;
            }
            let Some(&start) = run.starts.get(j) else { break };
            if start == end && j % bpm == count % bpm {
                let blocks = run.coefficients.len() / d.per_block;
                let take = (blocks - j).min(total - count);
                out.extend_from_slice(&run.coefficients[j * d.per_block..(j + take) * d.per_block]);
                count += take;
                // Taking fewer than all means the run went on past the last MCU: the scan is complete.
                end = run.end;
                break;
            }
            (count, end) = continue_one(d, &mut out, count, end)?;
        }
    }
    if count < total {
        let rest = d.run(end, count % bpm, bits, total - count, false)?;
        out.extend_from_slice(&rest.coefficients);
    }
    (out.len() == total * d.per_block).then_some(out)
}

/// Decodes the block with coding index `count` at bit `end` onto `out`; the new count and position.
fn continue_one(d: &Decoder, out: &mut Vec<i16>, count: usize, end: usize) -> Option<(usize, usize)> {
    let run = d.run(end, count % d.tables.len(), usize::MAX, 1, false)?;
    if run.coefficients.is_empty() {
        return None;
    }
    out.extend_from_slice(&run.coefficients);
    Some((count + 1, run.end))
}
