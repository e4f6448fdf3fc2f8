#!/usr/bin/env python3
"""Label-error finding, fovea against cleanlab, on the same images and the same embeddings.

  bench_label_errors.py [--per-class 200] [--noise 0.1] [--seed 14] [--fovea PATH] [--json]

1. Builds an MNIST ImageFolder with scripts/make_datasets.py (`--per-class` images per digit, upscaled 2x).
2. Moves a share (`--noise`, 10 % by default) of the images, picked at random with a fixed seed, into another
   digit's folder picked at random: those labels are now wrong, and only this script knows which.
3. Runs `fovea eval label-errors --data DIR --json --embeddings-out FILE`: fovea imports the folder into a throwaway
   store, embeds it with its backbone and lists the labels it disputes.
4. Gives cleanlab 2.9's `find_label_issues` 5-fold cross-validated logistic-regression probabilities on the very
   embeddings fovea wrote.
5. Prints precision, recall and F1 of both against the flipped set.

cleanlab, scikit-learn and numpy are installed into a virtual environment under $FOVEA_HOME (once); they are a
yardstick for this script only, never part of fovea.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import venv

HERE = os.path.dirname(os.path.abspath(__file__))
HOME = os.environ.get("FOVEA_HOME", os.path.expanduser("~/.cache/fovea"))
VENV = os.path.join(HOME, "venv-bench-label-errors")
REQUIREMENTS = ["cleanlab==2.9.*", "scikit-learn==1.7.*", "numpy<3"]


def yardstick_python():
    """The venv's interpreter, with cleanlab installed on first use."""
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        venv.create(VENV, with_pip=True)
    probe = subprocess.run([python, "-c", "import cleanlab, sklearn, numpy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--quiet", *REQUIREMENTS], check=True)
    return python


CLEANLAB = r"""
import json, sys
import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
data = json.load(open(sys.argv[1]))
x = np.asarray(data["embeddings"], dtype=np.float64)
names = sorted(set(data["labels"]))
y = np.asarray([names.index(c) for c in data["labels"]])
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=int(sys.argv[2]))
probs = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=folds, method="predict_proba")
issues = find_label_issues(labels=y, pred_probs=probs, return_indices_ranked_by="self_confidence")
print(json.dumps({"flagged": [data["paths"][i] for i in issues],
                  "cv_accuracy": float((probs.argmax(1) == y).mean())}))
"""


def flip_labels(root, share, seed):
    """Moves `share` of the images into another class's folder; returns the moved files' new relative paths."""
    rng = random.Random(seed)
    classes = sorted(os.listdir(root))
    files = sorted((c, f) for c in classes for f in os.listdir(os.path.join(root, c)))
    flipped = set()
    for cls, name in rng.sample(files, round(share * len(files))):
        to = rng.choice([c for c in classes if c != cls])
        # The name keeps its origin, so a file moved into a folder never collides with one already there.
        new_name = f"from{cls}-{name}"
        shutil.move(os.path.join(root, cls, name), os.path.join(root, to, new_name))
        flipped.add(os.path.join(to, new_name))
    return flipped, len(files)


def score(flagged, truth):
    flagged = set(flagged)
    hits = len(flagged & truth)
    precision = hits / len(flagged) if flagged else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"flagged": len(flagged), "correct": hits, "precision": precision, "recall": recall, "f1": f1}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--fovea", default=None, help="the fovea binary [default: $CARGO_TARGET_DIR/debug/fovea]")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", default=None, help="work in this (new) folder and keep it: images, embeddings")
    args = ap.parse_args()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/fovea-target"))
    fovea = args.fovea or os.path.join(target, "debug", "fovea")
    python = yardstick_python()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or scratch
        subprocess.run([sys.executable, os.path.join(HERE, "make_datasets.py"), "mnist", tmp, "--train",
                        str(args.per_class), "--test", "0", "--scale", "2", "--seed", str(args.seed)],
                       check=True, stdout=subprocess.DEVNULL)
        data = os.path.join(tmp, "train")
        truth, images = flip_labels(data, args.noise, args.seed)
        embeddings = os.path.join(tmp, "embeddings.json")
        out = subprocess.run([fovea, "eval", "label-errors", "--data", data, "--json", "--embeddings-out", embeddings],
                             check=True, capture_output=True, text=True)
        ours = json.loads(out.stdout)
        out = subprocess.run([python, "-c", CLEANLAB, embeddings, str(args.seed)], check=True, capture_output=True,
                             text=True)
        theirs = json.loads(out.stdout)
    result = {
        "images": images, "classes": 10, "flipped": len(truth), "noise": args.noise, "seed": args.seed,
        "fovea": score(ours["flagged"], truth),
        "cleanlab": {**score(theirs["flagged"], truth), "cv_accuracy_on_given_labels": theirs["cv_accuracy"]},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{images} MNIST images, {len(truth)} labels flipped ({args.noise:.0%}, seed {args.seed})")
    print(f"{'':10} {'flagged':>8} {'correct':>8} {'precision':>10} {'recall':>8} {'F1':>7}")
    for name in ("fovea", "cleanlab"):
        r = result[name]
        print(f"{name:10} {r['flagged']:>8} {r['correct']:>8} {r['precision']:>10.3f} {r['recall']:>8.3f} "
              f"{r['f1']:>7.3f}")


if __name__ == "__main__":
    main()
