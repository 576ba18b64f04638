"""``svhn-tfx-serve`` (or the real ``tensorflow_model_server``) as a child process: started on
free ports, waited for until it answers, stopped. For scripts, benchmarks and tests."""
import os
import queue
import socket
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT_S = 120
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``svhn-tfx-serve`` (or the real ``tensorflow_model_server``) as a child process."""

    def __init__(self, model_base_path: str, model_name: str = "svhn", binary=None,
                 log_path=None, **flags):
        self.rest_port = free_port()
        self.model_name = model_name
        if binary:
            self.grpc_port = free_port()
            command = [binary, f"--port={self.grpc_port}"]
        else:
            command = [sys.executable, "-m", "svhn_tfx.serving.server", "--port=0"]
        command += [f"--rest_api_port={self.rest_port}", f"--model_name={model_name}",
                    f"--model_base_path={model_base_path}"]
        command += [f"--{k}={v}" for k, v in flags.items()]
        self.log_path = log_path or os.path.join(model_base_path, "..", "server.log")
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                        stderr=self._log, text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not binary:
            self.grpc_port = int(self._wait_for_line("gRPC on").rsplit(":", 1)[1])
            self._wait_for_line("REST on")
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.rest_url = f"http://127.0.0.1:{self.rest_port}"
        self.wait_until_available()

    def _read_stdout(self):
        for line in self.process.stdout:
            self._lines.put(line.strip())

    def _wait_for_line(self, marker: str) -> str:
        deadline = time.time() + STARTUP_TIMEOUT_S
        while time.time() < deadline:
            try:
                line = self._lines.get(timeout=1)
            except queue.Empty:
                self._check_alive()
                continue
            if marker in line:
                return line
        raise TimeoutError(f"server printed no '{marker}' line; see {self.log_path}")

    def _check_alive(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}; "
                               f"log: {self.logs()[-3000:]}")

    def wait_until_available(self):
        from svhn_tfx.serving.client import wait_until_available
        wait_until_available(self.grpc_target, self.model_name, STARTUP_TIMEOUT_S,
                             self._check_alive)

    def logs(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
