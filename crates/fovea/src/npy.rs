//! Writes a 2-D f32 array in NumPy's `.npy` format (version 1.0). The format is a short text header
//! plus raw little-endian data, small enough that a dependency would cost more than it saves.

use std::io::Write;

pub fn write_f32_2d(mut w: impl Write, rows: usize, cols: usize, data: &[f32]) -> std::io::Result<()> {
    assert_eq!(rows * cols, data.len(), "npy shape does not match the data");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + newline must be a multiple of 64.
    let pad = (64 - (10 + header.len() + 1) % 64) % 64;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for v in data {
        w.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_is_aligned_and_data_follows() {
        let mut buf = Vec::new();
        super::write_f32_2d(&mut buf, 2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!(&buf[..6], b"\x93NUMPY");
        let hlen = u16::from_le_bytes([buf[8], buf[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert!(std::str::from_utf8(&buf[10..10 + hlen]).unwrap().contains("'shape': (2, 3)"));
        assert_eq!(buf.len(), 10 + hlen + 24);
        assert_eq!(f32::from_le_bytes(buf[10 + hlen..14 + hlen].try_into().unwrap()), 1.0);
    }
}
