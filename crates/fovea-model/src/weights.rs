//! Named tensors in memory and their safetensors form, the one weight format fovea keeps on disk.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{ModelError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    I64,
    I32,
    U8,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 => 2,
            DType::U8 => 1,
        }
    }
    fn to_safetensors(self) -> Dtype {
        match self {
            DType::F32 => Dtype::F32,
            DType::F64 => Dtype::F64,
            DType::F16 => Dtype::F16,
            DType::I64 => Dtype::I64,
            DType::I32 => Dtype::I32,
            DType::U8 => Dtype::U8,
        }
    }
    fn from_safetensors(d: Dtype) -> Option<Self> {
        Some(match d {
            Dtype::F32 => DType::F32,
            Dtype::F64 => DType::F64,
            Dtype::F16 => DType::F16,
            Dtype::I64 => DType::I64,
            Dtype::I32 => DType::I32,
            Dtype::U8 => DType::U8,
            _ => return None,
        })
    }
}

/// A contiguous, row-major tensor with little-endian raw bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NamedTensor {
    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        NamedTensor { dtype: DType::F32, shape, data: values.iter().flat_map(|v| v.to_le_bytes()).collect() }
    }

    /// The values as f32 (f64 and f16 are converted; integer tensors are refused).
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        let d = &self.data;
        Some(match self.dtype {
            DType::F32 => d.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
            DType::F64 => d.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect(),
            DType::F16 => d.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            _ => return None,
        })
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal half: renormalise into a normal single.
            let shift = f.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((f << shift) & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Float weights by name, the form the networks are built from.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Weights {
    pub fn from_named(named: &[(String, NamedTensor)]) -> Self {
        let tensors =
            named.iter().filter_map(|(name, t)| t.to_f32().map(|v| (name.clone(), (t.shape.clone(), v)))).collect();
        Weights { tensors }
    }

    /// Looks a tensor up and checks its shape, so a wrong file fails with a name rather than a panic.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (s, v) = self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor(name.to_owned()))?;
        if s != shape {
            return Err(ModelError::ShapeMismatch {
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: s.clone(),
            });
        }
        Ok(v)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|(s, _)| s.as_slice())
    }

    pub fn load_safetensors(path: &Path) -> Result<Self> {
        Ok(Self::from_named(&read_safetensors(path)?))
    }
}

pub fn write_safetensors(
    path: &Path,
    tensors: &[(String, NamedTensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let views = tensors
        .iter()
        .map(|(n, t)| Ok((n.as_str(), TensorView::new(t.dtype.to_safetensors(), t.shape.clone(), &t.data)?)))
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))?;
    // Write beside the target and rename, so a crash never leaves a half-written weight file behind.
    let tmp = path.with_extension(format!("partial.{}.{:?}", std::process::id(), std::thread::current().id()));
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}

pub fn read_safetensors(path: &Path) -> Result<Vec<(String, NamedTensor)>> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let dtype = DType::from_safetensors(view.dtype())
            .ok_or_else(|| ModelError::Checkpoint(format!("tensor {name} has unsupported dtype {:?}", view.dtype())))?;
        out.push((name, NamedTensor { dtype, shape: view.shape().to_vec(), data: view.data().to_vec() }));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn safetensors_round_trip_keeps_names_shapes_and_values() {
        let dir = std::env::temp_dir().join(format!("fovea-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("w.safetensors");
        let t = vec![("a.weight".to_string(), NamedTensor::from_f32(vec![2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]))];
        write_safetensors(&path, &t, HashMap::new()).unwrap();
        let w = Weights::load_safetensors(&path).unwrap();
        assert_eq!(w.get("a.weight", &[2, 3]).unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        assert!(matches!(w.get("a.weight", &[3, 2]), Err(ModelError::ShapeMismatch { .. })));
        assert!(matches!(w.get("b", &[1]), Err(ModelError::MissingTensor(_))));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
