"""Train images/s of medaug's loop against the MedMNIST getting-started loop and the
compute ceiling, side by side on the same data and model (issue 2's benchmark).

  (a) reference: torch DataLoader over medmnist's BreastMNIST class, ToTensor +
      Normalize per sample (+ seed 000's per-sample PIL sharpness/contrast/flip when
      augmenting), best-validation copy tested at the end;
  (b) medaug: `medaug.train.loop.train_classifier` with the same hyperparameters;
  (c) ceiling: the same model stepping repeatedly on one fixed in-memory batch.

Run by hand (takes a few minutes on 2 cores; keep the machine otherwise idle):

    .venv/bin/python bench/train_throughput.py --data-root ../shared/data/medmnist

Prints images/s of each, the ratios b/c and b/a, and test ACC (mean of --seeds) of
(a) and (b) with and without augmentation. `--settings` also measures the model-side
knobs (threads, channels_last, torch.compile) on the ceiling.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import numpy as np
import torch
from torch import nn

from medaug.classifiers import build_classifier
from medaug.data.medmnist import load_medmnist
from medaug.metrics import evaluate
from medaug.train.device import resolve_device
from medaug.train.loop import TrainConfig, evaluate_model, train_classifier


def reference_run(root: str, augment: bool, epochs: int, seed: int, device: torch.device) -> tuple[float, float]:
    """MedMNIST's getting-started loop (with a deep copy of the best-val model). -> (img/s, test ACC)."""
    import medmnist
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    steps = [T.RandomAdjustSharpness(2), T.RandomAutocontrast(), T.RandomHorizontalFlip()] if augment else []
    tf = T.Compose([*steps, T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])
    plain = T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])
    torch.manual_seed(seed)
    train = medmnist.BreastMNIST(split="train", transform=tf, root=root)
    val = medmnist.BreastMNIST(split="val", transform=plain, root=root)
    test = medmnist.BreastMNIST(split="test", transform=plain, root=root)
    loader = DataLoader(train, batch_size=64, shuffle=True)
    model = build_classifier("cnn", 1, 2, 28).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def scores(ds) -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        xs, ys = [], []
        with torch.no_grad():
            for x, y in DataLoader(ds, batch_size=256):
                xs.append(torch.softmax(model(x.to(device)), 1).cpu())
                ys.append(y)
        model.train()
        return torch.cat(ys).numpy()[:, 0], torch.cat(xs).numpy()

    best, best_acc, seconds, images = None, -1.0, 0.0, 0
    for _ in range(epochs):
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device), y.to(device).squeeze(1).long()
            opt.zero_grad()
            loss_fn(model(x), y).backward()
            opt.step()
            images += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        acc = evaluate("binary-class", *scores(val)).acc
        if acc > best_acc:
            best_acc, best = acc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best)
    return images / seconds, evaluate("binary-class", *scores(test)).acc


def medaug_run(data, augment: bool, epochs: int, seed: int, device: torch.device) -> tuple[float, float]:
    torch.manual_seed(seed)
    model = build_classifier("cnn", 1, 2, 28)
    config = TrainConfig(augmentation="sharpness-contrast-flip" if augment else "none", epochs=epochs, seed=seed)
    outcome = train_classifier(model, data.train, data.val, config, device)
    test, _ = evaluate_model(model, data.test, device)
    return outcome.train_images_per_s, test.acc


def ceiling(device: torch.device, steps: int = 150, channels_last: bool = False, compile_model: bool = False) -> float:
    """Images/s of forward+backward+step on one fixed batch of 64: no data path at all."""
    torch.manual_seed(0)
    model = build_classifier("cnn", 1, 2, 28).to(device)
    x = torch.randn(64, 1, 28, 28, device=device)
    y = torch.randint(0, 2, (64,), device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_model else model
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    for _ in range(20):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * 64 / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--settings", action="store_true", help="also measure threads / channels_last / compile")
    args = ap.parse_args()
    device = resolve_device(args.device)
    data = load_medmnist("breastmnist", root=args.data_root)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    if args.settings:
        for threads in sorted({1, torch.get_num_threads()}):
            torch.set_num_threads(threads)
            for cl in (False, True):
                for comp in (False, True):
                    try:
                        r = ceiling(device, channels_last=cl, compile_model=comp)
                    except Exception as exc:  # compile needs a compiler toolchain
                        print(f"  threads={threads} channels_last={cl} compile={comp}: failed ({exc.__class__.__name__})")
                        continue
                    print(f"  ceiling threads={threads} channels_last={cl} compile={comp}: {r:8.0f} img/s")
        torch.set_num_threads(max(1, torch.get_num_threads()))

    ceil = statistics.median(ceiling(device, channels_last=device.type == "cuda") for _ in range(3))
    print(f"(c) ceiling: {ceil:.0f} img/s")
    for augment in (False, True):
        ref = [reference_run(args.data_root, augment, args.epochs, s, device) for s in range(args.seeds)]
        ours = [medaug_run(data, augment, args.epochs, s, device) for s in range(args.seeds)]
        ref_speed, our_speed = statistics.mean(r[0] for r in ref), statistics.mean(o[0] for o in ours)
        ref_acc, our_acc = statistics.mean(r[1] for r in ref), statistics.mean(o[1] for o in ours)
        label = "sharpness-contrast-flip" if augment else "no augmentation"
        print(f"{label}:")
        print(f"  (a) reference {ref_speed:8.0f} img/s   test ACC {100 * ref_acc:.2f} (mean of {args.seeds})")
        print(f"  (b) medaug    {our_speed:8.0f} img/s   test ACC {100 * our_acc:.2f} (mean of {args.seeds})")
        print(f"  b/c = {our_speed / ceil:.3f}   b/a = {our_speed / ref_speed:.2f}   "
              f"ACC b-a = {100 * (our_acc - ref_acc):+.2f} pt")


if __name__ == "__main__":
    main()
