"""kbench: the harness behind `bench/run`, which measures kaiser beside uWSGI, gunicorn and granian.

Modules, one idea each:
  install    the peers' venv, nginx and wrk, and kaiser's release build
  workloads  what is requested, from which fixture app, and what a right answer looks like
  servers    how each server and front end is started, made ready and stopped (by process group)
  client     a tiny HTTP/1.1 client for correctness checks, first-response timing and reloads
  measure    one wrk run plus the server-side figures (CPU, PSS/RSS, answered connections)
  reload     graceful and chain reloads under load: latencies, the worst gap, failures
  report     the Markdown tables and the versions of everything
  plan       which cells run, in which order, with which durations

Stdlib only, run with /usr/bin/python3. It is a benchmark, not a test: it fails loudly when a
server answers wrongly, never on a timing.
"""
