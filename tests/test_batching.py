"""Server-side batching: concurrent requests share one call; one bad request fails alone."""
import threading

import numpy as np
import pytest

from serving.batching import Batcher


def _run_concurrently(batcher, requests):
    """Every request announces itself, as the server does while validating, then runs."""
    results = [None] * len(requests)
    all_arriving = threading.Barrier(len(requests))

    def call(i):
        try:
            with batcher.arriving() as arrival:
                all_arriving.wait()
                results[i] = arrival(requests[i])
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_run_as_one_batch_and_get_their_own_rows():
    calls = []

    def run(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}

    batcher = Batcher(run, max_batch_size=64, timeout_s=0.5)
    requests = [{"x": np.arange(i, i + 3)} for i in range(0, 30, 3)]
    results = _run_concurrently(batcher, requests)
    for request, result in zip(requests, results):
        np.testing.assert_array_equal(result["y"], request["x"] * 2)
    assert max(calls) > 3  # at least two requests shared a call
    assert sum(calls) == 30
    batcher.close()


def test_a_failing_request_does_not_fail_the_others_in_its_batch():
    def run(inputs):
        if (inputs["x"] < 0).any():
            raise ValueError("negative input")
        return {"y": inputs["x"] + 1}

    batcher = Batcher(run, max_batch_size=64, timeout_s=0.5)
    requests = [{"x": np.array([i])} for i in range(8)] + [{"x": np.array([-1])}]
    results = _run_concurrently(batcher, requests)
    assert isinstance(results[-1], ValueError)
    for i, result in enumerate(results[:-1]):
        np.testing.assert_array_equal(result["y"], [i + 1])
    batcher.close()


def test_after_close_calls_still_succeed_unbatched():
    batcher = Batcher(lambda inputs: {"y": inputs["x"]}, max_batch_size=8, timeout_s=0.01)
    batcher.close()
    np.testing.assert_array_equal(batcher({"x": np.array([5])})["y"], [5])


def test_a_request_larger_than_the_batch_runs_alone():
    sizes = []
    batcher = Batcher(lambda inputs: sizes.append(len(inputs["x"])) or {"y": inputs["x"]},
                      max_batch_size=4, timeout_s=0.01)
    assert len(batcher({"x": np.arange(10)})["y"]) == 10
    assert sizes == [10]
    batcher.close()


def test_a_lone_request_does_not_wait_for_company():
    batcher = Batcher(lambda inputs: {"y": inputs["x"]}, max_batch_size=8, timeout_s=30)
    done = threading.Event()
    threading.Thread(target=lambda: (batcher({"x": np.array([1])}), done.set())).start()
    assert done.wait(10), "a single request waited for the batch timeout"
    batcher.close()


def test_a_batch_waits_for_requests_still_arriving():
    calls = []
    batcher = Batcher(lambda inputs: calls.append(len(inputs["x"])) or {"y": inputs["x"]},
                      max_batch_size=8, timeout_s=30)
    results = []
    with batcher.arriving() as second:  # a second request is being validated
        first = threading.Thread(target=lambda: results.append(batcher({"x": np.array([1])})))
        first.start()
        first.join(0.5)
        assert first.is_alive()  # held back for the arriving request
        results.append(second({"x": np.array([2])}))
    first.join(10)
    assert calls == [2] and len(results) == 2
    batcher.close()


def test_an_arrival_that_gives_up_stops_holding_batches_back():
    batcher = Batcher(lambda inputs: {"y": inputs["x"]}, max_batch_size=8, timeout_s=30)
    with pytest.raises(ValueError):
        with batcher.arriving():
            raise ValueError("validation failed")
    done = threading.Event()
    threading.Thread(target=lambda: (batcher({"x": np.array([1])}), done.set())).start()
    assert done.wait(10), "a request that failed validation still counted as arriving"
    batcher.close()
