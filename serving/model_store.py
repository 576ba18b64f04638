"""Finds model versions under ``--model_base_path`` and swaps new ones in while serving.

The layout is TF Serving's: ``<model_base_path>/<integer version>/saved_model.pb``, as the
Pusher writes it. A poll thread loads each new version completely (including a warm-up
call) before it becomes the latest, so a request in flight keeps the version it started
with and none fails during a swap. A version that fails to load is logged and skipped,
and the previous one keeps serving; it is retried only when its files change (a copy
still in progress usually fails the first time). The base path may be a URI.
"""
import logging
import os
import threading
from typing import Callable, Dict, List, Optional

import tensorflow as tf

from svhn_tfx.serving.errors import not_found
from svhn_tfx.serving.servable import Servable

gfile = tf.io.gfile   # --model_base_path may be a URI (gs://...), as TF Serving allows
# The versions kept loaded, newest first (TF Serving's default policy keeps only the latest).
DEFAULT_MAX_LOADED_VERSIONS = 2


class ModelStore:
    def __init__(self, model_name: str, base_path: str, load: Callable[[str, int], Servable],
                 max_loaded_versions: int = DEFAULT_MAX_LOADED_VERSIONS):
        self.model_name = model_name
        self.base_path = base_path
        self._load = load
        self._max_loaded = max_loaded_versions
        self._versions: Dict[int, Servable] = {}
        self._failed: Dict[int, tuple] = {}  # version -> file fingerprint when it failed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None

    def get(self, model_name: str, version: Optional[int] = None) -> Servable:
        """The servable for a request; raises NOT_FOUND with what is available."""
        if model_name != self.model_name:
            raise not_found(f"Servable not found for request: model '{model_name}' "
                            f"(this server serves '{self.model_name}')")
        with self._lock:
            versions = dict(self._versions)
        if not versions:
            raise not_found(f"model '{model_name}' has no loaded version yet "
                            f"(watching {self.base_path})")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise not_found(f"Servable not found for request: model '{model_name}' version "
                            f"{version}; loaded versions: {sorted(versions)}")
        return versions[version]

    def loaded_versions(self) -> List[int]:
        with self._lock:
            return sorted(self._versions, reverse=True)

    def poll_once(self) -> None:
        on_disk = versions_on_disk(self.base_path)
        wanted = sorted(on_disk, reverse=True)[:self._max_loaded]
        for version in sorted(wanted):
            if version in self._versions:
                continue
            fingerprint = _fingerprint(on_disk[version])
            if self._failed.get(version) == fingerprint:
                continue
            try:
                servable = self._load(on_disk[version], version)
            except Exception as e:  # keep serving what we have; say why
                self._failed[version] = fingerprint
                logging.error("could not load %s version %d from %s; still serving %s: %s",
                              self.model_name, version, on_disk[version],
                              self.loaded_versions() or "nothing", e)
                continue
            self._failed.pop(version, None)
            with self._lock:
                self._versions[version] = servable
            logging.info("serving %s version %d (%s)", self.model_name, version,
                         on_disk[version])
        loaded_wanted = [v for v in wanted if v in self._versions]
        with self._lock:
            # Unload what fell out of the window, but never the last version that works.
            retired = [v for v in self._versions if v not in loaded_wanted] \
                if loaded_wanted else []
            retired = [(v, self._versions.pop(v)) for v in retired]
        for version, servable in retired:
            servable.close()
            logging.info("unloaded %s version %d", self.model_name, version)

    def start_polling(self, interval_s: float) -> None:
        def loop():
            while not self._stop.wait(interval_s):
                try:
                    self.poll_once()
                except Exception:
                    logging.exception("polling %s failed", self.base_path)
        self._poller = threading.Thread(target=loop, name="version-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        self._stop.set()


def versions_on_disk(base_path: str) -> Dict[int, str]:
    """{version: its folder} for every <integer>/ folder under a model base path."""
    try:
        names = [name.rstrip("/") for name in gfile.listdir(base_path)]
    except tf.errors.NotFoundError:
        return {}
    return {int(name): os.path.join(base_path, name) for name in names
            if name.isdigit() and gfile.isdir(os.path.join(base_path, name))}


def _fingerprint(path: str) -> tuple:
    entries = []
    for root, _, files in gfile.walk(path):
        for name in files:
            try:
                stat = gfile.stat(os.path.join(root, name))
            except tf.errors.NotFoundError:
                continue
            entries.append((os.path.relpath(os.path.join(root, name), path), stat.length,
                            stat.mtime_nsec))
    return tuple(sorted(entries))
