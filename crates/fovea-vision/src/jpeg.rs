//! A tiny JPEG marker walker, used only to tell a complete file from a truncated one.
//!
//! Why this exists: `image` runs zune-jpeg in non-strict mode, which happily decodes a cut-off
//! JPEG and fills the missing rows with grey. For a classifier that is worse than an error: the
//! user would get a confident answer about half a picture. So before decoding we walk the marker
//! segments up to the first SOS and require an EOI marker (`FF D9`) somewhere after it. Inside
//! entropy-coded data every `FF` is followed by `00` (byte stuffing) or an RST marker, so `FF D9`
//! cannot appear there by accident.

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
            return if scan.windows(2).any(|w| w == [0xFF, EOI]) { JpegTail::Complete } else { JpegTail::Truncated };
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
