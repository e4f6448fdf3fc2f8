"""Runs an ONNX model exported by fovea in ONNX Runtime's own Python API and writes its outputs back.

The Rust test compares these with the burn network, which proves that the exported graph (folded BatchNorm,
explicit SAME pads, Clip, Gemm) means to another engine what fovea's network computes.

usage: check_onnx.py MODEL.onnx INPUT.f32 BATCH SIZE OUTPUT.f32   (output: embeddings then logits, little-endian f32)
"""
import sys

import numpy as np
import onnxruntime as ort


def main():
    model, inp, batch, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    x = np.fromfile(inp, dtype="<f4").reshape(batch, 3, size, size)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    emb, logits = session.run(["embedding", "logits"], {"input": x})
    assert emb.shape == (batch, 1280) and logits.shape == (batch, 1000), (emb.shape, logits.shape)
    np.concatenate([emb.ravel(), logits.ravel()]).astype("<f4").tofile(out)


if __name__ == "__main__":
    main()
