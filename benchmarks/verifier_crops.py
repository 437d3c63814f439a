#!/usr/bin/env python
"""P(logo) at crop level: how well a score separates logo crops from real brand-free crops it never saw.

Rows, side by side: a linear probe (logistic regression) on the shipped embedder's vectors, one on frozen ImageNet
EfficientNet-Lite0 features (``pip:efficientnet_lite0``), and the logo verifier. Probes train on ``--train-n``
composites of ``--train-logos`` and as many ``--impostors``/train crops; every row is measured on ``--test-logos``
folders (e.g. the cross-style val and test queries) against ``--impostors``/val. AUC and the impostor FPR at 95% and
90% of logos kept.

    python -m benchmarks.verifier_crops --train-logos runs/brand_styles/train --impostors runs/impostors \\
        --test-logos runs/brand_styles/val/query runs/brand_styles/test/query
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train-logos", type=Path, required=True, help="brand dataset train folder (<brand>/*wild*)")
    ap.add_argument("--impostors", type=Path, required=True, help="vision make-impostors output (train/, val/)")
    ap.add_argument("--test-logos", type=Path, nargs="+", required=True, help="<brand>/<crop> folders")
    ap.add_argument("--embedder", default="brand_resnet10t")
    ap.add_argument("--verifier", default="logo_verifier_lite0")
    ap.add_argument("--train-n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import numpy as np
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from vision.brands.verification import LogoVerifier
    from vision.data.io import load_image
    from vision.features import FeatureExtractor
    from vision.models.backbones import create_backbone

    rng = random.Random(args.seed)
    pos_train = sorted(map(str, args.train_logos.glob("*/*wild*")))
    neg_train = sorted(map(str, (args.impostors / "train").glob("*.jpg")))
    rng.shuffle(pos_train)
    rng.shuffle(neg_train)
    pos_train, neg_train = pos_train[:args.train_n], neg_train[:args.train_n]
    pos_test = sorted(str(p) for folder in args.test_logos for p in folder.glob("*/*"))
    neg_test = sorted(map(str, (args.impostors / "val").glob("*.jpg")))
    if not (pos_train and neg_train and pos_test and neg_test):
        ap.error("a crop set is empty: check --train-logos, --impostors and --test-logos")

    def imagenet_features():
        import torch

        net = create_backbone("efficientnet_lite0", pretrained="pip:efficientnet_lite0").eval()

        def embed(files):
            out = []
            for i in range(0, len(files), 128):
                x = np.stack([np.asarray(Image.fromarray(load_image(f)).resize((96, 96)), np.float32) / 127.5 - 1
                              for f in files[i:i + 128]])
                with torch.no_grad():
                    out.append(net(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy())
            return np.concatenate(out)
        return embed

    def probe(embed):
        x_train = np.concatenate([embed(pos_train), embed(neg_train)])
        y_train = np.r_[np.ones(len(pos_train)), np.zeros(len(neg_train))]
        mean, std = x_train.mean(0), x_train.std(0) + 1e-6
        clf = LogisticRegression(C=0.1, max_iter=2000).fit((x_train - mean) / std, y_train)
        return lambda files: clf.decision_function((embed(files) - mean) / std)

    fx = FeatureExtractor.from_pretrained(args.embedder, backend="torch", device="cpu")
    verifier = LogoVerifier.from_pretrained(args.verifier, backend="torch", device="cpu")
    rows = {f"linear probe on {args.embedder}": probe(lambda files: np.asarray(fx(files))),
            "linear probe on ImageNet EfficientNet-Lite0 (frozen)": probe(imagenet_features()),
            args.verifier: lambda files: verifier([load_image(f) for f in files])}
    report = {"train": [len(pos_train), len(neg_train)], "test": [len(pos_test), len(neg_test)], "rows": {}}
    for name, score in rows.items():
        sp, sn = score(pos_test), score(neg_test)
        fpr = {f"fpr_at_{keep}": round(float(np.mean(sn >= np.quantile(sp, 1 - keep))), 3) for keep in (0.95, 0.90)}
        auc = roc_auc_score(np.r_[np.ones(len(sp)), np.zeros(len(sn))], np.r_[sp, sn])
        report["rows"][name] = {"auc": round(float(auc), 4), **fpr}
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
