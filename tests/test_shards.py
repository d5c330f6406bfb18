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


def test_shards_below_one_is_a_usage_error(host, tmp_path):
    with pytest.raises(UsageError, match="--shards must be at least 1"):
        run_bench(make_plan(host, tasks=["lm-sample"], limit=2), host=host, output_dir=tmp_path, command="t", shards=0)
