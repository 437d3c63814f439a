#!/usr/bin/env python
"""Weight-space interpolation of a fine-tuned zoo model with the model it was fine-tuned from (WiSE-FT,
Wortsman et al. 2022): ``(1 - alpha) * base + alpha * finetuned``, saved to a zoo as a new model. Several
fine-tunes of the same base (other seeds, data or settings) are averaged first (a "model soup", Wortsman et al.
2022): ``(1 - alpha) * base + alpha * mean(finetuned)``.

    python tools/interpolate_weights.py --base logo_yolo11n \
        --finetuned runs/logo_mined_zoo/logo_mined_yolo11n.safetensors --alpha 0.5 \
        --zoo-dir runs/logo_mined_zoo --zoo-name logo_mined_wise50_yolo11n

Both models must have the same architecture, task, classes, preprocessing and tensor names and shapes (a model and
its own fine-tune); anything else is refused. Integer buffers (e.g. BatchNorm's step counters) are the fine-tune's.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def interpolate_state(base: dict, finetuned: dict | list[dict], alpha: float) -> dict:
    """``(1 - alpha) * base + alpha * finetuned`` per floating tensor, ``finetuned`` the mean of several state
    dicts when a list is given; a ``ValueError`` names the first mismatch. Integer tensors are the (first)
    fine-tune's."""
    tuned = finetuned if isinstance(finetuned, list) else [finetuned]
    for other in tuned:
        if set(base) != set(other):
            diff = sorted(set(base) ^ set(other))
            raise ValueError(f"the models have different tensors, e.g. {diff[:3]}")
    out = {}
    for name, tensor in tuned[0].items():
        for other in tuned:
            if base[name].shape != other[name].shape:
                raise ValueError(f"tensor {name}: shape {tuple(base[name].shape)} vs {tuple(other[name].shape)}")
        if tensor.is_floating_point():
            mean = sum(other[name].float() for other in tuned) / len(tuned)
            out[name] = (base[name].float() * (1 - alpha) + mean * alpha).to(tensor.dtype)
        else:
            out[name] = tensor.clone()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="zoo name or weights file the fine-tune started from")
    ap.add_argument("--finetuned", required=True, nargs="+",
                    help="zoo name or weights file of the fine-tune; several: their mean (a model soup)")
    ap.add_argument("--alpha", type=float, required=True, help="weight of the fine-tune, in [0, 1]")
    ap.add_argument("--zoo-dir", required=True)
    ap.add_argument("--zoo-name", required=True)
    ap.add_argument("--zoo-half", action="store_true", help="store float16 weights")
    ap.add_argument("--any-input-size", action="store_true",
                    help="allow a fine-tune at another input size than its base (e.g. 64 -> 96 px; the rest of the "
                         "preprocessing must match); the result keeps the fine-tunes' input size")
    args = ap.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        print(f"error: --alpha must be in [0, 1], got {args.alpha}", file=sys.stderr)
        return 2
    from vision.zoo.registry import load_model, save_model

    base, tuned_models = load_model(args.base), [load_model(f) for f in args.finetuned]
    tuned = tuned_models[0]
    for other in tuned_models:
        for field in ("task", "architecture", "class_names", "preprocessing"):
            mine, theirs = getattr(base.card, field), getattr(other.card, field)
            if field == "preprocessing" and args.any_input_size:   # the fine-tunes still share one input size
                mine = dict(mine, input_size=tuned.card.preprocessing.get("input_size"))
            if mine != theirs:
                print(f"error: the models differ in {field}: {mine!r} vs {theirs!r} ({other.card.name})",
                      file=sys.stderr)
                return 1
    try:
        state = interpolate_state(base.state_dict(), [m.state_dict() for m in tuned_models], args.alpha)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    tuned.load_state_dict(state)
    named = ", ".join(f"{m.card.name} ({m.card.sha256[:12]})" for m in tuned_models)
    card = dataclasses.replace(
        tuned.card, name=args.zoo_name, file="", sha256="", created="", metrics={},
        command="python tools/interpolate_weights.py " + " ".join(sys.argv[1:] if argv is None else argv),
        notes=f"WiSE-FT: {1 - args.alpha:g} x {base.card.name} ({base.card.sha256[:12]}) + {args.alpha:g} x "
              f"{'' if len(tuned_models) == 1 else 'the mean of '}{named}")
    saved = save_model(tuned, card, args.zoo_dir, half=args.zoo_half)
    print(f"saved {saved.name} to {args.zoo_dir}: {saved.file} sha256={saved.sha256[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
