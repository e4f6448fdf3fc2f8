"""Preprocesses photos the way the ImageNet weights were evaluated, with Pillow and numpy only, and optionally runs
the numpy reference network on them. Shares no code with fovea's decoder or resizer.

The protocol (timm / torchvision eval transform, crop fraction 0.875): decode, turn upright (EXIF), resize the
shorter side to round(size / 0.875) with Pillow's antialiased bilinear filter (the longer side truncated, as
torchvision's Resize does), centre-crop size x size (offset rounded as torchvision's CenterCrop), then
(pixel - 127) / 128 in CHW order.

usage: check_photos.py CHECKPOINT.pth|- SIZE OUT_DIR PHOTO...
  writes OUT_DIR/input.f32 (N x 3 x SIZE x SIZE, little-endian) and, unless the checkpoint is "-",
  OUT_DIR/embeddings.f64 (N x 1280, little-endian).
"""
import os
import sys

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CROP_FRACTION = 0.875


def preprocess(path, size):
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    w, h = img.size
    short = round(size / CROP_FRACTION)
    if w <= h:
        new = (short, int(short * h / w))
    else:
        new = (int(short * w / h), short)
    img = img.resize(new, Image.BILINEAR)
    w, h = img.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = (np.asarray(img, dtype=np.float32) - 127.0) / 128.0
    return x.transpose(2, 0, 1)


def main():
    pth, size, out_dir, photos = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    x = np.stack([preprocess(p, size) for p in photos])
    x.astype("<f4").tofile(os.path.join(out_dir, "input.f32"))
    if pth != "-":
        import legacy_pth
        import lite_numpy

        emb, _logits = lite_numpy.forward(legacy_pth.load(pth), x)
        emb.astype("<f8").tofile(os.path.join(out_dir, "embeddings.f64"))


if __name__ == "__main__":
    main()
