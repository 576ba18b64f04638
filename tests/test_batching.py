"""Server-side batching: concurrent requests share one call; one bad request fails alone."""
import threading
import time

import numpy as np
import pytest

from svhn_tfx.serving.batching import Batcher


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


def test_a_request_larger_than_the_batch_is_cut_into_batches_run_by_the_batch_threads():
    calls = []
    batcher = Batcher(lambda inputs: calls.append((len(inputs["x"]), threading.current_thread()))
                      or {"y": inputs["x"] * 3}, max_batch_size=4, timeout_s=0.01)
    np.testing.assert_array_equal(batcher({"x": np.arange(10)})["y"], np.arange(10) * 3)
    assert sorted(size for size, _ in calls) == [2, 4, 4]
    assert threading.current_thread() not in {thread for _, thread in calls}
    batcher.close()


@pytest.mark.parametrize("max_batch_cost, largest", [(0, 6), (100, 3)])
def test_merged_batches_respect_the_size_and_the_cost_limit(max_batch_cost, largest):
    """Requests of 3 images at 20 pixels each: 8 images per batch fit two requests (three
    would be 9); 100 pixels fit only one (two would cost 120)."""
    calls = []
    batcher = Batcher(lambda inputs: calls.append(inputs["x"].copy()) or {"y": inputs["x"]},
                      max_batch_size=8, timeout_s=0.5, max_batch_cost=max_batch_cost)
    requests = [{"x": np.arange(3)} for _ in range(12)]
    results = [None] * len(requests)
    all_arriving = threading.Barrier(len(requests))

    def call(i):
        with batcher.arriving() as arrival:
            all_arriving.wait()
            results[i] = arrival(requests[i], costs=[20, 20, 20])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(r["y"]) == 3 for r in results)
    assert sum(len(c) for c in calls) == 36
    assert max(len(c) for c in calls) <= largest
    batcher.close()


def test_a_full_queue_refuses_at_once_with_resource_exhausted():
    import grpc
    from svhn_tfx.serving.errors import ServingError
    release = threading.Event()
    batcher = Batcher(lambda inputs: release.wait(10) and {"y": inputs["x"]},
                      max_batch_size=2, timeout_s=0.0, max_enqueued_batches=1)
    running = threading.Thread(target=batcher, args=({"x": np.arange(2)},))
    running.start()          # taken by the batch thread, which then blocks
    time.sleep(0.2)
    queued = threading.Thread(target=batcher, args=({"x": np.arange(2)},))
    queued.start()           # fills the one queued batch
    time.sleep(0.2)
    start = time.monotonic()
    with pytest.raises(ServingError) as refused:
        batcher({"x": np.arange(1)})
    assert refused.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert time.monotonic() - start < 1.0
    release.set()
    running.join(10)
    queued.join(10)
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
