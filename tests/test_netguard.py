"""The chapter kernels cannot reach the network: the guard refuses non-loopback connections before any packet."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

NETGUARD = pathlib.Path(__file__).resolve().parent / "netguard"
_spec = importlib.util.spec_from_file_location("lmlab_netguard", NETGUARD / "sitecustomize.py")
guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(guard)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "address, local",
    [
        (("127.0.0.1", 80), True),
        (("::1", 80, 0, 0), True),
        (("localhost", 80), True),
        ("/tmp/some.sock", True),
        (("192.0.2.1", 80), False),  # TEST-NET-1, never routed; the guard refuses before connecting
        (("example.com", 443), False),
        (("8.8.8.8", 53), False),
    ],
)
def test_is_local(address: object, local: bool) -> None:
    assert guard._is_local(address) is local


def _run_in_guarded_python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LMLAB_BLOCK_NETWORK="1", PYTHONPATH=str(NETGUARD))
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_guard_is_active_in_a_fresh_interpreter() -> None:
    """A new Python (as a chapter kernel is) with the kernels' environment has the guard installed."""
    out = _run_in_guarded_python("import socket; print(getattr(socket.socket.connect, '_lmlab_guard', False))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_guard_refuses_outbound_and_allows_loopback() -> None:
    code = r"""
import socket, threading
import sitecustomize
# Never reach the real connect unless the guard is installed and classifies the target as remote.
assert getattr(socket.socket.connect, "_lmlab_guard", False)
assert not sitecustomize._is_local(("192.0.2.1", 9))
try:
    socket.create_connection(("192.0.2.1", 9), timeout=1)
    print("CONNECTED")
except ConnectionRefusedError as e:
    print("REFUSED", "network access is disabled" in str(e))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname(), timeout=5)
print("LOOPBACK OK"); c.close(); srv.close()
"""
    out = _run_in_guarded_python(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["REFUSED True", "LOOPBACK OK"]


def test_guard_is_off_without_the_flag() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LMLAB_BLOCK_NETWORK"}
    env["PYTHONPATH"] = str(NETGUARD)
    out = subprocess.run(
        [sys.executable, "-c", "import socket; print(getattr(socket.socket.connect, '_lmlab_guard', False))"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "False"


def test_this_session_kernels_get_the_guard() -> None:
    """A Python started with this session's environment (as nbval starts each chapter kernel) refuses to connect
    outward: the root conftest put the guard on the PYTHONPATH the kernels inherit and switched it on."""
    code = r"""
import socket
try:
    socket.create_connection(("192.0.2.1", 9), timeout=1)
    print("CONNECTED")
except ConnectionRefusedError as e:
    print("REFUSED" if "network access is disabled" in str(e) else f"OTHER {e}")
except OSError as e:
    print(f"UNGUARDED {e}")
"""
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "REFUSED"
