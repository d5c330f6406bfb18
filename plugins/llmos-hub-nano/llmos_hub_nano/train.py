"""Train a nano checkpoint on a task's train split: ``python -m llmos_hub_nano.train TASK``.

Seeded and reproducible on one machine (fixed steps, fixed batches, one thread count): the data come
through the task itself (``task.load(split="train")``), so the checkpoint records the exact data
fingerprint it was trained on. After training, the model is scored on the task's held-out test split
with the ``pytorch`` backend and the task's own metrics, beside a trivial baseline, and everything
(command, seed, loss curve, scores) goes into the model card.

The checkpoint goes to a new folder, ``./nano-TASK`` (``./nano-TASK-2``, ... if that exists), never
over a shipped checkpoint or any folder with files in it unless ``--overwrite`` says so: a newcomer trying
the script cannot silently replace the model the default benchmark runs.

Example::

    nice -n 10 python -m llmos_hub_nano.train translation-sample            # writes ./nano-translation-sample
    python -m llmos_hub_nano.train lm-sample --out plugins/llmos-hub-nano/llmos_hub_nano/checkpoints/lm-sample --overwrite
"""

from __future__ import annotations

import argparse
import math
import random
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .card import write_card
from .config import NanoConfig
from .family import CHECKPOINTS

__all__ = ["RECIPES", "Recipe", "main", "train", "with_overrides"]


@dataclass(frozen=True)
class Recipe:
    """The model size and the optimisation schedule for one task."""

    architecture: str
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    d_ff: int
    max_length: int
    steps: int
    batch_size: int
    lr: float = 3e-3
    dropout: float = 0.1
    target_length: int = 64  # seq2seq: longest target trained on
    copy: bool = False  # seq2seq: pointer-generator decoder (copies source tokens)
    label_smoothing: float = 0.0
    prefix_space: bool = False  # tokenizer: a text's first word is the same token as inside a sentence
    extra: dict[str, Any] = field(default_factory=dict)


#: One recipe per task of the default suite, sized for a ~3 MB checkpoint and a few CPU minutes.
RECIPES: dict[str, Recipe] = {
    "lm-sample": Recipe("causal-lm", 2048, 96, 3, 4, 384, 256, steps=900, batch_size=8),
    "classification-sample": Recipe("classifier", 2048, 64, 2, 4, 256, 128, steps=400, batch_size=32),
    "translation-sample": Recipe("seq2seq", 2048, 80, 2, 4, 320, 64, steps=1500, batch_size=32, target_length=48),
    "summarization-sample": Recipe(
        "seq2seq", 3072, 80, 2, 4, 320, 128, steps=2000, batch_size=24, target_length=32,
        copy=True, prefix_space=True, dropout=0.3,
    ),
}


def _texts_for_tokenizer(recipe: Recipe, examples: Sequence[Any]) -> list[str]:
    texts = [ex.input for ex in examples]
    if recipe.architecture == "seq2seq":
        texts += [ex.target for ex in examples]
    return texts


# -- batches ----------------------------------------------------------------------------------------
class _Batches:
    """Seeded random training batches as tensors, for each architecture."""

    def __init__(self, recipe: Recipe, tokenizer: Any, examples: Sequence[Any], labels: Sequence[str] | None, seed: int):
        import torch

        self.torch = torch
        self.recipe = recipe
        self.rng = random.Random(seed)
        self.pad = tokenizer.pad_id
        self.eos = tokenizer.eos_id
        self.bos = tokenizer.bos_id
        L = recipe.max_length
        if recipe.architecture == "causal-lm":
            stream: list[int] = []
            for ids in tokenizer.encode_batch([ex.input for ex in examples]):
                stream += [self.eos] + ids
            self.stream = stream
        elif recipe.architecture == "classifier":
            index = {name: i for i, name in enumerate(labels or [])}
            self.pairs = [
                (ids[:L] or [self.eos], index[ex.target])
                for ids, ex in zip(tokenizer.encode_batch([ex.input for ex in examples]), examples)
            ]
        else:
            sources = tokenizer.encode_batch([ex.input for ex in examples])
            targets = tokenizer.encode_batch([ex.target for ex in examples])
            self.pairs = [
                (s[:L] or [self.eos], t[: recipe.target_length - 1] + [self.eos]) for s, t in zip(sources, targets)
            ]

    def tokens(self) -> int:
        return len(self.stream) if self.recipe.architecture == "causal-lm" else sum(len(s) for s, _ in self.pairs)

    def _left(self, seqs: list[list[int]]):
        width = max(len(s) for s in seqs)
        ids = [[self.pad] * (width - len(s)) + s for s in seqs]
        mask = [[0] * (width - len(s)) + [1] * len(s) for s in seqs]
        return self.torch.tensor(ids), self.torch.tensor(mask)

    def next(self) -> tuple[Any, ...]:
        torch, B, L = self.torch, self.recipe.batch_size, self.recipe.max_length
        if self.recipe.architecture == "causal-lm":
            starts = [self.rng.randrange(0, len(self.stream) - L - 1) for _ in range(B)]
            chunk = torch.tensor([self.stream[s : s + L + 1] for s in starts])
            return chunk[:, :-1], torch.ones(B, L, dtype=torch.long), chunk[:, 1:]
        batch = [self.pairs[self.rng.randrange(len(self.pairs))] for _ in range(B)]
        ids, mask = self._left([s for s, _ in batch])
        if self.recipe.architecture == "classifier":
            return ids, mask, torch.tensor([y for _, y in batch])
        width = max(len(t) for _, t in batch)
        dec_in = torch.tensor([[self.bos] + t[:-1] + [self.pad] * (width - len(t)) for _, t in batch])
        target = torch.tensor([t + [-100] * (width - len(t)) for _, t in batch])
        return ids, mask, dec_in, target


def _loss(model: Any, recipe: Recipe, batch: tuple[Any, ...]):
    import torch.nn.functional as F

    if recipe.architecture == "causal-lm":
        ids, mask, target = batch
        logits, _ = model(ids, mask)  # no cache: the whole sequence at once
        return F.cross_entropy(logits.flatten(0, 1), target.flatten())
    if recipe.architecture == "classifier":
        ids, mask, target = batch
        return F.cross_entropy(model(ids, mask), target)
    ids, mask, dec_in, target = batch
    states = model.encoder(ids, mask)
    logits, _ = model.decoder(dec_in, states, mask)
    # A copy decoder's logits are already log-probabilities; cross_entropy's log_softmax keeps them.
    return F.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=-100, label_smoothing=recipe.label_smoothing
    )


# -- training ---------------------------------------------------------------------------------------
def train(task_name: str, *, out: Path | None = None, seed: int = 0, steps: int | None = None,
          threads: int = 2, command: str | None = None, eval_split: str = "test") -> Path:
    """Train, evaluate and save the checkpoint for ``task_name``; returns its folder."""
    import torch

    from llmos_hub import UsageError
    from llmos_hub import default_host

    from .checkpoint import save_checkpoint
    from .evaluation import evaluate
    from .modeling import build_model
    from .tokenizer import train_tokenizer

    if task_name not in RECIPES:
        raise UsageError(f"no training recipe for task {task_name!r}; known: {', '.join(RECIPES)}")
    recipe = RECIPES[task_name]
    steps = steps or recipe.steps
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    started = time.time()

    task = default_host().get("tasks", task_name)
    data = task.load(split="train")
    examples = list(data.examples)
    labels = list(getattr(task, "labels", None) or []) or None
    if recipe.architecture == "classifier" and not labels:
        labels = sorted({ex.target for ex in examples})

    tokenizer = train_tokenizer(_texts_for_tokenizer(recipe, examples), recipe.vocab_size, prefix_space=recipe.prefix_space)
    config = NanoConfig(
        architecture=recipe.architecture,
        vocab_size=tokenizer.vocab_size,
        d_model=recipe.d_model,
        n_layers=recipe.n_layers,
        n_heads=recipe.n_heads,
        d_ff=recipe.d_ff,
        max_length=recipe.max_length,
        dropout=recipe.dropout,
        pad_id=tokenizer.pad_id,
        eos_id=tokenizer.eos_id,
        bos_id=tokenizer.bos_id,
        labels=labels if recipe.architecture == "classifier" else None,
        copy=recipe.copy,
    )
    model = build_model(config)
    model.train()
    batches = _Batches(recipe, tokenizer, examples, labels, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(steps // 20, 1)

    def lr_at(step: int) -> float:
        if step < warmup:
            return recipe.lr * (step + 1) / warmup
        progress = (step - warmup) / max(steps - warmup, 1)
        return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    curve: list[tuple[int, float]] = []
    window: list[float] = []
    every = max(steps // 12, 1)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = _loss(model, recipe, batches.next())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        window.append(loss.item())
        if (step + 1) % every == 0 or step + 1 == steps:
            curve.append((step + 1, sum(window) / len(window)))
            window = []
            print(f"step {step + 1}/{steps} loss {curve[-1][1]:.4f} ({time.time() - started:.0f}s)", flush=True)
    train_seconds = time.time() - started
    model.eval()

    config.training = {
        "task": task_name,
        "task_version": task.version,
        "split": "train",
        "fingerprint": data.fingerprint,
        "examples": len(examples),
        "train_tokens": batches.tokens(),
        "seed": seed,
        "steps": steps,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        **({"label_smoothing": recipe.label_smoothing} if recipe.label_smoothing else {}),
        "threads": threads,
        "script": "llmos_hub_nano.train",
        "command": command or f"python -m llmos_hub_nano.train {task_name}",
        "torch": torch.__version__,
    }
    folder = out if out is not None else output_folder(task_name)
    save_checkpoint(folder, config, model, tokenizer)
    print(f"saved {folder} ({sum(p.numel() for p in model.parameters())} parameters); evaluating", flush=True)
    evaluation = evaluate(folder, task_name, examples, split=eval_split)
    write_card(folder, config, curve, evaluation, train_seconds=train_seconds)
    print(evaluation.summary(), flush=True)
    return folder


def with_overrides(recipe: Recipe, settings: Sequence[str]) -> Recipe:
    """``recipe`` with ``KEY=VALUE`` settings applied (values read as JSON: ``copy=true``, ``dropout=0.3``).

    Lets a candidate recipe be tried (``--set ... --out /tmp/x --eval-split validation``) and
    reproduced without editing :data:`RECIPES`; the command recorded in the card keeps the settings.
    """
    import dataclasses
    import json

    from llmos_hub import UsageError

    known = {f.name for f in dataclasses.fields(Recipe)} - {"architecture", "extra"}
    changes: dict[str, Any] = {}
    for setting in settings:
        key, sep, raw = setting.partition("=")
        if not sep or key not in known:
            raise UsageError(f"--set {setting!r}: give KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            changes[key] = json.loads(raw)
        except ValueError:
            raise UsageError(f"--set {setting!r}: the value must be JSON (true, 0.3, 3072)") from None
    return dataclasses.replace(recipe, **changes)


def check_recipe(recipe: Recipe) -> None:
    """Refuse, in one line naming the setting, a recipe that training would fail on after it started
    (``--set dropout=2`` raised from torch; ``--set n_heads=5`` with ``d_model`` 64 from the attention)."""
    from llmos_hub import UsageError

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    for key in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_length", "steps", "batch_size",
                "target_length"):
        value = getattr(recipe, key)
        if not whole(value) or value < 1:
            raise UsageError(f"--set {key}={value!r}: must be a whole number of at least 1")
    if recipe.d_model % recipe.n_heads:
        raise UsageError(f"--set: d_model {recipe.d_model} must be a multiple of n_heads {recipe.n_heads}")
    for key in ("dropout", "label_smoothing"):
        value = getattr(recipe, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise UsageError(f"--set {key}={value!r}: must be a number from 0 up to (not including) 1")
    if not isinstance(recipe.lr, (int, float)) or isinstance(recipe.lr, bool) or not 0 < recipe.lr < 10:
        raise UsageError(f"--set lr={recipe.lr!r}: must be a positive number (the recipes use 1e-3 to 3e-3)")
    for key in ("copy", "prefix_space"):
        if not isinstance(getattr(recipe, key), bool):
            raise UsageError(f"--set {key}={getattr(recipe, key)!r}: must be true or false")


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1 (``--steps 0`` had trained the full recipe)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def output_folder(task_name: str, out: Path | None = None, *, overwrite: bool = False, cwd: Path | None = None) -> Path:
    """Where a training run writes: ``out``, or the first free ``nano-TASK[-N]`` in ``cwd``.

    Refuses (one line, before any training) an ``out`` that holds a shipped checkpoint or any files,
    unless ``overwrite``.
    """
    from llmos_hub import UsageError

    if out is None:
        base = (cwd or Path.cwd()) / f"nano-{task_name}"
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
        return folder
    if overwrite:
        return out
    shipped = CHECKPOINTS.resolve()
    target = out.expanduser().resolve()
    if target == shipped or shipped in target.parents:
        raise UsageError(f"{out} is a shipped checkpoint; pass --overwrite to retrain it, or leave out --out "
                         "to write a new folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UsageError(f"{out} already exists and is not empty; choose another --out or pass --overwrite")
    return out


def _check_eval_split(task_name: str, split: str) -> None:
    """The split the card scores exists (it was found missing after the training, with a traceback)."""
    from llmos_hub import UsageError, default_host

    splits = getattr(getattr(default_host().get("tasks", task_name), "spec", None), "splits", None)
    if splits is not None and split not in splits:
        raise UsageError(f"--eval-split {split!r}: task {task_name} has the splits {', '.join(splits)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmos_hub_nano.train", description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint folder (default: a new ./nano-TASK, ./nano-TASK-2, ...)")
    parser.add_argument("--overwrite", action="store_true",
                        help="allow --out to be a shipped checkpoint or a folder with files (maintainers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=_positive, default=None, help="override the recipe's steps")
    parser.add_argument("--threads", type=_positive, default=2)
    parser.add_argument("--eval-split", default="test",
                        help="split the card scores (choose settings on 'validation', report 'test')")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, e.g. --set copy=true --set dropout=0.3")
    args = parser.parse_args(argv)
    from llmos_hub import LlmosHubError, UsageError

    try:
        out = output_folder(args.task, args.out, overwrite=args.overwrite)
        if args.set:
            RECIPES[args.task] = with_overrides(RECIPES[args.task], args.set)
        check_recipe(RECIPES[args.task])
        _check_eval_split(args.task, args.eval_split)
        try:  # an --out that cannot be written fails now, not after the training
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot create it ({exc.strerror or exc}); choose a writable folder") from None
    except LlmosHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m llmos_hub_nano.train " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    train(args.task, out=out, seed=args.seed, steps=args.steps, threads=args.threads, command=command,
          eval_split=args.eval_split)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
