"""The model card (``README.md``) of a trained nano checkpoint: how it was made and how good it is."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmos_hub import atomic_write

from .checkpoint import WEIGHTS, file_sha256
from .config import NanoConfig

__all__ = ["write_card"]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def write_card(folder: Path, config: NanoConfig, curve: Sequence[tuple[int, float]], evaluation: Any,
               *, train_seconds: float) -> Path:
    """Write ``folder/README.md`` and ``folder/evaluation.json``."""
    from .evaluation import as_dict

    training = config.training
    name = folder.name
    weights = folder / WEIGHTS
    lines = [
        "---",
        "library_name: llmos-hub",
        "tags: [llmos-hub, nano]",
        f"datasets: [{training['task']}]",
        "---",
        f"# nano:{name}",
        "",
        f"A tiny {config.architecture} model of the `nano` family (written from scratch in PyTorch, "
        f"`llmos-hub-nano`), trained on the **{training['split']}** split of the llmos-hub task "
        f"`{training['task']}` (version {training['task_version']}). It exists to exercise the benchmark "
        "end to end with real, reproducible numbers; it is not a useful model.",
        "",
        "## Architecture",
        "",
        f"- {config.architecture}, pre-LN transformer, d_model {config.d_model}, {config.n_layers} layers"
        + (f" (+{config.decoder_layers} decoder layers)" if config.architecture == "seq2seq" else "")
        + f", {config.n_heads} heads, d_ff {config.d_ff}, context {config.max_length} tokens",
        *(
            ["- pointer-generator copy head (`\"copy\": true`): the decoder mixes its vocabulary "
             "distribution with an attention over the source tokens, so it can copy words from the input"]
            if config.copy else []
        ),
        f"- byte-level BPE tokenizer of {config.vocab_size} tokens trained on the same train split",
        f"- weights: `{WEIGHTS}` ({weights.stat().st_size / 1e6:.2f} MB, sha256 `{file_sha256(weights)}`)",
        "",
        "## Training",
        "",
        f"- command: `{training['command']}` (seed {training['seed']}, {training['threads']} threads, "
        f"torch {training['torch']}); {train_seconds:.0f} s on CPU",
        f"- data: task `{training['task']}` split `{training['split']}`, {training['examples']} examples, "
        f"{training['train_tokens']} tokens, fingerprint `{training['fingerprint']}`",
        f"- {training['steps']} steps of AdamW, batch {training['batch_size']}, peak lr {training['lr']}, "
        "warmup then cosine decay, dropout " + str(config.dropout)
        + (f", label smoothing {training['label_smoothing']}" if training.get("label_smoothing") else ""),
        "",
        "| step | training loss |",
        "| ---: | ---: |",
        *[f"| {step} | {loss:.4f} |" for step, loss in curve],
        "",
        f"## Evaluation on the held-out `{evaluation.split}` split",
        "",
        f"{evaluation.examples} examples (fingerprint `{evaluation.fingerprint}`), scored with the task's own "
        "metrics through the `pytorch` backend"
        + (f", greedy decoding as the task's YAML sets it: `{json.dumps(evaluation.generation)}`" if evaluation.generation else "")
        + ".",
        "",
        f"| metric | this model | baseline: {evaluation.baseline_name} |",
        "| --- | ---: | ---: |",
        *[
            f"| {key}{' (primary)' if key == evaluation.primary else ''} | {_fmt(value)} | "
            f"{_fmt(evaluation.baseline.get(key, float('nan')))} |"
            for key, value in evaluation.model.items()
        ],
        "",
        f"**Verdict:** {evaluation.summary()}.",
        "",
    ]
    if not evaluation.beats_baseline:
        lines += [
            "At this size and training budget the model does not beat its trivial baseline: it has "
            "learned the form of the outputs, not their content. The numbers are kept as they are.",
            "",
        ]
    if evaluation.samples:
        lines += ["### Sample outputs", "", "| input | reference | model |", "| --- | --- | --- |"]
        for s in evaluation.samples:
            cells = [s["input"], s["reference"], s["model"]]
            lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
        lines.append("")
    lines += [
        "## Limitations",
        "",
        "A model of this size trained for minutes on a few hundred kilobytes is weak: greedy decoding "
        "repeats itself and drifts, and scores are far below any real model. Compare it only with its "
        "baseline above and with other backends running the same checkpoint.",
        "",
    ]
    atomic_write(folder / "evaluation.json", json.dumps(as_dict(evaluation), indent=2, sort_keys=True) + "\n")
    return atomic_write(folder / "README.md", "\n".join(lines))
