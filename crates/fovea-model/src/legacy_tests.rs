//! The converter checked on a tiny legacy checkpoint assembled opcode by opcode, as torch 1.4 writes one.

use super::legacy::read_legacy_checkpoint;
use super::weights::DType;
use super::ModelError;

const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    fn proto(&mut self) -> &mut Self {
        self.op(0x80).op(2)
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.op(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
        self
    }
    fn int(&mut self, v: u8) -> &mut Self {
        self.op(b'K').op(v)
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c');
        self.0.extend(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn int_tuple(&mut self, v: &[u8]) -> &mut Self {
        self.op(b'(');
        for &x in v {
            self.int(x);
        }
        self.op(b't')
    }
    fn stop(&mut self) -> Vec<u8> {
        self.op(b'.');
        std::mem::take(&mut self.0)
    }
}

struct Spec<'a> {
    name: &'a str,
    storage: &'a str,
    kind: &'a str,
    numel: u8,
    offset: u8,
    shape: &'a [u8],
    stride: &'a [u8],
}

fn checkpoint(tensors: &[Spec], storages: &[(&str, Vec<u8>, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = Pickle::default();
    p.proto().op(0x8a).op(10);
    p.0.extend(MAGIC);
    out.extend(p.stop());
    out.extend(Pickle::default().proto().op(b'M').op(0xe9).op(0x03).stop());
    out.extend(Pickle::default().proto().op(b'}').op(b'(').str("little_endian").op(0x88).op(b'u').stop());

    let mut p = Pickle::default();
    p.proto().global("collections", "OrderedDict").op(b')').op(b'R').op(b'q').op(0).op(b'(');
    for t in tensors {
        p.str(t.name).global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        p.op(b'(').str("storage").global("torch", t.kind).str(t.storage).str("cpu").int(t.numel).op(b't').op(b'Q');
        p.int(t.offset).int_tuple(t.shape).int_tuple(t.stride).op(0x89);
        p.global("collections", "OrderedDict").op(b')').op(b'R').op(b't').op(b'R');
        // Memoise the tensor and fetch it back, as torch's pickler does for shared objects.
        p.op(b'q').op(1).op(b'0').op(b'h').op(1);
    }
    p.op(b'u');
    out.extend(p.stop());

    let mut p = Pickle::default();
    p.proto().op(b']').op(b'(');
    for (key, _, _) in storages {
        p.str(key);
    }
    p.op(b'e');
    out.extend(p.stop());
    for (_, bytes, count) in storages {
        out.extend(count.to_le_bytes());
        out.extend(bytes);
    }
    out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn sample() -> Vec<u8> {
    let storage: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect();
    checkpoint(
        &[
            // A 2x3 view starting at element 2 of an 8-element storage.
            Spec {
                name: "conv.weight",
                storage: "0",
                kind: "FloatStorage",
                numel: 8,
                offset: 2,
                shape: &[2, 3],
                stride: &[3, 1],
            },
            // The transpose of the first 6 elements: non-contiguous strides must be gathered.
            Spec {
                name: "conv.t",
                storage: "0",
                kind: "FloatStorage",
                numel: 8,
                offset: 0,
                shape: &[3, 2],
                stride: &[1, 3],
            },
            Spec {
                name: "bn.num_batches_tracked",
                storage: "1",
                kind: "LongStorage",
                numel: 1,
                offset: 0,
                shape: &[],
                stride: &[],
            },
        ],
        &[("0", f32_bytes(&storage), 8), ("1", 7i64.to_le_bytes().to_vec(), 1)],
    )
}

#[test]
fn reads_views_strides_and_integer_tensors() {
    let tensors = read_legacy_checkpoint(&sample()).unwrap();
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["conv.weight", "conv.t", "bn.num_batches_tracked"]);
    let w = &tensors[0].1;
    assert_eq!((w.dtype, w.shape.clone()), (DType::F32, vec![2, 3]));
    assert_eq!(w.to_f32().unwrap(), vec![1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
    assert_eq!(tensors[1].1.to_f32().unwrap(), vec![0.0, 1.5, 0.5, 2.0, 1.0, 2.5]);
    let n = &tensors[2].1;
    assert_eq!((n.dtype, n.shape.len()), (DType::I64, 0));
    assert_eq!(i64::from_le_bytes(n.data.clone().try_into().unwrap()), 7);
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let bytes = sample();
    for cut in 0..bytes.len() {
        let r = read_legacy_checkpoint(&bytes[..cut]);
        assert!(r.is_err(), "a file cut at byte {cut} of {} was accepted", bytes.len());
    }
}

#[test]
fn refuses_other_files_with_a_reason() {
    let zip = read_legacy_checkpoint(b"PK\x03\x04rest").unwrap_err().to_string();
    assert!(zip.contains("zip-format"), "{zip}");
    let mut bytes = sample();
    bytes[4] ^= 0xff; // inside the magic number
    assert!(matches!(read_legacy_checkpoint(&bytes), Err(ModelError::Checkpoint(_))));
    assert!(read_legacy_checkpoint(b"").is_err());
}
