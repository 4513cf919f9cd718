"""Refuse outbound network connections from the book's chapter kernels.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the root ``conftest.py`` puts this folder on the
``PYTHONPATH`` of the kernels nbval starts and sets ``LMLAB_BLOCK_NETWORK=1``. Connections to loopback addresses
(the kernel's own ZeroMQ channels) and Unix sockets are allowed; any other address raises
``ConnectionRefusedError`` before a packet is sent.
"""

from __future__ import annotations

import ipaddress
import os
import socket


def _is_local(address: object) -> bool:
    if not isinstance(address, tuple) or not address:
        return True  # AF_UNIX paths and other non-IP families stay local
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode()
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name: resolving and connecting to it would leave the machine


def install() -> None:
    """Wrap ``socket.socket.connect``/``connect_ex``/``sendto`` with the loopback-only guard (idempotent)."""
    if getattr(socket.socket.connect, "_lmlab_guard", False):
        return
    real_connect, real_connect_ex, real_sendto = socket.socket.connect, socket.socket.connect_ex, socket.socket.sendto

    def _refuse(address: object) -> None:
        raise ConnectionRefusedError(
            f"lmlab: network access is disabled while the book's chapters run (tried to reach {address!r}); "
            "chapters must not download anything"
        )

    def connect(self: socket.socket, address: object) -> None:
        if not _is_local(address):
            _refuse(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if not _is_local(address):
            _refuse(address)
        return real_connect_ex(self, address)

    def sendto(self: socket.socket, data: bytes, *args: object) -> int:
        address = args[-1]
        if not _is_local(address):
            _refuse(address)
        return real_sendto(self, data, *args)  # type: ignore[arg-type]

    for f in (connect, connect_ex, sendto):
        f._lmlab_guard = True  # type: ignore[attr-defined]
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket.sendto = sendto  # type: ignore[method-assign]


if os.environ.get("LMLAB_BLOCK_NETWORK") == "1":
    install()
