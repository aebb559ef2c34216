"""Importing the package must stay offline and side-effect free beyond Auto-class registration."""

import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_import_touches_no_network():
    code = (
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise RuntimeError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "import modeling_mel_llm, processing, training.tiny\n"
        "print('imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout
