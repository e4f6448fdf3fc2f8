#!/usr/bin/env python3
"""Builds the folders `fovea eval drift` replays, from data the package registries ship.

  drift_streams.py OUT [--reference 60 --stream 400]

OUT/reference      MNIST ImageFolder (per class --reference images): the labelled training images
OUT/same           MNIST ImageFolder of other digits (per class --stream): the reference domain, for false alarms
OUT/digits         scikit-learn's 8x8 digits upscaled to 32x32: a clearly different domain
OUT/bright         the `same` digits brightened (+70 levels on a dark background): a shift of look
OUT/blur           the `same` digits under a 5x5 box blur: a shift of look
OUT/bright20       +20 levels only, and OUT/blur3: a 3x3 box blur: subtler shifts
Stream files are named by a seeded shuffle (`s-<position>.png`), so file-name order is the order requests
arrive in, with classes mixed as they would be; the reference keeps make_datasets.py's names.
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_datasets as md  # noqa: E402


def blur(img, side, r=2):
    out = []
    for y in range(side):
        for x in range(side):
            acc = n = 0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    yy, xx = y + dy, x + dx
                    if 0 <= yy < side and 0 <= xx < side:
                        acc += img[yy * side + xx]
                        n += 1
            out.append(acc // n)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--reference", type=int, default=60)
    ap.add_argument("--stream", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    mnist, side = md.mnist_samples()
    rng = random.Random(args.seed)
    total = len(mnist) * args.stream
    position = list(range(total))
    random.Random(args.seed + 1).shuffle(position)
    slot = iter(position)
    for cls, images in sorted(mnist.items()):
        order = list(range(len(images)))
        rng.shuffle(order)
        ref, stream = order[:args.reference], order[args.reference:args.reference + args.stream]
        names = {i: f"s-{next(slot):05d}.png" for i in stream}
        for split, picked, f in (
            ("reference", ref, lambda im: im),
            ("same", stream, lambda im: im),
            ("bright", stream, lambda im: [min(255, v + 70) for v in im]),
            ("blur", stream, lambda im: blur(im, side)),
            ("bright20", stream, lambda im: [min(255, v + 20) for v in im]),
            ("blur3", stream, lambda im: blur(im, side, 1)),
        ):
            folder = os.path.join(args.out, split, cls)
            os.makedirs(folder, exist_ok=True)
            for i in picked:
                name = f"mnist-{i:05d}.png" if split == "reference" else names[i]
                md.write_png(os.path.join(folder, name), f(images[i]), side, side)
    digits, dside = md.sklearn_digits()
    k = 4
    position = list(range(sum(len(v) for v in digits.values())))
    random.Random(args.seed + 2).shuffle(position)
    slot = iter(position)
    for cls, images in sorted(digits.items()):
        folder = os.path.join(args.out, "digits", cls)
        os.makedirs(folder, exist_ok=True)
        for i, img in enumerate(images):
            i = next(slot)
            big = [img[(y // k) * dside + x // k] for y in range(dside * k) for x in range(dside * k)]
            md.write_png(os.path.join(folder, f"s-{i:05d}.png"), big, dside * k, dside * k)
    print(f"{args.out}: reference, same, bright, blur, bright20, blur3 (MNIST) and digits (scikit-learn) streams")


if __name__ == "__main__":
    main()
