"""The thread policy: context manager, work-size rule, overrides, and its use in inference."""

from __future__ import annotations

import pytest
import torch

from feasnet import threads
from feasnet.data.generate import generate
from feasnet.data.presets import get_preset
from feasnet.methods import build_model, get_method
from feasnet.threads import WORK_PER_THREAD, intra_op_threads, model_work, threads_for
from feasnet.training import model_result


@pytest.fixture
def restore_threads():  # type: ignore[no-untyped-def]
    previous = torch.get_num_threads()
    yield previous
    torch.set_num_threads(previous)


def test_context_manager_sets_and_restores(restore_threads: int) -> None:
    torch.set_num_threads(2)
    with intra_op_threads(1) as n:
        assert n == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_context_manager_restores_on_exception(restore_threads: int) -> None:
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError, match="boom"), intra_op_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_context_manager_rejects_zero_threads(restore_threads: int) -> None:
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="at least 1"), intra_op_threads(0):
        pass
    assert torch.get_num_threads() == before


def test_blas_is_capped_inside_and_restored() -> None:
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    import numpy  # noqa: F401  (loads its BLAS)

    before = blas_threads()
    with intra_op_threads(1, blas=True):
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before


def test_small_work_gets_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads_for(0) == 1
    assert threads_for(WORK_PER_THREAD - 1) == 1
    # DEPNet (~88k parameters) solving 512 instances, or a training step at batch 64
    assert threads_for(512 * 88_000) == 1
    assert threads_for(3 * 64 * 88_000) == 1


def test_large_work_gets_more_threads_capped_at_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads_for(2 * WORK_PER_THREAD) == 2
    assert threads_for(100 * WORK_PER_THREAD) == 2
    monkeypatch.setattr(threads, "available_cores", lambda: 1)
    assert threads_for(100 * WORK_PER_THREAD) == 1


def test_explicit_choice_wins_over_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    assert threads_for(0, threads=3) == 3
    assert threads_for(100 * WORK_PER_THREAD, threads=1) == 1
    with pytest.raises(ValueError, match="at least 1"):
        threads_for(0, threads=0)


def test_model_work_counts_batch_times_parameters() -> None:
    model = torch.nn.Linear(10, 5)  # 55 parameters
    assert model_work(model, 4) == 4 * 55
    assert model_work(model, 4, training=True) == 3 * 4 * 55


@pytest.fixture(scope="module")
def depnet_and_instances():  # type: ignore[no-untyped-def]
    instances, _ = generate(get_preset("small"), 32, seed=3)
    net = build_model(get_method("depnet"), instances)
    net.fit_normalizer(instances)
    net.eval()
    return net, instances


@pytest.mark.parametrize("threads_arg", [1, None])
def test_model_result_runs_and_restores_the_setting(
    depnet_and_instances, restore_threads: int, threads_arg: int | None
) -> None:  # type: ignore[no-untyped-def]
    net, instances = depnet_and_instances
    torch.set_num_threads(2)
    seen: list[int] = []
    original = net.allocate

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    net.allocate = spy
    try:
        result = model_result(net, instances, threads=threads_arg)
    finally:
        del net.allocate
    assert seen == [1]  # explicit 1, and the policy's choice for 32 instances
    assert result.power.shape == (32, 3, 2)
    assert result.feasible.all()
    assert torch.get_num_threads() == 2


def test_user_threads_answers_where_no_explicit_choice_is_given() -> None:
    from feasnet.threads import threads_for, user_threads

    with user_threads(3):
        assert threads_for(1.0) == 3
        assert threads_for(1.0, threads=1) == 1  # an explicit argument still wins
        with user_threads(None):
            assert threads_for(1.0) == 1  # None: back to the policy
    assert threads_for(1.0) == 1
