"""Prometheus metrics on the REST port, TF Serving's way, plus what TF Serving cannot see.

TF Serving exports metrics when started with ``--monitoring_config_file`` holding
``prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }``; so does
svhn-tfx-serve, with TF Serving's metric names where it has one (a dashboard built for TF
Serving reads these unchanged; counters carry no ``_total``, as TF Serving's do):

  :tensorflow:serving:request_count        counter {model_name, model_version, signature_name,
                                            API, entrypoint, status}
  :tensorflow:serving:request_latency      histogram, microseconds {model_name, API, entrypoint}
  :tensorflow:serving:batching_session:input_batch_size
                                           histogram, images per model call {model_name,
                                            model_version, signature_name}
  svhn_tfx_model_version_loaded            gauge {model_name, model_version}

and, from the answers of ``serving_default`` over a sliding window of the last
``--drift_window`` images (``AnswerWindow``):

  svhn_tfx_answer_share                    gauge {model_name, kind}: kind "no_digit" (class_id
                                            is "no digit") or "abstain" (digit = -1)
  svhn_tfx_answer_share_expected           gauge {model_name, kind}: the same shares measured
                                            on the model's held-out data (its calibration.json)
  svhn_tfx_answer_window                   gauge {model_name}: answers in the window
  svhn_tfx_answer_confidence               histogram {model_name}: calibrated confidence
  svhn_tfx_drift                           gauge {model_name}: 1 while a live share is more than
                                            ``--drift_margin`` from its expected share
"""
import collections
import logging
import re
import threading
import time
from typing import Dict, Optional, Sequence, Tuple

import grpc
import numpy as np

from svhn_tfx import schema
from svhn_tfx.schema.signatures import ANSWER_KINDS, NOT_ANSWERED

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"   # TF Serving's default
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# TF Serving's request_latency buckets: 10 us growing by 1.8 (33 of them, ~2.7 hours)
LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))
BATCH_SIZE_BUCKETS = tuple(2 ** i for i in range(11))        # 1 .. 1024 images
CONFIDENCE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
DEFAULT_DRIFT_WINDOW = 1000
DEFAULT_DRIFT_MARGIN = 0.15


def parse_monitoring_config(text: str) -> Optional[str]:
    """The Prometheus path a TF Serving monitoring config enables, or None if it is off.

    The file is the text format of TF Serving's MonitoringConfig; its only field is
    ``prometheus_config`` (``enable``, ``path``), so a small parser reads it exactly."""
    body = re.sub(r"#[^\n]*", "", text).strip()
    match = re.fullmatch(r"(?:prometheus_config\s*:?\s*\{(?P<inner>[^{}]*)\})?", body)
    if match is None:
        raise ValueError(f"not a MonitoringConfig (expected only prometheus_config {{ enable: "
                         f"true, path: \"...\" }}): {body[:200]!r}")
    fields = dict(re.findall(r"(\w+)\s*:\s*(\"[^\"]*\"|\w+)", match["inner"] or ""))
    unknown = set(fields) - {"enable", "path"}
    if unknown:
        raise ValueError(f"unknown prometheus_config fields {sorted(unknown)}")
    if fields.get("enable", "false") != "true":
        return None
    path = fields.get("path", '""').strip('"') or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise ValueError(f"prometheus_config path must start with '/', got {path!r}")
    return path


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    def escape(value) -> str:
        return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values))


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    """One metric family; series are keyed by label values, updated under one lock."""
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()):
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self._series: Dict[Tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def _key(self, labels: Dict[str, str]) -> Tuple[str, ...]:
        return tuple(str(labels[n]) for n in self.label_names)

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        with self._lock:
            for key, value in sorted(self._series.items()):
                lines.extend(self._samples(key, value))
        return "\n".join(lines)

    def _samples(self, key, value):
        return [f"{self.name}{{{_labels(self.label_names, key)}}} {_number(value)}"]


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels) -> None:
        key = self._key(labels)
        with self._lock:
            self._series[key] = self._series.get(key, 0) + amount

    def value(self, **labels) -> float:
        with self._lock:
            return self._series.get(self._key(labels), 0)


class Gauge(_Metric):
    kind = "gauge"

    def set(self, value: float, **labels) -> None:
        with self._lock:
            self._series[self._key(labels)] = value

    def replace(self, series: Dict[Tuple[str, ...], float]) -> None:
        """All series at once, keyed by label values in ``label_names`` order."""
        with self._lock:
            self._series = dict(series)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str],
                 buckets: Sequence[float]):
        super().__init__(name, help_text, label_names)
        self.buckets = tuple(buckets)

    def observe_many(self, values, **labels) -> None:
        values = np.asarray(values, np.float64).ravel()
        counts = np.bincount(np.searchsorted(self.buckets, values, side="left"),
                             minlength=len(self.buckets) + 1)
        key = self._key(labels)
        with self._lock:
            series = self._series.setdefault(key, [np.zeros(len(self.buckets) + 1, np.int64),
                                                   0.0])
            series[0] += counts
            series[1] += float(values.sum())

    def observe(self, value: float, **labels) -> None:
        self.observe_many([value], **labels)

    def _samples(self, key, value):
        counts, total = value
        labels = _labels(self.label_names, key)
        sep = "," if labels else ""
        cumulative = np.cumsum(counts)
        lines = [f'{self.name}_bucket{{{labels}{sep}le="{_number(b)}"}} {int(c)}'
                 for b, c in zip(self.buckets, cumulative)]
        lines += [f'{self.name}_bucket{{{labels}{sep}le="+Inf"}} {int(cumulative[-1])}',
                  f"{self.name}_sum{{{labels}}} {_number(total)}",
                  f"{self.name}_count{{{labels}}} {int(cumulative[-1])}"]
        return lines


class AnswerWindow:
    """The last ``size`` answers of one model, and whether their shares have left the
    range its held-out data showed (``expected`` ± ``margin``). Judged only on a full
    window; a change of verdict is logged once."""

    def __init__(self, model_name: str, size: int, margin: float):
        self.model_name, self.size, self.margin = model_name, size, margin
        self._answers = collections.deque(maxlen=size)   # (no_digit, abstain) per image
        self._sums = np.zeros(len(ANSWER_KINDS), np.int64)
        self.expected: Optional[Dict[str, float]] = None
        self.drifting = False

    def add(self, class_id: np.ndarray, digit: np.ndarray,
            expected: Optional[Dict[str, float]]) -> None:
        rows = np.stack([np.asarray(class_id) == schema.NO_DIGIT,
                         np.asarray(digit) == NOT_ANSWERED], axis=1).astype(np.int64)
        for row in rows[-self.size:]:
            if len(self._answers) == self.size:
                self._sums -= self._answers[0]
            self._answers.append(row)
            self._sums += row
        self.expected = expected
        drifting = self._judge()
        if drifting != self.drifting:
            self.drifting = drifting
            # (a newer version without expected shares ends a drift: nothing to compare with)
            shares = ", ".join(f"{k} {s:.2f}" + (f" (expected {self.expected[k]:.2f})"
                                                 if self.expected else "")
                               for k, s in self.shares().items())
            if drifting:
                logging.warning("drift: model %s's last %d answers are unlike its held-out "
                                "data (margin %.2f): %s", self.model_name, self.size,
                                self.margin, shares)
            else:
                logging.info("drift over: model %s's last %d answers are back within %.2f "
                             "of its held-out data: %s", self.model_name, self.size,
                             self.margin, shares)

    def __len__(self) -> int:
        return len(self._answers)

    def shares(self) -> Dict[str, float]:
        n = len(self._answers)
        return {k: (float(s) / n if n else 0.0) for k, s in zip(ANSWER_KINDS, self._sums)}

    def _judge(self) -> bool:
        if self.expected is None or len(self._answers) < self.size:
            return False
        return any(abs(self.shares()[k] - self.expected[k]) > self.margin for k in ANSWER_KINDS)


class ServingMetrics:
    """Every metric the server exports; the APIs, the batchers and the servables report here."""

    def __init__(self, drift_window: int = DEFAULT_DRIFT_WINDOW,
                 drift_margin: float = DEFAULT_DRIFT_MARGIN):
        if drift_window < 1 or not 0 < drift_margin < 1:
            raise ValueError(f"--drift_window must be >= 1 and --drift_margin within (0, 1), "
                             f"got {drift_window} and {drift_margin}")
        self.drift_window, self.drift_margin = drift_window, drift_margin
        self.requests = Counter(
            ":tensorflow:serving:request_count", "Requests, by model, version, signature, "
            "API, entrypoint and status.",
            ("model_name", "model_version", "signature_name", "API", "entrypoint", "status"))
        self.latency = Histogram(
            ":tensorflow:serving:request_latency", "Request latency in microseconds.",
            ("model_name", "API", "entrypoint"), LATENCY_BUCKETS_US)
        self.batch_size = Histogram(
            ":tensorflow:serving:batching_session:input_batch_size",
            "Images per batched model call.", ("model_name", "model_version", "signature_name"),
            BATCH_SIZE_BUCKETS)
        self.loaded = Gauge("svhn_tfx_model_version_loaded", "1 for each loaded version.",
                            ("model_name", "model_version"))
        self.share = Gauge("svhn_tfx_answer_share", "Share of the last answers (sliding "
                           "window) that are 'no digit' or abstentions (digit = -1).",
                           ("model_name", "kind"))
        self.expected_share = Gauge("svhn_tfx_answer_share_expected", "The same shares on the "
                                    "model's held-out data.", ("model_name", "kind"))
        self.window = Gauge("svhn_tfx_answer_window", "Answers in the sliding window.",
                            ("model_name",))
        self.confidence = Histogram("svhn_tfx_answer_confidence", "Calibrated confidence of "
                                    "each answer.", ("model_name",), CONFIDENCE_BUCKETS)
        self.drift = Gauge("svhn_tfx_drift", "1 while a live answer share is further than "
                           "the margin from its expected share.", ("model_name",))
        self._windows: Dict[str, AnswerWindow] = {}
        self._lock = threading.Lock()
        self.loaded_versions = None   # () -> (model name, loaded versions), set by the server

    def record_request(self, entrypoint: str, api: str, model_name: str, model_version,
                       signature_name: str, status: grpc.StatusCode, seconds: float) -> None:
        self.requests.inc(model_name=model_name, model_version=model_version or "",
                          signature_name=signature_name or "", API=api,
                          entrypoint=entrypoint, status=status.name)
        self.latency.observe(seconds * 1e6, model_name=model_name, API=api,
                             entrypoint=entrypoint)

    def record_batch(self, model_name: str, version: int, signature_name: str,
                     size: int) -> None:
        self.batch_size.observe(size, model_name=model_name, model_version=version,
                                signature_name=signature_name)

    def record_answers(self, model_name: str, outputs: Dict[str, np.ndarray],
                       expected: Optional[Dict[str, float]]) -> None:
        """``serving_default``'s outputs of one request (before any output_filter)."""
        with self._lock:
            window = self._windows.get(model_name)
            if window is None:
                window = self._windows[model_name] = AnswerWindow(
                    model_name, self.drift_window, self.drift_margin)
            window.add(outputs["class_id"], outputs["digit"], expected)
            for kind, share in window.shares().items():
                self.share.set(share, model_name=model_name, kind=kind)
                if expected is not None:
                    self.expected_share.set(expected[kind], model_name=model_name, kind=kind)
            self.window.set(len(window), model_name=model_name)
            self.drift.set(int(window.drifting), model_name=model_name)
        self.confidence.observe_many(outputs["confidence"], model_name=model_name)

    def render(self) -> str:
        if self.loaded_versions is not None:
            model_name, versions = self.loaded_versions()
            self.loaded.replace({(model_name, str(v)): 1 for v in versions})
        metrics = (self.requests, self.latency, self.batch_size, self.loaded, self.share,
                   self.expected_share, self.window, self.confidence, self.drift)
        return "\n".join(m.render() for m in metrics) + "\n"


class RequestTimer:
    """One request: started on creation, counted with its latency by ``finish`` under the
    status it ended with. The API layers fill in what they learn on the way."""

    def __init__(self, metrics: Optional[ServingMetrics], entrypoint: str, api: str = "",
                 model_name: str = "", signature_name: str = ""):
        self.metrics, self.entrypoint, self.api = metrics, entrypoint, api
        self.model_name, self.signature_name = model_name, signature_name
        self.version = None
        self.status = grpc.StatusCode.OK
        self._start = time.monotonic()

    def finish(self) -> None:
        if self.metrics is not None:
            self.metrics.record_request(self.entrypoint, self.api, self.model_name,
                                        self.version, self.signature_name, self.status,
                                        time.monotonic() - self._start)
