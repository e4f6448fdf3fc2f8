//! The entropy-coded data of a scan as the Huffman decoder reads it: a 0xFF byte is followed by a stuffed zero (dropped)
//! or a marker (RSTn markers dropped, their positions kept; any other ends the scan).

use super::huffman::PADDING;

/// Entropy-coded data with byte stuffing and restart markers removed, and where each restart interval starts.
pub(crate) struct Unstuffed {
    /// The data, then [`PADDING`] zero bytes.
    pub data: Vec<u8>,
    pub len: usize,
    /// Byte offsets in `data` where the second, third, ... restart interval starts.
    pub restarts: Vec<usize>,
}

/// Copies the scan starting at `start` up to its end marker, dropping the stuffed zero after each 0xFF and the
/// RSTn markers (their positions kept).
///
/// 0xFF is rare in entropy-coded data (about one byte in 256), so this is mostly a copy: 16 bytes at a time while
/// they hold no 0xFF. memchr + `extend_from_slice` per run did the same work but paid two calls per 0xFF, most of
/// the time on a 2 MB scan.
pub(crate) fn unstuff(bytes: &[u8], start: usize) -> Unstuffed {
    let src = bytes.get(start..).unwrap_or_default();
    let mut data: Vec<u8> = Vec::with_capacity(src.len() + PADDING);
    let mut restarts = Vec::new();
    // The output never gets ahead of the input, so `data`'s room always holds a 16-byte store at `o` while the
    // input has 16 bytes at `i`.
    let (mut i, mut o) = (0, 0);
    let out = data.spare_capacity_mut().as_mut_ptr().cast::<u8>();
    loop {
        #[cfg(target_arch = "x86_64")]
        while i + 16 <= src.len() {
            use std::arch::x86_64::*;
            // SAFETY: SSE2 is part of x86_64; 16 bytes are read at `i` (checked above) and written at `o <= i` into
            // room for `src.len()` bytes.
            let clean = unsafe {
                let v = _mm_loadu_si128(src.as_ptr().add(i).cast());
                _mm_storeu_si128(out.add(o).cast(), v);
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(-1))) as u32
            };
            if clean != 0 {
                // Up to the 0xFF: those bytes are already in place.
                let k = clean.trailing_zeros() as usize;
                i += k;
                o += k;
                break;
            }
            i += 16;
            o += 16;
        }
        // Byte by byte up to the next 0xFF: what the vector step leaves, and everywhere without it.
        while let Some(&b) = src.get(i).filter(|&&b| b != 0xFF) {
            // SAFETY: o <= i < src.len(), inside the room.
            unsafe { out.add(o).write(b) };
            i += 1;
            o += 1;
            if i + 16 <= src.len() && cfg!(target_arch = "x86_64") {
                break;
            }
        }
        if i >= src.len() {
            break;
        }
        if src[i] != 0xFF {
            continue;
        }
        match src.get(i + 1) {
            Some(0x00) => {
                // SAFETY: as above.
                unsafe { out.add(o).write(0xFF) };
                o += 1;
                i += 2;
            }
            Some(0xD0..=0xD7) => {
                restarts.push(o);
                i += 2;
            }
            Some(0xFF) => i += 1,
            _ => break,
        }
    }
    // SAFETY: the room holds `src.len() + PADDING >= o + PADDING` bytes.
    unsafe { out.add(o).write_bytes(0, PADDING) };
    // SAFETY: the first `o` bytes were written above, and the padding after them.
    unsafe { data.set_len(o + PADDING) };
    Unstuffed { data, len: o, restarts }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule, byte by byte.
    fn plain(bytes: &[u8]) -> (Vec<u8>, Vec<usize>) {
        let (mut out, mut restarts, mut i) = (Vec::new(), Vec::new(), 0);
        while i < bytes.len() {
            match (bytes[i], bytes.get(i + 1)) {
                (0xFF, Some(0x00)) => (out.push(0xFF), i += 2),
                (0xFF, Some(0xD0..=0xD7)) => (restarts.push(out.len()), i += 2),
                (0xFF, Some(0xFF)) => ((), i += 1),
                (0xFF, _) => break,
                (b, _) => (out.push(b), i += 1),
            };
        }
        (out, restarts)
    }

    #[test]
    fn stuffing_and_markers_come_out_as_the_rule_says() {
        // Random bytes where 0xFF is common and is followed by every kind of byte, at every offset from the
        // vector step's boundaries, and scans that end in a marker, in 0xFF or just stop.
        let noise = crate::fixtures::noise(40_000, 4);
        let mut scan = Vec::new();
        for (n, &b) in noise.iter().enumerate() {
            scan.push(if b % 7 == 0 { 0xFF } else { b });
            if b % 7 == 0 {
                scan.push([0x00, 0xD3, 0xFF, 0x00, 0x00][n % 5]);
            }
        }
        for end in [&[0xFF, 0xD9][..], &[0xFF], &[]] {
            for cut in (0..300).chain([scan.len() - 1, scan.len()]) {
                let mut bytes = vec![1, 2, 3];
                bytes.extend_from_slice(&scan[..cut]);
                bytes.extend_from_slice(end);
                bytes.extend_from_slice(&[5, 6, 7]);
                let got = unstuff(&bytes, 3);
                let (want, restarts) = plain(&bytes[3..]);
                assert_eq!((&got.data[..got.len], &got.restarts), (&want[..], &restarts), "{cut} then {end:?}");
                assert_eq!(got.data.len(), got.len + PADDING);
                assert!(got.data[got.len..].iter().all(|&b| b == 0));
            }
        }
        assert_eq!(unstuff(b"ab", 5).len, 0);
    }
}
