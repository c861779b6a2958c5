"""The OpenFlow port probe: a listener counts, a stopped controller's TIME_WAIT leftovers do not."""
import socket

from controller.listening import listening_on


def _listener():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    return srv


def test_a_listening_socket_is_found():
    srv = _listener()
    try:
        assert listening_on("127.0.0.1", srv.getsockname()[1])
        assert listening_on("0.0.0.0", srv.getsockname()[1])
    finally:
        srv.close()


def test_a_stopped_controller_with_connections_in_time_wait_does_not_block_a_restart():
    srv = _listener()
    port = srv.getsockname()[1]
    switch = socket.create_connection(("127.0.0.1", port))
    conn, _ = srv.accept()
    # the controller exits first, so its end of the switch's connection stays in TIME_WAIT on the port
    conn.close()
    srv.close()
    assert switch.recv(1) == b""     # the switch has seen the close
    switch.close()
    plain = socket.socket()
    try:   # the old probe (a plain bind) is refused here: that is what refused restarts
        plain.bind(("0.0.0.0", port))
        refused = False
    except OSError:
        refused = True
    finally:
        plain.close()
    assert refused
    assert not listening_on("0.0.0.0", port)
    restarted = _listener_on(port)    # and a controller does start on it
    restarted.close()


def _listener_on(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen()
    return srv


def test_a_free_port_is_not_listened_on():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    assert not listening_on("127.0.0.1", port)
