"""Export the modules of a :class:`~llmos_hub.LoadedModel` to ONNX files, checked by ``onnx.checker``.

Each module is exported on its own, through the fixed calling convention of its role (see
:mod:`._roles`), with dynamic batch and sequence axes. The default exporter is ``torch.onnx.export(...,
dynamo=True)`` (``torch.export`` + onnxscript, the one PyTorch maintains); ``exporter="torchscript"``
selects the older tracer, which is about ten times faster to export and covers a different set of
operators. A failure becomes one :class:`ExportError` line naming the model, the module and the
operator, so a bench can mark that run failed and go on with the others.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmos_hub import LlmosHubError, LoadedModel, UsageError

from . import _gqa
from ._attention import expand_attention_masks, runtime_has_attention_op
from ._output_layer import split_output_product
from ._roles import ROLES, example_inputs

__all__ = [
    "ATTENTION", "DEFAULT_OPSET", "EXPORTERS", "ExportError", "default_attention", "default_opset", "export_model",
    "export_module", "externalize",
]

EXPORTERS = ("dynamo", "torchscript")
#: Opset per exporter. At opset 23 the dynamo exporter writes ``scaled_dot_product_attention`` as one
#: ONNX ``Attention`` node, which ONNX Runtime runs as a fused kernel: on the nano LM a batch of 8x256
#: tokens took 28 ms against 43 ms at opset 18 (where attention is MatMul/Where/Softmax/IsNaN), and
#: a decode step 0.18 against 0.23 ms, with the same numbers to 1e-5. Where the installed ONNX
#: Runtime cannot run that node, :func:`default_opset` falls back to 18. The torchscript exporter
#: stays at 17, its newest well-tested opset.
DEFAULT_OPSET = {"dynamo": 23, "torchscript": 17}
_FALLBACK_OPSET = {"dynamo": 18, "torchscript": 17}


def default_opset(exporter: str) -> int:
    """The opset used when none is asked for: 23 for dynamo where ONNX Runtime runs ``Attention``."""
    if exporter == "dynamo" and not runtime_has_attention_op():
        return _FALLBACK_OPSET[exporter]
    return DEFAULT_OPSET[exporter]


#: How a module's self-attention over its cache is exported: ``decomposed`` (standard ONNX operators; the
#: runner writes the new keys/values) or ``group-query`` (ONNX Runtime's ``GroupQueryAttention``, which
#: writes them itself; CPU, dynamo exporter; see :mod:`._gqa`).
ATTENTION = ("decomposed", "group-query")


def default_attention(exporter: str, device_kind: str, io_binding: bool = True) -> str:
    """``group-query`` for a dynamo export run on the CPU, through IO binding, by an ONNX Runtime that
    has the kernel. Without IO binding its present outputs cannot share the cache's memory, so each step
    would copy the whole cache into buffers of ONNX Runtime's own: the decomposed graph is cheaper."""
    if exporter == "dynamo" and device_kind == "cpu" and io_binding and _gqa.runtime_has_gqa():
        return "group-query"
    return "decomposed"


# Encoder first, then cross_kv: the decoder's example inputs are their outputs.
_ORDER = ("encoder", "cross_kv", "decoder", "causal_lm", "classifier")


class ExportError(LlmosHubError):
    """A module that could not be exported; ``role`` and ``operator`` say which and why."""

    def __init__(self, message: str, *, role: str, operator: str | None) -> None:
        super().__init__(message)
        self.role = role
        self.operator = operator


def export_model(
    model: LoadedModel,
    folder: str | Path,
    *,
    exporter: str = "dynamo",
    opset: int | None = None,
    attention: str = "decomposed",
) -> dict[str, Any]:
    """Write ``<role>.onnx`` into ``folder`` for every module of ``model``; returns what was written.

    The answer maps each role to its file name, input and output names, and records the exporter,
    opset and attention export asked for (it becomes part of the cache manifest). ``attention``: see
    :data:`ATTENTION`; a module that does not attend through :func:`llmos_hub.attention.cache_attention`
    (or whose calls the kernel refuses) is exported decomposed either way.
    """
    import torch

    if exporter not in EXPORTERS:
        raise UsageError(f"unknown ONNX exporter {exporter!r}; use one of: {', '.join(EXPORTERS)}")
    opset = opset or default_opset(exporter)
    unknown = sorted(set(model.modules) - set(ROLES))
    if unknown:
        raise UsageError(f"cannot export {model.name}: unknown module role(s) {', '.join(unknown)}")
    folder = Path(folder)
    graphs: dict[str, Any] = {}
    encoder_width: int | None = None
    cross_kv = None
    for role in sorted(model.modules, key=_ORDER.index):
        module = model.modules[role]
        args = example_inputs(model, role, encoder_width, cross_kv)
        if role == "encoder":
            with torch.no_grad():
                encoder_width = int(module.eval()(*args).shape[-1])
        if role == "cross_kv":
            with torch.no_grad():
                cross_kv = module.eval()(*args)
        file_name = f"{role}.onnx"
        export_module(module, args, folder / file_name, role=role, model_name=model.name, exporter=exporter,
                      opset=opset, attention=attention)
        graphs[role] = {"file": file_name, "inputs": _graph_inputs(folder / file_name), "outputs": list(ROLES[role].outputs)}
    return {"exporter": exporter, "opset": opset, "attention": attention, "graphs": graphs}


def _graph_inputs(path: Path) -> list[str]:
    """The inputs the exported graph kept (an exporter drops one the graph never reads)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in initializers]


def export_module(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    *,
    role: str,
    model_name: str,
    exporter: str = "dynamo",
    opset: int | None = None,
    attention: str = "decomposed",
) -> Path:
    """Export one module following ``role``'s convention to ``path`` and check the result.

    ``attention="group-query"`` (dynamo exporter) traces :func:`llmos_hub.attention.cache_attention`
    as ONNX Runtime's ``GroupQueryAttention`` where its kernel takes the call, with its present
    keys/values as ``present.<layer>.<0|1>`` outputs (:mod:`._gqa`)."""
    import onnx
    import torch

    opset = opset or default_opset(exporter)
    spec = ROLES[role]
    module = module.eval()
    if attention not in ATTENTION:
        raise UsageError(f"unknown attention export {attention!r}; use one of: {', '.join(ATTENTION)}")
    layered = per_layer_inputs(module, role) if exporter == "dynamo" else ()
    group_query = attention == "group-query" and exporter == "dynamo" and "cache" in layered
    try:
        with _quiet(), torch.no_grad(), _lowered(group_query):
            if exporter == "dynamo":
                program = torch.onnx.export(
                    module,
                    _layered_args(spec.inputs, args, layered),
                    None,
                    input_names=_flat_names(spec.inputs, args, layered),
                    output_names=list(spec.outputs),
                    dynamic_shapes=_dynamic_shapes(spec.inputs, spec.axes, layered, args),
                    opset_version=opset,
                    dynamo=True,
                    optimize=True,
                    verbose=False,
                    custom_translation_table=_gqa.translation_table() if group_query else None,
                )
                program.save(str(path), external_data=True)
                expand_attention_masks(path)
                if group_query:
                    _gqa.expose_cache_writes(path)
            else:
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    input_names=list(spec.inputs),
                    output_names=list(spec.outputs),
                    dynamic_axes={name: dict(axes) for name, axes in spec.axes.items()},
                    opset_version=opset,
                    dynamo=False,
                )
        externalize(path)
        if "logits" in spec.outputs:
            split_output_product(path)
        onnx.checker.check_model(str(path), full_check=True)
        for example in _examples(spec.inputs, args, group_query):
            _verify(path, module, example, spec.inputs, spec.outputs, layered)
    except LlmosHubError:
        raise
    except Exception as exc:
        raise _export_error(exc, role=role, model_name=model_name, exporter=exporter, opset=opset) from exc
    return path


def _examples(inputs: tuple[str, ...], args: tuple[Any, ...], group_query: bool) -> list[tuple[Any, ...]]:
    """The inputs a graph is verified on: the export's example (several new tokens over a filled cache),
    or, for a group-query graph, the two calls its kernel takes and the runner makes: several new
    tokens from slot 0 (a prefill) and one new token per row over a filled cache (a step)."""
    if not group_query:
        return [args]
    import torch

    named = dict(zip(inputs, args))
    slots = named["cache_position"]
    new = int(slots.numel())
    prefill = {**named, "cache_position": torch.arange(new, dtype=slots.dtype)}
    step = {**named, "cache_position": slots[-1:]}
    for name in ("input_ids", "decoder_input_ids"):
        if name in named:
            step[name] = named[name][:, -1:]
    if "logits_index" in named:
        step["logits_index"] = torch.zeros(1, dtype=named["logits_index"].dtype)
    return [tuple(example[name] for name in inputs) for example in (prefill, step)]


@contextlib.contextmanager
def _lowered(group_query: bool) -> Iterator[None]:
    """Within the block, trace the cache attention as one operator (group-query exports)."""
    if not group_query:
        yield
        return
    from llmos_hub.attention import lowered_cache_attention

    with lowered_cache_attention(_gqa.accepts):
        yield


def externalize(path: Path) -> None:
    """Keep the weights of the graph at ``path`` in ``<file>.data`` next to it, not inside the graph.

    ONNX Runtime memory-maps external weights and, once a kernel has packed a weight into its own
    layout, unmaps the original: a session then holds one copy of the weights. Weights inside the
    graph are parsed into memory and kept next to the packed copies (GPT-2-small: +486 MiB for
    334 MiB of weights, against +336 MiB from external data; ``python benchmarks/generate.py --memory``).
    """
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    if any(init.data_location == onnx.TensorProto.EXTERNAL for init in proto.graph.initializer):
        return  # the dynamo exporter wrote them so already
    proto = onnx.load(str(path))
    onnx.save(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{path.name}.data", size_threshold=1024)


#: How far ONNX Runtime's outputs on the example inputs may be from torch's (absolute, after scaling
#: by the output's magnitude): float32 kernels differ by ~1e-6, a wrong graph by far more.
VERIFY_TOLERANCE = 1e-4


class _Mismatch(Exception):
    """ONNX Runtime's answer on the example inputs differs from torch's."""


def _verify(
    path: Path, module: Any, args: tuple[Any, ...], inputs: tuple[str, ...], outputs: tuple[str, ...],
    layered: tuple[str, ...] = (),
) -> None:
    """Run the exported graph on the example inputs in ONNX Runtime and compare with torch.

    This catches at export time what would otherwise fail or drift at run time: an operator ONNX
    Runtime cannot run, or one it runs differently from PyTorch.
    """
    import numpy as np
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    present = {i.name for i in session.get_inputs()}  # an input the graph never reads may be dropped
    feeds = dict(zip(_flat_names(inputs, args, layered), _flat_args(inputs, args, layered)))
    got = session.run(list(outputs), {name: arg.numpy() for name, arg in feeds.items() if name in present})
    with torch.no_grad():
        expected = module(*(a.clone() for a in args))  # an eager module writes its cache in place
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    for name, have, want in zip(outputs, got, expected):
        want = want.float().numpy()
        if have.shape != want.shape:
            raise _Mismatch(f"output {name!r} has shape {have.shape} in ONNX Runtime, {want.shape} in torch")
        error = float(np.abs(have - want).max()) if want.size else 0.0
        scale = max(1.0, float(np.abs(want).max()) if want.size else 0.0)
        if not error <= VERIFY_TOLERANCE * scale:
            raise _Mismatch(f"output {name!r} differs from torch by {error:.2e} on the example inputs")


#: Convention inputs with a leading layer axis that a module may take as one tensor per layer.
LAYERED_INPUTS = ("cache", "cross_kv")


def per_layer_inputs(module: Any, role: str) -> tuple[str, ...]:
    """The inputs of ``role`` that ``module`` takes as per-layer sequences (its ``per_layer_inputs``).

    Exported that way, each layer's keys and values are graph inputs of their own (``cache.0.0``,
    ``cache.0.1``, ``cache.1.0``, ...), which the runner binds to views of its buffer: ONNX Runtime
    reads the cache in place, where selecting ``cache[i, 0]`` inside the graph copies the whole cache
    at every step (ORT fuses the selects into one ``Split``).
    """
    wanted = getattr(module, "per_layer_inputs", ()) or ()
    return tuple(name for name in ROLES[role].inputs if name in LAYERED_INPUTS and name in wanted)


def _layered_args(inputs: tuple[str, ...], args: tuple[Any, ...], layered: tuple[str, ...]) -> tuple[Any, ...]:
    """``[layers, 2, ...]`` inputs named in ``layered`` as per-layer ``(keys, values)`` pairs."""
    return tuple(
        tuple(tuple(layer.unbind(0)) for layer in arg.unbind(0)) if name in layered else arg
        for name, arg in zip(inputs, args)
    )


def _flat_args(inputs: tuple[str, ...], args: tuple[Any, ...], layered: tuple[str, ...]) -> list[Any]:
    flat: list[Any] = []
    for name, arg in zip(inputs, args):
        flat.extend(arg.flatten(0, 1).unbind(0) if name in layered else [arg])
    return flat


def _flat_names(inputs: tuple[str, ...], args: tuple[Any, ...], layered: tuple[str, ...]) -> list[str]:
    """Graph input names; a layered input's become ``name.<layer>.<0 keys | 1 values>``."""
    names: list[str] = []
    for name, arg in zip(inputs, args):
        if name in layered:
            names.extend(f"{name}.{i}.{j}" for i in range(arg.shape[0]) for j in range(arg.shape[1]))
        else:
            names.append(name)
    return names


def _dynamic_shapes(
    inputs: tuple[str, ...], axes: Mapping[str, Mapping[int, str]], layered: tuple[str, ...] = (),
    args: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """``torch.export`` dims for the inputs; one ``Dim`` per axis name so shared axes stay equal.

    A per-layer input gets one entry per layer and per keys/values, its axes shifted by the two it lost.
    ``total`` (a derived length, if a role ever declares one) is left to ``torch.export`` to infer
    (``Dim.AUTO``) rather than declared independent.
    """
    from torch.export import Dim

    dims: dict[str, Any] = {}
    shapes: dict[str, Any] = {}
    layers = dict(zip(inputs, (int(a.shape[0]) if hasattr(a, "shape") and a.dim() else 0 for a in args)))
    for name in inputs:
        spec = {
            axis: Dim.AUTO if dim_name == "total" else dims.setdefault(dim_name, Dim(dim_name))
            for axis, dim_name in axes.get(name, {}).items()
        }
        if name in layered:
            pair = tuple({axis - 2: dim for axis, dim in spec.items()} for _ in range(2))
            shapes[name] = tuple(pair for _ in range(layers[name]))
        else:
            shapes[name] = spec
    return shapes


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' progress prints, deprecation warnings and registry log lines."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


_OPERATOR_PATTERNS = (
    re.compile(r"OpOverload\(op='([^']+)', overload='([^']+)'\)"),  # dynamo: no ONNX function found
    re.compile(r"target=torch\.ops\.([\w.]+)"),  # dynamo: node that failed to translate
    re.compile(r"operator '([^']+)'"),  # torchscript: unsupported operator
    re.compile(r"unrecognized namespace (\S+?)\.?\s"),  # torchscript: custom operator
    re.compile(r"No Op registered for (\w+)"),  # onnxruntime / checker
    re.compile(r"while running (\w+) node"),  # onnxruntime: a kernel that refused its inputs
)


def _operator_of(text: str) -> str | None:
    for pattern in _OPERATOR_PATTERNS:
        match = pattern.search(text)
        if match:
            groups = [g for g in match.groups() if g and g != "default"]
            return ".".join(groups)
    return None


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _export_error(exc: BaseException, *, role: str, model_name: str, exporter: str, opset: int) -> ExportError:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = "\n".join(str(item) for item in chain)
    operator = _operator_of(text)
    where = f"cannot export module {role!r} of {model_name} to ONNX ({exporter} exporter, opset {opset})"
    if isinstance(exc, _Mismatch):
        reason = f"the exported graph is wrong: {exc}"
    elif operator and "while running" in text:
        reason = f"ONNX Runtime {_ort_version()} fails on its operator {operator} in the exported graph"
    elif operator:
        reason = f"operator {operator} is not supported"
    else:
        innermost = chain[-1]
        first = next((line.strip() for line in str(innermost).splitlines() if line.strip()), "")
        reason = f"{type(innermost).__name__}: {first[:200]}"
    other = "torchscript" if exporter == "dynamo" else "dynamo"
    hint = f"try options={{'exporter': '{other}'}} or run the model with backend 'pytorch'"
    return ExportError(f"{where}: {reason}; {hint}", role=role, operator=operator)
