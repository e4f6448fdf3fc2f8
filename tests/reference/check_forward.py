"""Runs the numpy reference on raw f32 inputs written by a Rust test and writes embeddings + logits back.

usage: check_forward.py CHECKPOINT.pth INPUT.f32 BATCH SIZE OUTPUT.f64
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import legacy_pth  # noqa: E402
import lite_numpy  # noqa: E402


def main():
    pth, inp, batch, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    x = np.fromfile(inp, dtype="<f4").reshape(batch, 3, size, size)
    emb, logits = lite_numpy.forward(legacy_pth.load(pth), x)
    np.concatenate([emb.ravel(), logits.ravel()]).astype("<f8").tofile(out)


if __name__ == "__main__":
    main()
