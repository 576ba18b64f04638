"""A closed-loop gRPC load generator: N clients, each sending Predict requests back to back."""
import threading
import time

import grpc
import numpy as np
from tensorflow_serving.apis import prediction_service_pb2_grpc

from svhn_tfx.serving.client import predict_request


def run_load(target: str, model_name: str, images, clients: int, seconds: float) -> dict:
    """Returns requests, errors, throughput (requests/s and images/s), p50/p99 latency (ms)."""
    request = predict_request(images, model_name)
    latencies = [[] for _ in range(clients)]
    errors = [0] * clients
    start_line = threading.Barrier(clients + 1)

    def client(i):
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            stub.Predict(request, timeout=60)  # connect before the clock starts
            start_line.wait()
            end = time.perf_counter() + seconds
            while (now := time.perf_counter()) < end:
                try:
                    stub.Predict(request, timeout=60)
                    latencies[i].append(time.perf_counter() - now)
                except grpc.RpcError:
                    errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    all_latencies = np.concatenate([np.array(l) for l in latencies]) * 1000
    count = len(all_latencies)
    return {
        "clients": clients,
        "images_per_request": len(images),
        "seconds": round(elapsed, 2),
        "requests": count,
        "errors": sum(errors),
        "requests_per_s": round(count / elapsed, 1),
        "images_per_s": round(count * len(images) / elapsed, 1),
        "p50_ms": round(float(np.percentile(all_latencies, 50)), 2) if count else None,
        "p99_ms": round(float(np.percentile(all_latencies, 99)), 2) if count else None,
    }
