//! Serialisable head state. JSON (serde) stores f64 exactly thanks to serde_json's `float_roundtrip`;
//! `to_bytes` is a compact form: a small JSON header followed by the big f64 arrays as little-endian bits.

use serde::{Deserialize, Serialize};

use crate::calibrate::Calibration;
use crate::classes::ClassTable;
use crate::error::{Error, Result};
use crate::head::HeadKind;
use crate::ncm::NcmConfig;
use crate::slda::SldaConfig;

const MAGIC: &[u8; 4] = b"FVLH";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SldaSnapshot {
    pub config: SldaConfig,
    pub dim: usize,
    pub classes: ClassTable,
    pub counts: Vec<u64>,
    pub sums: Vec<f64>,
    /// Packed upper triangle of the within-class scatter.
    pub scatter: Vec<f64>,
    pub since_refresh: u64,
    pub calibration: Calibration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NcmSnapshot {
    pub config: NcmConfig,
    pub dim: usize,
    pub classes: ClassTable,
    pub counts: Vec<u64>,
    pub sums: Vec<f64>,
    pub within_ss: f64,
    pub calibration: Calibration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HeadSnapshot {
    Slda(SldaSnapshot),
    Ncm(NcmSnapshot),
}

impl HeadSnapshot {
    pub fn kind(&self) -> HeadKind {
        match self {
            HeadSnapshot::Slda(_) => HeadKind::Slda,
            HeadSnapshot::Ncm(s) => match s.config.metric {
                crate::ncm::Metric::Euclidean => HeadKind::Ncm,
                crate::ncm::Metric::Cosine => HeadKind::NcmCosine,
            },
        }
    }

    pub fn classes(&self) -> &ClassTable {
        match self {
            HeadSnapshot::Slda(s) => &s.classes,
            HeadSnapshot::Ncm(s) => &s.classes,
        }
    }

    pub fn to_json(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Compact binary: `FVLH`, format u32, header length u64, JSON header without the big arrays, then
    /// each array as a u64 length and raw f64 bits (exact).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut header = self.clone();
        let arrays: Vec<&[f64]> = match self {
            HeadSnapshot::Slda(s) => vec![&s.sums, &s.scatter],
            HeadSnapshot::Ncm(s) => vec![&s.sums],
        };
        match &mut header {
            HeadSnapshot::Slda(s) => {
                s.sums = Vec::new();
                s.scatter = Vec::new();
            }
            HeadSnapshot::Ncm(s) => s.sums = Vec::new(),
        }
        let json = serde_json::to_vec(&header)?;
        let floats: usize = arrays.iter().map(|a| a.len()).sum();
        let mut out = Vec::with_capacity(16 + json.len() + 8 * (floats + arrays.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&(json.len() as u64).to_le_bytes());
        out.extend_from_slice(&json);
        for a in arrays {
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for v in a {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, pos: 0 };
        if r.take(4)? != MAGIC {
            return Err(Error::Snapshot("bad magic".into()));
        }
        let format = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
        if format != FORMAT {
            return Err(Error::Snapshot(format!("unsupported format {format}")));
        }
        let len = r.u64()? as usize;
        let mut snap: HeadSnapshot = serde_json::from_slice(r.take(len)?)?;
        match &mut snap {
            HeadSnapshot::Slda(s) => {
                s.sums = r.f64s()?;
                s.scatter = r.f64s()?;
            }
            HeadSnapshot::Ncm(s) => s.sums = r.f64s()?,
        }
        if r.pos != bytes.len() {
            return Err(Error::Snapshot("trailing bytes".into()));
        }
        Ok(snap)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| Error::Snapshot("truncated".into()))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn f64s(&mut self) -> Result<Vec<f64>> {
        let n = self.u64()? as usize;
        let raw = self.take(n.checked_mul(8).ok_or_else(|| Error::Snapshot("size overflow".into()))?)?;
        Ok(raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
}
