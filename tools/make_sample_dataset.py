#!/usr/bin/env python
"""Cut the small committed sample (data/grocery_sample) out of the Grocery Store dataset.

    python tools/make_sample_dataset.py --src ../shared/datasets/grocery_store --dst data/grocery_sample

Keeps the dataset's own format (``train.txt``/``val.txt`` lines ``path, fine_id, coarse_id`` and
``classes.csv``) with ids renumbered to the chosen classes, so the sample reads exactly like the
full dataset. Deterministic: the first N images of each class in manifest order.
"""

from __future__ import annotations

import argparse
import csv
import shutil
from pathlib import Path

DEFAULT_CLASSES = ["Granny-Smith", "Pink-Lady", "Banana", "Bravo-Apple-Juice", "Bravo-Orange-Juice",
                   "Oatly-Oat-Milk", "Alpro-Blueberry-Soyghurt", "Alpro-Vanilla-Soyghurt"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("../shared/datasets/grocery_store"))
    ap.add_argument("--dst", type=Path, default=Path("data/grocery_sample"))
    ap.add_argument("--classes", nargs="+", default=DEFAULT_CLASSES)
    ap.add_argument("--train-per-class", type=int, default=12)
    ap.add_argument("--val-per-class", type=int, default=4)
    args = ap.parse_args()

    with (args.src / "classes.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    header, by_name = rows[0], {r[0]: r for r in rows[1:] if r}
    missing = [c for c in args.classes if c not in by_name]
    if missing:
        raise SystemExit(f"classes not in {args.src / 'classes.csv'}: {missing}")
    coarse_names = list(dict.fromkeys(by_name[c][2] for c in args.classes))
    new_fine = {int(by_name[c][1]): i for i, c in enumerate(args.classes)}

    if args.dst.exists():
        shutil.rmtree(args.dst)
    args.dst.mkdir(parents=True)
    with (args.dst / "classes.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for i, c in enumerate(args.classes):
            r = by_name[c]
            w.writerow([c, i, r[2], coarse_names.index(r[2]), r[4], r[5]])

    for split, per_class in (("train", args.train_per_class), ("val", args.val_per_class)):
        taken: dict[int, int] = {}
        lines = []
        for line in (args.src / f"{split}.txt").read_text().splitlines():
            if not line.strip():
                continue
            path, fine, _ = (p.strip() for p in line.split(","))
            fine = int(fine)
            if fine not in new_fine or taken.get(fine, 0) >= per_class:
                continue
            taken[fine] = taken.get(fine, 0) + 1
            (args.dst / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(args.src / path, args.dst / path)
            cls = args.classes[new_fine[fine]]
            lines.append(f"{path}, {new_fine[fine]}, {coarse_names.index(by_name[cls][2])}")
        (args.dst / f"{split}.txt").write_text("\n".join(lines) + "\n")
        print(f"{split}: {len(lines)} images")
    shutil.copy2(args.src / "LICENSE", args.dst / "LICENSE")
    (args.dst / "SOURCE.md").write_text(
        "# Grocery Store sample\n\nA small subset of the Grocery Store Dataset "
        "(Klasson et al., WACV 2019, MIT licence,\n"
        "see LICENSE), made with `python tools/make_sample_dataset.py`. Classes: "
        + ", ".join(args.classes) + ".\n")


if __name__ == "__main__":
    main()
