#!/usr/bin/env python
"""Two or more embedders saved as one zoo embedder: each member's unit vector times ``sqrt(weight)``, concatenated
(:class:`vision.models.embedder.EmbeddingEnsemble`), so a gallery's cosine is the weighted mean of the members'.

    python tools/ensemble_embedders.py --members brand_resnet10t runs/brand_lite0/zoo/brand_lite0.safetensors \
        --weights 0.7 0.3 --zoo-dir runs/ensemble_zoo --zoo-name brand_ensemble

The ensemble takes one input, preprocessed at the largest member input size (with that member's mean and std);
each member is renormalised and resampled to its own input size inside the network, so the result exports to ONNX,
quantises and serves like any embedder. Members must be embedders with ``crop_pct`` 1.0 (brand crops are squares);
a gallery built for a member does not fit the ensemble: build one for it.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--members", required=True, nargs="+", help="zoo names or weights files of the embedders")
    ap.add_argument("--weights", type=float, nargs="+", help="one per member, > 0, summing to 1 (default: equal)")
    ap.add_argument("--zoo-dir", required=True)
    ap.add_argument("--zoo-name", required=True)
    ap.add_argument("--zoo-half", action="store_true",
                    help="store float16 weights (half the file; --val then measures the rounded weights)")
    ap.add_argument("--val", help="a gallery/ + query/ split (tools/make_brand_dataset.py): its Recall@1/5, "
                                  "precision@1 and MAP@R are stored as the card's val_* metrics, as tools/train.py "
                                  "stores them")
    args = ap.parse_args(argv)
    from vision.models.embedder import ENSEMBLE, EmbeddingEnsemble, check_ensemble_weights, ensemble_config

    weights = args.weights or [1.0 / len(args.members)] * len(args.members)
    try:   # before any model loads
        if len(weights) != len(args.members):
            raise ValueError(f"give one --weights value per member ({len(args.members)} members, {len(weights)} "
                             "weights)")
        check_ensemble_weights(weights)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from vision.data.preprocessing import Preprocessing
    from vision.zoo.card import ModelCard
    from vision.zoo.registry import load_model, save_model

    models = [load_model(m) for m in args.members]
    try:
        config = ensemble_config([m.card for m in models], weights)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    largest = max(config["members"], key=lambda m: m["input_size"])
    pre = Preprocessing(input_size=largest["input_size"], crop_pct=1.0, mean=largest["mean"],
                        std=largest["std"]).to_dict()
    net = EmbeddingEnsemble(config["members"], pre["input_size"], pre["mean"], pre["std"])
    for member, model in zip(net.members, models):
        member.load_state_dict(model.state_dict())
    if args.zoo_half:   # the weights as they will load back: --val measures what ships
        import torch

        with torch.no_grad():
            for tensor in net.state_dict().values():
                if tensor.is_floating_point():
                    tensor.copy_(tensor.half().float())
    named = " + ".join(f"{w:g} x {m.card.name} ({m.card.sha256[:12]})" for w, m in zip(weights, models))
    card = ModelCard(name=args.zoo_name, task="embedding", architecture=ENSEMBLE, config=config, preprocessing=pre,
                     command="python tools/ensemble_embedders.py " + " ".join(sys.argv[1:] if argv is None else argv),
                     notes=f"ensemble: {named}", licence=models[0].card.licence)
    if args.val:
        from vision.evaluation import evaluate

        net.card = card
        found = evaluate(net.eval(), args.val, device="cpu")
        card.metrics = {f"val_{k}": v for k, v in found.items() if k.startswith(("recall", "precision", "map"))}
        print(f"validated on {args.val}: {card.metrics}")
    saved = save_model(net, card, args.zoo_dir, half=args.zoo_half)
    print(f"saved {saved.name} to {args.zoo_dir}: {saved.file} sha256={saved.sha256[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
