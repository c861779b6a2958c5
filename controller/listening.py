"""Is a controller already listening on the OpenFlow port?

Why a probe of its own: the plain test (bind the port, see if it fails) also
fails for the minute after a controller stopped while switches were
connected.  The controller closed those connections first, so the kernel
keeps them in TIME_WAIT on the port, and a restart (after a config change, an
upgrade, or the lab's next run) was refused as "already in use".  eventlet
listens with SO_REUSEADDR and would bind fine, so the probe binds the same
way: then only a socket that listens on the port makes it fail.  That check
matters: eventlet also sets SO_REUSEPORT, so a second controller would start
silently and the kernel would split the switches between the two.
"""
from __future__ import annotations

import errno
import socket

__all__ = ["listening_on"]


def listening_on(host: str, port: int) -> bool:
    """True if a socket listens on ``host:port`` (connections left in TIME_WAIT do not count)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host or "0.0.0.0", port))
    except OSError as exc:
        return exc.errno == errno.EADDRINUSE
    finally:
        sock.close()
    return False
