"""Serving benchmark: gRPC Predict through svhn-tfx-serve vs. the same SavedModel in-process.

Single-image latency (p50/p99) with one client, and throughput with 8 and 32 concurrent
clients sending one image each, against in-process calls of the same signature with
batch size 1 (what each client sends). The server runs as its own process on the same
machine, so clients and server share the CPU cores, as they would on one host.
"""
import os
import time

import numpy as np

from svhn_tfx.serving.load import run_load

LATENCY_CALLS = 300
WARMUP_CALLS = 20
# This machine's speed drifts (identical runs minutes apart differ up to 2x), so in-process
# and gRPC are measured in interleaved rounds and the headline is the median round.
ROUNDS = 3


def in_process(signature, image: bytes, seconds: float) -> dict:
    import tensorflow as tf
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
        client_counts=(1, 8, 32), rounds: int = ROUNDS) -> dict:
    import tensorflow as tf
    from svhn_tfx.serving.process import ServerProcess
    signature = tf.saved_model.load(model_dir).signatures["serving_default"]
    server = ServerProcess(model_base_path, "svhn",
                           log_path=os.path.join(os.path.dirname(model_base_path),
                                                 "bench-server.log"))
    measured = []
    try:
        run_load(server.grpc_target, "svhn", [image], clients=4, seconds=1)  # warm up
        for _ in range(rounds):
            local = in_process(signature, image, seconds)
            remote = {str(n): run_load(server.grpc_target, "svhn", [image], clients=n,
                                       seconds=seconds) for n in client_counts}
            measured.append({"in_process_batch_1": local, "grpc": remote,
                             "p50_gap_ms": round(remote["1"]["p50_ms"] - local["p50_ms"], 2),
                             **{f"throughput_ratio_{n}_clients": round(
                                 remote[str(n)]["images_per_s"] / local["images_per_s"], 3)
                                for n in client_counts[1:]}})
    finally:
        server.stop()
    result = {"rounds": measured}
    for key in measured[0]:
        if key.startswith(("p50_gap", "throughput_ratio")):
            result[key] = float(np.median([r[key] for r in measured]))
    return result


def table(result: dict) -> str:
    counts = list(result["rounds"][0]["grpc"])
    rows = ["| round | in-process batch 1: images/s, p50 ms | " + " | ".join(
                f"gRPC {n} client(s): images/s, p50 ms, p99 ms" for n in counts) +
            " | errors |", "|---" * (len(counts) + 3) + "|"]
    for i, r in enumerate(result["rounds"], 1):
        local = r["in_process_batch_1"]
        cells = [f"{r['grpc'][n]['images_per_s']}, {r['grpc'][n]['p50_ms']}, "
                 f"{r['grpc'][n]['p99_ms']}" for n in counts]
        errors = sum(r["grpc"][n]["errors"] for n in counts)
        rows.append(f"| {i} | {local['images_per_s']}, {local['p50_ms']} | " +
                    " | ".join(cells) + f" | {errors} |")
    ratios = ", ".join(
        f"{k.split('_')[2]} clients {v:.2f}x ({'/'.join(f'{r[k]:.2f}' for r in result['rounds'])})"
        for k, v in result.items() if k.startswith("throughput_ratio"))
    gaps = "/".join(f"{r['p50_gap_ms']:.2f}" for r in result["rounds"])
    rows.append(f"\nMedian of {len(result['rounds'])} interleaved rounds (each round's value "
                f"in brackets). Throughput vs in-process: {ratios} (target ≥ 0.70 at 32). "
                f"Single-image p50 gap: {result['p50_gap_ms']:.2f} ms ({gaps}) "
                f"(target ≤ 2 ms).")
    return "\n".join(rows)
