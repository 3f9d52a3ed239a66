"""Peak memory and time of the LLSM's forward + backward: outer-sum form vs literal pairwise form.

    .venv/bin/python benchmarks/llsm_memory.py               # 19x19 and 28x28 x 728, batch 8
    .venv/bin/python benchmarks/llsm_memory.py --sizes 19 --budget-gib 12 --json out.json

How memory is measured (CPU): every measurement runs in a fresh process. After
the module, the input features (requiring a gradient) and a random 0/1 target
are allocated (after one tiny warm-up step, so that one-time initialisation
does not count), the kernel's resident-set high-water mark is reset (``5`` written
to ``/proc/self/clear_refs``); one forward, BCE-with-logits loss and backward
then run, and the peak is ``VmHWM - VmRSS`` read from ``/proc/self/status``:
the resident memory the step added at its worst, allocator overhead included.
Beside it, the bytes autograd saved for backward (unique storages, the input
excluded) are counted with ``torch.autograd.graph.saved_tensors_hooks``, a
number independent of the allocator.

The pairwise form materialises (HW)^2 x 2C floats per sample (0.71 GiB at
19x19x728, 3.3 GiB at 28x28x728), as much again for its gradient and once
more for a temporary, so it runs only where three times that fits ``--budget-gib`` (default: half of the
memory available now), at the largest batch of 8, 4, 2, 1 that fits; the
table says which batch was measured and compares per sample. Values and
gradients of the two forms are compared on one input where the pairwise form
fits. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from src.detectors.layers.llsm import LearnableLocalSimilarity

GIB = 1024**3


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key}")


def _setup(size: int, channels: int, batch: int, seed: int = 0):
    torch.manual_seed(seed)
    module = LearnableLocalSimilarity(channels)
    features = torch.randn(batch, channels, size, size, requires_grad=True)
    target = (torch.rand(batch, size * size, size * size) > 0.5).float()
    return module, features, target


def _step(module: LearnableLocalSimilarity, features: torch.Tensor, target, form: str) -> None:
    run = module.forward if form == "outer" else module.forward_pairwise
    F.binary_cross_entropy_with_logits(run(features), target).backward()


def _saved_bytes(module, features, target, form: str) -> int:
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() != features.untyped_storage().data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        _step(module, features, target, form)
    return sum(storages.values())


def measure(form: str, size: int, channels: int, batch: int, repeats: int) -> dict:
    """Run in a fresh process: peak added RSS, saved-for-backward bytes, seconds per batch."""
    # A tiny step first: one-time initialisation (thread pools, kernels) is not the form's cost.
    _step(*_setup(2, channels, 1), form)
    module, features, target = _setup(size, channels, batch)
    baseline = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    _step(module, features, target, form)
    first = time.perf_counter() - start
    peak = (_status_kib("VmHWM") - baseline) * 1024
    module.zero_grad()
    features.grad = None
    saved = _saved_bytes(module, features, target, form)
    times = [first]
    for _ in range(repeats - 1):
        features.grad = None
        start = time.perf_counter()
        _step(module, features, target, form)
        times.append(time.perf_counter() - start)
    return {"peak_bytes": peak, "saved_bytes": saved, "seconds": statistics.median(times)}


def compare(size: int, channels: int, batch: int) -> dict:
    """Largest differences of values and gradients between the two forms on one input."""
    result = {}
    runs = {}
    for form in ("outer", "pairwise"):
        module, features, target = _setup(size, channels, batch)
        run = module.forward if form == "outer" else module.forward_pairwise
        values = run(features)
        F.binary_cross_entropy_with_logits(values, target).backward()
        runs[form] = [values.detach(), features.grad, *(p.grad for p in module.parameters())]
    pairs = zip(runs["outer"], runs["pairwise"], strict=True)
    diffs = [float((a - b).abs().max()) for a, b in pairs]
    result["max_value_diff"] = diffs[0]
    result["max_grad_diff"] = max(diffs[1:])
    return result


def _child(args: list[str]) -> dict:
    completed = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"llsm_memory child {args} failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def pairwise_estimate(size: int, channels: int, batch: int) -> int:
    """Three copies of the stacked pairs, (HW)^2 x 2C float32 per sample each.

    The stacked tensor, its gradient and one temporary: measured at 12 x 12 x 728,
    the peak is 3.0 times the stacked tensor.
    """
    return 3 * batch * (size * size) ** 2 * 2 * channels * 4


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/meminfo has no MemAvailable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[19, 28], help="H = W of F")
    parser.add_argument("--channels", type=int, default=728)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median)")
    parser.add_argument("--budget-gib", type=float, default=None, help="pairwise form's limit")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *numbers = args.child
        if kind == "compare":
            print(json.dumps(compare(*map(int, numbers))))
        else:
            size, channels, batch, repeats = map(int, numbers)
            print(json.dumps(measure(kind, size, channels, batch, repeats)))
        return 0

    budget = args.budget_gib * GIB if args.budget_gib else available_bytes() / 2
    print(
        f"budget for the pairwise form: {budget / GIB:.1f} GiB; threads {torch.get_num_threads()}"
    )
    rows = []
    for size in args.sizes:
        c, b = args.channels, args.batch
        outer = _child(["outer", str(size), str(c), str(b), str(args.repeats)])
        row = {"size": f"{size}x{size}x{c}", "batch": b, "outer": outer}
        fits = [n for n in (b, 4, 2, 1) if n <= b and pairwise_estimate(size, c, n) <= budget]
        if fits:
            n = fits[0]
            row["pairwise_batch"] = n
            row["pairwise"] = _child(["pairwise", str(size), str(c), str(n), "1"])
            row["compare"] = _child(["compare", str(size), str(c), str(min(n, 2))])
        else:
            row["pairwise_batch"] = 0
            row["pairwise_estimate_bytes"] = pairwise_estimate(size, c, b)
        rows.append(row)

    print(
        "\n| feature | batch | outer-sum peak | saved | s/batch | pairwise batch | pairwise peak "
        "| saved | s/batch | outer / pairwise (per sample) | max |diff| value, grad |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        o, b = row["outer"], row["batch"]
        cells = [
            row["size"],
            str(b),
            f"{o['peak_bytes'] / 2**20:.1f} MiB",
            f"{o['saved_bytes'] / 2**20:.1f} MiB",
            f"{o['seconds']:.3f}",
        ]
        if row["pairwise_batch"]:
            p, n = row["pairwise"], row["pairwise_batch"]
            ratio = (o["peak_bytes"] / b) / (p["peak_bytes"] / n)
            cells += [
                str(n),
                f"{p['peak_bytes'] / GIB:.2f} GiB",
                f"{p['saved_bytes'] / GIB:.2f} GiB",
                f"{p['seconds']:.2f}",
                f"{100 * ratio:.2f} %",
                f"{row['compare']['max_value_diff']:.1e}, {row['compare']['max_grad_diff']:.1e}",
            ]
        else:
            # Not measured: compare with the estimate, per sample, and say so.
            per_sample = row["pairwise_estimate_bytes"] / b
            cells += [
                "not run",
                f"est. {per_sample / GIB:.1f} GiB per sample: over budget",
                "",
                "",
                f"{100 * (o['peak_bytes'] / b) / per_sample:.2f} % (vs estimate)",
                "",
            ]
        print("| " + " | ".join(cells) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
