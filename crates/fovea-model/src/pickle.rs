//! A small pickle virtual machine: just enough of protocol 2 to read PyTorch's legacy (pre-zip) checkpoints.
//!
//! Common Rust pickle readers only handle the zip container of torch >= 1.6, and the weights we ship arrive in
//! the older layout, so we interpret the opcodes ourselves. Globals are never imported or executed: a `GLOBAL`
//! becomes a name, and `REDUCE` on a name we know (tensor rebuild, `OrderedDict`) becomes data.

use std::cell::RefCell;
use std::rc::Rc;

use crate::{ModelError, Result};

/// A storage reference as written by `torch.save` in its persistent ids.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: String,
    pub numel: u64,
}

/// A tensor view into a storage, as rebuilt by `torch._utils._rebuild_tensor_v2`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(String, String),
    Storage(StorageRef),
    Tensor(TensorRef),
    /// Any other `callable(*args)` we do not interpret; kept so unknown metadata does not stop a load.
    Object(Box<Value>, Box<Value>),
    Mark,
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    fn items(&self) -> Option<Vec<Value>> {
        match self {
            Value::Tuple(v) => Some(v.clone()),
            Value::List(v) => Some(v.borrow().clone()),
            _ => None,
        }
    }
}

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Pickle(msg.into())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| bad(format!("unexpected end of data at byte {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.buf[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad("unterminated text line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| bad("invalid UTF-8 string"))
    }
}

/// Reads one pickle starting at `*pos`, advancing `*pos` past its STOP opcode.
pub fn load(buf: &[u8], pos: &mut usize) -> Result<Value> {
    let mut r = Reader { buf, pos: *pos };
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: Vec<Option<Value>> = Vec::new();
    let pop = |stack: &mut Vec<Value>| stack.pop().ok_or_else(|| bad("stack underflow"));
    let pop_mark = |stack: &mut Vec<Value>| -> Result<Vec<Value>> {
        let at = stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| bad("missing MARK"))?;
        let items = stack.split_off(at + 1);
        stack.pop();
        Ok(items)
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO: the version does not change how we read
            }
            b'.' => break,
            b'(' => stack.push(Value::Mark),
            b'0' => {
                pop(&mut stack)?;
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => {
                let top = stack.last().ok_or_else(|| bad("DUP on empty stack"))?.clone();
                stack.push(top);
            }
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => stack.push(Value::Int(r.u32()? as i32 as i64)),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(r.u16()? as i64)),
            0x8a => {
                let n = r.u8()? as usize;
                let bytes = r.take(n)?;
                stack.push(long_from_le(bytes));
            }
            b'G' => {
                let b: [u8; 8] = r.take(8)?.try_into().unwrap();
                stack.push(Value::Float(f64::from_be_bytes(b)));
            }
            b'X' => {
                let n = r.u32()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            0x8c => {
                let n = r.u8()? as usize;
                stack.push(Value::Str(r.utf8(n)?));
            }
            b'T' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'U' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()));
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(module, name));
            }
            b')' => stack.push(Value::Tuple(vec![])),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err(bad("stack underflow in TUPLEn"));
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b']' => stack.push(Value::List(Rc::new(RefCell::new(vec![])))),
            b'}' => stack.push(Value::Dict(Rc::new(RefCell::new(vec![])))),
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last() {
                    Some(Value::List(l)) => l.borrow_mut().push(v),
                    _ => return Err(bad("APPEND on a non-list")),
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                match stack.last() {
                    Some(Value::List(l)) => l.borrow_mut().extend(items),
                    _ => return Err(bad("APPENDS on a non-list")),
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    vec![k, v]
                } else {
                    pop_mark(&mut stack)?
                };
                if items.len() % 2 != 0 {
                    return Err(bad("SETITEMS with an odd number of items"));
                }
                match stack.last() {
                    Some(Value::Dict(d)) => {
                        let mut d = d.borrow_mut();
                        let mut it = items.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            d.push((k, v));
                        }
                    }
                    _ => return Err(bad("SETITEM on a non-dict")),
                }
            }
            b'q' | b'r' => {
                let idx = if op == b'q' { r.u8()? as usize } else { r.u32()? as usize };
                let top = stack.last().ok_or_else(|| bad("PUT on empty stack"))?.clone();
                if memo.len() <= idx {
                    memo.resize(idx + 1, None);
                }
                memo[idx] = Some(top);
            }
            b'h' | b'j' => {
                let idx = if op == b'h' { r.u8()? as usize } else { r.u32()? as usize };
                let v = memo.get(idx).cloned().flatten().ok_or_else(|| bad(format!("GET of unset memo {idx}")))?;
                stack.push(v);
            }
            b'Q' => {
                let pid = pop(&mut stack)?;
                stack.push(persistent_load(pid)?);
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let func = pop(&mut stack)?;
                stack.push(reduce(func, args)?);
            }
            b'b' => {
                // BUILD sets object state (tensor hooks, OrderedDict metadata); nothing we need.
                pop(&mut stack)?;
            }
            other => return Err(bad(format!("unsupported pickle opcode 0x{other:02x} at byte {}", r.pos - 1))),
        }
    }
    *pos = r.pos;
    stack.pop().ok_or_else(|| bad("empty pickle"))
}

fn long_from_le(bytes: &[u8]) -> Value {
    if bytes.len() <= 8 {
        let mut b = [0u8; 8];
        b[..bytes.len()].copy_from_slice(bytes);
        if bytes.last().is_some_and(|&x| x & 0x80 != 0) {
            b[bytes.len()..].fill(0xff);
        }
        Value::Int(i64::from_le_bytes(b))
    } else {
        // Only the legacy magic number is this long; keep its bytes for comparison.
        Value::Bytes(bytes.to_vec())
    }
}

fn persistent_load(pid: Value) -> Result<Value> {
    let items = pid.items().ok_or_else(|| bad("persistent id is not a tuple"))?;
    match items.as_slice() {
        [Value::Str(tag), Value::Global(_, dtype), Value::Str(key), _location, numel, ..] if tag == "storage" => {
            Ok(Value::Storage(StorageRef {
                key: key.clone(),
                dtype: dtype.clone(),
                numel: numel.as_int().ok_or_else(|| bad("storage size is not an integer"))? as u64,
            }))
        }
        _ => Err(bad("unrecognised persistent id")),
    }
}

fn reduce(func: Value, args: Value) -> Result<Value> {
    let Value::Global(module, name) = &func else {
        return Ok(Value::Object(Box::new(func), Box::new(args)));
    };
    match (module.as_str(), name.as_str()) {
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let a = args.items().ok_or_else(|| bad("tensor rebuild without arguments"))?;
            let (Some(Value::Storage(storage)), Some(offset), Some(shape), Some(stride)) =
                (a.first(), a.get(1), a.get(2), a.get(3))
            else {
                return Err(bad("malformed tensor rebuild arguments"));
            };
            let dims = |v: &Value| -> Result<Vec<usize>> {
                v.items()
                    .ok_or_else(|| bad("tensor shape is not a tuple"))?
                    .iter()
                    .map(|d| d.as_int().filter(|&d| d >= 0).map(|d| d as usize))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("tensor shape holds a non-integer"))
            };
            Ok(Value::Tensor(TensorRef {
                storage: storage.clone(),
                offset: offset.as_int().ok_or_else(|| bad("tensor offset is not an integer"))? as u64,
                shape: dims(shape)?,
                stride: dims(stride)?,
            }))
        }
        ("collections", "OrderedDict") => Ok(Value::Dict(Rc::new(RefCell::new(vec![])))),
        _ => Ok(Value::Object(Box::new(func), Box::new(args))),
    }
}
