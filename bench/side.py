"""compare's variants side by side (one a core) against one after another, in a fresh process:

    python -m bench.side '{"depth": 50, "width": 512, "batch": 128}'

prints one JSON line: the best of ``repeat`` interleaved runs of each, and the cores.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from gradflow.analysis.analyze import compare
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import build
from gradflow.engine.spec import NetworkSpec
from gradflow.engine.threads import cores

VARIANTS = ("none", "post", "pre")


def run(case: dict[str, Any]) -> dict[str, Any]:
    repeat = int(case.pop("repeat", 3))
    spec = NetworkSpec(**case)
    network = build(spec)
    compare(spec, VARIANTS, network=network, workers=1)  # warm: imports, heap
    best = {"serial_s": float("inf"), "side_by_side_s": float("inf")}
    for _ in range(repeat):
        for name, workers in (("serial_s", 1), ("side_by_side_s", None)):
            start = time.perf_counter()
            compare(spec, VARIANTS, network=network, workers=workers)
            best[name] = min(best[name], time.perf_counter() - start)
    return {**best, "cores": cores()}


if __name__ == "__main__":
    keep_freed_memory()  # as the command line does for its own process
    print(json.dumps(run(json.loads(sys.argv[1]))))
