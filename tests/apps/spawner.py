"""An app that starts child processes and never waits for them, as apps that shell out with
`os.spawnv(P_NOWAIT, …)` do: without `reaper`, each exited child stays a zombie.

  /spawn   starts `/bin/true` and answers its pid
  /        "ok"
"""

import os


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/spawn":
        body = str(os.spawnv(os.P_NOWAIT, "/bin/true", ["true"])).encode()
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
