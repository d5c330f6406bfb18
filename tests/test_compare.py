"""``compare``: paired tests on records of the same examples, the unpaired fallback, backend parity, the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import sacrebleu
from click.testing import CliRunner

from llmos_hub import Generation, ResultRecord, load_plugins
from llmos_hub._result import config_hash
from llmos_hub.bench import make_plan, run_bench
from llmos_hub.cli import main
from llmos_hub.compare import compare_records, pair_by_backend
from llmos_hub.stats import example_table, mcnemar_exact
from llmos_hub.tasks import task_from_file

from ._fakes import FakePlugin
from ._records import make_record

TRANSLATION = "llmos_hub/tasks/builtin/translation-sample.yaml"


def _records(tmp_path):
    host = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(host, models=["fake:upper"], tasks=["upper"], backends=["fake"])
    (path, record), = run_bench(plan, host=host, output_dir=tmp_path, command="x").written
    data = copy.deepcopy(dict(record.data))
    data["backend"]["name"] = "other"
    data["scores"]["exact"] = {"value": 0.6, "stderr": 0.1, "signature": None, "higher_is_better": True}
    data["speed"]["examples_per_second"] = record.data["speed"]["examples_per_second"] * 2
    data["config"]["spec"]["backend"] = "other"
    data["config"]["hash"] = config_hash(data["config"]["spec"])
    data["id"] = data["config"]["hash"][:16]
    other = ResultRecord(data)
    return path, record, other.save(tmp_path), other


def test_without_per_example_scores_compare_falls_back_to_the_unpaired_test(tmp_path):
    _, a, _, b = _records(tmp_path)
    assert a.data["per_example"]["ids"] == [str(i) for i in range(10)]  # ids kept, but no per-example "exact"
    c = compare_records(a, b)
    assert c.comparable
    exact = next(s for s in c.scores if s.metric == "exact")
    assert exact.delta == pytest.approx(0.6 - 1.0)
    assert exact.method == "unpaired z-test" and not exact.paired
    assert "unpaired test: no per-example exact" in exact.note
    assert exact.verdict == "worse" and exact.p_value < 0.05
    ratio = next(s for s in c.to_dict()["speed"] if s["metric"] == "examples_per_second")["ratio_b_over_a"]
    assert abs(ratio - 2.0) < 1e-9


def test_pair_by_backend_and_cli(tmp_path, monkeypatch):
    pa, a, pb, b = _records(tmp_path)
    assert pair_by_backend([a, b], "fake", "other") == [(a, b)]
    monkeypatch.setenv("COLUMNS", "200")
    files = CliRunner().invoke(main, ["compare", str(pa), str(pb), "--json"])
    assert files.exit_code == 0, files.output
    first = json.loads(files.output)[0]["scores"][0]
    assert first["delta"] == pytest.approx(-0.4) and first["test"] == "unpaired z-test"
    backends = CliRunner().invoke(main, ["compare", "fake", "other", "--dir", str(tmp_path)])
    assert backends.exit_code == 0 and "verdict (B vs A)" in backends.output and "unpaired test" in backends.output
    assert "backend parity: identical outputs 10/10" in backends.output
    missing = CliRunner().invoke(main, ["compare", "fake", "nope", "--dir", str(tmp_path)])
    assert missing.exit_code == 2 and "backends found: fake, other" in missing.output
    bad = CliRunner().invoke(main, ["compare", str(pa), str(pb), "--alpha", "1.5"])
    assert bad.exit_code == 2 and "--alpha must be between 0 and 1" in bad.output


@pytest.mark.parametrize(("args", "message"), [
    (["{pa}", "{pa}"], "A and B are the same record file"),
    (["{dir}", "{dir}"], "is a folder; compare takes two record files, or two backend names"),
    (["fake", "fake", "--dir", "{dir}"], "A and B are both fake; name two different backends"),
    (["fake", "other"], "read as backend names, whose records are looked for in ./results, which does not exist"),
])
def test_compare_arguments_that_cannot_mean_a_comparison_are_named(tmp_path, monkeypatch, args, message):
    pa, _, _, _ = _records(tmp_path)
    monkeypatch.chdir(tmp_path)  # no ./results here
    result = CliRunner().invoke(main, ["compare", *(x.format(pa=pa, dir=tmp_path) for x in args)])
    assert result.exit_code == 2, result.output
    [line] = [x for x in result.stderr.splitlines() if x.strip()]
    assert line.startswith("error: ") and message in line


def _translation_records(model_b: str = "nano:other", backend_b: str = "pytorch", limit: int = 60):
    """Two records of the real translation task: A copies the source, B is right on about half."""
    task = task_from_file(TRANSLATION)
    form = task.formulations()[0].name
    examples = list(task.load(limit=limit, seed=0).examples)
    out_a = [[Generation(ex.input, (1, 2), 3)] for ex in examples]
    out_b = [[Generation(ex.target if i % 2 else ex.input, (1, 2), 3)] for i, ex in enumerate(examples)]
    records = []
    for outputs, model, backend in ((out_a, "nano:one", "pytorch"), (out_b, model_b, backend_b)):
        scores = {k: v.to_dict() for k, v in task.score(examples, outputs, formulation=form).items()}
        rec = make_record(model=model, backend=backend, scores={k: 0.0 for k in scores}, primary="chrf")
        data = copy.deepcopy(dict(rec.data))
        data["scores"] = scores
        data["task"]["num_examples"] = len(examples)
        data["per_example"] = example_table(task, examples, outputs, formulation=form)
        records.append(ResultRecord(data))
    return examples, records


def test_paired_bootstrap_of_chrf_from_records_equals_resampling_the_sentences():
    examples, (a, b) = _translation_records()
    c = compare_records(a, b, seed=3, resamples=100)
    chrf = next(s for s in c.scores if s.metric == "chrf")
    assert chrf.paired and chrf.method == "paired bootstrap"
    refs = [ex.target for ex in examples]
    hyp_a = [ex.input for ex in examples]
    hyp_b = [ex.target if i % 2 else ex.input for i, ex in enumerate(examples)]
    rng = np.random.default_rng(3)
    deltas = []
    for _ in range(100):
        idx = rng.choice(len(refs), size=len(refs), replace=True)
        r = [[refs[i] for i in idx]]
        deltas.append(sacrebleu.corpus_chrf([hyp_b[i] for i in idx], r).score - sacrebleu.corpus_chrf([hyp_a[i] for i in idx], r).score)
    assert chrf.ci == pytest.approx(tuple(np.quantile(deltas, [0.025, 0.975])), rel=1e-9)
    assert chrf.delta == pytest.approx(sacrebleu.corpus_chrf(hyp_b, [refs]).score - sacrebleu.corpus_chrf(hyp_a, [refs]).score, rel=1e-9)
    assert chrf.verdict == "better" and chrf.p_value < 0.05
    assert c.parity is None  # different models: no backend parity


def test_mcnemar_from_records_and_fallback_when_examples_differ():
    flags_a = [1] * 70 + [0] * 30
    flags_b = [1] * 60 + [0] * 10 + [1] * 3 + [0] * 27  # 10 only A got right, 3 only B
    tables = []
    for flags in (flags_a, flags_b):
        tables.append({"ids": [str(i) for i in range(100)], "outputs": [f"{f:016x}" for f in flags],
                       "scores": {"accuracy": {"kind": "binary", "values": flags}}})
    ra = make_record(model="x:a", task="clf", scores={"accuracy": 0.70}, extra={"per_example": tables[0]})
    rb = make_record(model="x:b", task="clf", scores={"accuracy": 0.63}, extra={"per_example": tables[1]})
    acc = compare_records(ra, rb).scores[0]
    assert acc.method == "exact McNemar" and acc.p_value == mcnemar_exact(10, 3)
    assert acc.p_value == pytest.approx(0.09228515625)  # 2 * P(Binomial(13, 1/2) <= 3)
    assert acc.verdict == "no detectable difference"
    assert acc.ci is not None and acc.ci[0] < -0.07 < acc.ci[1]
    shifted = copy.deepcopy(tables[1])
    shifted["ids"] = [str(i + 1) for i in range(100)]
    rc = make_record(model="x:c", task="clf", scores={"accuracy": 0.63}, extra={"per_example": shifted})
    fallback = compare_records(ra, rc).scores[0]
    assert not fallback.paired and "different examples" in fallback.note


def test_backend_parity_counts_identical_outputs_and_loglikelihood_gap():
    ids = [str(i) for i in range(4)]
    ta = {"ids": ids, "outputs": ["0" * 16] * 4, "loglikelihoods": [[-1.0], [-2.0], [-3.0], [-4.0]],
          "scores": {}}
    tb = {"ids": ids, "outputs": ["0" * 16] * 3 + ["1" * 16], "loglikelihoods": [[-1.0], [-2.0], [-3.25], [-4.0]],
          "scores": {}}
    ra = make_record(model="nano:m", backend="pytorch", scores={"ppl": 3.0}, extra={"per_example": ta})
    rb = make_record(model="nano:m", backend="onnxruntime", scores={"ppl": 3.0}, extra={"per_example": tb})
    c = compare_records(ra, rb)
    assert c.parity is not None
    assert (c.parity.identical_outputs, c.parity.examples) == (3, 4)
    assert c.parity.max_loglikelihood_difference == pytest.approx(0.25)
    assert "identical outputs 3/4" in c.parity.summary()


def test_compare_shows_the_backends_own_start_beside_the_models_load():
    """An ONNX export or packing happens in the backend's prepare, not in the model's load: a comparison
    of load times alone read x1.00 for a 15.7 s export."""
    a, b = make_record(backend="pytorch"), make_record(backend="onnxruntime")
    a.data["speed"]["prepare_seconds"], b.data["speed"]["prepare_seconds"] = 0.1, 15.7
    speed = {key: (va, vb) for key, va, vb in compare_records(a, b).speed}
    assert speed["load_seconds"] == (0.5, 0.5) and speed["prepare_seconds"] == (0.1, 15.7)


def test_records_of_two_task_versions_are_not_a_backend_pair():
    """``compare A B --dir``: a v1/v2 pair would stop the whole comparison (different versions are refused);
    such records are simply not paired, and the pairs of one version still are."""
    a1, b1 = make_record(backend="pytorch"), make_record(backend="onnxruntime")
    a2 = make_record(backend="pytorch")
    a2.data["task"]["version"] = "2"
    b2 = make_record(backend="onnxruntime", seed=1)
    b2.data["task"]["version"] = "2"
    odd = make_record(backend="onnxruntime", seed=1)  # v1, paired with nothing of its version and seed
    pairs = pair_by_backend([a1, b1, a2, odd], "pytorch", "onnxruntime")
    assert [(a.data["task"]["version"], b.data["task"]["version"]) for a, b in pairs] == [("1", "1")]
    assert not pair_by_backend([a2, b1], "pytorch", "onnxruntime")
