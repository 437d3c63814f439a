"""Reference point for the classification recipe: a plain timm training loop.

This is deliberately the loop most people would write first (the baseline named in the
classification issue): resnet18 from scratch, 128 px, AdamW + one-cycle LR, label smoothing
0.1, random-resized-crop / flip / colour jitter, batch 64. It shares no code with `vision`
so the comparison measures the recipe, not a shared bug.

    python -m benchmarks.plain_timm_loop --root ../shared/datasets/grocery_store --epochs 30

Prints one JSON line with val top-1 (fine, and coarse via the fine->coarse map) and wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import timm
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T


class ManifestImages(Dataset):
    def __init__(self, root: Path, manifest: str, transform):
        self.items = []
        for line in (root / manifest).read_text().splitlines():
            if line.strip():
                path, fine, coarse = (p.strip() for p in line.split(","))
                self.items.append((root / path, int(fine), int(coarse)))
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, fine, coarse = self.items[i]
        return self.transform(Image.open(path).convert("RGB")), fine, coarse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("../shared/datasets/grocery_store"))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--img-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    train_tf = T.Compose([
        T.RandomResizedCrop(args.img_size), T.RandomHorizontalFlip(),
        T.ColorJitter(0.4, 0.4, 0.4), T.ToTensor(), T.Normalize(mean, std),
    ])
    eval_tf = T.Compose([
        T.Resize(int(args.img_size / 0.875)), T.CenterCrop(args.img_size), T.ToTensor(), T.Normalize(mean, std),
    ])
    train = ManifestImages(args.root, "train.txt", train_tf)
    val = ManifestImages(args.root, "val.txt", eval_tf)
    fine_to_coarse = {f: c for _, f, c in train.items + val.items}
    num_classes = max(fine_to_coarse) + 1

    train_dl = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.workers, drop_last=True,
                          persistent_workers=args.workers > 0)
    val_dl = DataLoader(val, args.batch_size, num_workers=args.workers)
    model = timm.create_model("resnet18", pretrained=False, num_classes=num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * len(train_dl))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        for x, y, _ in train_dl:
            loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f} {time.perf_counter() - start:.0f}s", flush=True)
    train_s = time.perf_counter() - start

    model.eval()
    fine_ok = coarse_ok = n = 0
    with torch.no_grad():
        for x, y, yc in val_dl:
            pred = model(x).argmax(1)
            fine_ok += (pred == y).sum().item()
            coarse_ok += sum(fine_to_coarse[int(p)] == int(c) for p, c in zip(pred, yc))
            n += len(y)
    print(json.dumps({
        "recipe": "plain timm loop", "model": "resnet18", "img_size": args.img_size, "epochs": args.epochs,
        "val_top1_fine": round(fine_ok / n, 4), "val_top1_coarse": round(coarse_ok / n, 4),
        "train_wall_s": round(train_s), "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
