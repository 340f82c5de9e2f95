"""Free loopback ports for local servers."""

from __future__ import annotations

import random
import socket

LOW_PORTS = range(20_000, 32_768)
"""Below the OS's ephemeral ports; Temporal stores membership ports as a SQL smallint."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS's pick)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_low_port() -> int:
    """A free TCP port on 127.0.0.1 in `LOW_PORTS` (not one the OS hands out on its own)."""
    for port in random.sample(LOW_PORTS, 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {LOW_PORTS.start}-{LOW_PORTS.stop - 1}")


def port_in_use(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
