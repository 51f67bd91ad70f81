"""Parses a Prometheus text exposition from stdin with prometheus_client's own parser and
prints it as JSON, for tests/metrics.rs: {"families": {name: type}, "samples": [[name,
{labels}, value], ...]}. Any syntax error makes the parser raise, so the script exits 1."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

families = {}
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = family.type
    for sample in family.samples:
        value = sample.value
        samples.append([sample.name, sample.labels, "+Inf" if math.isinf(value) else value])
json.dump({"families": families, "samples": samples}, sys.stdout)
