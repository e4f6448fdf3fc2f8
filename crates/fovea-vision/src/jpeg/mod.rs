//! JPEG specifics: a marker walk that tells a complete file from a truncated one, and decoding at a reduced size.
//!
//! **Reduced-size decoding.** A 12-megapixel photo becomes a 224-pixel input, so decoding every pixel is mostly
//! wasted. A JPEG stores 8x8 blocks of DCT coefficients; an inverse DCT over only the lowest 4x4, 2x2 or 1x1 of them
//! yields the block at 1/2, 1/4 or 1/8 size directly (libjpeg-turbo's scaling, Pillow's `draft` mode), skipping most
//! of the IDCT, upsampling and colour conversion. zune-jpeg (what `image` decodes with) cannot do this, so this path
//! uses this module's own decoder ([`reduced`]) for the common kind of file and jpeg-decoder's `scale` for the rest. Which scale: see [`scale_eighths`].
//!
//! **Parallel entropy decoding.** See `scan`: what is left of a reduced decode is mostly reading the Huffman codes,
//! and that part runs on every core, speculatively when the file has no restart markers.
//!
//! **Truncation.**
//! Why this exists: `image` runs zune-jpeg in non-strict mode, which happily decodes a cut-off
//! JPEG and fills the missing rows with grey. For a classifier that is worse than an error: the
//! user would get a confident answer about half a picture. So before decoding we walk the marker
//! segments up to the first SOS and require an EOI marker (`FF D9`) somewhere after it. Inside
//! entropy-coded data every `FF` is followed by `00` (byte stuffing) or an RST marker, so `FF D9`
//! cannot appear there by accident.

mod header;
mod huffman;
mod reduce;
mod scan;
#[cfg(test)]
mod tests_fast;
mod unstuff;

/// The fewest eighths (1, 2, 4 or 8) of a `width x height` JPEG to decode so that the shorter side keeps at least
/// `min_side` pixels; 8 (full size) when no reduction keeps that many.
pub(crate) fn scale_eighths(width: u32, height: u32, min_side: u32) -> u32 {
    let shorter = u64::from(width.min(height));
    [1, 2, 4].into_iter().find(|&s| (shorter * u64::from(s)).div_ceil(8) >= u64::from(min_side)).unwrap_or(8)
}

/// A baseline JPEG (see `header`) decoded straight from its bytes at the fewest eighths of its size that keep the
/// shorter side at least `min_side`, with its stored size and EXIF orientation; `None` when this module's decoder
/// does not take the file, `fits` refuses its size, no reduction applies, or the data is invalid (the caller then
/// goes the usual way, which reports errors in the usual terms). Nothing else reads the file first: `image`'s
/// decoder would copy it and parse its headers twice.
pub(crate) fn reduced(
    bytes: &[u8],
    min_side: u32,
    max_alloc: usize,
    fits: impl FnOnce(u32, u32) -> bool,
) -> Option<(image::RgbImage, (u32, u32), Option<image::metadata::Orientation>)> {
    let frame = header::parse(bytes)?;
    let (width, height) = (u32::try_from(frame.width).ok()?, u32::try_from(frame.height).ok()?);
    if !fits(width, height) {
        return None;
    }
    let eighths = scale_eighths(width, height, min_side);
    if eighths == 8 {
        return None;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS);
    let img = fast_scaled(bytes, &frame, eighths as usize, max_alloc, threads)?;
    let orientation = frame.exif.and_then(|r| image::metadata::Orientation::from_exif_chunk(bytes.get(r)?));
    Some((img, (width, height), orientation))
}

/// More threads than this gain little on one photo and take cores from other requests.
const MAX_THREADS: usize = 8;

/// This module's decoder: `None` when the file is outside what it takes, too large for `max_alloc`, or invalid.
pub(crate) fn fast_scaled(
    bytes: &[u8],
    frame: &header::Frame,
    k: usize,
    max_alloc: usize,
    threads: usize,
) -> Option<image::RgbImage> {
    let per_block = reduce::coefficients_needed(k);
    let (mx, my) = frame.mcus();
    let blocks = mx * my * frame.mcu_layout().len();
    let (w, h) = ((frame.width * k).div_ceil(8), (frame.height * k).div_ceil(8));
    // Unstuffed data, coefficients, component planes (at most three times the image's pixels with padding), RGB.
    let need = bytes.len() + blocks * per_block * 2 + blocks * k * k + w * h * 3;
    if need > max_alloc {
        return None;
    }
    let data = unstuff::unstuff(bytes, frame.scan_start);
    let coefficients = scan::decode(frame, &data, per_block, threads)?;
    let rgb = reduce::rgb(frame, &coefficients, per_block, k, threads);
    image::RgbImage::from_raw(u32::try_from(w).ok()?, u32::try_from(h).ok()?, rgb)
}

/// Pixels of a `width x height` JPEG decoded at `eighths` / 8 of its size by jpeg-decoder (as stored, before EXIF
/// orientation), for the kinds [`reduced`] leaves; `None` for CMYK and 16-bit files (rare, and the main decoder's
/// colour handling is the one tested) or any error (the main decoder then decodes the file and reports the error
/// in the usual terms).
pub(crate) fn decode_scaled(
    bytes: &[u8],
    width: u32,
    height: u32,
    eighths: u32,
    max_alloc: usize,
) -> Option<image::RgbImage> {
    let want = |l: u32| u16::try_from((u64::from(l) * u64::from(eighths)).div_ceil(8)).ok();
    let (w, h) = (want(width)?, want(height)?);
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(max_alloc);
    // Asking for exactly the scaled size selects exactly this scale (the decoder takes the smallest that reaches it).
    if decoder.scale(w, h).ok()? != (w, h) {
        return None;
    }
    let format = decoder.info()?.pixel_format;
    let pixels = decoder.decode().ok()?;
    let rgb = match format {
        jpeg_decoder::PixelFormat::RGB24 => pixels,
        jpeg_decoder::PixelFormat::L8 => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => return None,
    };
    image::RgbImage::from_raw(u32::from(w), u32::from(h), rgb)
}

/// What the marker walk concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JpegTail {
    /// An EOI marker follows the first scan.
    Complete,
    /// The data ends inside a header segment, or no EOI follows the scan data.
    Truncated,
    /// The marker structure is not what we expected; let the real decoder judge.
    Unknown,
}

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;

/// Walks the segments of `bytes` (which must start with SOI) and looks for EOI after the first SOS.
pub(crate) fn tail(bytes: &[u8]) -> JpegTail {
    if bytes.len() < 4 || bytes[0] != 0xFF || bytes[1] != SOI {
        return JpegTail::Unknown;
    }
    let mut pos = 2;
    loop {
        // Each segment starts with one or more 0xFF fill bytes, then the marker byte.
        if pos >= bytes.len() {
            return JpegTail::Truncated;
        }
        if bytes[pos] != 0xFF {
            return JpegTail::Unknown;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let Some(&marker) = bytes.get(pos) else {
            return JpegTail::Truncated;
        };
        pos += 1;
        match marker {
            // Markers without a length field (TEM, RSTn, a stray SOI).
            0x01 | 0xD0..=0xD8 => continue,
            // EOI before any scan: a header-only file; the decoder reports it precisely.
            EOI => return JpegTail::Unknown,
            0x00 => return JpegTail::Unknown,
            _ => {}
        }
        let Some(len) = bytes.get(pos..pos + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]]))) else {
            return JpegTail::Truncated;
        };
        if len < 2 {
            return JpegTail::Unknown;
        }
        let end = pos + len;
        if end > bytes.len() {
            return JpegTail::Truncated;
        }
        if marker == SOS {
            let scan = &bytes[end..];
            // From the end: that is where a complete file has it, so the search costs nothing then.
            let complete = memchr::memmem::rfind(scan, &[0xFF, EOI]).is_some();
            return if complete { JpegTail::Complete } else { JpegTail::Truncated };
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_keeps_the_shorter_side_at_least_min_side() {
        // 12 MP 4:3: a quarter keeps 750 rows (>= 512), an eighth would keep 375.
        assert_eq!(scale_eighths(4000, 3000, 512), 2);
        assert_eq!(scale_eighths(3000, 4000, 512), 2);
        assert_eq!(scale_eighths(8000, 6000, 512), 1); // 750 at an eighth
        assert_eq!(scale_eighths(2048, 1536, 512), 4); // 768 at half; a quarter (384) is too few
        assert_eq!(scale_eighths(1024, 1024, 512), 4); // exactly 512 at half
        assert_eq!(scale_eighths(1023, 2000, 512), 4); // 511.5 rows at half, stored as 512
        assert_eq!(scale_eighths(1022, 2000, 512), 8); // 511 at half: keep full size
        assert_eq!(scale_eighths(640, 480, 512), 8);
        assert_eq!(scale_eighths(4097, 4097, 512), 1); // 513 (4097 / 8 rounded up)
    }

    #[test]
    fn minimal_structures() {
        // SOI, APP0 (len 4), SOS (len 2), data, EOI.
        let ok = [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 1, 2, 0xFF, 0xDA, 0x00, 0x02, 5, 0xFF, 0x00, 6, 0xFF, 0xD9];
        assert_eq!(tail(&ok), JpegTail::Complete);
        assert_eq!(tail(&ok[..ok.len() - 2]), JpegTail::Truncated);
        // Cut inside the APP0 length.
        assert_eq!(tail(&ok[..5]), JpegTail::Truncated);
        // Cut inside the APP0 payload.
        assert_eq!(tail(&ok[..7]), JpegTail::Truncated);
        assert_eq!(tail(b"not a jpeg"), JpegTail::Unknown);
        // Garbage where a marker should be.
        assert_eq!(tail(&[0xFF, 0xD8, 0x12, 0x34, 0x56]), JpegTail::Unknown);
    }
}
