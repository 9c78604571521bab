"""One analyzed pass of a large weight stack, in a fresh process so its peak RSS is its own:

    python -m bench.redraw '{"depth": 2000, "width": 256, "batch": 32, "redraw": true}'

prints one JSON line: the seconds from drawing to the report (the weights drawn as the pass
reads them, twice, or drawn once and held), the peak RSS, the estimate the CLI's guard uses,
and a digest of the report's JSON (the same for both).
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any

from bench.case import rss_bytes
from gradflow.analysis.analyze import analyze, estimate_bytes
from gradflow.engine.heap import keep_freed_memory
from gradflow.engine.network import build
from gradflow.engine.spec import NetworkSpec
from gradflow.render.formats import to_json


def run(case: dict[str, Any]) -> dict[str, Any]:
    redraw = bool(case.pop("redraw"))
    spec = NetworkSpec(**case)
    analyze(spec.replace(depth=2))  # imports and first calls are not the run's
    baseline = rss_bytes("VmRSS")
    start = time.perf_counter()
    report = analyze(spec, network=build(spec, redraw=redraw))
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "peak_rss": rss_bytes("VmHWM") - baseline,
        "estimate": estimate_bytes(spec, redraw=redraw),
        "digest": hashlib.sha256(to_json("analyze", spec, [report]).encode()).hexdigest()[:16],
    }


if __name__ == "__main__":
    keep_freed_memory()  # as the command line does for its own process
    print(json.dumps(run(json.loads(sys.argv[1]))))
