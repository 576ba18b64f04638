"""Serving benchmark: gRPC Predict through svhn-tfx-serve vs. the same SavedModel in-process.

Single-image latency (p50/p99) with one client, and throughput with 8 and 32 concurrent
clients sending one image each, against in-process calls of the same signature with
batch size 1 (what each client sends). The server runs as its own process on the same
machine, so clients and server share the CPU cores, as they would on one host.
"""
import os
import time

import numpy as np

from bench.serving_load import run_load

LATENCY_CALLS = 300
WARMUP_CALLS = 20


def in_process(model_dir: str, image: bytes, seconds: float) -> dict:
    import tensorflow as tf
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    batch = tf.constant([image])
    for _ in range(WARMUP_CALLS):
        signature(image_bytes=batch)
    latencies = []
    end = time.perf_counter() + seconds
    while (start := time.perf_counter()) < end or len(latencies) < LATENCY_CALLS:
        signature(image_bytes=batch)["probabilities"].numpy()
        latencies.append(time.perf_counter() - start)
    latencies = np.array(latencies) * 1000
    return {"calls": len(latencies), "images_per_s": round(1000 / latencies.mean(), 1),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2),
            "p99_ms": round(float(np.percentile(latencies, 99)), 2)}


def run(model_base_path: str, model_dir: str, image: bytes, seconds: float,
        client_counts=(1, 8, 32)) -> dict:
    from tests.serving_helpers import ServerProcess
    local = in_process(model_dir, image, seconds)
    server = ServerProcess(model_base_path, "svhn",
                           log_path=os.path.join(os.path.dirname(model_base_path),
                                                 "bench-server.log"))
    try:
        run_load(server.grpc_target, "svhn", [image], clients=4, seconds=1)  # warm up
        remote = {n: run_load(server.grpc_target, "svhn", [image], clients=n, seconds=seconds)
                  for n in client_counts}
    finally:
        server.stop()
    result = {"in_process_batch_1": local, "grpc": {str(n): r for n, r in remote.items()}}
    result["p50_gap_ms"] = round(remote[1]["p50_ms"] - local["p50_ms"], 2)
    for n in client_counts[1:]:
        result[f"throughput_ratio_{n}_clients"] = round(
            remote[n]["images_per_s"] / local["images_per_s"], 3)
    return result


def table(result: dict) -> str:
    local = result["in_process_batch_1"]
    rows = ["| setting | images/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|",
            f"| in-process, batch 1 | {local['images_per_s']} | {local['p50_ms']} | "
            f"{local['p99_ms']} | - |"]
    for n, r in result["grpc"].items():
        rows.append(f"| gRPC, {n} client(s) | {r['images_per_s']} | {r['p50_ms']} | "
                    f"{r['p99_ms']} | {r['errors']} |")
    ratios = ", ".join(f"{k.split('_')[2]} clients {v:.2f}x" for k, v in result.items()
                       if k.startswith("throughput_ratio"))
    rows.append(f"\nThroughput vs in-process: {ratios} (target ≥ 0.70 at 32). "
                f"Single-image p50 gap: {result['p50_gap_ms']} ms (target ≤ 2 ms).")
    return "\n".join(rows)
