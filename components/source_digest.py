"""Digests of the project's own code. TFX caches a step by its inputs and parameters, not by
the code that runs it, and generated data is reused by what made it: a step whose code
changed has to be told, by a digest that changed with it."""
import hashlib
import os


def source_digest(*paths: str, extra: str = "") -> str:
    """SHA-256 of ``extra`` and the ``.py`` files at ``paths`` (a file, or a package folder's
    own modules, by name order)."""
    digest = hashlib.sha256(extra.encode())
    for path in paths:
        if os.path.isdir(path):
            files = [os.path.join(path, name) for name in sorted(os.listdir(path))
                     if name.endswith(".py")]
        else:
            files = [path]
        for file in files:
            with open(file, "rb") as f:
                digest.update(os.path.basename(file).encode() + b"\0" + f.read())
    return digest.hexdigest()
