//! Huffman decoding of one 8x8 block, built for the reduced decode: only the first few coefficients (in zigzag
//! order) are wanted, so once those are read the rest of the block is skipped with one table lookup per
//! coefficient, never computing a value.
//!
//! The reader works on entropy-coded data with byte stuffing and restart markers already removed
//! (`unstuff::unstuff`), so a position in it is a plain bit offset. That is what lets two decoders that started at
//! different places recognise that they have reached the same state (see `scan`).

/// Code lengths up to this many bits are decoded with one lookup.
const LOOKUP_BITS: u32 = 10;

/// A decoded DHT table with two lookup tables indexed by the next [`LOOKUP_BITS`] bits of the stream.
#[derive(Debug, Clone)]
pub(crate) struct HuffmanTable {
    /// `code length << 8 | symbol`, 0 where the code is longer than the lookup (or not a code).
    symbol: Box<[u16; 1 << LOOKUP_BITS]>,
    /// For AC tables: bits to drop to skip this symbol and its value (`code length + size`), and in the upper byte
    /// how far the coefficient index moves (run + 1; 16 for ZRL; [`END_OF_BLOCK`] for EOB). 0 where the code is
    /// longer than the lookup.
    skip: Box<[u16; 1 << LOOKUP_BITS]>,
    /// A symbol and its value together when both fit in the lookup (stb_image's `fast_ac`; DC tables use it too):
    /// value in the upper 16 bits, run in bits 8-15 ([`FAST_EOB`] for end of block, or a DC size of 0), bits to drop
    /// in the low byte; 0 where they do not fit.
    fast: Box<[i32; 1 << LOOKUP_BITS]>,
    /// For AC tables, by the next [`MULTI_BITS`] bits: every whole symbol-and-value those bits hold, skipped at once
    /// (see [`multi_skip`]); 0 where not even one fits.
    multi: Box<[u16; 1 << MULTI_BITS]>,
    /// Canonical decoding of long codes: the largest code of each length (-1 when none) and the index of the first
    /// symbol of that length minus its first code.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

/// The run that marks end of block in [`HuffmanTable::fast`] entries.
const FAST_EOB: i32 = 0xFF;

/// JPEG's EXTEND: the signed value of the `size`-bit magnitude category `raw`.
#[inline(always)]
fn extend(raw: i32, size: u32) -> i32 {
    if raw < 1 << (size - 1) {
        raw - (1 << size) + 1
    } else {
        raw
    }
}

/// The index step that marks end of block in [`HuffmanTable::skip`] entries: larger than any run can reach.
const END_OF_BLOCK: usize = 128;

impl HuffmanTable {
    /// Builds the table from a DHT segment's 16 counts and its symbols; `None` when the counts describe more codes
    /// than fit (an over-subscribed, corrupt table) or a symbol is impossible for the class.
    pub fn new(counts: &[u8; 16], symbols: &[u8], dc: bool) -> Option<Self> {
        let mut symbol = Box::new([0u16; 1 << LOOKUP_BITS]);
        let mut skip = Box::new([0u16; 1 << LOOKUP_BITS]);
        let mut fast = Box::new([0i32; 1 << LOOKUP_BITS]);
        let (mut max_code, mut offset) = ([-1i32; 17], [0i32; 17]);
        let (mut code, mut k) = (0u32, 0usize);
        for len in 1..=16u32 {
            let n = u32::from(counts[len as usize - 1]);
            offset[len as usize] = k as i32 - code as i32;
            for _ in 0..n {
                let s = *symbols.get(k)?;
                if (dc && s > 11) || (!dc && (s & 15) > 10) || code >= 1 << len {
                    return None;
                }
                if len <= LOOKUP_BITS {
                    let shift = LOOKUP_BITS - len;
                    let (run, size) = (usize::from(s >> 4), u16::from(s & 15));
                    let step = match (run, size) {
                        (0, 0) => END_OF_BLOCK,
                        (15, 0) => 16,
                        _ => run + 1,
                    };
                    let first = (code << shift) as usize;
                    for i in first..first + (1 << shift) {
                        symbol[i] = (len as u16) << 8 | u16::from(s);
                        skip[i] = (step as u16) << 8 | (len as u16 + size);
                        let total = len + u32::from(size);
                        fast[i] = match (run, size) {
                            (0, 0) => FAST_EOB << 8 | len as i32,
                            (_, 0) => (run as i32) << 8 | len as i32,
                            _ if total <= LOOKUP_BITS => {
                                let raw = ((i as u32) >> (LOOKUP_BITS - total)) & ((1 << size) - 1);
                                extend(raw as i32, u32::from(size)) << 16 | (run as i32) << 8 | total as i32
                            }
                            _ => 0,
                        };
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        // DC tables never skip; their multi-symbol lookup would be thousands of wasted steps per decode.
        let multi = Box::new(if dc {
            [0; 1 << MULTI_BITS]
        } else {
            std::array::from_fn(|bits| multi_skip(&skip, bits as u32))
        });
        Some(Self { symbol, skip, fast, max_code, offset, symbols: symbols.to_vec(), multi })
    }
}

/// Bits of the two-level skip lookup. 12 bits hold two symbols with their values in typical photos.
const MULTI_BITS: u32 = 12;

/// The [`HuffmanTable::multi`] entry for the `MULTI_BITS`-bit pattern `bits`: bits to drop (low 5 bits), the
/// coefficient index step of the symbols other than EOB (next 7 bits) and whether they end with EOB (bit 12). Each
/// symbol's code and value must lie wholly inside the pattern, except the first, which may run past it (its value
/// bits are dropped unread). 0 when the first code is longer than the single-symbol lookup.
fn multi_skip(skip: &[u16; 1 << LOOKUP_BITS], bits: u32) -> u16 {
    let (mut used, mut step) = (0u32, 0u32);
    loop {
        let window = (bits << used) & ((1 << MULTI_BITS) - 1);
        let e = skip[(window >> (MULTI_BITS - LOOKUP_BITS)) as usize];
        let (len, advance) = (u32::from(e & 0xFF), u32::from(e >> 8));
        let first = used == 0;
        if e == 0 || (!first && used + len > MULTI_BITS) {
            return if first { 0 } else { (step << 5 | used) as u16 };
        }
        used += len;
        if advance == END_OF_BLOCK as u32 {
            return (1 << 12 | step << 5 | used) as u16;
        }
        step += advance;
        if used >= MULTI_BITS || step > 48 {
            return (step << 5 | used) as u16;
        }
    }
}

/// A big-endian bit reader over unstuffed data that ends in at least [`PADDING`] zero bytes.
#[derive(Clone, Copy)]
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// Next byte to load.
    pos: usize,
    /// Unread bits, left-aligned.
    acc: u64,
    /// How many bits of `acc` are valid.
    n: u32,
}

/// Zero bytes after the data. A block reads at most 64 codes of 16 + 10 bits (under 216 bytes) and a refill
/// loads 8 more, so a decoder that starts a block anywhere inside the data never reads past the padding.
pub(crate) const PADDING: usize = 256;

impl<'a> Bits<'a> {
    /// A reader at `bit` bits into `data`.
    pub fn at(data: &'a [u8], bit: usize) -> Self {
        let mut b = Self { data, pos: bit / 8, acc: 0, n: 0 };
        b.refill();
        let skip = (bit % 8) as u32;
        b.acc <<= skip;
        b.n -= skip;
        b
    }

    /// Bits read so far, from the start of the data.
    #[inline(always)]
    pub fn position(&self) -> usize {
        self.pos * 8 - self.n as usize
    }

    /// Tops `acc` up to at least 56 valid bits (Giesen's branch-free refill).
    #[inline(always)]
    fn refill(&mut self) {
        let word = u64::from_be_bytes(self.data[self.pos..self.pos + 8].try_into().expect("8 bytes"));
        self.acc |= word >> self.n;
        self.pos += ((63 - self.n) >> 3) as usize;
        self.n |= 56;
    }

    #[inline(always)]
    fn drop_bits(&mut self, k: u32) {
        self.acc <<= k;
        self.n -= k;
    }

    /// One Huffman symbol; `None` for a bit pattern that is not a code.
    #[inline(always)]
    fn symbol(&mut self, t: &HuffmanTable) -> Option<u8> {
        let e = t.symbol[(self.acc >> (64 - LOOKUP_BITS)) as usize];
        let (len, symbol) = if e != 0 { (u32::from(e >> 8), e as u8) } else { long_code(self.acc, t)? };
        self.drop_bits(len);
        Some(symbol)
    }

    /// The signed value of a `size`-bit magnitude category (JPEG's EXTEND); `size` is 1..=11.
    #[inline(always)]
    fn value(&mut self, size: u32) -> i32 {
        let raw = (self.acc >> (64 - size)) as i32;
        self.drop_bits(size);
        extend(raw, size)
    }
}

/// A code longer than the lookup, at the top of `acc`: its length and symbol. Takes the bits by value so the
/// reader's state can stay in registers in the hot loops.
#[cold]
fn long_code(acc: u64, t: &HuffmanTable) -> Option<(u32, u8)> {
    for len in LOOKUP_BITS + 1..=16 {
        let code = (acc >> (64 - len)) as i32;
        if code <= t.max_code[len as usize] {
            return t.symbols.get((code + t.offset[len as usize]) as usize).map(|&s| (len, s));
        }
    }
    None
}

/// Decodes one block: the DC difference into `out[0]` and the AC coefficients at zigzag positions `1..N` into the
/// rest of `out`; later coefficients are skipped. `None` for data that is not a valid block.
#[inline(always)]
pub(crate) fn block<const N: usize>(
    bits: &mut Bits,
    dc: &HuffmanTable,
    ac: &HuffmanTable,
    out: &mut [i16; N],
) -> Option<()> {
    // A copy in locals: the compiler keeps it in registers, where a `&mut` reader would live in memory.
    let mut b = *bits;
    let done = block_in(&mut b, dc, ac, out);
    *bits = b;
    done
}

#[inline(always)]
fn block_in<const N: usize>(b: &mut Bits, dc: &HuffmanTable, ac: &HuffmanTable, out: &mut [i16; N]) -> Option<()> {
    *out = [0; N];
    b.refill();
    // DC symbols are magnitude sizes with run 0, so the AC-style `fast` entry holds code and value together; size 0
    // reads as end of block there, whose value bits are 0, which is its DC difference too.
    let e = dc.fast[(b.acc >> (64 - LOOKUP_BITS)) as usize];
    out[0] = if e != 0 {
        b.drop_bits((e & 0xFF) as u32);
        (e >> 16) as i16
    } else {
        let size = b.symbol(dc)?;
        if size == 0 {
            0
        } else {
            b.value(u32::from(size)) as i16
        }
    };
    let wanted = if N <= FIXED_MAX { first_fixed(b, ac, out)? } else { first_looped(b, ac, out)? };
    match wanted {
        Some(k) => skip_rest(b, ac, k),
        None => Some(()),
    }
}

/// Up to this many coefficients per block, [`first_fixed`] reads them.
const FIXED_MAX: usize = 5;

/// The AC coefficients at zigzag positions `1..N` (N at most [`FIXED_MAX`]) in exactly `N - 1` steps: a step
/// after the block passed position N or ended consumes nothing. Each symbol moves the position on by at least
/// one, so `N - 1` steps always get there, and no branch depends on the data: a loop that stops on reaching N
/// mispredicted its exit in most blocks. `Some(position reached)`, or `Some(None)` when the block ended (EOB)
/// first; `None` for data that is not a valid block.
#[inline(always)]
fn first_fixed<const N: usize>(b: &mut Bits, ac: &HuffmanTable, out: &mut [i16; N]) -> Option<Option<usize>> {
    // Slot N and beyond take the values of symbols past N, and of the steps that consume nothing.
    let mut slots = [0i16; FIXED_MAX + 1];
    let (mut k, mut live, mut ended) = (1, true, false);
    for step in 0..N.saturating_sub(1) {
        // 56 bits after a refill cover two symbols with values of at most 26 bits each.
        if step % 2 == 0 {
            b.refill();
        }
        let e = ac.fast[(b.acc >> (64 - LOOKUP_BITS)) as usize];
        let (len, run, value) = if e != 0 {
            ((e & 0xFF) as u32, ((e >> 8) & 0xFF) as usize, (e >> 16) as i16)
        } else if live {
            peek_long(*b, ac)?
        } else {
            (0, 0, 0)
        };
        let eob = run == FAST_EOB as usize;
        b.drop_bits(if live { len } else { 0 });
        let write = live && !eob;
        // A ZRL stores a zero at the end of its run, which changes nothing.
        slots[if write { (k + run).min(N) } else { N }] = value;
        k = if write { k + run + 1 } else { k };
        ended |= live && eob;
        live = write && k < N;
    }
    out[1..].copy_from_slice(&slots[1..N]);
    Some((!ended).then_some(k))
}

/// A symbol whose code and value do not both fit [`HuffmanTable::fast`], read from a copy of the reader so that
/// nothing is consumed: bits taken by code and value, the run ([`FAST_EOB`] for end of block) and the value. `None`
/// for a pattern that is no code.
#[cold]
fn peek_long(mut b: Bits, t: &HuffmanTable) -> Option<(u32, usize, i16)> {
    let valid = b.n;
    let rs = b.symbol(t)?;
    let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
    let value = if size == 0 { 0 } else { b.value(size) as i16 };
    let run = if (run, size) == (0, 0) { FAST_EOB as usize } else { run };
    Some((valid - b.n, run, value))
}

/// The AC coefficients at zigzag positions `1..N` for larger N, symbol by symbol until N is reached; results as
/// [`first_fixed`]'s.
#[inline(always)]
fn first_looped<const N: usize>(b: &mut Bits, ac: &HuffmanTable, out: &mut [i16; N]) -> Option<Option<usize>> {
    let mut k = 1;
    while k < N {
        // 56 bits after a refill cover two symbols with values of at most 26 bits each.
        b.refill();
        for _ in 0..2 {
            let e = ac.fast[(b.acc >> (64 - LOOKUP_BITS)) as usize];
            let (run, value) = if e != 0 {
                b.drop_bits((e & 0xFF) as u32);
                match (e >> 8) & 0xFF {
                    FAST_EOB => return Some(None),
                    run => (run as usize, (e >> 16) as i16),
                }
            } else {
                let rs = b.symbol(ac)?;
                let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
                match (run, size) {
                    (0, 0) => return Some(None),
                    (_, 0) => (run, 0),
                    _ => (run, b.value(size) as i16),
                }
            };
            // A ZRL stores a zero at the end of its run, which changes nothing.
            k += run;
            match out.get_mut(k) {
                Some(slot) => *slot = value,
                None if k > 63 => return None,
                None => {}
            }
            k += 1;
            if k >= N {
                break;
            }
        }
    }
    Some(Some(k))
}

/// The rest of a block from coefficient `k`: lengths only, several symbols per lookup where they fit.
#[inline(always)]
fn skip_rest(b: &mut Bits, ac: &HuffmanTable, mut k: usize) -> Option<()> {
    while k < 64 {
        // 56 bits after a refill cover two steps of at most 26 bits each.
        b.refill();
        for _ in 0..2 {
            let e = ac.multi[(b.acc >> (64 - MULTI_BITS)) as usize];
            let step = usize::from(e >> 5 & 0x7F);
            if e != 0 && k + step < 64 {
                b.drop_bits(u32::from(e & 31));
                if e >> 12 != 0 {
                    return Some(());
                }
                k += step;
                continue;
            }
            // One symbol: near the end of the block, or a long code.
            let e = ac.skip[(b.acc >> (64 - LOOKUP_BITS)) as usize];
            if e == 0 {
                let (len, rs) = long_code(b.acc, ac)?;
                let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
                b.drop_bits(len + size);
                k += match (run, size) {
                    (0, 0) => return Some(()),
                    (15, 0) => 16,
                    _ => run + 1,
                };
            } else {
                b.drop_bits(u32::from(e & 0xFF));
                k += usize::from(e >> 8);
            }
            if k >= 64 {
                break;
            }
        }
    }
    // k == 64: the last coefficient was at 63 (or a ZRL reached it); beyond is a run past the block's end.
    (k == 64 || k >= END_OF_BLOCK).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard luminance DC table (JPEG Annex K.3).
    fn dc_table() -> HuffmanTable {
        let counts = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
        HuffmanTable::new(&counts, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], true).unwrap()
    }

    fn padded(bytes: &[u8]) -> Vec<u8> {
        let mut v = bytes.to_vec();
        v.resize(bytes.len() + PADDING, 0);
        v
    }

    #[test]
    fn dc_codes_and_values_decode_as_the_standard_says() {
        // Codes: size 0 = 00, size 1 = 010, size 2 = 011, size 3 = 100 ...
        // 011 then "10" (value 2), 010 then "0" (value -1), 00 (size 0): 0111 0010 0... = 0x72 0x00
        let data = padded(&[0x72, 0x00]);
        let mut b = Bits::at(&data, 0);
        let t = dc_table();
        assert_eq!(b.symbol(&t), Some(2));
        assert_eq!(b.value(2), 2);
        assert_eq!(b.symbol(&t), Some(1));
        assert_eq!(b.value(1), -1);
        assert_eq!(b.symbol(&t), Some(0));
        assert_eq!(b.position(), 11);
        // Starting mid-byte reads the same bits.
        let mut b = Bits::at(&data, 5);
        assert_eq!(b.symbol(&t), Some(1));
    }

    #[test]
    fn an_over_subscribed_table_is_refused() {
        let counts = [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(HuffmanTable::new(&counts, &[0, 1, 2], true).is_none());
        // A DC size above 11 cannot be.
        let counts = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(HuffmanTable::new(&counts, &[12], true).is_none());
    }
}
