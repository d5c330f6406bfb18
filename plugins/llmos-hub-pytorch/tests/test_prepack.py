"""The ``prepack`` option: oneDNN-packed linear weights give the same greedy tokens and (to float32
rounding) the same scores as the dense modules, on the runner's own modules only, and is refused in one
line where it cannot work."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest
import torch

from llmos_hub import GenerationConfig, UsageError
from llmos_hub_nano.family import NanoFamily
from llmos_hub_nano.tiny import random_checkpoint
from llmos_hub_pytorch import prepack
from llmos_hub_pytorch.backend import TorchBackend
from llmos_hub_pytorch.mapped import file_mappings, parse_smaps, release
from llmos_hub_pytorch.prepack import (
    AUTO_MIN_PARAMETERS,
    DENSE_ROWS,
    PackedLinear,
    SharedWeightLinear,
    available,
    pack_linears,
    pack_modules,
    plan_output_layer,
    plan_prepack,
    unpacked_output_layers,
)

pytestmark = pytest.mark.skipif(not available(), reason="this torch build has no oneDNN packed linear kernels")

PROMPTS = ["The quick brown fox", "Usage:", "Packages provide libraries, tools and documentation for the"]
PAIRS = [("The quick brown", " fox jumps"), ("Usage:", " llmos-hub bench"), ("A", " tokenizer splits text")]


def _load(root, arch):
    return NanoFamily().load(str(random_checkpoint(root / arch, arch, seed=3, max_length=48)))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("prepack")


@pytest.mark.parametrize("arch", ["causal-lm", "seq2seq"])
def test_packed_runner_matches_the_dense_one(root, arch):
    dense = TorchBackend().prepare(_load(root, arch), options={})
    model = _load(root, arch)
    packed = TorchBackend().prepare(model, options={"prepack": True})
    assert packed.prepacked > 0 and packed.describe()["prepacked_linears"] == packed.prepacked
    assert dense.describe()["prepacked_linears"] == 0
    assert any(isinstance(m, PackedLinear) for root_ in packed.modules.values() for m in root_.modules())
    config = GenerationConfig(max_new_tokens=10)
    assert [g.text for g in packed.generate(PROMPTS, config)] == [g.text for g in dense.generate(PROMPTS, config)]
    beams = GenerationConfig(max_new_tokens=6, num_beams=3)
    assert [g.text for g in packed.generate(PROMPTS, beams)] == [g.text for g in dense.generate(PROMPTS, beams)]
    ours, theirs = packed.loglikelihood(PAIRS), dense.loglikelihood(PAIRS)
    assert [a.is_greedy for a in ours] == [b.is_greedy for b in theirs]
    assert [a.logprob for a in ours] == pytest.approx([b.logprob for b in theirs], abs=1e-4)


def test_the_shared_modules_are_never_packed(root):
    model = _load(root, "causal-lm")
    TorchBackend().prepare(model, options={"prepack": "true"})
    assert not model.modules_built  # the runner built its own copy
    assert not any(isinstance(m, PackedLinear) for root_ in model.modules.values() for m in root_.modules())


def test_pack_linears_equals_linear_and_conv1d_and_leaves_tied_weights():
    torch.manual_seed(0)

    class Conv1D(torch.nn.Module):  # transformers' layout: weight [in, out], recognised by name
        def __init__(self, nf, nx):
            super().__init__()
            self.nf = nf
            self.weight = torch.nn.Parameter(torch.randn(nx, nf))
            self.bias = torch.nn.Parameter(torch.randn(nf))

        def forward(self, x):
            return torch.addmm(self.bias, x.view(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], self.nf)

    embed = torch.nn.Embedding(50, 24)
    head = torch.nn.Linear(24, 50, bias=False)
    head.weight = embed.weight  # tied: packing it would hold a second copy
    net = torch.nn.ModuleDict({"a": torch.nn.Linear(24, 40), "b": Conv1D(40, 24), "embed": embed, "head": head})
    x = torch.randn(3, 5, 24)
    before = {k: net[k](x) for k in ("a", "b", "head")}
    assert pack_linears(net) == 2
    assert isinstance(net["a"], PackedLinear) and isinstance(net["b"], PackedLinear)
    assert isinstance(net["head"], SharedWeightLinear) and net["head"].weight is net["embed"].weight
    for k in ("a", "b", "head"):
        assert torch.allclose(net[k](x), before[k], atol=1e-5)


@pytest.mark.parametrize(("device", "dtype"), [("cpu", "bfloat16"), ("cuda", "float32")])
def test_prepack_elsewhere_is_one_line_before_loading(device, dtype):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present; prepack on CUDA is refused by the same check")
    with pytest.raises(UsageError) as caught:
        TorchBackend().check(device, dtype, {"prepack": True})
    assert "\n" not in str(caught.value)
    assert "--device" in str(caught.value)


def test_packing_leaves_no_tensor_on_the_checkpoints_memory():
    """Loaded checkpoints are views of one memory-mapped file; after packing, nothing may still point
    into it (a bias or a norm left there keeps the whole file resident next to the packed copies)."""
    torch.manual_seed(0)
    net = torch.nn.ModuleDict({"a": torch.nn.Linear(24, 40), "norm": torch.nn.LayerNorm(40),
                               "embed": torch.nn.Embedding(50, 24), "head": torch.nn.Linear(24, 50, bias=False)})
    net["head"].weight = net["embed"].weight
    params = list(net.parameters())  # unique: the tied weight once
    file = torch.cat([p.detach().reshape(-1) for p in params])  # stands in for the mapped checkpoint
    at = 0
    for p in params:  # every parameter becomes a view of ``file``, as a memory-mapped load leaves them
        p.data = file[at : at + p.numel()].view_as(p)
        at += p.numel()
    x = torch.randn(3, 24)
    before = net["norm"](net["a"](x)), net["head"](x), net["embed"](torch.tensor([1, 7]))
    assert pack_linears(net) == 1
    start, end = file.data_ptr(), file.data_ptr() + file.numel() * file.element_size()
    left = [t for t in list(net.parameters()) + list(net.buffers()) if not t.is_mkldnn]
    assert left and all(not start <= t.data_ptr() < end for t in left)
    assert net["head"].weight.data_ptr() == net["embed"].weight.data_ptr()  # still tied, one copy
    after = net["norm"](net["a"](x)), net["head"](x), net["embed"](torch.tensor([1, 7]))
    for b, a in zip(before, after):
        assert torch.allclose(a, b, atol=1e-5)


def test_a_weight_tied_across_roles_stays_one_copy():
    """Two roles whose parameters are distinct objects on the same memory (a tie across modules):
    copying what packing leaves dense must copy that memory once, for both."""
    encoder = torch.nn.ModuleDict({"embed": torch.nn.Embedding(50, 24), "proj": torch.nn.Linear(24, 24)})
    decoder = torch.nn.ModuleDict({"embed": torch.nn.Embedding(50, 24), "proj": torch.nn.Linear(24, 24)})
    decoder["embed"].weight = torch.nn.Parameter(encoder["embed"].weight.data)  # another object, same memory
    assert pack_modules([encoder, decoder]) == 2
    assert encoder["embed"].weight is not decoder["embed"].weight
    assert encoder["embed"].weight.data_ptr() == decoder["embed"].weight.data_ptr()


# -- the default: packed where it wins ---------------------------------------------------------------------
CPU, F32 = torch.device("cpu"), torch.float32
BIG = AUTO_MIN_PARAMETERS


@pytest.mark.parametrize(("option", "device", "dtype", "threads", "params", "generates", "compile", "packs", "why"), [
    (None, CPU, F32, 2, BIG, True, False, True, "default: 2 threads"),
    (None, CPU, F32, 4, BIG, True, False, True, "default: 4 threads"),
    (None, CPU, F32, 1, BIG, True, False, False, "default: off on one thread"),
    (None, CPU, F32, 2, BIG - 1, True, False, False, "default: off below"),
    (None, CPU, F32, 2, BIG, False, False, False, "default: off for a model that does not generate"),
    (None, CPU, torch.bfloat16, 2, BIG, True, False, False, "default: off (CPU float32"),
    (None, torch.device("cuda"), F32, 0, BIG, True, False, False, "default: off (CPU float32"),
    (None, CPU, F32, 2, BIG, True, True, False, "default: off (CPU float32 without compile"),
    (True, CPU, F32, 1, 10, False, False, True, "option"),
    (False, CPU, F32, 2, BIG, True, False, False, "option"),
])
def test_plan_prepack(option, device, dtype, threads, params, generates, compile, packs, why):
    got, source = plan_prepack(option, device=device, dtype=dtype, threads=threads, num_parameters=params,
                               generates=generates, compile=compile)
    assert got is packs and source.startswith(why)


def test_the_default_packs_a_model_of_real_size_with_two_threads(root, monkeypatch):
    monkeypatch.setattr("llmos_hub_pytorch.prepack.AUTO_MIN_PARAMETERS", 1)  # the nano model stands in for one
    before = torch.get_num_threads()
    try:
        two = TorchBackend().prepare(_load(root, "causal-lm"), options={"threads": 2})
        one = TorchBackend().prepare(_load(root, "causal-lm"), options={"threads": 1})
        chosen = TorchBackend().prepare(_load(root, "causal-lm"), options={"threads": 2, "prepack": "false"})
        classifier = TorchBackend().prepare(_load(root, "classifier"), options={"threads": 2})
    finally:
        torch.set_num_threads(before)
    assert two.prepacked > 0 and two.describe()["prepack_source"] == "default: 2 threads and >= 1 parameters"
    assert classifier.prepacked == 0 and "does not generate" in classifier.describe()["prepack_source"]
    assert one.prepacked == 0 and one.describe()["prepack_source"].startswith("default: off on one thread")
    assert chosen.prepacked == 0 and chosen.describe()["prepack_source"] == "option"
    config = GenerationConfig(max_new_tokens=8)
    assert [g.text for g in two.generate(PROMPTS, config)] == [g.text for g in one.generate(PROMPTS, config)]


def _kernels(layer, x):
    """``layer(x)`` and the names of the operators it ran."""
    with torch.profiler.profile() as profile:
        y = layer(x)
    return y, {event.key for event in profile.key_averages()}


@pytest.mark.parametrize("conv1d", [False, True])
def test_many_rows_take_the_dense_kernel_on_the_unpacked_weight(conv1d):
    """A long prefill or a scoring batch: the packed kernel loses there, so the layer unpacks its weight
    for the call; the dense kernel on the same weight gives the dense layer's exact numbers."""
    torch.manual_seed(0)
    stored, bias = torch.randn(768, 768), torch.randn(768)  # wide enough that the two kernels' bits differ
    layer = PackedLinear(stored.t() if conv1d else stored, bias)  # transformers' Conv1D stores [in, out]

    def dense(x):
        return torch.addmm(bias, x.reshape(-1, 768), stored).view_as(x) if conv1d else \
            torch.nn.functional.linear(x, stored, bias)

    with torch.inference_mode():
        many = torch.randn(2, DENSE_ROWS // 2, 768)
        got, ran = _kernels(layer, many)
        assert "mkldnn::_linear_pointwise" not in ran
        assert torch.equal(got, dense(many))
        few = torch.randn(DENSE_ROWS - 1, 768)
        got, ran = _kernels(layer, few)
        assert "mkldnn::_linear_pointwise" in ran
        torch.testing.assert_close(got, dense(few), atol=1e-4, rtol=1e-5)  # float32 sums in another order


def test_a_tied_output_layer_multiplies_the_embeddings_own_tensor_with_onednn():
    """A tied output layer is not packed (that would hold a second copy of the embedding): it keeps the
    embedding's very tensor, multiplied by oneDNN's kernel for few rows (PyTorch's dense one-row product
    runs on one thread) and by the dense kernel, with its exact numbers, for many."""
    torch.manual_seed(0)
    embed = torch.nn.Embedding(1000, 768)
    head = torch.nn.Linear(768, 1000)
    head.weight = embed.weight
    net = torch.nn.ModuleDict({"embed": embed, "head": head, "proj": torch.nn.Linear(768, 768)})
    assert pack_linears(net) == 1
    shared = net["head"]
    assert isinstance(shared, SharedWeightLinear) and shared.weight is net["embed"].weight
    with torch.inference_mode():
        for shape, onednn in (((1, 768), True), ((2, 4, 768), True), ((DENSE_ROWS - 1, 768), True),
                              ((2, DENSE_ROWS // 2, 768), False)):
            x = torch.randn(*shape)
            want = torch.nn.functional.linear(x, embed.weight, shared.bias)
            got, ran = _kernels(shared, x)
            assert ("mkldnn::_linear_pointwise" in ran) is onednn, shape
            if onednn:
                torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)
            else:
                assert torch.equal(got, want)
    got, ran = _kernels(shared, torch.randn(3, 768))  # gradients wanted: oneDNN's call has no backward
    assert "mkldnn::_linear_pointwise" not in ran and got.requires_grad
    with pytest.raises(ValueError, match="contiguous"):  # oneDNN would misread a strided bias
        SharedWeightLinear(embed.weight, torch.randn(2000)[::2])


def test_an_output_layer_tied_to_another_roles_embedding_is_not_packed():
    """Ties are found across a runner's roles: packing the output layer of one role would hold a second
    copy of the embedding another role reads."""
    embed = torch.nn.Embedding(100, 32)
    head = torch.nn.Linear(32, 100, bias=False)
    head.weight = embed.weight
    encoder = torch.nn.ModuleDict({"embed": embed, "proj": torch.nn.Linear(32, 32)})
    decoder = torch.nn.ModuleDict({"proj": torch.nn.Linear(32, 32), "head": head})
    assert pack_modules([encoder, decoder]) == 2
    assert isinstance(decoder["head"], SharedWeightLinear) and decoder["head"].weight is encoder["embed"].weight


class _WithHead(torch.nn.Module):
    """A model with ``transformers``' accessor for its output layer, tied to the embedding or not."""

    def __init__(self, tied: bool, bias: bool = False) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(1000, 64)
        self.proj = torch.nn.Linear(64, 64)
        self.lm_head = torch.nn.Linear(64, 1000, bias=bias)
        if tied:
            self.lm_head.weight = self.embed.weight

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.lm_head


class _Role(torch.nn.Module):
    """A runner's role wrapping the model, as the ``hf`` family's modules do."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model


@pytest.mark.parametrize("tied", [True, False])
def test_the_output_layer_alone_runs_on_onednn_with_its_own_parameters(tied):
    """Where a runner does not pack, the output layer (``get_output_embeddings()``) becomes a
    :class:`SharedWeightLinear` holding the same parameters, tied or not; every other layer stays
    dense, and a layer reached from two roles becomes one replacement."""
    torch.manual_seed(0)
    model = _WithHead(tied, bias=not tied)
    weight, bias, proj = model.lm_head.weight, model.lm_head.bias, model.proj
    want = torch.nn.functional.linear(torch.ones(2, 64), weight, bias)
    assert unpacked_output_layers([_Role(model), _Role(model)]) == 1
    head = model.lm_head
    assert isinstance(head, SharedWeightLinear) and head.weight is weight and head.bias is bias
    assert model.proj is proj and (head.weight is model.embed.weight) is tied
    with torch.inference_mode():
        got, ran = _kernels(head, torch.ones(2, 64))
    assert "mkldnn::_linear_pointwise" in ran
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-5)


def test_an_output_layer_onednn_cannot_read_stays_as_it_is():
    """Half precision, a strided weight or a model without the accessor: nothing is replaced."""
    half = _WithHead(tied=False).to(torch.bfloat16)
    strided = _WithHead(tied=False)
    strided.lm_head.weight = torch.nn.Parameter(torch.randn(64, 1000).t())
    plain = torch.nn.ModuleDict({"lm_head": torch.nn.Linear(64, 1000)})
    assert unpacked_output_layers([half, strided, plain]) == 0
    assert all(type(m.lm_head) is torch.nn.Linear for m in (half, strided))
    assert type(plain["lm_head"]) is torch.nn.Linear


@pytest.mark.parametrize(("option", "packs", "device", "dtype", "params", "generates", "compile", "expected"), [
    (None, False, CPU, F32, BIG, True, False, True),
    (None, True, CPU, F32, BIG, True, False, False),  # packing handles the output layer itself
    (False, False, CPU, F32, BIG, True, False, False),  # prepack=false: every product dense
    (None, False, CPU, F32, BIG - 1, True, False, False),
    (None, False, CPU, F32, BIG, False, False, False),
    (None, False, CPU, F32, BIG, True, True, False),
    (None, False, CPU, torch.bfloat16, BIG, True, False, False),
    (None, False, torch.device("cuda"), F32, BIG, True, False, False),
])
def test_plan_output_layer(option, packs, device, dtype, params, generates, compile, expected):
    assert plan_output_layer(option, packs=packs, device=device, dtype=dtype, num_parameters=params,
                             generates=generates, compile=compile) is expected


def test_auto_is_never_refused():
    """``prepack=auto`` (the default) decides per run; only an explicit ``true`` can be refused."""
    TorchBackend().check("cpu", "bfloat16", {"prepack": "auto"})
    TorchBackend().check("cpu", "bfloat16", {})
    with pytest.raises(UsageError):
        TorchBackend().check("cpu", "bfloat16", {"prepack": "true"})


# -- a memory-mapped checkpoint's pages go back as packing goes ---------------------------------------------
def _mapped(path, array):
    """``array`` written to ``path`` and read back as a private, writable file mapping, the way
    ``transformers`` maps a safetensors checkpoint (``rw-p``)."""
    array.tofile(path)
    return np.memmap(path, dtype=array.dtype, mode="c", shape=array.shape)


def _resident(path) -> int:
    """Bytes of ``path``'s mappings resident in this process (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and ":" not in fields[0]:
            inside = len(fields) > 5 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


linux_only = pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")


@linux_only
def test_release_gives_back_an_unwritten_mapping_and_keeps_its_values(tmp_path):
    values = np.random.default_rng(0).standard_normal(1 << 20).astype(np.float32)  # 4 MiB
    path = tmp_path / "weights.bin"
    tensor = torch.from_numpy(_mapped(path, values))
    assert float(tensor.sum()) == pytest.approx(float(values.sum()), rel=1e-4)  # every page read: resident
    held = _resident(path)
    assert held >= values.nbytes - 2 * mmap.PAGESIZE
    released = release(tensor, file_mappings())
    assert released >= values.nbytes - 2 * mmap.PAGESIZE
    assert _resident(path) <= held - released
    assert torch.equal(tensor, torch.from_numpy(values))  # read back from the file


@linux_only
def test_release_leaves_written_and_anonymous_memory_alone(tmp_path):
    anonymous = torch.randn(1 << 20)
    kept = anonymous.clone()
    assert release(anonymous, file_mappings()) == 0 and torch.equal(anonymous, kept)
    values = np.arange(1 << 20, dtype=np.float32)
    tensor = torch.from_numpy(_mapped(tmp_path / "written.bin", values))
    tensor[5] = -1.0  # a private mapping's written page exists only in this process: never drop it
    assert release(tensor, file_mappings()) == 0
    assert float(tensor[5]) == -1.0 and float(tensor[6]) == 6.0


@linux_only
def test_packing_a_mapped_checkpoint_gives_its_pages_back(tmp_path):
    """The weights live in a file mapping (the biases elsewhere: the kernel may map a whole folio back
    in when a neighbour is read, which would blur what packing itself left resident)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(*[torch.nn.Linear(512, 512) for _ in range(4)])
    weights = [layer.weight for layer in net]
    path = tmp_path / "checkpoint.bin"
    file = torch.from_numpy(_mapped(path, torch.cat([w.detach().reshape(-1) for w in weights]).numpy()))
    at = 0
    for w in weights:
        w.data = file[at : at + w.numel()].view_as(w)
        at += w.numel()
    x = torch.randn(3, 512)
    before = net(x)
    held = _resident(path)
    assert held >= file.numel() * 4 - 2 * mmap.PAGESIZE  # the weights, all read
    assert pack_linears(net) == 4
    assert _resident(path) <= 2 * mmap.PAGESIZE
    assert torch.allclose(net(x), before, atol=1e-5)


@linux_only
def test_a_dense_tensor_leaves_its_mapping_piece_by_piece(tmp_path, monkeypatch):
    """What packing leaves dense is copied off the checkpoint's mapping a piece at a time, each piece's
    pages given back before the next is copied: a tied output embedding (147 MiB for GPT-2's vocabulary)
    copied whole was resident twice at the peak. The tensor starts inside a page, as safetensors'
    tensors do: pieces end on page boundaries, or the page split between two pieces would stay."""
    piece = 1 << 20
    monkeypatch.setattr(prepack, "COPY_PIECE_BYTES", piece)
    values = np.random.default_rng(1).standard_normal(1 << 22).astype(np.float32)  # 16 MiB: 16 pieces
    path = tmp_path / "embedding.bin"
    tensor = torch.from_numpy(_mapped(path, values))[6:]
    assert float(tensor.sum()) == pytest.approx(float(values[6:].sum()), rel=1e-4)  # read: all resident
    held, ends = [], []
    real = prepack.release

    def watch(t, mappings):
        held.append(_resident(path))  # before this piece's pages go
        ends.append(t.data_ptr() + t.numel() * t.element_size())
        return real(t, mappings)

    monkeypatch.setattr(prepack, "release", watch)
    copy = prepack._copy_releasing(tensor, file_mappings())
    assert copy.data_ptr() != tensor.data_ptr() and torch.equal(copy, torch.from_numpy(values)[6:])
    assert len(held) == 16 and all(end % mmap.PAGESIZE == 0 for end in ends[:-1])
    # Half-way, half the file is gone (the page cache may hand pages back in 2 MiB folios).
    assert held[0] >= values.nbytes - 2 * mmap.PAGESIZE and held[8] <= values.nbytes // 2 + (2 << 20)
    assert _resident(path) <= 2 * mmap.PAGESIZE
    assert torch.equal(tensor, copy)  # the original reads its values back from the file


SMAPS = """\
7f0000000000-7f0000400000 rw-p 00000000 fe:00 11 /models/clean.safetensors
Size:               4096 kB
Rss:                4096 kB
Anonymous:             0 kB
Swap:                  0 kB
Private_Hugetlb:       0 kB
THPeligible:           0
VmFlags: rd wr mr mw me ac
7f0000400000-7f0000800000 rw-p 00000000 fe:00 12 /models/swapped.safetensors
Anonymous:             0 kB
Swap:                  8 kB
7f0000800000-7f0000c00000 rw-p 00000000 fe:00 13 /models/written.safetensors
Anonymous:             4 kB
Swap:                  0 kB
7f0000c00000-7f0001000000 rw-p 00000000 fe:00 14 /models/unknown.safetensors
Rss:                4096 kB
7f0001000000-7f0001400000 rw-p 00000000 00:0f 15 /hugepages/weights
Anonymous:             0 kB
Swap:                  0 kB
Private_Hugetlb:    2048 kB
7f0001400000-7f0001800000 rw-p 00000000 00:05 16 /dev/zero
Anonymous:             0 kB
Swap:                  0 kB
7f0001800000-7f0001c00000 rw-p 00000000 00:00 0
Anonymous:          4096 kB
"""


def test_only_mappings_that_smaps_shows_unwritten_count_as_unwritten():
    """Fail closed: written pages on swap, a missing line or huge pages make a mapping "written", and
    only regular files are file mappings at all."""
    found = parse_smaps(SMAPS.splitlines(), regular=lambda path: path.startswith("/models/") or path.startswith("/huge"))
    by_path = {m.path.rsplit("/", 1)[1]: m for m in found}
    assert set(by_path) == {"clean.safetensors", "swapped.safetensors", "written.safetensors", "unknown.safetensors",
                            "weights"}
    assert not by_path["clean.safetensors"].written
    assert (by_path["clean.safetensors"].start, by_path["clean.safetensors"].end) == (0x7F0000000000, 0x7F0000400000)
    assert all(by_path[name].written for name in ("swapped.safetensors", "written.safetensors", "unknown.safetensors",
                                                  "weights"))


def test_each_dense_weight_is_freed_as_soon_as_its_layer_is_packed(monkeypatch):
    """Layers in memory of their own (a list of joined layers, say): packing the next must not wait for
    the whole list, or the process holds the dense and packed copies of all of them at once."""
    import gc
    import weakref

    net = torch.nn.ModuleDict({"layers": torch.nn.ModuleList([torch.nn.Linear(64, 64) for _ in range(3)])})
    alive = [weakref.ref(layer.weight) for layer in net["layers"]]
    seen = []

    def watch(tensor, mappings):
        gc.collect()
        seen.append([ref() is not None for ref in alive])
        return 0

    monkeypatch.setattr("llmos_hub_pytorch.prepack.release", watch)
    assert pack_linears(net) == 3
    # At each layer's release the layers packed before it are gone; it and those after it are not yet.
    # (The calls after these three give back the biases, as they are copied off the file.)
    assert seen[:3] == [[True, True, True], [False, True, True], [False, False, True]]
