"""svhn-tfx-serve: a model server with TensorFlow Serving's gRPC and REST API.

For machines where ``tensorflow_model_server`` cannot be installed. It serves the same
``<model_base_path>/<version>/`` directory with the same wire contract, so clients and
models move to the real TF Serving unchanged. Flags use TF Serving's names where it has
one (``--port``, ``--rest_api_port``, ``--model_name``, ``--model_base_path``,
``--file_system_poll_wait_seconds``, ``--max_batch_size``, ``--batch_timeout_micros``,
``--num_batch_threads``, ``--monitoring_config_file``).

With ``--monitoring_config_file`` (TF Serving's format), Prometheus metrics are served on the
REST port (see serving/metrics.py), among them a drift gauge: it flags when the shares of "no
digit" answers and abstentions over the last ``--drift_window`` answers leave the shares the
model showed on its held-out data by more than ``--drift_margin``; each change is logged once.
"""
import argparse
import concurrent.futures
import logging
import os
import signal
import sys
import threading

import grpc

from svhn_tfx.serving import grpc_service, rest
from svhn_tfx.serving.limits import Limits
from svhn_tfx.serving import metrics as serving_metrics
from svhn_tfx.serving.model_store import DEFAULT_MAX_LOADED_VERSIONS, ModelStore
from svhn_tfx.serving.servable import Servable

SHUTDOWN_GRACE_S = 5
DEFAULT_MAX_ENQUEUED_BATCHES = 16


def parse_args(argv=None):
    defaults = Limits()
    p = argparse.ArgumentParser(prog="svhn-tfx-serve", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0: pick a free one)")
    p.add_argument("--rest_api_port", type=int, default=8501,
                   help="REST port (0: no REST, as in TF Serving)")
    p.add_argument("--model_name", default="svhn")
    p.add_argument("--model_base_path", required=True,
                   help="folder holding <version>/saved_model.pb (the Pusher's destination); "
                        "a local path or a URI such as gs://bucket/models/svhn")
    p.add_argument("--file_system_poll_wait_seconds", type=float, default=2.0,
                   help="how often to look for new versions (0: never)")
    p.add_argument("--max_loaded_versions", type=int, default=DEFAULT_MAX_LOADED_VERSIONS,
                   help="newest versions kept loaded and addressable by number")
    p.add_argument("--max_batch_size", type=int, default=64,
                   help="images per batched model call (1: no batching)")
    p.add_argument("--batch_timeout_micros", type=int, default=2000,
                   help="longest a request waits for others to share its batch")
    p.add_argument("--num_batch_threads", type=int, default=2)
    p.add_argument("--max_enqueued_batches", type=int, default=DEFAULT_MAX_ENQUEUED_BATCHES,
                   help="batches' worth of images that may wait for the model; past that, "
                        "requests are refused at once with RESOURCE_EXHAUSTED (HTTP 429)")
    p.add_argument("--max_concurrent_requests", type=int,
                   default=rest.DEFAULT_MAX_CONCURRENT_REQUESTS,
                   help="requests handled at once, per API (gRPC, REST); more are refused "
                        "with RESOURCE_EXHAUSTED (HTTP 429)")
    p.add_argument("--rest_timeout_seconds", type=float, default=rest.DEFAULT_TIMEOUT_S,
                   help="an idle REST connection is closed after this long, and a request "
                        "body must arrive within it")
    p.add_argument("--max_rest_connections", type=int, default=rest.DEFAULT_MAX_CONNECTIONS,
                   help="open REST connections (idle ones included); more are answered 503")
    p.add_argument("--max_images_per_request", type=int, default=defaults.max_images_per_request)
    p.add_argument("--max_image_bytes", type=int, default=defaults.max_image_bytes)
    p.add_argument("--max_image_pixels", type=int, default=defaults.max_image_pixels,
                   help="width x height above which an image is refused before decoding")
    p.add_argument("--max_request_pixels", type=int, default=defaults.max_request_pixels,
                   help="decoded pixels of all images in one request (and in one batch)")
    p.add_argument("--max_request_bytes", type=int, default=defaults.max_request_bytes)
    p.add_argument("--monitoring_config_file", default="",
                   help="TF Serving's MonitoringConfig text file; prometheus_config { enable: "
                        "true, path: \"/monitoring/prometheus/metrics\" } serves Prometheus "
                        "metrics at that path on the REST port")
    p.add_argument("--drift_window", type=int, default=serving_metrics.DEFAULT_DRIFT_WINDOW,
                   help="answers (images) in the sliding window the drift check looks at")
    p.add_argument("--drift_margin", type=float, default=serving_metrics.DEFAULT_DRIFT_MARGIN,
                   help="how far (absolute share) the window's 'no digit' or abstention share "
                        "may be from the model's held-out share before drift is flagged")
    p.add_argument("--log_level", default="INFO")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s svhn-tfx-serve %(levelname)s %(message)s")
    limits = Limits(args.max_images_per_request, args.max_image_bytes, args.max_image_pixels,
                    args.max_request_pixels, args.max_request_bytes)
    metrics_path = None
    if args.monitoring_config_file:
        try:
            with open(args.monitoring_config_file) as f:
                metrics_path = serving_metrics.parse_monitoring_config(f.read())
        except (OSError, ValueError) as e:
            logging.error("--monitoring_config_file %s: %s", args.monitoring_config_file, e)
            return 2
        if metrics_path and not args.rest_api_port:
            logging.error("Prometheus metrics are served on the REST port: set --rest_api_port")
            return 2
    try:
        metrics = serving_metrics.ServingMetrics(args.drift_window, args.drift_margin)
    except ValueError as e:
        logging.error("%s", e)
        return 2

    def load(path, version):
        return Servable(path, version, limits, args.max_batch_size,
                        args.batch_timeout_micros / 1e6, args.num_batch_threads,
                        args.max_enqueued_batches, args.model_name, metrics)

    base_path = args.model_base_path if "://" in args.model_base_path else \
        os.path.abspath(args.model_base_path)
    store = ModelStore(args.model_name, base_path, load,
                       args.max_loaded_versions)
    metrics.loaded_versions = lambda: (args.model_name, store.loaded_versions())
    store.poll_once()
    if not store.loaded_versions():
        logging.warning("no loadable version in %s yet; waiting for one", args.model_base_path)
    if args.file_system_poll_wait_seconds > 0:
        store.start_polling(args.file_system_poll_wait_seconds)

    options = [("grpc.max_receive_message_length", args.max_request_bytes),
               ("grpc.max_send_message_length", args.max_request_bytes)]
    # Past maximum_concurrent_rpcs, gRPC itself answers RESOURCE_EXHAUSTED.
    grpc_server = grpc.server(
        concurrent.futures.ThreadPoolExecutor(args.max_concurrent_requests), options=options,
        maximum_concurrent_rpcs=args.max_concurrent_requests)
    grpc_service.add_to_server(grpc_server, store, metrics)
    grpc_port = grpc_server.add_insecure_port(f"{args.host}:{args.port}")
    if not grpc_port:
        logging.error("cannot listen on %s:%d", args.host, args.port)
        return 1
    grpc_server.start()
    # Tests and scripts read the actual ports from these lines (port 0 picks a free one).
    print(f"svhn-tfx-serve: gRPC on {args.host}:{grpc_port}", flush=True)
    rest_server = None
    if args.rest_api_port:
        rest_server = rest.make_server(args.host, args.rest_api_port, store, limits,
                                       args.rest_timeout_seconds,
                                       args.max_concurrent_requests, args.max_rest_connections,
                                       metrics, metrics_path)
        threading.Thread(target=rest_server.serve_forever, daemon=True).start()
        print(f"svhn-tfx-serve: REST on {args.host}:{rest_server.server_address[1]}",
              flush=True)
        if metrics_path:
            print(f"svhn-tfx-serve: Prometheus metrics at http://{args.host}:"
                  f"{rest_server.server_address[1]}{metrics_path}", flush=True)

    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
    logging.info("shutting down")
    store.stop()
    if rest_server:
        rest_server.shutdown()
    grpc_server.stop(SHUTDOWN_GRACE_S).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
