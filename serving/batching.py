"""Server-side batching: concurrent requests to one signature run as one model call.

A small CNN costs far less per image in a batch of 32 than one at a time, and most of a
single-image call is fixed overhead. Each request waits at most ``timeout_s`` for company,
and only while other requests are on their way (in flight but not yet queued): a lone
request runs at once. The knobs mirror TF Serving's ``max_batch_size``,
``batch_timeout_micros``, ``num_batch_threads`` and ``max_enqueued_batches``.

Work is bounded: a batch never holds more than ``max_batch_size`` images nor more than
``max_batch_cost`` (decoded pixels); a larger request is cut into batch-sized pieces that
queue like any other; only the batch threads run the model; and when the queue already
holds ``max_enqueued_batches`` batches' worth of images, a request is refused at once with
RESOURCE_EXHAUSTED instead of waiting behind them.
"""
import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
from typing import Callable, Dict, Optional, Sequence

import numpy as np

from svhn_tfx.serving.errors import overloaded

Inputs = Dict[str, np.ndarray]


@dataclasses.dataclass
class _Item:
    inputs: Inputs
    size: int
    cost: int
    future: concurrent.futures.Future


class Batcher:
    def __init__(self, run: Callable[[Inputs], Inputs], max_batch_size: int, timeout_s: float,
                 num_threads: int = 1, name: str = "batcher", max_batch_cost: int = 0,
                 max_enqueued_batches: int = 0):
        self._run = run
        self._max = max_batch_size
        self._max_cost = max_batch_cost
        self._max_queued = max_enqueued_batches * max_batch_size
        self._timeout = timeout_s
        self._items = collections.deque()
        self._queued = 0       # images waiting in ``_items``
        self._arriving = 0     # requests announced by ``arriving`` and not yet queued
        self._closed = False
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
                         for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    def arriving(self) -> "Arrival":
        """``with batcher.arriving() as arrival: <validate>; outputs = arrival(inputs)``:
        while the request is being prepared, batches being formed wait for it (up to the
        timeout); it stops counting as arriving the moment it is queued or leaves."""
        return Arrival(self)

    def __call__(self, inputs: Inputs, costs: Optional[Sequence[int]] = None,
                 arrival: "Arrival" = None) -> Inputs:
        """Runs ``inputs`` (arrays with a leading batch dimension) as part of batches;
        ``costs`` are per-row costs (decoded pixels) counted against ``max_batch_cost``."""
        size = len(next(iter(inputs.values())))
        costs = np.zeros(size, np.int64) if costs is None else np.asarray(costs, np.int64)
        items = [_Item({k: v[start:start + self._max] for k, v in inputs.items()},
                       min(self._max, size - start), int(costs[start:start + self._max].sum()),
                       concurrent.futures.Future())
                 for start in range(0, size, self._max)]
        with self._cond:
            if arrival is not None:
                arrival.settle_locked()
            if self._closed:   # unloading: the model is still there, run it here
                closed = True
            else:
                closed = False
                if self._max_queued and self._queued + size > self._max_queued:
                    raise overloaded(f"the server is overloaded ({self._queued} images queued "
                                     f"for the model); retry later")
                self._items.extend(items)
                self._queued += size
                self._cond.notify_all()
        if closed:
            return self._run(inputs)
        results = [item.future.result() for item in items]
        if len(results) == 1:
            return results[0]
        return {key: np.concatenate([r[key] for r in results]) for key in results[0]}

    def close(self) -> None:
        """Lets queued requests finish; later calls run unbatched in the caller's thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _next_batch(self):
        """Waits for work, then takes the longest prefix of the queue that fits a batch."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._items.popleft()
            batch, total, cost = [first], first.size, first.cost
            deadline = time.monotonic() + self._timeout
            while total < self._max:
                if self._items:
                    item = self._items[0]
                    if total + item.size > self._max or \
                            (self._max_cost and cost + item.cost > self._max_cost):
                        break
                    batch.append(self._items.popleft())
                    total, cost = total + item.size, cost + item.cost
                    continue
                remaining = deadline - time.monotonic()
                if not self._arriving or remaining <= 0 or self._closed:
                    break  # nobody else is coming (in time): waiting would only add latency
                self._cond.wait(remaining)
            self._queued -= total
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _run_batch(self, batch) -> None:
        if len(batch) == 1:
            _settle(batch[0].future, lambda: self._run(batch[0].inputs))
            return
        try:
            merged = {key: np.concatenate([item.inputs[key] for item in batch])
                      for key in batch[0].inputs}
            outputs = self._run(merged)
        except Exception:  # one bad request must not fail the others: run each on its own
            logging.debug("batch of %d requests failed; running them one by one", len(batch))
            for item in batch:
                _settle(item.future, lambda item=item: self._run(item.inputs))
            return
        start = 0
        for item in batch:
            item.future.set_result({key: value[start:start + item.size]
                                    for key, value in outputs.items()})
            start += item.size


class Arrival:
    """A request on its way to a Batcher (see ``Batcher.arriving``)."""

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self._counted = False

    def __enter__(self) -> "Arrival":
        with self._batcher._cond:
            self._batcher._arriving += 1
            self._counted = True
        return self

    def __call__(self, inputs: Inputs, costs: Optional[Sequence[int]] = None) -> Inputs:
        return self._batcher(inputs, costs, arrival=self)

    def settle_locked(self) -> None:
        """No longer arriving (queued or gone); the caller holds the batcher's lock."""
        if self._counted:
            self._batcher._arriving -= 1
            self._counted = False
            self._batcher._cond.notify_all()

    def __exit__(self, *_):
        with self._batcher._cond:
            self.settle_locked()


def _settle(future: concurrent.futures.Future, call) -> None:
    try:
        future.set_result(call())
    except Exception as e:
        future.set_exception(e)
