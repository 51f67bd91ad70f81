"""A tiny HTTP/1.1 client over http.client: one request, with a deadline.

Used for the correctness check before each measurement, for waiting until a server answers
(time to first response) and by the reload loop. It never retries on its own.
"""

import http.client
import socket
import struct
import time

# SO_LINGER on, 0 s: close() resets the connection instead of leaving it in TIME_WAIT.
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)


class RequestFailed(Exception):
    pass


def request(port, path, method="GET", body=None, timeout=10.0, close=True, reset=False):
    """Returns (status, body). Raises RequestFailed on any socket or protocol error.

    `reset`: close with a reset once the answer is read, so the connection leaves no TIME_WAIT
    entry behind (see the reload clients)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Connection": "close"} if close else {}
    if body is not None:
        headers["Content-Type"] = "application/octet-stream"
    try:
        if reset:
            connection.connect()
            connection.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException) as error:
        raise RequestFailed(f"{method} {path} on port {port}: {error!r}") from error
    finally:
        connection.close()


def wait_for_200(port, path, deadline, alive=lambda: True):
    """Polls until `path` answers 200; returns the monotonic time of that answer.

    `alive` lets the caller stop early when the server process has died.
    """
    last_problem = "no attempt"
    while time.monotonic() < deadline:
        if not alive():
            raise RequestFailed(f"the server exited before answering (last: {last_problem})")
        try:
            status, _ = request(port, path, timeout=2.0)
            if status == 200:
                return time.monotonic()
            last_problem = f"status {status}"
        except RequestFailed as error:
            last_problem = str(error)
        time.sleep(0.005)
    raise RequestFailed(f"no 200 from port {port} {path} in time (last: {last_problem})")
