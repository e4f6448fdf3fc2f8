"""Plain numpy forward of EfficientNet-Lite (0/1/2), written from the published architecture, not from fovea's code.

Used by the test command to check that the Rust network gives the same logits and embeddings.
"""
import math
import numpy as np

REPEATS = [1, 2, 2, 3, 3, 4, 1]
KERNELS = [3, 3, 5, 3, 5, 5, 3]
STRIDES = [1, 2, 2, 2, 1, 2, 1]
EXPAND = [1, 6, 6, 6, 6, 6, 6]
EPS = 1e-3


def same_pad(x, k, s):
    _, _, h, w = x.shape
    def amounts(n):
        out = math.ceil(n / s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (t, b), (l, r) = amounts(h), amounts(w)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))


def conv(x, w, s=1, groups=1):
    k = w.shape[2]
    x = same_pad(x, k, s)
    n, c, h, wd = x.shape
    oh, ow = (h - k) // s + 1, (wd - k) // s + 1
    if groups == 1:
        cols = np.empty((n, c, k, k, oh, ow), dtype=np.float64)
        for i in range(k):
            for j in range(k):
                cols[:, :, i, j] = x[:, :, i:i + s * oh:s, j:j + s * ow:s]
        return np.einsum("ncijhw,ocij->nohw", cols, w, optimize=True)
    out = np.zeros((n, c, oh, ow), dtype=np.float64)
    for i in range(k):
        for j in range(k):
            out += x[:, :, i:i + s * oh:s, j:j + s * ow:s] * w[None, :, 0, i, j, None, None]
    return out


def bn(x, p, name):
    g, b = p[name + ".weight"], p[name + ".bias"]
    m, v = p[name + ".running_mean"], p[name + ".running_var"]
    scale = g / np.sqrt(v + EPS)
    return x * scale[None, :, None, None] + (b - m * scale)[None, :, None, None]


def relu6(x):
    return np.clip(x, 0.0, 6.0)


def forward(p, x):
    """x: NCHW float input already normalised as (pixel-127)/128. Returns (embedding [N,1280], logits [N,1000])."""
    p = {k: v.astype(np.float64) for k, v in p.items() if v.dtype != np.int64}
    x = relu6(bn(conv(x.astype(np.float64), p["_conv_stem.weight"], 2), p, "_bn0"))
    idx = 0
    for stage in range(7):
        for r in range(REPEATS[stage]):
            pre = f"_blocks.{idx}."
            stride = STRIDES[stage] if r == 0 else 1
            inp = x
            if EXPAND[stage] != 1:
                x = relu6(bn(conv(x, p[pre + "_expand_conv.weight"]), p, pre + "_bn0"))
            x = relu6(bn(conv(x, p[pre + "_depthwise_conv.weight"], stride, groups=x.shape[1]), p, pre + "_bn1"))
            x = bn(conv(x, p[pre + "_project_conv.weight"]), p, pre + "_bn2")
            if stride == 1 and inp.shape == x.shape:
                x = x + inp
            idx += 1
    x = relu6(bn(conv(x, p["_conv_head.weight"]), p, "_bn1"))
    emb = x.mean(axis=(2, 3))
    logits = emb @ p["_fc.weight"].T + p["_fc.bias"]
    return emb, logits
