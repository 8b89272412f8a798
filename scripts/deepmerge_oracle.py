"""Reads JSON pairs (one `[left, right]` per line) and prints
deepmerge.always_merger.merge(left, right) for each, one JSON value per line.

The reference for secretsync's deep merge (tests/it/deepmerge_python.rs)."""
import json
import sys

from deepmerge import always_merger

with open(sys.argv[1], encoding="utf-8") as pairs:
    for line in pairs:
        left, right = json.loads(line)
        print(json.dumps(always_merger.merge(left, right), sort_keys=True))
