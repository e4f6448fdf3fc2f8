//! The headers of the one kind of JPEG the fast reduced decoder takes: baseline or extended sequential, Huffman
//! coded, 8-bit, one interleaved scan, grey or YCbCr with luma sampled at most 2x2 and chroma at 1x1 relative to it.
//! That is what cameras, phones and every common encoder write. Anything else (progressive, arithmetic, 12-bit,
//! CMYK, Adobe RGB transforms, odd sampling) is `None`, and jpeg-decoder takes the file.

/// A DHT table as the file states it: code counts per length and the symbols. Lookup tables are built from it only
/// once a decode is certain (`scan`), so a look at the header stays cheap.
#[derive(Debug, Clone)]
pub(crate) struct HuffmanSpec {
    pub counts: [u8; 16],
    pub symbols: Vec<u8>,
}

/// One colour component of the frame.
#[derive(Debug, Clone)]
pub(crate) struct Component {
    /// Sampling factors (blocks per MCU across and down).
    pub h: usize,
    pub v: usize,
    /// Quantisation table, in zigzag order.
    pub quant: [u16; 64],
    pub dc: usize,
    pub ac: usize,
}

/// What the scan needs: geometry, tables and where the entropy-coded data starts.
#[derive(Debug)]
pub(crate) struct Frame {
    pub width: usize,
    pub height: usize,
    pub components: Vec<Component>,
    /// DC tables then AC tables by id (0..4 each); `None` where the file defines none.
    pub dc_tables: [Option<HuffmanSpec>; 4],
    pub ac_tables: [Option<HuffmanSpec>; 4],
    /// MCUs between restart markers; 0 when the file has none.
    pub restart_interval: usize,
    /// Offset of the first byte after the SOS header.
    pub scan_start: usize,
    /// Where the payload of the last Exif APP1 segment lies (after `Exif\0\0`), as zune-jpeg keeps it.
    pub exif: Option<std::ops::Range<usize>>,
}

impl Frame {
    pub fn h_max(&self) -> usize {
        self.components.iter().map(|c| c.h).max().unwrap_or(1)
    }

    pub fn v_max(&self) -> usize {
        self.components.iter().map(|c| c.v).max().unwrap_or(1)
    }

    /// MCUs across and down. A single-component scan is not interleaved: its MCU is one block whatever the
    /// sampling factors say.
    pub fn mcus(&self) -> (usize, usize) {
        let (hm, vm) = (8 * self.h_max(), 8 * self.v_max());
        (self.width.div_ceil(hm), self.height.div_ceil(vm))
    }

    /// For each block of an MCU, in coding order, the component it belongs to and its column and row in the MCU.
    pub fn mcu_layout(&self) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (c, comp) in self.components.iter().enumerate() {
            for y in 0..comp.v {
                for x in 0..comp.h {
                    out.push((c, x, y));
                }
            }
        }
        out
    }
}

/// A component as the SOF header declares it: id, sampling factors across and down, quantisation table id.
type FrameComponent = (u8, usize, usize, usize);

/// Parses the headers up to the first SOS, or `None` for anything outside the supported kind.
pub(crate) fn parse(bytes: &[u8]) -> Option<Frame> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut quant = [None::<[u16; 64]>; 4];
    let mut dc_tables: [Option<HuffmanSpec>; 4] = Default::default();
    let mut ac_tables: [Option<HuffmanSpec>; 4] = Default::default();
    let mut restart_interval = 0;
    let mut exif = None;
    let mut sof: Option<(usize, usize, Vec<FrameComponent>)> = None;
    let mut pos = 2;
    loop {
        while *bytes.get(pos)? == 0xFF && *bytes.get(pos + 1)? == 0xFF {
            pos += 1;
        }
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(pos + 1)?;
        // The length counts its own two bytes.
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos + 2)?, *bytes.get(pos + 3)?]));
        if len < 2 {
            return None;
        }
        let body = bytes.get(pos + 4..pos + 2 + len)?;
        match marker {
            // Baseline and extended sequential, Huffman.
            0xC0 | 0xC1 => {
                let (precision, height, width) = (body.first()?, be16(body, 1)?, be16(body, 3)?);
                let n = usize::from(*body.get(5)?);
                if *precision != 8 || width == 0 || height == 0 || !(n == 1 || n == 3) || body.len() < 6 + 3 * n {
                    return None;
                }
                let comps = (0..n)
                    .map(|i| {
                        let c = &body[6 + 3 * i..9 + 3 * i];
                        (c[0], usize::from(c[1] >> 4), usize::from(c[1] & 15), usize::from(c[2]))
                    })
                    .collect();
                sof = Some((width, height, comps));
            }
            // Progressive, lossless, hierarchical and arithmetic-coded frames.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return None,
            0xC4 => parse_dht(body, &mut dc_tables, &mut ac_tables)?,
            0xDB => parse_dqt(body, &mut quant)?,
            0xDD => restart_interval = usize::from(be16(body, 0)? as u16),
            // Adobe's APP14 may declare RGB or YCCK data; jpeg-decoder's colour handling decides those.
            0xEE if body.starts_with(b"Adobe") => return None,
            0xE1 if body.starts_with(b"Exif\0\0") => exif = Some(pos + 10..pos + 2 + len),
            0xDA => {
                let (width, height, comps) = sof?;
                let components = scan_components(body, &comps, &quant)?;
                let luma = &components[0];
                let sampled_ok = match components.len() {
                    1 => true,
                    _ => {
                        (1..=2).contains(&luma.h)
                            && (1..=2).contains(&luma.v)
                            && components[1..].iter().all(|c| c.h == 1 && c.v == 1)
                    }
                };
                // Component ids R, G, B mean RGB data to jpeg-decoder; leave those to it.
                let rgb_ids = comps.len() == 3 && comps.iter().map(|c| c.0).eq(*b"RGB");
                if !sampled_ok || rgb_ids {
                    return None;
                }
                let mut components = components;
                if components.len() == 1 {
                    components[0].h = 1;
                    components[0].v = 1;
                }
                let used = |id: usize, t: &[Option<HuffmanSpec>; 4]| t.get(id).is_some_and(Option::is_some);
                if !components.iter().all(|c| used(c.dc, &dc_tables) && used(c.ac, &ac_tables)) {
                    return None;
                }
                return Some(Frame {
                    width,
                    height,
                    components,
                    dc_tables,
                    ac_tables,
                    restart_interval,
                    scan_start: pos + 2 + len,
                    exif,
                });
            }
            0xD9 => return None,
            _ => {}
        }
        pos += 2 + len;
    }
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?])))
}

/// The SOS header: it must name every frame component, in frame order, with a full spectral range (baseline).
fn scan_components(body: &[u8], frame: &[FrameComponent], quant: &[Option<[u16; 64]>; 4]) -> Option<Vec<Component>> {
    let n = usize::from(*body.first()?);
    if n != frame.len() || body.len() < 1 + 2 * n + 3 {
        return None;
    }
    let (ss, se, a) = (body[1 + 2 * n], body[2 + 2 * n], body[3 + 2 * n]);
    if ss != 0 || se != 63 || a != 0 {
        return None;
    }
    frame
        .iter()
        .enumerate()
        .map(|(i, &(id, h, v, tq))| {
            let (sid, tables) = (body[1 + 2 * i], body[2 + 2 * i]);
            (sid == id && h > 0 && v > 0).then_some(())?;
            Some(Component {
                h,
                v,
                quant: (*quant.get(tq)?)?,
                dc: usize::from(tables >> 4),
                ac: usize::from(tables & 15),
            })
        })
        .collect()
}

fn parse_dht(mut body: &[u8], dc: &mut [Option<HuffmanSpec>; 4], ac: &mut [Option<HuffmanSpec>; 4]) -> Option<()> {
    while !body.is_empty() {
        let (class, id) = (body[0] >> 4, usize::from(body[0] & 15));
        let counts: [u8; 16] = body.get(1..17)?.try_into().ok()?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = body.get(17..17 + total)?;
        let table = HuffmanSpec { counts, symbols: symbols.to_vec() };
        match class {
            0 => *dc.get_mut(id)? = Some(table),
            1 => *ac.get_mut(id)? = Some(table),
            _ => return None,
        }
        body = &body[17 + total..];
    }
    Some(())
}

fn parse_dqt(mut body: &[u8], quant: &mut [Option<[u16; 64]>; 4]) -> Option<()> {
    while !body.is_empty() {
        let (precision, id) = (body[0] >> 4, usize::from(body[0] & 15));
        let mut table = [0u16; 64];
        let len = match precision {
            0 => {
                for (t, &b) in table.iter_mut().zip(body.get(1..65)?) {
                    *t = u16::from(b);
                }
                65
            }
            1 => {
                for (i, t) in table.iter_mut().enumerate() {
                    *t = be16(body, 1 + 2 * i)? as u16;
                }
                129
            }
            _ => return None,
        };
        *quant.get_mut(id)? = Some(table);
        body = &body[len..];
    }
    Some(())
}
