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
use super::huffman::{block, Bits, HuffmanTable};
use super::unstuff::Unstuffed;
use crate::threads::on_threads;

/// Below this much entropy-coded data per thread, splitting costs more than it saves.
const MIN_CHUNK_BYTES: usize = 96 * 1024;

/// Block starts a speculative decoder records. The continuation before it meets it within a few blocks (in the
/// tests and the bench's photos, at its second block), so the rest of the list would never be read; if no record
/// matches, the continuation decodes the whole chunk itself, which is slower but still exact.
const RECORDED: usize = 4096;

/// Blocks decoded between two zeroings of the room ahead (see [`Decoder::run_n`]): 40 KB at 5 coefficients.
const SLICE_BLOCKS: usize = 4096;

/// Invalid blocks after which a speculative decoder gives up its chunk.
const MAX_RESTARTS: usize = 1024;

/// Decoded blocks in coding order, `per_block` coefficients each, kept in the pieces the threads decoded them in:
/// joining them would copy half the image's coefficients on one thread. A piece that a thread decoded from the
/// middle of the scan predicted its DC values from zero, so each of its components is off by one constant; that
/// constant is kept beside the piece and added where a block is read (see [`Coefficients::range`]), on the threads
/// that read them, rather than over every block on one thread after the decode.
pub(crate) struct Coefficients {
    /// The pieces in order: each one's values from its `from`-th on.
    pieces: Vec<Piece>,
    per_block: usize,
    /// The component of each MCU place.
    components: Vec<usize>,
}

struct Piece {
    values: Vec<i16>,
    from: usize,
    /// What to add (wrapping) to the DC value of each block of a component.
    dc_offset: [i16; 4],
}

impl Piece {
    fn values(&self) -> &[i16] {
        &self.values[self.from..]
    }
}

impl Coefficients {
    fn new(pieces: Vec<Piece>, per_block: usize, components: Vec<usize>) -> Self {
        Self { pieces, per_block, components }
    }

    /// How many values there are in all.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.values().len()).sum()
    }

    /// The `len` values from value `at` on (fewer at the end; both whole blocks), and what to add (wrapping) to the
    /// DC value of each component's blocks there: borrowed where one piece holds them all, else gathered into
    /// `scratch` with the offsets applied (and zero offsets returned).
    pub fn range<'s>(&'s self, at: usize, len: usize, scratch: &'s mut Vec<i16>) -> (&'s [i16], [i16; 4]) {
        let mut parts = self.pieces.iter();
        let mut skip = at;
        let (first, offset) = loop {
            match parts.next() {
                Some(p) if skip >= p.values().len() => skip -= p.values().len(),
                Some(p) => break (&p.values()[skip..], p.dc_offset),
                None => return (&[], [0; 4]),
            }
        };
        if first.len() >= len {
            return (&first[..len], offset);
        }
        scratch.clear();
        self.gather(scratch, at, first, offset);
        for p in parts {
            let want = len - scratch.len();
            self.gather(scratch, at, &p.values()[..want.min(p.values().len())], p.dc_offset);
            if scratch.len() == len {
                break;
            }
        }
        (scratch, [0; 4])
    }

    /// Appends `values` (whole blocks) to `out`, whose first value is value `at` of the whole, adding `offset`.
    fn gather(&self, out: &mut Vec<i16>, at: usize, values: &[i16], offset: [i16; 4]) {
        let first_block = (at + out.len()) / self.per_block;
        let start = out.len();
        out.extend_from_slice(values);
        add_dc_offset(&mut out[start..], self.per_block, &self.components, first_block, offset);
    }

    #[cfg(test)]
    pub fn pieces(&self) -> usize {
        self.pieces.len()
    }

    /// Every value in one vector, DC offsets applied, for tests that compare decodes.
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<i16> {
        let mut out = Vec::with_capacity(self.len());
        for p in &self.pieces {
            self.gather(&mut out, 0, p.values(), p.dc_offset);
        }
        out
    }
}

/// Adds `offset` (wrapping) to the DC value of each block of `values`, by the block's component: `components` gives
/// the component of each MCU place, and the first block is `first_block` blocks into the scan (or any whole number
/// of MCUs more).
fn add_dc_offset(values: &mut [i16], per_block: usize, components: &[usize], first_block: usize, offset: [i16; 4]) {
    for (i, block) in values.chunks_exact_mut(per_block).enumerate() {
        let c = components[(first_block + i) % components.len()];
        block[0] = block[0].wrapping_add(offset[c]);
    }
}

/// What decoding a block needs to know about its place in the MCU (coding order).
#[derive(Clone, Copy)]
struct Place<'f> {
    dc: &'f HuffmanTable,
    ac: &'f HuffmanTable,
    /// Which component (0..4) the block belongs to.
    component: usize,
}

/// The blocks one decoder produced: `per_block` coefficients each (DC difference first), where each started, and
/// the bit position after the last.
struct Run {
    coefficients: Vec<i16>,
    starts: Vec<usize>,
    end: usize,
}

/// Where a decoder is: its reader, the MCU place of its next block and each component's DC predictor.
#[derive(Clone, Copy)]
struct State<'a> {
    bits: Bits<'a>,
    place: usize,
    predictor: [i16; 4],
}

/// Why [`Decoder::fill`] returned.
enum Stopped {
    /// The next block would start at or after the stop.
    AtStop,
    /// Every slot it was given is filled.
    Full,
    /// The block starting at this bit is not valid.
    Invalid(usize),
}

struct Decoder<'a, 'f> {
    /// The data and its padding.
    data: &'a [u8],
    /// Where the data ends, in bits: no block starts at or after it.
    limit: usize,
    places: &'a [Place<'f>],
    /// Coefficients kept per block: 1, 5 or 25 (see `reduce::coefficients_needed`).
    per_block: usize,
}

impl<'a> Decoder<'a, '_> {
    /// The component of each MCU place.
    fn components(&self) -> Vec<usize> {
        self.places.iter().map(|p| p.component).collect()
    }

    /// Decodes blocks from bit `from` (MCU place `phase`) until `max_blocks` are done or a block would start at or
    /// after bit `stop`. A sequential decoder gives up on invalid data; a speculative one starts again one bit
    /// later, forgetting what it had.
    fn run(&self, from: usize, phase: usize, stop: usize, max_blocks: usize, speculative: bool) -> Option<Run> {
        // One copy of the hot loop per block length, so each block is a fixed-size array.
        match self.per_block {
            1 => self.run_n::<1>(from, phase, stop, max_blocks, speculative),
            5 => self.run_n::<5>(from, phase, stop, max_blocks, speculative),
            25 => self.run_n::<25>(from, phase, stop, max_blocks, speculative),
            _ => None,
        }
    }

    fn run_n<const N: usize>(
        &self,
        from: usize,
        phase: usize,
        stop: usize,
        max_blocks: usize,
        speculative: bool,
    ) -> Option<Run> {
        // Room is reserved for all the blocks at once (a bounded run: all it may decode; an unbounded one: a block
        // per 16 bits of its share of the data, several times what photos need, about 65 bits per block at quality
        // 90), so the vector never moves; it is zeroed a slice at a time just before the slice is decoded into, so
        // only what is used gets written, while it is in cache. Zeroing all the room up front cost a memset of
        // several megabytes per thread whenever the allocator reused memory.
        let room = if max_blocks < usize::MAX { max_blocks } else { stop.saturating_sub(from) / 16 };
        let mut coefficients: Vec<i16> = Vec::with_capacity(room * N);
        let mut starts = Vec::with_capacity(if speculative { room.min(RECORDED) } else { 0 });
        let stop = stop.min(self.limit);
        // DC predictors from zero at the run's start: exact for a run that starts the scan or a restart interval,
        // and off by a constant per component for any other (see `Stitch`).
        let fresh = |bit: usize, place: usize| State { bits: Bits::at(self.data, bit), place, predictor: [0; 4] };
        let mut state = fresh(from.min(self.limit), phase);
        let (mut count, mut restarts) = (0, 0);
        while count < max_blocks {
            let slice = (max_blocks - count).min(SLICE_BLOCKS);
            coefficients.resize((count + slice) * N, 0);
            let (blocks, _) = coefficients.as_chunks_mut::<N>();
            let slots = &mut blocks[count..];
            let (done, why) = if speculative {
                self.fill::<N, true>(&mut state, slots, stop, &mut starts)
            } else {
                self.fill::<N, false>(&mut state, slots, stop, &mut starts)
            };
            count += done;
            match why {
                Stopped::AtStop => break,
                Stopped::Full => {}
                Stopped::Invalid(start) => {
                    restarts += 1;
                    // Real photos resynchronise within a few blocks; data that keeps failing is not a photo, and
                    // the sequential continuation will say so faster.
                    if !speculative || restarts > MAX_RESTARTS {
                        return None;
                    }
                    starts.clear();
                    count = 0;
                    state = fresh(start + 1, 0);
                }
            }
        }
        coefficients.truncate(count * N);
        Some(Run { coefficients, starts, end: state.bits.position() })
    }

    /// The hot loop: decodes into `out` from `state` until it is full, the next block would start at or after
    /// `stop`, or a block is invalid; returns how many blocks it decoded and why it stopped. A speculative decoder
    /// also records where each block started, up to [`RECORDED`].
    fn fill<const N: usize, const SPECULATIVE: bool>(
        &self,
        state: &mut State<'a>,
        out: &mut [[i16; N]],
        stop: usize,
        starts: &mut Vec<usize>,
    ) -> (usize, Stopped) {
        // Locals, so that the reader's state stays in registers.
        let State { mut bits, mut place, mut predictor } = *state;
        let places = self.places;
        let (mut done, mut why) = (0, Stopped::Full);
        for slot in out.iter_mut() {
            let start = bits.position();
            if start >= stop {
                why = Stopped::AtStop;
                break;
            }
            let Place { dc, ac, component } = places[place];
            if block(&mut bits, dc, ac, slot).is_none() {
                why = Stopped::Invalid(start);
                break;
            }
            let p = &mut predictor[component & 3];
            *p = p.wrapping_add(slot[0]);
            slot[0] = *p;
            if SPECULATIVE && starts.len() < RECORDED {
                starts.push(start);
            }
            done += 1;
            place = if place + 1 == places.len() { 0 } else { place + 1 };
        }
        *state = State { bits, place, predictor };
        (done, why)
    }
}

/// Entropy-decodes the scan into `per_block` coefficients per block (zigzag order, DC values with the prediction applied),
/// blocks in coding order, using up to `threads` threads. `None` for data this decoder cannot make sense of.
pub(crate) fn decode(frame: &Frame, scan: &Unstuffed, per_block: usize, threads: usize) -> Option<Coefficients> {
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
) -> Option<Coefficients> {
    let layout = frame.mcu_layout();
    let build = |spec: &Option<HuffmanSpec>, dc: bool| {
        spec.as_ref().and_then(|s| HuffmanTable::new(&s.counts, &s.symbols, dc)).map(Box::new)
    };
    let dc: Vec<Option<Box<HuffmanTable>>> = frame.dc_tables.iter().map(|s| build(s, true)).collect();
    let ac: Vec<Option<Box<HuffmanTable>>> = frame.ac_tables.iter().map(|s| build(s, false)).collect();
    let places: Vec<Place> = layout
        .iter()
        .map(|&(c, _, _)| {
            let comp = &frame.components[c];
            Some(Place { dc: dc[comp.dc].as_deref()?, ac: ac[comp.ac].as_deref()?, component: c })
        })
        .collect::<Option<_>>()?;
    let (mx, my) = frame.mcus();
    let bpm = layout.len();
    let total = mx.checked_mul(my)?.checked_mul(bpm)?;
    let decoder = Decoder { data: &scan.data, limit: scan.len * 8, places: &places, per_block };
    if frame.restart_interval > 0 {
        by_intervals(&decoder, scan, frame.restart_interval * bpm, total, threads)
    } else {
        speculative(&decoder, scan.len, total, cuts)
    }
}

/// Restart intervals shared out between threads; each interval decodes on its own from its first byte.
fn by_intervals(
    d: &Decoder,
    scan: &Unstuffed,
    blocks_per: usize,
    total: usize,
    threads: usize,
) -> Option<Coefficients> {
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
    let ranges = (0..threads).map(|t| t * share..((t + 1) * share).min(intervals));
    // A panic in a decoder means data it could not make sense of, like `None`.
    let parts = on_threads(ranges, |_, range| decode_range(range));
    let pieces = parts
        .into_iter()
        .map(|part| Some(Piece { values: part.ok()??, from: 0, dc_offset: [0; 4] }))
        .collect::<Option<_>>()?;
    Some(Coefficients::new(pieces, d.per_block, d.components()))
}

/// No restart markers: the `len` bytes of data are cut at the byte offsets `cuts` (ascending); the first range
/// decodes for real, the others speculatively on threads of their own, then the continuations stitch them (see the
/// module text).
fn speculative(d: &Decoder, len: usize, total: usize, cuts: &[usize]) -> Option<Coefficients> {
    let bpm = d.places.len();
    let bits = len * 8;
    let bounds: Vec<usize> = std::iter::once(0).chain(cuts.iter().map(|c| c * 8)).chain([bits]).collect();
    let bounds = &bounds;
    let runs = on_threads(0..bounds.len() - 1, |t, _| {
        // The first range decodes for real and stops after the scan's last block; the others speculate.
        if t == 0 {
            d.run(0, 0, bounds[1], total, false)
        } else {
            d.run(bounds[t], 0, bounds[t + 1], usize::MAX, true)
        }
    });
    let mut runs = runs.into_iter().map(|r| r.ok().flatten());
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
                stitch.append(run, 0, j);
                break;
            }
            let one = d.run(stitch.end, stitch.count % bpm, usize::MAX, 1, false)?;
            if one.coefficients.is_empty() {
                return None;
            }
            stitch.append(one, stitch.count % bpm, 0);
        }
    }
    if stitch.count < total {
        let phase = stitch.count % bpm;
        let rest = d.run(stitch.end, phase, bits, total - stitch.count, false)?;
        stitch.append(rest, phase, 0);
    }
    let out = Coefficients::new(stitch.pieces, d.per_block, stitch.components);
    (out.len() == total * d.per_block).then_some(out)
}

/// The blocks in coding order so far, with where the next starts and each component's last DC value.
struct Stitch<'d, 'a, 'f> {
    d: &'d Decoder<'a, 'f>,
    /// The component of each MCU place.
    components: Vec<usize>,
    pieces: Vec<Piece>,
    count: usize,
    total: usize,
    end: usize,
    predictor: [i16; 4],
}

/// Continuations shorter than this many values are copied onto the last piece rather than kept as pieces.
const SMALL_PIECE: usize = 4096;

impl<'d, 'a, 'f> Stitch<'d, 'a, 'f> {
    /// Starts from the run that began the scan, whose DC values are already right.
    fn new(d: &'d Decoder<'a, 'f>, first: Run, total: usize) -> Self {
        let count = first.coefficients.len() / d.per_block;
        let predictor = last_values(d, &first.coefficients, 0, 0..count).map(|v| v.unwrap_or(0));
        let piece = Piece { values: first.coefficients, from: 0, dc_offset: [0; 4] };
        Self { d, components: d.components(), pieces: vec![piece], count, total, end: first.end, predictor }
    }

    /// Appends `run`'s blocks from its `j`-th on (its first block at MCU place `phase`), up to the scan's last. The
    /// run predicted DC from zero where it started, so each component's values are off by the same amount: what
    /// this stitch's predictor holds minus what the run's held before block `j`.
    fn append(&mut self, run: Run, phase: usize, j: usize) {
        let pb = self.d.per_block;
        let take = (run.coefficients.len() / pb - j).min(self.total - self.count);
        let before = last_values(self.d, &run.coefficients, phase, 0..j).map(|v| v.unwrap_or(0));
        let offset: [i16; 4] = std::array::from_fn(|c| self.predictor[c].wrapping_sub(before[c]));
        let after = last_values(self.d, &run.coefficients, phase, j..j + take);
        for ((p, after), offset) in self.predictor.iter_mut().zip(after).zip(offset) {
            if let Some(v) = after {
                *p = v.wrapping_add(offset);
            }
        }
        let mut values = run.coefficients;
        values.truncate((j + take) * pb);
        let last = self.pieces.last_mut().expect("the first run");
        if take * pb < SMALL_PIECE {
            // Onto the last piece, whose own offset is added when its values are read.
            let rebased: [i16; 4] = std::array::from_fn(|c| offset[c].wrapping_sub(last.dc_offset[c]));
            let start = last.values.len();
            last.values.extend_from_slice(&values[j * pb..]);
            add_dc_offset(&mut last.values[start..], pb, &self.components, phase + j, rebased);
        } else {
            self.pieces.push(Piece { values, from: j * pb, dc_offset: offset });
        }
        self.count += take;
        self.end = run.end;
    }
}

/// Each component's DC value in its last block among `blocks` of `coefficients` (whose first block is at MCU place
/// `phase`); `None` for a component with no block there.
fn last_values(d: &Decoder, coefficients: &[i16], phase: usize, blocks: std::ops::Range<usize>) -> [Option<i16>; 4] {
    let bpm = d.places.len();
    let mut out = [None; 4];
    // Every MCU holds every component, so one MCU's worth of blocks back is enough.
    for i in (blocks.start.max(blocks.end.saturating_sub(bpm))..blocks.end).rev() {
        let c = d.places[(phase + i) % bpm].component;
        out[c] = out[c].or(Some(coefficients[i * d.per_block]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Coefficients, Piece};

    #[test]
    fn a_range_reads_across_pieces_like_one_vector() {
        // One value per block, MCUs of two places (components 0 and 1); the third piece's DC values are off.
        let piece = |values: Vec<i16>, from, dc_offset| Piece { values, from, dc_offset };
        let pieces = vec![
            piece(vec![-1, -2, 0, 1, 2], 2, [0; 4]),
            piece(vec![3], 0, [0; 4]),
            piece(vec![9, -96, -195, -94, -193], 1, [100, 200, 0, 0]),
            piece(vec![], 0, [0; 4]),
            piece(vec![8, 9], 0, [0; 4]),
        ];
        let joined: Vec<i16> = (0..10).collect();
        let c = Coefficients::new(pieces, 1, vec![0, 1]);
        assert_eq!((c.len(), c.to_vec()), (10, joined.clone()));
        let mut scratch = Vec::new();
        for at in 0..=10 {
            for len in 0..=10 - at {
                let (values, offset) = c.range(at, len, &mut scratch);
                let read: Vec<i16> = values.iter().enumerate().map(|(i, v)| v + offset[(at + i) % 2]).collect();
                assert_eq!(read, &joined[at..at + len], "{len} from {at}");
            }
        }
        // Past the end: what there is.
        assert_eq!(c.range(8, 5, &mut scratch), (&[8, 9][..], [0; 4]));
        assert_eq!(c.range(12, 1, &mut scratch).0, &[] as &[i16]);
    }
}
