"""Linear layers with their weights packed once by oneDNN, for CPU decoding.

A decoding step multiplies a few rows (the batch) by every weight matrix of the model; PyTorch's
default CPU matmul re-reads the weight in its stored layout at every call. oneDNN can reorder a
weight once into the blocked layout its small-``M`` kernels stream best (what ``torch.compile``'s
CPU backend does after "freezing"); measured on GPT-2-small geometry at 8 rows, 1 thread, the
model's matmuls take about 0.7 of the time (``benchmarks/generate.py``). At one row on one thread
the step is bound by reading the weights from memory and the packed layout does not help (GPT-2's
``Conv1D``, stored ``[in, out]``, is even ~10% slower packed), so there packing is an option
(``--backend-option pytorch.prepack=true``). With two threads or more the packed kernel also wins at
one row (PyTorch's dense one-row product runs on one thread; the packed one uses them all: 27 against
20 GB/s of weights on this project's 2-core machines), so there it is the default for models of real
size: :func:`plan_prepack`.

Results are float32 matmuls in another summation order: logits differ from the unpacked ones in
the last bits (well under 1e-4 on the tested models), greedy tokens are the same on every model the
tests and benchmarks run.

Packing replaces ``nn.Linear`` and ``transformers``' ``Conv1D`` (recognised by name and shape, so
this plugin does not import ``transformers``) in modules the runner owns (:meth:`LoadedModel.own_modules`),
never in the model's shared modules. A layer whose weight is shared with another parameter (a tied
output embedding) is not packed: that would keep a second copy. A tied float32 ``nn.Linear`` (contiguous
weight and bias) becomes a :class:`SharedWeightLinear`, which multiplies the same tensor in its stored
layout with oneDNN's kernel below :data:`DENSE_ROWS` rows: PyTorch's dense one-row product runs on one
thread, oneDNN's spreads over all of them even on an unpacked weight (GPT-2's 50,257 x 768 output
embedding, 2 threads: 9.3 ms dense, 5.0 ms so; docs/decisions.md, "ninth round"). Other tied layers stay
as they are. Where the default does not pack (one thread), the output layer alone becomes one
(:func:`plan_output_layer`): on one thread too oneDNN reads a vocabulary-sized weight faster.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .mapped import FileMapping, file_mappings, release, trim_heap

__all__ = ["AUTO_MIN_PARAMETERS", "PackedLinear", "SharedWeightLinear", "available", "fuse_projections",
           "pack_linears", "pack_modules", "plan_output_layer", "plan_prepack", "unpacked_output_layers"]

#: ``prepack=auto`` packs models of at least this many parameters (on tiny models a packed call's
#: fixed cost outweighs what it saves; the onnxruntime backend draws its all-cores line at the same size).
AUTO_MIN_PARAMETERS = 10_000_000


def available() -> bool:
    """Whether this torch build has oneDNN's packed linear kernels."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def plan_prepack(
    option: bool | None, *, device: torch.device, dtype: torch.dtype, threads: int, num_parameters: int,
    generates: bool = True, compile: bool = False,
) -> tuple[bool, str]:
    """Whether a runner packs its linear weights, and why (the record's ``prepack_source``).

    ``option``: ``True``/``False`` as the user chose, ``None`` for the default (``auto``). The default
    packs on the CPU in float32 with 2 threads or more, for models that generate (a classifier's
    products are all many-rowed, where packing gains nothing) of :data:`AUTO_MIN_PARAMETERS`
    parameters or more, unless the step is compiled: on 2 threads packed products win at one row and
    at eight (PyTorch's dense kernel does not spread a one-row product over the threads; oneDNN's
    packed one does), while on one thread they lose ~10% at one row (docs/decisions.md, "eighth round").
    """
    if option is not None:
        return bool(option), "option"
    if device.type != "cpu" or dtype != torch.float32 or compile or not available():
        return False, "default: off (CPU float32 without compile only)"
    if threads < 2:
        return False, "default: off on one thread (packed products lose at one row there)"
    if not generates:
        return False, "default: off for a model that does not generate"
    if num_parameters < AUTO_MIN_PARAMETERS:
        return False, f"default: off below {AUTO_MIN_PARAMETERS:,} parameters"
    return True, f"default: {threads} threads and >= {AUTO_MIN_PARAMETERS:,} parameters"


def plan_output_layer(
    option: bool | None, *, packs: bool, device: torch.device, dtype: torch.dtype, num_parameters: int,
    generates: bool = True, compile: bool = False,
) -> bool:
    """Whether a runner that does not pack still runs its output layer on oneDNN's kernel, on the
    weight as stored (:func:`unpacked_output_layers`).

    Only under the default (``prepack=auto``: ``false`` keeps every product on the dense kernel), on
    the CPU in float32 without compile, for models of real size that generate; in practice on one
    thread, where the default does not pack. The output layer is the step's largest product (GPT-2's
    50,257 x 768 is a third of its weights), and there oneDNN's kernel reads it faster than PyTorch's
    dense one also on one thread, unlike the other layers (docs/decisions.md, "tenth round": one
    thread, whole greedy generations 1.05x faster at one row, 1.06-1.16x at eight).
    """
    return (option is None and not packs and device.type == "cpu" and dtype == torch.float32 and not compile
            and generates and num_parameters >= AUTO_MIN_PARAMETERS and available())


#: Products of at least this many rows (a long prefill, scoring, a classifier's batch) unpack the weight
#: for the call and run the dense kernel: there the packed one is slower (GPT-2-small geometry, 2 threads:
#: 8% for 1,024-row products replayed alone, 19% inside a scoring call of ~800 rows), and unpacking a
#: layer costs ~1 ms and one layer's dense copy for the call. Below it the packed one wins or ties.
DENSE_ROWS = 512


class PackedLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` reordered once by oneDNN (CPU, float32)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, *, batch_hint: int = 8) -> None:
        super().__init__()
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        # ``weight`` stays an attribute of that name: model code reads ``layer.weight.dtype``.
        dense = weight.detach()
        if not (dense.is_contiguous() or dense.t().is_contiguous()):  # oneDNN reads either order in place
            dense = dense.contiguous()
        packed = torch.ops.mkldnn._reorder_linear_weight(dense, batch_hint)
        self.weight = nn.Parameter(packed, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().contiguous(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() >= DENSE_ROWS * self.in_features:
            return torch.nn.functional.linear(x, self.weight.to_dense(), self.bias)
        # The kernel takes any leading dimensions (and strides) itself; a reshape and a view around it
        # cost ~10 us a call, which at one row is a tenth of a 512 x 512 product.
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, packed"


class SharedWeightLinear(nn.Module):
    """``y = x W^T + b`` on the weight of the layer it replaces, shared and unpacked: a tied output
    embedding where the runner packs, the output layer where it does not (:func:`unpacked_output_layers`).

    The module holds the very ``Parameter`` objects of the layer it replaces, so a tie holds and no
    copy is made. Below :data:`DENSE_ROWS` rows oneDNN's kernel reads the weight in its stored layout
    and, unlike PyTorch's dense one-row product, uses every thread (50,257 x 768, 2 threads: 5.0 ms
    against 9.3 at one row, 11.9 against 27.8 at eight); from there on the dense kernel, as
    :class:`PackedLinear` does, so that scoring long sequences keeps the dense layer's exact numbers
    (oneDNN would still be ~1.2x faster at 512 rows). For inference: oneDNN's call has no backward, so
    with gradients wanted the dense kernel runs.
    """

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        # oneDNN reads the weight in its stored order and the bias as one packed row: other strides
        # would be read wrongly (a strided bias gives wrong sums), so they are refused here.
        if weight.dim() != 2 or not weight.is_contiguous() or (bias is not None and not bias.is_contiguous()):
            raise ValueError("SharedWeightLinear needs a contiguous 2-D weight and a contiguous bias (or none)")
        self.in_features = int(weight.shape[1])
        self.out_features = int(weight.shape[0])
        self.weight = weight
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        if x.numel() >= DENSE_ROWS * self.in_features or (torch.is_grad_enabled() and self.weight.requires_grad):
            return torch.nn.functional.linear(x, self.weight, self.bias)
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, shared"


def _is_conv1d(module: nn.Module) -> bool:
    """``transformers.pytorch_utils.Conv1D``: a linear layer whose weight is stored ``[in, out]``."""
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, Tensor)
        and weight.dim() == 2
        and getattr(module, "nf", None) == weight.shape[1]
    )


def _shared_storages(modules: Iterable[nn.Module]) -> set[int]:
    """Data pointers held by more than one parameter (tied weights), across all of ``modules`` (a
    runner's roles: an embedding in one and the output layer in another are tied too). A module reached
    from two roles is counted once."""
    seen: dict[int, int] = {}
    subs = {id(sub): sub for module in modules for sub in module.modules()}
    for sub in subs.values():
        if isinstance(sub, PackedLinear):  # opaque oneDNN storage, and never tied
            continue
        for _, p in sub.named_parameters(recurse=False, remove_duplicate=False):
            seen[p.data_ptr()] = seen.get(p.data_ptr(), 0) + 1
    return {ptr for ptr, n in seen.items() if n > 1}


def fuse_projections(modules: Iterable[nn.Module]) -> int:
    """Let every module under ``modules`` that offers ``fuse_projections(release)`` join the linear
    layers that read the same input (a transformer layer's query, key and value projections) into
    one; the mapped pages of each weight it replaces are given back as it goes. Returns how many
    tensors were replaced.

    Packed products have a fixed cost per call (at one row, ~60 us a 512-wide layer on this project's
    2-core machines), so one product of three layers' width saves two of them. The method is an
    optional part of a module's calling convention (:class:`llmos_hub.LoadedModel`); a runner calls it
    on modules it owns only, before packing, which then packs the joined layers."""
    # Found first, called after: joining changes the module trees being walked.
    offering = {id(m): m for root in modules for m in root.modules() if callable(getattr(m, "fuse_projections", None))}
    replaced = 0
    for module in offering.values():
        mappings = file_mappings()
        replaced += int(module.fuse_projections(lambda tensor, mappings=mappings: release(tensor, mappings)))
    return replaced


def pack_linears(module: nn.Module, *, batch_hint: int = 8) -> int:
    """Replace every float32 CPU ``nn.Linear``/``Conv1D`` under ``module`` by a :class:`PackedLinear`.

    Returns how many layers were packed; :func:`pack_modules` for several modules (a runner's roles).
    """
    return pack_modules([module], batch_hint=batch_hint)


def pack_modules(modules: Iterable[nn.Module], *, batch_hint: int = 8) -> int:
    """:func:`pack_linears` over ``modules``, then one copy of what is left dense across all of them.

    Each layer's dense weight is released as soon as its packed copy exists: in ordinary memory by
    dropping the last reference, on a memory-mapped checkpoint by giving its pages back
    (:func:`.mapped.release`), and the heap's freed pieces are returned after each layer. So resident
    weights peak at about one layer over the model's size (GPT-2-small geometry: 1,172 MiB before,
    746 after, where the unpacked runner peaks at 744).
    """
    modules = list(modules)
    mappings = file_mappings()
    tied = _shared_storages(modules)
    count = sum(_pack(module, batch_hint, mappings, tied) for module in modules)
    if count:
        _own_dense_tensors(modules, file_mappings())
        trim_heap()
    return count


def _pack(module: nn.Module, batch_hint: int, mappings: list[FileMapping], tied: set[int]) -> int:
    done: dict[int, nn.Module] = {}  # one layer reached from two parents stays one layer
    count = 0
    # Only modules with children, and only their children's names: holding the leaves here (a list of a
    # ModuleList's layers, say) would keep their dense weights alive until all of them are packed.
    for parent in [m for m in module.modules() if next(m.children(), None) is not None]:
        for name in [name for name, _ in parent.named_children()]:
            child = getattr(parent, name)
            if id(child) in done:
                setattr(parent, name, done[id(child)])
                continue
            if isinstance(child, nn.Linear):
                weight = child.weight
            elif _is_conv1d(child):
                weight = child.weight.t()
            else:
                continue
            if weight.device.type != "cpu" or weight.dtype != torch.float32:
                continue
            if child.weight.data_ptr() in tied:
                if _runs_unpacked(child):
                    shared = done[id(child)] = SharedWeightLinear(child.weight, child.bias)
                    setattr(parent, name, shared)
                continue
            packed = done[id(child)] = PackedLinear(weight, child.bias, batch_hint=batch_hint)
            setattr(parent, name, packed)
            release(child.weight, mappings)  # its mapped pages, read once: see :mod:`.mapped`
            del child, weight  # the last references to a dense layer in memory of its own: freed now
            trim_heap()  # and what oneDNN's reorder freed, before the next layer's packing grows the heap
            count += 1
    return count


def _runs_unpacked(layer: nn.Module) -> bool:
    """Whether ``layer`` can become a :class:`SharedWeightLinear`: a float32 CPU ``nn.Linear`` whose
    weight and bias (if any) are contiguous."""
    if not isinstance(layer, nn.Linear):
        return False
    weight, bias = layer.weight, layer.bias
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.is_contiguous()
            and (bias is None or bias.is_contiguous()))


def unpacked_output_layers(modules: Iterable[nn.Module]) -> int:
    """Replace the output layer of each model under ``modules`` by a :class:`SharedWeightLinear` on the
    same parameters; returns how many layers were replaced.

    The output layer is what a module's ``get_output_embeddings()`` (``transformers``' accessor, so
    this plugin need not import it) returns, tied to the input embedding or not; only one that
    :func:`_runs_unpacked` accepts. Like packing, for modules the runner owns only: the model's shared
    modules stay as they are, for the other backends in the process (an ONNX export cannot trace
    oneDNN's call). A layer reached from two roles becomes one replacement.
    """
    subs = list({id(m): m for root in modules for m in root.modules()}.values())
    heads: set[int] = set()
    for sub in subs:
        getter = getattr(sub, "get_output_embeddings", None)
        head = getter() if callable(getter) else None
        if isinstance(head, nn.Module) and _runs_unpacked(head):
            heads.add(id(head))
    done: dict[int, SharedWeightLinear] = {}
    for parent in subs:
        for name, child in list(parent.named_children()):
            if id(child) in heads:
                if id(child) not in done:
                    done[id(child)] = SharedWeightLinear(child.weight, child.bias)
                setattr(parent, name, done[id(child)])
    return len(done)


def _own_dense_tensors(modules: Iterable[nn.Module], mappings: list[FileMapping]) -> None:
    """Give the parameters and buffers left dense (biases, norms, embeddings) memory of their own.

    A checkpoint loaded by ``transformers`` is memory-mapped: every tensor is a view of the file's
    mapping, and the mapping stays while any view lives. Packing gives the weights' pages back as it
    goes (:func:`.mapped.release`), but views left on the mapping (a bias, a layer norm, where pages
    could not be given back) would keep the mapping and what it still holds resident: before pages
    were given back, a packed GPT-2-small runner held 1,199 MiB after prepare, 858 MiB once the rest was
    copied. Tensors that share memory (tied weights, also across roles) stay shared: each block of
    memory is copied once, piece by piece, each piece's mapped pages given back as soon as it is copied
    (:func:`_copy_releasing`).
    """
    # Every tensor is collected (each object once: a module shared by two roles is reached twice) and
    # every copy made before any tensor is replaced. Replacing as we go would free originals whose
    # addresses a later copy could take, making two different tensors one key.
    found: dict[int, Tensor] = {}
    for sub in (m for module in modules for m in module.modules()):
        for _, tensor in [*sub.named_parameters(recurse=False), *sub.named_buffers(recurse=False)]:
            if not tensor.is_mkldnn and tensor.device.type == "cpu":
                found.setdefault(id(tensor), tensor)
    def memory(t: Tensor) -> tuple[int, torch.dtype, tuple[int, ...], tuple[int, ...]]:
        return t.data_ptr(), t.dtype, tuple(t.shape), tuple(t.stride())

    copies: dict[tuple[int, torch.dtype, tuple[int, ...], tuple[int, ...]], Tensor] = {}
    for tensor in found.values():
        if memory(tensor) not in copies:
            copies[memory(tensor)] = _copy_releasing(tensor.detach(), mappings)
    for tensor in found.values():
        tensor.data = copies[memory(tensor)]


#: :func:`_copy_releasing` copies this much at a time.
COPY_PIECE_BYTES = 16 << 20


def _copy_releasing(tensor: Tensor, mappings: list[FileMapping]) -> Tensor:
    """A copy of ``tensor`` in memory of its own, made :data:`COPY_PIECE_BYTES` at a time, each piece's
    mapped pages given back (:func:`.mapped.release`) once copied: the file's pages and the copy are
    never both resident beyond one piece. A whole clone held both: a tied 50,257 x 768 output embedding
    (147 MiB) raised a packed GPT-2-small's peak from 923 to 1,054 MiB. Pages given back are read from
    the file again if touched before the copy replaces the tensor."""
    if not tensor.is_contiguous() or tensor.numel() * tensor.element_size() <= COPY_PIECE_BYTES:
        copy = tensor.clone()
        release(tensor, mappings)
        return copy
    flat, copy = tensor.view(-1), torch.empty_like(tensor).view(-1)
    start, size, page = tensor.data_ptr(), tensor.element_size(), mmap.PAGESIZE
    at = 0
    while at < flat.numel():  # pieces end on page boundaries: a page split between two is never released
        end = min(flat.numel(), max(at + 1, ((start + at * size + COPY_PIECE_BYTES) // page * page - start) // size))
        copy[at:end].copy_(flat[at:end])
        release(flat[at:end], mappings)
        at = end
    return copy.view_as(tensor)
