//! Reader for PyTorch's legacy checkpoint layout (torch < 1.6, `_use_new_zipfile_serialization=False`).
//!
//! The file is: a magic-number pickle, a protocol-version pickle, a sys-info pickle, the pickled state dict
//! (tensors point at storages through persistent ids), a pickled list of storage keys, then every storage in
//! that order as an 8-byte little-endian element count followed by its raw little-endian bytes.

use std::collections::HashMap;

use crate::pickle::{self, TensorRef, Value};
use crate::weights::{DType, NamedTensor};
use crate::{ModelError, Result};

/// 0x1950a86a20f9469cfc6c, the number torch writes first, as little-endian bytes.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Checkpoint(msg.into())
}

fn dtype_of(storage_type: &str) -> Result<DType> {
    Ok(match storage_type {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ByteStorage" => DType::U8,
        other => return Err(bad(format!("unsupported storage type {other}"))),
    })
}

/// Parses a legacy checkpoint into named tensors, in the order the state dict lists them.
pub fn read_legacy_checkpoint(bytes: &[u8]) -> Result<Vec<(String, NamedTensor)>> {
    if bytes.starts_with(b"PK") {
        return Err(bad("this is a zip-format (torch >= 1.6) checkpoint; only the legacy format is read here"));
    }
    let mut pos = 0;
    match pickle::load(bytes, &mut pos)? {
        Value::Bytes(b) if b == MAGIC => {}
        _ => return Err(bad("not a legacy PyTorch checkpoint (magic number missing)")),
    }
    if pickle::load(bytes, &mut pos)?.as_int() != Some(PROTOCOL_VERSION) {
        return Err(bad("unsupported legacy protocol version"));
    }
    if let Value::Dict(info) = pickle::load(bytes, &mut pos)? {
        let little = info.borrow().iter().find(|(k, _)| k.as_str() == Some("little_endian")).map(|(_, v)| v.clone());
        if matches!(little, Some(Value::Bool(false))) {
            return Err(bad("big-endian checkpoints are not supported"));
        }
    }
    let state = pickle::load(bytes, &mut pos)?;
    let keys = match pickle::load(bytes, &mut pos)? {
        Value::List(l) => l.borrow().iter().map(|k| k.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>(),
        _ => None,
    }
    .ok_or_else(|| bad("storage key list is malformed"))?;

    let tensors = state_entries(state)?;
    let mut storage_types: HashMap<&str, DType> = HashMap::new();
    for (_, t) in &tensors {
        storage_types.insert(&t.storage.key, dtype_of(&t.storage.dtype)?);
    }
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in &keys {
        let count_bytes = bytes.get(pos..pos + 8).ok_or_else(|| bad(format!("storage {key} is truncated")))?;
        let count = u64::from_le_bytes(count_bytes.try_into().unwrap());
        pos += 8;
        let dtype = storage_types.get(key.as_str()).copied().unwrap_or(DType::U8);
        let len = count
            .checked_mul(dtype.size() as u64)
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| pos + l <= bytes.len())
            .ok_or_else(|| bad(format!("storage {key} is truncated")))?;
        storages.insert(key.clone(), &bytes[pos..pos + len]);
        pos += len;
    }
    tensors
        .into_iter()
        .map(|(name, t)| {
            let raw = storages.get(&t.storage.key).ok_or_else(|| bad(format!("storage of {name} is missing")))?;
            Ok((name, gather(&t, raw, dtype_of(&t.storage.dtype)?)?))
        })
        .collect()
}

/// The state dict may be bare or wrapped as `{"state_dict": {...}}`.
fn state_entries(state: Value) -> Result<Vec<(String, TensorRef)>> {
    let Value::Dict(d) = state else { return Err(bad("the checkpoint does not hold a dict")) };
    let entries = d.borrow().clone();
    if let Some((_, inner)) =
        entries.iter().find(|(k, v)| k.as_str() == Some("state_dict") && matches!(v, Value::Dict(_)))
    {
        return state_entries(inner.clone());
    }
    let mut out = Vec::new();
    for (k, v) in entries {
        if let (Some(name), Value::Tensor(t)) = (k.as_str(), v) {
            out.push((name.to_owned(), t));
        }
    }
    if out.is_empty() {
        return Err(bad("the checkpoint holds no tensors"));
    }
    Ok(out)
}

/// Copies a possibly strided view out of its storage into a contiguous row-major tensor.
fn gather(t: &TensorRef, raw: &[u8], dtype: DType) -> Result<NamedTensor> {
    let elem = dtype.size();
    let numel: usize = t.shape.iter().product();
    if t.stride.len() != t.shape.len() {
        return Err(bad("tensor stride and shape disagree"));
    }
    let max_index =
        t.offset as usize + t.shape.iter().zip(&t.stride).map(|(&d, &s)| d.saturating_sub(1) * s).sum::<usize>();
    if numel > 0 && (max_index + 1) * elem > raw.len() {
        return Err(bad("tensor reaches past the end of its storage"));
    }
    let mut data = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..numel {
        let at = t.offset as usize + index.iter().zip(&t.stride).map(|(i, s)| i * s).sum::<usize>();
        data.extend_from_slice(&raw[at * elem..(at + 1) * elem]);
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(NamedTensor { dtype, shape: t.shape.clone(), data })
}
