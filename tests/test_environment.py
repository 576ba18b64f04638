"""TensorFlow's oneDNN kernels are on in every process the project starts, unless the user
turns them off: TensorFlow picks them by itself only on CPUs with AVX-512 or AMX, and on an
AVX2-only one a training step is 1.8x faster with them (components/__init__.py,
serving/__init__.py: every entry point, `tfx run create`'s pipeline process included)."""
import os
import subprocess
import sys

import pytest

CHECK = ("import svhn_tfx.{room}; from tensorflow.python.util import _pywrap_util_port as port; "
         "print('onednn', port.IsMklEnabled())")


@pytest.mark.parametrize("room, setting, expected", [
    ("components", None, "True"), ("serving", None, "True"), ("components", "0", "False")])
def test_onednn_is_on_unless_the_user_turns_it_off(room, setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    run = subprocess.run([sys.executable, "-c", CHECK.format(room=room)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split()[-2:] == ["onednn", expected]
