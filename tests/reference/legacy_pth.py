"""Independent reader of legacy (pre-zip) PyTorch pickles, using only the standard library and numpy.

It exists so the Rust converter and the Rust network are checked against code that shares nothing with them.
"""
import pickle
import struct
import numpy as np

DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


class _Storage:
    def __init__(self, key, dtype):
        self.key, self.dtype, self.data = key, dtype, None


def _rebuild_tensor_v2(storage, offset, size, stride, *_rest):
    return ("tensor", storage, offset, tuple(size), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if name in DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected global {module}.{name}")

    def persistent_load(self, pid):
        _tag, storage_type, key, _location, _numel = pid[:5]
        if key not in self.storages:
            self.storages[key] = _Storage(key, DTYPES[storage_type])
        return self.storages[key]


def load(path):
    """Returns an ordered dict name -> numpy array."""
    storages = {}
    with open(path, "rb") as f:
        pickle.load(f)  # magic number
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        state = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        for key in keys:
            (count,) = struct.unpack("<q", f.read(8))
            st = storages[key]
            st.data = np.frombuffer(f.read(count * np.dtype(st.dtype).itemsize), dtype=st.dtype)
    out = {}
    for name, (_t, st, offset, size, stride) in state.items():
        item = np.dtype(st.dtype).itemsize
        arr = np.lib.stride_tricks.as_strided(st.data[offset:], shape=size,
                                              strides=tuple(s * item for s in stride))
        out[name] = np.array(arr)
    return out


if __name__ == "__main__":
    import sys
    for k, v in load(sys.argv[1]).items():
        print(k, v.shape, v.dtype)
