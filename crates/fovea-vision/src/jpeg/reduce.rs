//! From entropy-decoded coefficients to RGB pixels at 1/2, 1/4 or 1/8 size: a reduced inverse DCT per block, then
//! chroma upsampling and colour conversion per row.
//!
//! The arithmetic is jpeg-decoder's (0.3, MIT / Apache-2.0: its 4x4, 2x2 and 1x1 IDCTs after stb_image, its
//! triangle-filter upsamplers and fixed-point YCbCr conversion), so this path and the jpeg-decoder fallback give the
//! same pixels and a user never sees which one ran (the tests compare the two).

use std::mem::MaybeUninit;

use super::header::Frame;
use super::scan::Coefficients;
use crate::threads::on_threads;

/// Natural (row-major) index of each zigzag position.
const ZIGZAG: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// Coefficients per block (zigzag prefix) that a `k x k` reduced IDCT reads: up to the zigzag position of
/// coefficient (k-1, k-1).
pub(crate) fn coefficients_needed(k: usize) -> usize {
    ZIGZAG.iter().position(|&n| n == (k - 1) * 8 + (k - 1)).expect("in the table") + 1
}

#[cfg(test)]
#[test]
fn the_corner_tables_follow_the_zigzag_order() {
    let slot = |r: usize, c: usize| ZIGZAG.iter().position(|&n| n == r * 8 + c).unwrap();
    assert_eq!(CORNER_4X4, std::array::from_fn(|i| slot(i / 4, i % 4)));
    assert_eq!([slot(0, 0), slot(0, 1), slot(1, 0), slot(1, 1)], [0, 1, 2, 4]);
    assert_eq!((coefficients_needed(1), coefficients_needed(2), coefficients_needed(4)), (1, 5, 25));
}

/// One component's pixels at the reduced size, whole MCUs (so wider and taller than the image by the padding).
struct Plane {
    pixels: Vec<u8>,
    stride: usize,
    /// The meaningful part, as jpeg-decoder sizes it.
    width: usize,
    height: usize,
}

/// RGB pixels (`ceil(width * k / 8)` x `ceil(height * k / 8)`) from `coefficients` as [`super::scan::decode`]
/// returns them, in bands of rows on up to `threads` threads.
pub(crate) fn rgb(frame: &Frame, coefficients: &Coefficients, per_block: usize, k: usize, threads: usize) -> Vec<u8> {
    let planes = planes(frame, coefficients, per_block, k, threads);
    let out_w = (frame.width * k).div_ceil(8);
    let out_h = (frame.height * k).div_ceil(8);
    let len = out_w * out_h * 3;
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let rows_per_band = out_h.div_ceil(threads.max(1)).max(1);
    let (hm, vm) = (frame.h_max(), frame.v_max());
    let band = |first_row: usize, band: &mut [MaybeUninit<u8>]| {
        let width = out_w + 2 * hm * 8;
        let mut lines = [vec![0u8; width], vec![0u8; width], vec![0u8; width]];
        for (i, line) in band.chunks_exact_mut(out_w * 3).enumerate() {
            // Zeroed here, a row at a time in cache, rather than megabytes at once before the threads start.
            let line = zeroed(line);
            let row = first_row + i;
            if let [y] = &planes[..] {
                for (px, &v) in line.chunks_exact_mut(3).zip(&y.pixels[row * y.stride..]) {
                    px.fill(v);
                }
                continue;
            }
            for ((plane, comp), buf) in planes.iter().zip(&frame.components).zip(&mut lines) {
                upsample_row(plane, hm / comp.h, vm / comp.v, row, out_w, buf);
            }
            ycbcr_to_rgb(&lines[0][..out_w], &lines[1][..out_w], &lines[2][..out_w], line);
        }
    };
    let bands = out.spare_capacity_mut()[..len].chunks_mut(rows_per_band * out_w * 3);
    on_threads_or_panic(bands, |b, chunk| band(b * rows_per_band, chunk));
    // SAFETY: the bands cover the first `len` bytes and each row of each was zeroed before use (a thread that
    // panicked has had its panic passed on by now).
    unsafe { out.set_len(len) };
    out
}

/// `bytes` zeroed, as plain bytes.
fn zeroed(bytes: &mut [MaybeUninit<u8>]) -> &mut [u8] {
    bytes.fill(MaybeUninit::new(0));
    // SAFETY: every byte was written just above, and `MaybeUninit<u8>` has `u8`'s layout.
    unsafe { &mut *(bytes as *mut [MaybeUninit<u8>] as *mut [u8]) }
}

/// One band's rows of one plane, not yet initialised, and the plane's stride.
type BandRows<'p> = (&'p mut [MaybeUninit<u8>], usize);

/// The component planes, in bands of MCU rows on up to `threads` threads.
fn planes(frame: &Frame, coefficients: &Coefficients, per_block: usize, k: usize, threads: usize) -> Vec<Plane> {
    let (mx, my) = frame.mcus();
    let (hm, vm) = (frame.h_max(), frame.v_max());
    let mut planes: Vec<Plane> = frame
        .components
        .iter()
        .map(|c| {
            let (stride, rows) = (mx * c.h * k, my * c.v * k);
            Plane {
                pixels: Vec::with_capacity(stride * rows),
                stride,
                width: (frame.width * c.h * k).div_ceil(hm * 8),
                height: (frame.height * c.v * k).div_ceil(vm * 8),
            }
        })
        .collect();
    let lens: Vec<usize> = planes.iter().zip(&frame.components).map(|(p, c)| p.stride * my * c.v * k).collect();
    let layout = frame.mcu_layout();
    let mcu_len = layout.len() * per_block;
    let rows_per_band = my.div_ceil(threads.max(1)).max(1);
    // Each band of MCU rows owns the matching rows of every plane, not yet initialised.
    let mut bands: Vec<Vec<BandRows>> = Vec::new();
    for ((plane, comp), &len) in planes.iter_mut().zip(&frame.components).zip(&lens) {
        let stride = plane.stride;
        let pixels = &mut plane.pixels.spare_capacity_mut()[..len];
        for (b, chunk) in pixels.chunks_mut(rows_per_band * comp.v * k * stride).enumerate() {
            if bands.len() <= b {
                bands.push(Vec::new());
            }
            bands[b].push((chunk, stride));
        }
    }
    let band = |first_mcu_row: usize, mut out: Vec<BandRows>| {
        let mut scratch = Vec::new();
        for (r, mcu_row) in (first_mcu_row..(first_mcu_row + rows_per_band).min(my)).enumerate() {
            let (row, dc_offset) = coefficients.range(mcu_row * mx * mcu_len, mx * mcu_len, &mut scratch);
            // Each plane's rows of this MCU row, zeroed here in cache rather than all at once up front.
            let mut rows: Vec<(&mut [u8], usize)> = out
                .iter_mut()
                .zip(&frame.components)
                .map(|((pixels, stride), comp)| {
                    let height = comp.v * k * *stride;
                    (zeroed(&mut pixels[r * height..][..height]), *stride)
                })
                .collect();
            // One block position of the MCU at a time, along the row: the component, its quantiser and the output
            // rows stay fixed in the inner loop.
            for (p, &(c, bx, by)) in layout.iter().enumerate() {
                let comp = &frame.components[c];
                let (pixels, stride) = &mut rows[c];
                let line = &mut pixels[by * k * *stride..][..k * *stride];
                let blocks = row.chunks_exact(mcu_len).map(|mcu| &mcu[p * per_block..(p + 1) * per_block]);
                let dc = dc_offset[c];
                match k {
                    1 => blocks_1x1(blocks, dc, &comp.quant, comp.h, bx, line),
                    2 => blocks_2x2(row, (mcu_len, p * per_block), dc, &comp.quant, comp.h, bx, *stride, line),
                    _ => {
                        for (x, block) in blocks.enumerate() {
                            idct_4x4(block, dc, &comp.quant, *stride, &mut line[(x * comp.h + bx) * 4..]);
                        }
                    }
                }
            }
        }
    };
    on_threads_or_panic(bands, |b, out| band(b * rows_per_band, out));
    for (plane, len) in planes.iter_mut().zip(lens) {
        // SAFETY: the bands cover the first `len` bytes of each plane, and every MCU row of every band was zeroed
        // before use (a thread that panicked has had its panic passed on by now).
        unsafe { plane.pixels.set_len(len) };
    }
    planes
}

/// [`on_threads`], passing a panic on: the work here is plain arithmetic on sizes checked before.
fn on_threads_or_panic<T: Send>(items: impl IntoIterator<Item = T>, work: impl Fn(usize, T) + Sync) {
    for done in on_threads(items, work) {
        if let Err(panic) = done {
            std::panic::resume_unwind(panic);
        }
    }
}

fn clamp(x: i32) -> u8 {
    x.clamp(0, 255) as u8
}

/// stb_image's fixed point: `x` scaled by 2^12, rounded.
fn f2f(x: f32) -> i32 {
    (x * 4096.0 + 0.5) as i32
}

/// The DC coefficient of a block whose stored value is `dc_offset` off (see `Coefficients::range`).
#[inline(always)]
fn dc(block: &[i16], dc_offset: i16) -> i32 {
    i32::from(block[0].wrapping_add(dc_offset))
}

/// DC only: the block's mean, for each block of one MCU position along a row.
fn blocks_1x1<'a>(
    blocks: impl Iterator<Item = &'a [i16]>,
    dc_offset: i16,
    quant: &[u16; 64],
    h: usize,
    bx: usize,
    line: &mut [u8],
) {
    let q = i32::from(quant[0]);
    for (x, block) in blocks.enumerate() {
        line[x * h + bx] = clamp((dc(block, dc_offset) * q + 128 * 8) / 8);
    }
}

/// The 2x2 IDCT (zigzag slots 0, 1, 2 and 4 are rows and columns 0-1) for each block of one MCU position along a
/// row of MCUs (`mcu_len` values each, the block's from `first` on); `line` holds the two output rows.
// Kept out of line: inlined into the band loop it ran a third slower.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn blocks_2x2(
    row: &[i16],
    (mcu_len, first): (usize, usize),
    dc_offset: i16,
    quant: &[u16; 64],
    h: usize,
    bx: usize,
    stride: usize,
    line: &mut [u8],
) {
    let q = [quant[0], quant[1], quant[2], quant[4]].map(i32::from);
    let (top, bottom) = line.split_at_mut(stride);
    let count = row.len() / mcu_len;
    let mut put = |x: usize, [t0, t1, b0, b1]: [u8; 4]| {
        let col = (x * h + bx) * 2;
        top[col..col + 2].copy_from_slice(&[t0, t1]);
        bottom[col..col + 2].copy_from_slice(&[b0, b1]);
    };
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if let Some(weights) = sse2::Weights::new(q) {
        // The vector step loads 8 values from the block's start: every block but the row's last one or two.
        done = if row.len() >= first + 8 { count.min((row.len() - first - 8) / mcu_len + 1) } else { 0 };
        for x in 0..done {
            let at = x * mcu_len + first;
            put(x, weights.idct(row[at..at + 8].try_into().expect("8 values"), dc_offset));
        }
    }
    for x in done..count {
        put(x, idct_2x2(&row[x * mcu_len + first..][..5], dc_offset, q));
    }
}

/// One block's 2x2 IDCT: top-left, top-right, bottom-left and bottom-right pixels.
#[inline(always)]
fn idct_2x2(b: &[i16], dc_offset: i16, q: [i32; 4]) -> [u8; 4] {
    let (s00, s01, s10, s11) =
        (dc(b, dc_offset) * q[0], i32::from(b[1]) * q[1], i32::from(b[2]) * q[2], i32::from(b[4]) * q[3]);
    let (x0, x2) = (s00 + s10 + 4 + (128 << 3), s00 - s10 + 4 + (128 << 3));
    let (x1, x3) = (s01 + s11, s01 - s11);
    [clamp((x0 + x1) >> 3), clamp((x0 - x1) >> 3), clamp((x2 + x3) >> 3), clamp((x2 - x3) >> 3)]
}

#[cfg(all(test, target_arch = "x86_64"))]
#[test]
fn the_vector_2x2_idct_is_the_scalar_one() {
    // Coefficients up to 12 bits (a JPEG's are at most 11) whose pixels saturate both ways, a DC wrapping past
    // i16, quantisers up to the limit: sums stay inside i32, as any real block's do.
    let noise = crate::fixtures::noise(20_000 * 16, 3);
    let word = |i: usize| i16::from_le_bytes([noise[2 * i], noise[2 * i + 1]]);
    for i in 0..20_000 {
        let values: [i16; 8] = std::array::from_fn(|j| word(i * 8 + j) >> (4 + i % 12));
        let q = std::array::from_fn(|j| i32::from(word(i * 8 + j + 4).unsigned_abs() >> (i % 8)).min(32767));
        let dc_offset = word(i * 8 + 3);
        let weights = sse2::Weights::new(q).expect("fits");
        assert_eq!(weights.idct(&values, dc_offset), idct_2x2(&values, dc_offset, q), "{values:?} {q:?} {dc_offset}");
    }
    assert!(sse2::Weights::new([1, 2, 32768, 4]).is_none());
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// The 2x2 IDCT's four outputs as dot products of a block's first five zigzag values (slot 3 weighs 0) with
    /// signed quantisers: `s00 ± s01 ± s10 ± s11`, exact in 32 bits as the scalar sums are.
    pub(super) struct Weights([__m128i; 4]);

    impl Weights {
        /// `None` when a quantiser does not fit the 16-bit multiply (16-bit tables above 32767; never seen).
        pub(super) fn new(q: [i32; 4]) -> Option<Self> {
            if q.iter().any(|&q| q > i32::from(i16::MAX)) {
                return None;
            }
            let [q0, q1, q2, q3] = q.map(|q| q as i16);
            // SAFETY: SSE2 is part of x86_64.
            Some(Self(unsafe {
                [
                    _mm_setr_epi16(q0, q1, q2, 0, q3, 0, 0, 0),
                    _mm_setr_epi16(q0, -q1, q2, 0, -q3, 0, 0, 0),
                    _mm_setr_epi16(q0, q1, -q2, 0, -q3, 0, 0, 0),
                    _mm_setr_epi16(q0, -q1, -q2, 0, q3, 0, 0, 0),
                ]
            }))
        }

        /// The block's top-left, top-right, bottom-left and bottom-right pixels, from its first 8 values (the last
        /// three weigh 0) with `dc_offset` added (wrapping) to the DC value.
        #[inline(always)]
        pub(super) fn idct(&self, values: &[i16; 8], dc_offset: i16) -> [u8; 4] {
            // SAFETY: SSE2 is part of x86_64; the load reads the 16 bytes of `values`.
            unsafe {
                let v = _mm_loadu_si128(values.as_ptr().cast());
                let v = _mm_add_epi16(v, _mm_setr_epi16(dc_offset, 0, 0, 0, 0, 0, 0, 0));
                let [p0, p1, p2, p3] = self.0.map(|w| _mm_madd_epi16(v, w));
                // Sum each product's four lanes: a 4x4 transpose by unpacking, adding as it goes.
                let s01 = _mm_add_epi32(_mm_unpacklo_epi32(p0, p1), _mm_unpackhi_epi32(p0, p1));
                let s23 = _mm_add_epi32(_mm_unpacklo_epi32(p2, p3), _mm_unpackhi_epi32(p2, p3));
                let sums = _mm_add_epi32(_mm_unpacklo_epi64(s01, s23), _mm_unpackhi_epi64(s01, s23));
                let out = _mm_srai_epi32(_mm_add_epi32(sums, _mm_set1_epi32(4 + (128 << 3))), 3);
                // Saturating packs: the clamp to 0..=255.
                let bytes = _mm_packus_epi16(_mm_packs_epi32(out, out), _mm_setzero_si128());
                _mm_cvtsi128_si32(bytes).to_le_bytes()
            }
        }
    }
}

/// The zigzag slot of each coefficient of the 4 x 4 corner, row-major.
const CORNER_4X4: [usize; 16] = [0, 1, 5, 6, 2, 4, 7, 13, 3, 8, 12, 17, 9, 11, 18, 24];

fn idct_4x4(zigzag: &[i16], dc_offset: i16, quant: &[u16; 64], stride: usize, out: &mut [u8]) {
    const CONST_BITS: u32 = 12;
    const PASS1_BITS: u32 = 2;
    const FINAL_BITS: u32 = CONST_BITS + PASS1_BITS + 3;
    let mut s: [i32; 16] = CORNER_4X4.map(|z| i32::from(zigzag[z]) * i32::from(quant[z]));
    s[0] = dc(zigzag, dc_offset) * i32::from(quant[0]);
    let (c0, c1, c2) = (f2f(0.541_196_1), f2f(-1.847_759_1), f2f(0.765_366_87));
    let mut t = [0i32; 16];
    for i in 0..4 {
        let (s0, s1, s2, s3) = (s[i], s[4 + i], s[8 + i], s[12 + i]);
        let (x0, x2) = ((s0 + s2) << PASS1_BITS, (s0 - s2) << PASS1_BITS);
        let p1 = (s1 + s3) * c0;
        let t0 = (p1 + s3 * c1 + 512) >> (CONST_BITS - PASS1_BITS);
        let t2 = (p1 + s1 * c2 + 512) >> (CONST_BITS - PASS1_BITS);
        t[i] = x0 + t2;
        t[12 + i] = x0 - t2;
        t[4 + i] = x2 + t0;
        t[8 + i] = x2 - t0;
    }
    for i in 0..4 {
        let (s0, s1, s2, s3) = (t[i * 4], t[i * 4 + 1], t[i * 4 + 2], t[i * 4 + 3]);
        let bias = (1 << (FINAL_BITS - 1)) + (128 << FINAL_BITS);
        let (x0, x2) = (((s0 + s2) << CONST_BITS) + bias, ((s0 - s2) << CONST_BITS) + bias);
        let p1 = (s1 + s3) * c0;
        let (t0, t2) = (p1 + s3 * c1, p1 + s1 * c2);
        let o = &mut out[i * stride..i * stride + 4];
        o[0] = clamp((x0 + t2) >> FINAL_BITS);
        o[3] = clamp((x0 - t2) >> FINAL_BITS);
        o[1] = clamp((x2 + t0) >> FINAL_BITS);
        o[2] = clamp((x2 - t0) >> FINAL_BITS);
    }
}

/// Row `row` of a component upsampled by `h` x `v` (1 or 2 each) into `out`: libjpeg's "fancy" triangle filter.
fn upsample_row(p: &Plane, h: usize, v: usize, row: usize, out_w: usize, out: &mut [u8]) {
    let (near, far) = if v == 1 {
        (row, row)
    } else {
        // The nearer source row weighs 3, the other 1: above for even output rows, below for odd ones.
        let near = row / 2;
        let far = if row.is_multiple_of(2) { near.saturating_sub(1) } else { (near + 1).min(p.height - 1) };
        (near, far)
    };
    let near_row = &p.pixels[near * p.stride..][..p.width];
    let far_row = &p.pixels[far * p.stride..][..p.width];
    let w = p.width;
    match (h, v) {
        (1, 1) => out[..out_w].copy_from_slice(&near_row[..out_w]),
        (1, _) => {
            for ((o, &n), &f) in out[..out_w].iter_mut().zip(near_row).zip(far_row) {
                *o = ((3 * u32::from(n) + u32::from(f) + 2) >> 2) as u8;
            }
        }
        (_, 1) => {
            let s = near_row;
            if w == 1 {
                out[..2].fill(s[0]);
                return;
            }
            out[0] = s[0];
            out[1] = ((u32::from(s[0]) * 3 + u32::from(s[1]) + 2) >> 2) as u8;
            for i in 1..w - 1 {
                let centre = 3 * u32::from(s[i]) + 2;
                out[i * 2] = ((centre + u32::from(s[i - 1])) >> 2) as u8;
                out[i * 2 + 1] = ((centre + u32::from(s[i + 1])) >> 2) as u8;
            }
            out[(w - 1) * 2] = ((u32::from(s[w - 1]) * 3 + u32::from(s[w - 2]) + 2) >> 2) as u8;
            out[(w - 1) * 2 + 1] = s[w - 1];
        }
        _ => {
            let column = |i: usize| 3 * u32::from(near_row[i]) + u32::from(far_row[i]);
            if w == 1 {
                out[..2].fill(((column(0) + 2) >> 2) as u8);
                return;
            }
            let mut t1 = column(0);
            out[0] = ((t1 + 2) >> 2) as u8;
            for i in 1..w {
                let t0 = t1;
                t1 = column(i);
                out[i * 2 - 1] = ((3 * t0 + t1 + 8) >> 4) as u8;
                out[i * 2] = ((3 * t1 + t0 + 8) >> 4) as u8;
            }
            out[w * 2 - 1] = ((t1 + 2) >> 2) as u8;
        }
    }
}

/// jpeg-decoder's JFIF conversion: with SSSE3 its 16-bit vector arithmetic over the same pixels it takes it for (all
/// but the last 8 to 15 of a row, 8 at a time), so the pixels are jpeg-decoder's exactly; the rest, and every pixel
/// without SSSE3, in its 20-bit fixed point, 16 pixels at a time into planar arrays (which the compiler vectorises)
/// and then interleaved.
fn ycbcr_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: SSSE3 was detected just above.
        unsafe { ssse3::ycbcr_to_rgb(y, cb, cr, out) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    ycbcr_to_rgb_fixed(&y[done..], &cb[done..], &cr[done..], &mut out[done * 3..]);
}

fn ycbcr_to_rgb_fixed(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    const N: usize = 16;
    let whole = y.len() / N * N;
    let lanes = out.chunks_exact_mut(3 * N).zip(y.chunks_exact(N)).zip(cb.chunks_exact(N)).zip(cr.chunks_exact(N));
    for (((px, y), cb), cr) in lanes {
        let (mut r, mut g, mut b) = ([0u8; N], [0u8; N], [0u8; N]);
        for i in 0..N {
            [r[i], g[i], b[i]] = ycbcr_pixel(y[i], cb[i], cr[i]);
        }
        for (i, p) in px.chunks_exact_mut(3).enumerate() {
            p.copy_from_slice(&[r[i], g[i], b[i]]);
        }
    }
    let rest = out[whole * 3..].chunks_exact_mut(3).zip(&y[whole..]).zip(&cb[whole..]).zip(&cr[whole..]);
    for (((p, &y), &cb), &cr) in rest {
        p.copy_from_slice(&ycbcr_pixel(y, cb, cr));
    }
}

#[cfg(target_arch = "x86_64")]
mod ssse3 {
    use std::arch::x86_64::*;

    /// jpeg-decoder 0.3's `color_convert_line_ycbcr` (MIT / Apache-2.0), 8 pixels per step: values scaled by 2^6 in
    /// 16 bits, the constants as rounding high multiplies. Converts the pixels of `out` (3 bytes each, at most
    /// `y.len()`) but the last 8 to 15, as jpeg-decoder does, and returns how many it converted.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn ycbcr_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) -> usize {
        let pixels = (out.len() / 3).min(y.len()).min(cb.len()).min(cr.len());
        // Each step loads 16 bytes and stores 24, so one step's worth is left to the caller.
        let steps = (pixels / 8).saturating_sub(1);
        const SHIFT: i32 = 6;
        let widen = _mm_setr_epi8(0, -0x7F, 1, -0x7F, 2, -0x7F, 3, -0x7F, 4, -0x7F, 5, -0x7F, 6, -0x7F, 7, -0x7F);
        let shufr =
            _mm_setr_epi8(0, -0x7F, -0x7F, 1, -0x7F, -0x7F, 2, -0x7F, -0x7F, 3, -0x7F, -0x7F, 4, -0x7F, -0x7F, 5);
        let shufg =
            _mm_setr_epi8(-0x7F, 0, -0x7F, -0x7F, 1, -0x7F, -0x7F, 2, -0x7F, -0x7F, 3, -0x7F, -0x7F, 4, -0x7F, -0x7F);
        let shufb = _mm_alignr_epi8(shufg, shufg, 15);
        // The second 16 output bytes: red from pixel 6 up, green and blue from 5 up (-0x7F + 6 keeps its top bit).
        let (shufr1, shufg1, shufb1) = (
            _mm_add_epi8(shufb, _mm_set1_epi8(6)),
            _mm_add_epi8(shufr, _mm_set1_epi8(5)),
            _mm_add_epi8(shufg, _mm_set1_epi8(5)),
        );
        let load = |plane: &[u8], i: usize| {
            // SAFETY: i * 8 + 16 <= (steps + 1) * 8 <= pixels <= plane.len().
            let v = unsafe { _mm_loadu_si128(plane.as_ptr().add(i * 8).cast()) };
            _mm_slli_epi16(_mm_shuffle_epi8(v, widen), SHIFT)
        };
        for i in 0..steps {
            let c128 = _mm_set1_epi16(128 << SHIFT);
            let yv = _mm_adds_epi16(load(y, i), _mm_set1_epi16((1 << SHIFT) >> 1));
            let cbv = _mm_subs_epi16(load(cb, i), c128);
            let crv = _mm_subs_epi16(load(cr, i), c128);
            // cr * 1.402, cb * 0.34414, cr * 0.71414, cb * 1.772.
            let cr_140200 = _mm_adds_epi16(_mm_mulhrs_epi16(crv, _mm_set1_epi16(13173)), crv);
            let cb_034414 = _mm_mulhrs_epi16(cbv, _mm_set1_epi16(11276));
            let cr_071414 = _mm_mulhrs_epi16(crv, _mm_set1_epi16(23401));
            let cb_177200 = _mm_adds_epi16(_mm_mulhrs_epi16(cbv, _mm_set1_epi16(25297)), cbv);
            let zero = _mm_setzero_si128();
            let r = _mm_packus_epi16(_mm_srai_epi16(_mm_adds_epi16(yv, cr_140200), SHIFT), zero);
            let g = _mm_subs_epi16(yv, _mm_adds_epi16(cb_034414, cr_071414));
            let g = _mm_packus_epi16(_mm_srai_epi16(g, SHIFT), zero);
            let b = _mm_packus_epi16(_mm_srai_epi16(_mm_adds_epi16(yv, cb_177200), SHIFT), zero);
            let low = _mm_or_si128(
                _mm_shuffle_epi8(r, shufr),
                _mm_or_si128(_mm_shuffle_epi8(g, shufg), _mm_shuffle_epi8(b, shufb)),
            );
            let high = _mm_or_si128(
                _mm_shuffle_epi8(r, shufr1),
                _mm_or_si128(_mm_shuffle_epi8(g, shufg1), _mm_shuffle_epi8(b, shufb1)),
            );
            // 24 bytes of 32: the first 16, then the low 8 of the rest.
            // SAFETY: i * 24 + 24 <= steps * 24 <= out.len().
            unsafe {
                let at = out.as_mut_ptr().add(i * 24);
                _mm_storeu_si128(at.cast(), low);
                _mm_storel_epi64(at.add(16).cast(), high);
            }
        }
        steps * 8
    }
}

#[inline(always)]
fn ycbcr_pixel(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    const SHIFT: u32 = 20;
    // stb_image's f2f at 20 bits: 1.402, 0.34414, 0.71414 and 1.772, rounded.
    const RV: i32 = 1_470_104;
    const GU: i32 = 360_857;
    const GV: i32 = 748_830;
    const BU: i32 = 1_858_077;
    let fix = |v: i32| (v >> SHIFT).clamp(0, 255) as u8;
    let y = (i32::from(y) << SHIFT) + (1 << (SHIFT - 1));
    let (cb, cr) = (i32::from(cb) - 128, i32::from(cr) - 128);
    [fix(y + RV * cr), fix(y - GU * cb - GV * cr), fix(y + BU * cb)]
}

#[cfg(test)]
#[test]
fn both_colour_conversions_agree_to_one_level() {
    // Every Y, Cb and Cr value, in an odd-length row so the vector loop leaves a tail.
    let n = 256 * 256 + 13;
    let y: Vec<u8> = (0..n).map(|i| i as u8).collect();
    let cb: Vec<u8> = (0..n).map(|i| (i / 256) as u8).collect();
    let cr: Vec<u8> = (0..n).map(|i| (i * 7 / 3) as u8).collect();
    let (mut fast, mut fixed) = (vec![0u8; n * 3], vec![0u8; n * 3]);
    ycbcr_to_rgb(&y, &cb, &cr, &mut fast);
    ycbcr_to_rgb_fixed(&y, &cb, &cr, &mut fixed);
    let differ = fast.iter().zip(&fixed).filter(|(a, b)| a != b).count();
    assert!(fast.iter().zip(&fixed).all(|(a, b)| a.abs_diff(*b) <= 1));
    assert!(differ * 50 < n * 3, "{differ} values differ");
}

#[cfg(test)]
#[test]
fn the_colour_constants_are_jpeg_decoders() {
    let f = |x: f32| (x * (1 << 20) as f32 + 0.5) as i32;
    assert_eq!([f(1.402), f(0.34414), f(0.71414), f(1.772)], [1_470_104, 360_857, 748_830, 1_858_077]);
}
