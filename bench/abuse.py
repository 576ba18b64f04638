"""Abuse benchmark: thousands of hostile requests against svhn-tfx-serve, a good one after each.

Kinds (gRPC and REST): a 50-byte shape bomb, tensors that do not fit the signature, random
and truncated bytes, decompression and GIF-frame bombs, palette BMPs, bombs hidden in the
classify signature's tf.Examples, too many images, bad Content-Length, bodies that stop
early, deep JSON. Reported: server crashes, good requests failed, INTERNAL answers, server
RSS growth, shape-bomb answer time; an overload burst of concurrent clients (answered or
RESOURCE_EXHAUSTED, p99 of the answered); a good REST request while 100 connections idle.
"""
import base64
import json
import os
import socket
import struct
import threading
import time
import urllib.error
import urllib.request

import numpy as np

from svhn_tfx.schema.images import encode

MODEL = "svhn"
BOMB_TIMINGS = 200
DEADLINE_S = 30.0


def _declared_png(width: int, height: int) -> bytes:
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2,
                                                                0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _gif_frames(frames: int, side: int) -> bytes:
    screen = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\x00" * 6
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x01\x00\x00"
    return screen + frame * frames + b"\x3b"


def _palette_bmp() -> bytes:
    palette = b"".join(struct.pack("BBBB", 255 - i, i, i, 0) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, 4, 4, 1, 8, 0, 16, 2835, 2835, 256, 0)
    offset = 14 + 40 + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + 16, 0, 0, offset) + info + palette + \
        bytes(range(16))


def _grpc_kinds(rng, good: bytes):
    """name -> function(rng) building one hostile PredictRequest."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

    from svhn_tfx.serving.client import tensor_request

    def request(key, proto, signature="serving_default"):
        return tensor_request({key: proto}, MODEL, signature)

    def tensor(dtype, dims, strings=()):
        proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
        proto.string_val.extend(strings)
        return proto

    def images(blobs):
        return request("image_bytes", tensor(types_pb2.DT_STRING, [len(blobs)], blobs))

    def example(image):
        return tf.train.Example(features=tf.train.Features(feature={"image_raw": tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[image]))})).SerializeToString()

    return {
        "shape bomb (declares 1e9 strings, sends 1)": lambda r: request(
            "image_bytes", tensor(types_pb2.DT_STRING, [10 ** 9], [b"x"])),
        "declared vs sent mismatch": lambda r: request(
            "image_bytes", tensor(types_pb2.DT_STRING, [int(r.integers(2, 10 ** 6))], [good])),
        "wrong dtype": lambda r: request("image_bytes", tf.make_tensor_proto(
            r.random((1, 32, 32, 3), np.float32))),
        "wrong rank": lambda r: request("image_bytes", tensor(types_pb2.DT_STRING, [2, 2],
                                                              [good] * 4)),
        "random bytes": lambda r: images([r.bytes(int(r.integers(0, 200)))]),
        "truncated image": lambda r: images([good, good[:int(r.integers(8, len(good) - 1))]]),
        "decompression bomb PNG": lambda r: images([_declared_png(100_000, 100_000)]),
        "GIF frame bomb": lambda r: images([_gif_frames(2000, 4000)]),
        "palette BMP": lambda r: images([_palette_bmp()]),
        "bomb inside a classify tf.Example": lambda r: request(
            "inputs", tensor(types_pb2.DT_STRING, [2], [example(good),
                                                        example(_declared_png(90_000, 90_000))]),
            signature="classify"),
        "too many images": lambda r: images([good] * 1025),
        "unknown signature": lambda r: request("image_bytes",
                                               tensor(types_pb2.DT_STRING, [1], [good]), "nope"),
    }


def _rest_kinds(good: bytes):
    """name -> raw HTTP request bytes."""
    path = f"/v1/models/{MODEL}:predict"

    def post(body: bytes, length=None, extra=""):
        return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body) if length is None else length}\r\n{extra}\r\n"
                ).encode() + body

    b64 = base64.b64encode(good[:len(good) // 2]).decode()
    return {
        "REST Content-Length -1": post(b"{}", "-1"),
        "REST Content-Length not a number": post(b"{}", "abc"),
        "REST declared 1 TB body": post(b"", str(1 << 40)),
        "REST body shorter than declared": post(b'{"instances": [', "500"),
        "REST not JSON": post(b"\xff\xfe{{{"),
        "REST JSON nested 100k deep": post(b'{"instances": ' + b"[" * 100_000 +
                                           b"]" * 100_000 + b"}"),
        "REST truncated image": post(json.dumps({"instances": [{"b64": b64}]}).encode()),
        "REST chunked body": (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                              f"\r\n\r\n5\r\nhello\r\n0\r\n\r\n").encode(),
    }


def _raw_http(port: int, payload: bytes, timeout: float = DEADLINE_S) -> int:
    """Sends raw bytes, returns the HTTP status (0: the server closed without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        head = s.recv(64)
    return int(head.split()[1]) if head.startswith(b"HTTP/") else 0


def _rss(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def _good_rest(url: str, good: bytes) -> bool:
    body = json.dumps({"instances": [{"b64": base64.b64encode(good).decode()}]}).encode()
    request = urllib.request.Request(f"{url}/v1/models/{MODEL}:predict", data=body)
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def run(model_base_path: str, total: int = 10_000, burst_clients: int = 256,
        idle_connections: int = 100, seed: int = 0) -> dict:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from svhn_tfx.serving.client import predict_request
    from svhn_tfx.serving.process import ServerProcess
    rng = np.random.default_rng(seed)
    good = encode(rng.integers(0, 256, (32, 32, 3), np.uint8))
    server = ServerProcess(model_base_path, MODEL, file_system_poll_wait_seconds=0,
                           log_path=os.path.join(os.path.dirname(model_base_path),
                                                 "abuse-server.log"))
    grpc_kinds, rest_kinds = _grpc_kinds(rng, good), _rest_kinds(good)
    names = list(grpc_kinds) + list(rest_kinds)
    counts = {name: {} for name in names}
    good_failed, internal, crashed = 0, 0, False
    try:
        channel = grpc.insecure_channel(server.grpc_target,
                                        options=[("grpc.max_send_message_length", 1 << 27)])
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        good_request = predict_request([good], MODEL)
        stub.Predict(good_request, timeout=DEADLINE_S)
        rss_start = _rss(server.process.pid)
        start = time.perf_counter()
        for i in range(total):
            name = names[i % len(names)]
            if name in grpc_kinds:
                try:
                    stub.Predict(grpc_kinds[name](rng), timeout=DEADLINE_S)
                    code = "OK"
                except grpc.RpcError as e:
                    code = e.code().name
                ok_after = _good_grpc(stub, good_request)
            else:
                code = str(_raw_http(server.rest_port, rest_kinds[name]))
                ok_after = _good_rest(server.rest_url, good)
            counts[name][code] = counts[name].get(code, 0) + 1
            internal += code in ("INTERNAL", "UNKNOWN", "500")
            good_failed += not ok_after
            if server.process.poll() is not None:
                crashed = True
                break
            if (i + 1) % 1000 == 0:
                print(f"bench: abuse {i + 1}/{total} ({time.perf_counter() - start:.0f} s)",
                      flush=True)
        abuse_seconds = time.perf_counter() - start
        rss_end = _rss(server.process.pid)
        bomb_ms = _bomb_latencies(stub, grpc_kinds, rng)
        burst = _burst(server.grpc_target, good, burst_clients)
        idle = _idle(server, good, idle_connections)
        rss_peak = _rss(server.process.pid, "VmHWM")
        channel.close()
    finally:
        crashed = crashed or server.process.poll() is not None
        server.stop()
    return {"abusive_requests": sum(sum(c.values()) for c in counts.values()),
            "seconds": round(abuse_seconds, 1), "server_crashes": int(crashed),
            "good_requests_failed": good_failed, "internal_answers": internal,
            "rss_start_mb": round(rss_start / 2 ** 20), "rss_end_mb": round(rss_end / 2 ** 20),
            "rss_growth_mb": round((rss_end - rss_start) / 2 ** 20, 1),
            "rss_peak_mb": round(rss_peak / 2 ** 20), "shape_bomb_ms": bomb_ms,
            "burst": burst, "idle": idle, "answers_by_kind": counts}


def _good_grpc(stub, request) -> bool:
    import grpc
    try:
        stub.Predict(request, timeout=DEADLINE_S)
        return True
    except grpc.RpcError:
        return False


def _bomb_latencies(stub, grpc_kinds, rng) -> dict:
    import grpc
    bomb = grpc_kinds["shape bomb (declares 1e9 strings, sends 1)"](rng)
    times, codes = [], set()
    for _ in range(BOMB_TIMINGS):
        start = time.perf_counter()
        try:
            stub.Predict(bomb, timeout=DEADLINE_S)
            codes.add("OK")
        except grpc.RpcError as e:
            codes.add(e.code().name)
        times.append((time.perf_counter() - start) * 1000)
    return {"request_bytes": bomb.ByteSize(), "codes": sorted(codes),
            "p50": round(float(np.percentile(times, 50)), 2),
            "p99": round(float(np.percentile(times, 99)), 2), "max": round(max(times), 2)}


def _burst(target: str, good: bytes, clients: int, images_per_request: int = 8) -> dict:
    """``clients`` threads, each on its own channel, send one request at the same moment."""
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from svhn_tfx.serving.client import predict_request
    request = predict_request([good] * images_per_request, MODEL)
    results, ready = [], threading.Barrier(clients)

    def client():
        with grpc.insecure_channel(target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            grpc.channel_ready_future(channel).result(timeout=DEADLINE_S)
            ready.wait()
            start = time.perf_counter()
            try:
                stub.Predict(request, timeout=DEADLINE_S)
                code = "OK"
            except grpc.RpcError as e:
                code = e.code().name
            results.append((code, time.perf_counter() - start))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S * 2)
    answered = [s * 1000 for code, s in results if code == "OK"]
    codes = {}
    for code, _ in results:
        codes[code] = codes.get(code, 0) + 1
    return {"clients": clients, "images_per_request": images_per_request, "codes": codes,
            "hung": clients - len(results),
            "longest_s": round(max(s for _, s in results), 2) if results else None,
            "answered_p50_ms": round(float(np.percentile(answered, 50)), 1) if answered else None,
            "answered_p99_ms": round(float(np.percentile(answered, 99)), 1) if answered else None}


def _idle(server, good: bytes, connections: int) -> dict:
    idle = [socket.create_connection(("127.0.0.1", server.rest_port)) for _ in range(connections)]
    try:
        for s in idle[::2]:
            s.sendall(f"POST /v1/models/{MODEL}:predict HTTP/1.1\r\n".encode())
        start = time.perf_counter()
        ok = _good_rest(server.rest_url, good)
        return {"idle_connections": connections, "good_request_ok": ok,
                "good_request_ms": round((time.perf_counter() - start) * 1000, 1)}
    finally:
        for s in idle:
            s.close()


def table(result: dict) -> str:
    b, burst, idle = result["shape_bomb_ms"], result["burst"], result["idle"]
    rows = [
        "| measure | result | target |", "|---|---|---|",
        f"| abusive requests ({len(result['answers_by_kind'])} kinds, gRPC and REST), a good "
        f"one after each | {result['abusive_requests']} in {result['seconds']} s | >= 10,000 |",
        f"| server crashes | {result['server_crashes']} | 0 |",
        f"| good requests failed between them | {result['good_requests_failed']} | 0 |",
        f"| INTERNAL / HTTP 500 answers | {result['internal_answers']} | 0 |",
        f"| server RSS growth over the run | {result['rss_growth_mb']} MB "
        f"({result['rss_start_mb']} → {result['rss_end_mb']} MB, peak {result['rss_peak_mb']}) "
        f"| <= 200 MB |",
        f"| shape bomb ({b['request_bytes']} bytes) answer time | p50 {b['p50']} ms, p99 "
        f"{b['p99']} ms, max {b['max']} ms, {', '.join(b['codes'])} | < 10 ms, "
        f"INVALID_ARGUMENT |",
        f"| overload burst: {burst['clients']} clients at once, {burst['images_per_request']} "
        f"images each | {burst['codes']}; hung {burst['hung']}; longest "
        f"{burst['longest_s']} s; answered p50 {burst['answered_p50_ms']} ms, p99 "
        f"{burst['answered_p99_ms']} ms | answered or RESOURCE_EXHAUSTED, none past its "
        f"{DEADLINE_S:.0f} s deadline |",
        f"| good REST request with {idle['idle_connections']} idle connections open | "
        f"{'answered' if idle['good_request_ok'] else 'FAILED'} in "
        f"{idle['good_request_ms']} ms | answered |",
    ]
    kinds = ["", "| kind | answers |", "|---|---|"] + [
        f"| {name} | {', '.join(f'{k}: {v}' for k, v in sorted(codes.items()))} |"
        for name, codes in result["answers_by_kind"].items()]
    return "\n".join(rows + kinds)
