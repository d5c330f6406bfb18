"""``--shards N`` in this process: shards cut the batch schedule, answers merge in order, scores once.

The sharded run's scores and samples file must *equal* the unsharded run's (not be close), for every
task of the default suite; the speed section says how the work was split.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llmos_hub_nano")
pytest.importorskip("llmos_hub_pytorch")

from llmos_hub import UsageError, load_plugins  # noqa: E402
from llmos_hub.bench import make_plan, run_bench  # noqa: E402
from llmos_hub.bench._execute import batch_schedule, requests_of  # noqa: E402
from llmos_hub.bench._shards import shard_batches  # noqa: E402

#: 12 examples in batches of 4: three batches per task, so three real shards with mixed lengths.
LIMIT, BATCH = 12, 4


@pytest.fixture(scope="module")
def host():
    return load_plugins()


def _run(host, out, **kw):
    report = run_bench(make_plan(host, limit=LIMIT, batch_size=BATCH, seed=1), host=host, output_dir=out, command="test",
                       log_samples=True, **kw)
    assert report.ok, report.failed
    return {record.task: (path, record) for path, record in report.written}


def _samples(path, record):
    return (path.parent / record.data["samples_file"]).read_bytes()


@pytest.mark.slow
def test_three_shards_equal_no_sharding_in_process(host, tmp_path):
    whole = _run(host, tmp_path / "whole")
    sharded = _run(host, tmp_path / "sharded", shards=3)
    assert sorted(sharded) == sorted(whole) and len(whole) >= 4
    for task, (path, record) in sharded.items():
        ref_path, ref = whole[task]
        assert record.config_hash == ref.config_hash, task
        assert record.scores == ref.scores, task
        assert _samples(path, record) == _samples(ref_path, ref), task
        split = record.data["speed"]["shards"]
        run = next(r for r in make_plan(host, tasks=[task], limit=LIMIT, batch_size=BATCH, seed=1).runs)
        per_example = requests_of(run.spec, run.task, run.data)[1]
        batches = batch_schedule(per_example, BATCH)
        assert len(split) == 3 and [s["batches"] for s in split] == [len(batches) // 3] * 3, task
        assert sum(s["requests"] for s in split) == sum(len(r) for r in per_example), task
        assert sum(s["prompt_tokens"] for s in split) * 1.0 == pytest.approx(
            record.data["speed"]["prompt_tokens_per_second"] * record.data["speed"]["eval_seconds"],
            rel=1e-3), task  # eval_seconds is stored rounded to the microsecond
        assert "shards" not in ref.data["speed"]


def test_shards_are_whole_batches_of_the_schedule_in_order(host):
    plan = make_plan(host, tasks=["lm-sample"], limit=10, batch_size=3)
    run = plan.runs[0]
    _, per_example = requests_of(run.spec, run.task, run.data)
    batches = batch_schedule(per_example, 3)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    parts = shard_batches(run.spec, run.task, run.data, 2)
    assert parts == [batches[:2], batches[2:]]
    assert sorted(ij for part in parts for b in part for ij in b) == [(i, 0) for i in range(10)]
    # Deterministic, and never more shards than batches.
    assert shard_batches(run.spec, run.task, run.data, 2) == parts
    assert len(shard_batches(run.spec, run.task, run.data, 9)) == 4
    assert shard_batches(run.spec, run.task, run.data, 1) == [batches]
    with pytest.raises(UsageError):
        shard_batches(run.spec, run.task, run.data, 0)


def test_fewer_shards_than_asked_are_noted_in_process(host, tmp_path):
    """12 examples in batches of 4 are 3 batches: --shards 5 gives 3 shards, and the bench says why before the
    run starts (the Ray driver says the same line)."""
    class Notes:  # bench events that keep the notes
        def __init__(self):
            self.notes = []

        def note(self, run, message):
            self.notes.append(message)

        def started(self, run, total): pass
        def advanced(self, run, done, total): pass
        def finished(self, run, record, path): pass
        def failed(self, run, message): pass
        def skipped(self, run, path): pass

    plan = make_plan(host, tasks=["classification-sample"], limit=LIMIT, batch_size=BATCH, seed=1)
    events = Notes()
    report = run_bench(plan, host=host, output_dir=tmp_path, command="test", shards=5, events=events)
    assert report.ok, report.failed
    assert len(report.written[0][1].data["speed"]["shards"]) == 3
    assert events.notes == [f"shards {plan.runs[0].spec.label}: 3, not 5: its 12 example(s) make only 3 batch(es) at "
                            "--batch-size 4 and a shard is at least one batch; lower --batch-size for more shards"]


def test_shards_below_one_is_a_usage_error(host, tmp_path):
    with pytest.raises(UsageError, match="--shards must be at least 1"):
        run_bench(make_plan(host, tasks=["lm-sample"], limit=2), host=host, output_dir=tmp_path, command="t", shards=0)


def _shard(positions, starts, latencies, n_examples=4):
    """A synthetic shard's answers: ``positions`` answered in batches starting (wall clock) at ``starts``."""
    from llmos_hub.bench._execute import Answered, RunAnswers

    answers = [[None] for _ in range(n_examples)]
    for i, j in positions:
        answers[i][j] = f"answer {i}"
    return RunAnswers(
        answered=Answered(answers, [[None] for _ in range(n_examples)], list(latencies), 0.01, list(starts)),
        positions=sorted(positions), formulation="f", started="2024-01-01T00:00:00Z", load_seconds=1.0,
        prepare_seconds=0.5, prompt_tokens=10 * len(positions), generated_tokens=0, peak_memory_bytes=None,
        peak_memory_kind="none", device="cpu", details={}, model={}, labels=None, environment={},
        window=(starts[0], starts[-1] + latencies[-1] + 0.001), eval_seconds=sum(latencies))


def test_merged_speed_is_the_shards_work_not_the_span_between_them():
    """On Ray, shard 1 may start seconds after shard 0 (queueing, the worker's other runs): not work."""
    from llmos_hub.bench._shards import busy_seconds, merge

    early = _shard([(0, 0), (1, 0)], starts=[100.0, 100.05], latencies=[0.05, 0.06])
    late = _shard([(2, 0), (3, 0)], starts=[106.5, 106.55], latencies=[0.04, 0.05])
    merged = merge([early, late])
    assert merged.eval_seconds == pytest.approx(0.2)  # 0.11 + 0.09: each shard's own batch time
    assert merged.wall_seconds == pytest.approx(106.601 - 100.0)  # the span, kept apart
    assert [s["eval_seconds"] for s in merged.shards] == [0.11, 0.09]
    assert merged.answered.latencies == [0.05, 0.06, 0.04, 0.05]  # latency percentiles: every batch
    # Side by side (two workers at once), overlapping time counts once.
    parallel = merge([early, _shard([(2, 0), (3, 0)], starts=[100.02, 100.07], latencies=[0.05, 0.05])])
    assert parallel.eval_seconds == pytest.approx(busy_seconds([(100.0, 100.11), (100.02, 100.12)]))
    assert parallel.eval_seconds == pytest.approx(0.12)
    assert busy_seconds([]) == 0.0 and busy_seconds([(1.0, 2.0), (3.0, 3.5), (1.5, 2.5)]) == pytest.approx(2.0)


def test_a_sharded_record_derives_its_speed_from_the_busy_time(tmp_path):
    """In process, shards run one after another: eval_seconds is their batch time, wall_seconds the span."""
    from llmos_hub import load_record

    from ._fakes import FakePlugin

    fake = load_plugins(autoload=False, extra=[("fake-plugin", FakePlugin())])
    plan = make_plan(fake, models=["fake:upper"], tasks=["upper"], backends=["fake"], batch_size=2)
    report = run_bench(plan, host=fake, output_dir=tmp_path, command="t", shards=3)
    (path, record), = report.written
    speed = load_record(path).data["speed"]  # valid against the schema, wall_seconds included
    assert speed["eval_seconds"] == pytest.approx(sum(s["eval_seconds"] for s in speed["shards"]), abs=1e-5)
    assert speed["wall_seconds"] >= speed["eval_seconds"] - 1e-5  # the span holds the batches (µs rounding)
    n = record.data["task"]["num_examples"]
    assert n / speed["examples_per_second"] == pytest.approx(speed["eval_seconds"], abs=1e-6)  # stored rounded
