#!/usr/bin/env python3
"""Fine-tune ablation, measured as served: runs `fovea eval finetune` once per setting on the same labelled
ImageFolder and held-out ImageFolder, and prints a table. Choose settings by the validation column (the run's
own choice of epoch rests on it); the held-out columns say what that choice was worth.

    python3 scripts/ablate_finetune.py --train DIR --heldout DIR [--fovea PATH] [--seed 1] [--out results.json]
"""
import argparse
import json
import subprocess
import sys

SETTINGS = [
    ("defaults", []),
    ("no flip", ["--no-flip"]),
    ("no flip, stages 3-6 tuned", ["--no-flip", "--policy",
                                   "stem=freeze,stage0-2=freeze,stage3-6=finetune,head=finetune,classifier=reinit"]),
    ("no flip, backbone lr 3e-4", ["--no-flip", "--backbone-lr", "3e-4"]),
    ("no flip, 30 epochs", ["--no-flip", "--epochs", "30"]),
    ("backbone lr 3e-4", ["--backbone-lr", "3e-4"]),
    ("no flip, stages 3-6 tuned, backbone lr 3e-4", ["--no-flip", "--backbone-lr", "3e-4", "--policy",
                                                     "stem=freeze,stage0-2=freeze,stage3-6=finetune,head=finetune,"
                                                     "classifier=reinit"]),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--heldout", required=True)
    ap.add_argument("--fovea", default="fovea")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--only", type=int, nargs="*", help="indices of SETTINGS to run")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = []
    print("| setting | validation % | best epoch | as-served estimate % | held-out before % | held-out after % [95 %] "
          "| gain | ECE before → after | run |")
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for i, (name, flags) in enumerate(SETTINGS):
        if args.only and i not in args.only:
            continue
        cmd = [args.fovea, "eval", "finetune", "--train", args.train, "--heldout", args.heldout,
               "--seed", args.seed, "--json", *flags]
        print(f"running: {name}", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if out.returncode != 0:
            print(f"  failed ({out.returncode})", file=sys.stderr)
            continue
        r = json.loads(out.stdout)
        rows.append((name, r))
        if args.out:
            with open(args.out, "w") as f:
                json.dump([{"setting": n, **x} for n, x in rows], f, indent=1)
        b, a = r["before"], r["after"]
        c = r["estimates"]["as_served"]["candidate"]
        print(f"| {name} | {pct(r['best_validation_accuracy'])} | {r['best_epoch']} | {pct(c['accuracy'])} "
              f"| {pct(b['accuracy'])} | {pct(a['accuracy'])} [{pct(a['low'])}, {pct(a['high'])}] "
              f"| {a['accuracy'] - b['accuracy']:+.3f} | {b['ece']:.3f} → {a['ece']:.3f} | {r['seconds']:.0f} s |",
              flush=True)


def pct(x):
    return "—" if x is None else f"{100 * x:.1f}"


if __name__ == "__main__":
    main()
