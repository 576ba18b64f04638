"""Server-side batching: concurrent requests to one signature run as one model call.

A small CNN costs far less per image in a batch of 32 than one at a time, and most of a
single-image call is fixed overhead. Each request waits at most ``timeout_s`` for company,
and only while other requests are on their way (in flight but not yet queued): a lone
request runs at once. A batch runs as soon as it holds ``max_batch_size`` images. The
knobs mirror TF Serving's ``max_batch_size``, ``batch_timeout_micros`` and
``num_batch_threads``.
"""
import concurrent.futures
import logging
import queue
import threading
import time
from typing import Callable, Dict

import numpy as np

Inputs = Dict[str, np.ndarray]
_CLOSE = object()


class Batcher:
    def __init__(self, run: Callable[[Inputs], Inputs], max_batch_size: int, timeout_s: float,
                 num_threads: int = 1, name: str = "batcher"):
        self._run = run
        self._max = max_batch_size
        self._timeout = timeout_s
        self._queue = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._arriving = 0  # requests announced by ``arriving`` and not yet queued
        self._threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True)
                         for i in range(num_threads)]
        for thread in self._threads:
            thread.start()

    def arriving(self) -> "Arrival":
        """``with batcher.arriving() as arrival: <validate>; outputs = arrival(inputs)``:
        while the request is being prepared, batches being formed wait for it (up to the
        timeout); it stops counting as arriving the moment it is queued or leaves."""
        return Arrival(self)

    def __call__(self, inputs: Inputs, arrival: "Arrival" = None) -> Inputs:
        """Runs ``inputs`` (arrays with a leading batch dimension) as part of a batch."""
        size = len(next(iter(inputs.values())))
        with self._lock:
            if arrival is not None:
                arrival.settle_locked()
            if self._closed or size >= self._max:  # nothing to gain (or no one to run it)
                closed = True
            else:
                closed = False
                future = concurrent.futures.Future()
                self._queue.put((inputs, size, future))
        return self._run(inputs) if closed else future.result()

    def close(self) -> None:
        """Lets queued requests finish; later calls run unbatched in the caller's thread."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._queue.put(_CLOSE)

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _CLOSE:
                return
            batch, total = [first], first[1]
            deadline = time.monotonic() + self._timeout
            while total < self._max:
                if self._queue.empty() and not self._arriving:
                    break  # nobody else is coming: waiting would only add latency
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _CLOSE:
                    self._queue.put(_CLOSE)  # leave it for this thread's next turn
                    break
                batch.append(item)
                total += item[1]
            self._run_batch(batch)

    def _run_batch(self, batch) -> None:
        if len(batch) == 1:
            inputs, _, future = batch[0]
            _settle(future, lambda: self._run(inputs))
            return
        try:
            merged = {key: np.concatenate([inputs[key] for inputs, _, _ in batch])
                      for key in batch[0][0]}
            outputs = self._run(merged)
        except Exception:  # one bad request must not fail the others: run each on its own
            logging.debug("batch of %d requests failed; running them one by one", len(batch))
            for inputs, _, future in batch:
                _settle(future, lambda inputs=inputs: self._run(inputs))
            return
        start = 0
        for _, size, future in batch:
            future.set_result({key: value[start:start + size] for key, value in outputs.items()})
            start += size


class Arrival:
    """A request on its way to a Batcher (see ``Batcher.arriving``)."""

    def __init__(self, batcher: Batcher):
        self._batcher = batcher
        self._counted = False

    def __enter__(self) -> "Arrival":
        with self._batcher._lock:
            self._batcher._arriving += 1
            self._counted = True
        return self

    def __call__(self, inputs: Inputs) -> Inputs:
        return self._batcher(inputs, arrival=self)

    def settle_locked(self) -> None:
        """No longer arriving (queued or gone); the caller holds the batcher's lock."""
        if self._counted:
            self._batcher._arriving -= 1
            self._counted = False

    def __exit__(self, *_):
        with self._batcher._lock:
            self.settle_locked()


def _settle(future: concurrent.futures.Future, call) -> None:
    try:
        future.set_result(call())
    except Exception as e:
        future.set_exception(e)
