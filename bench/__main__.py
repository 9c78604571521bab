"""``make bench``: every figure is a ratio of two timings taken side by side on this machine.

1. engine vs the matmul floor (one analyzed pass / the bare products of the same shapes)
2. per-layer overhead at depth 100,000, width 16
3. CLI latency vs the bare imports it cannot avoid; --help/--version must not import NumPy
4. peak RSS of a pass vs the documented estimate (the memory guard's own function)
5. a 100,000-layer run rendered as a table and as JSON: bounded time and size, valid JSON
6. the exact path decomposition against one ordinary pass
7. the same pass in PyTorch eager, with each side's bare products (torch has its own BLAS), φ
   and subnormal φ outputs beside it, and why each case behind torch is behind
8. analyze with every core busy: the default run against one forced BLAS thread
9. one training step (gradflow train) vs PyTorch eager doing the same step, and with torch's
   products on NumPy's BLAS
10. gradflow sweep: per-run overhead beyond the pass, and 2 jobs against 1 (bench/sweep.py)
11. compare's variants side by side on threads against one after another (bench/side.py)
12. analyze of a 512 MiB weight stack: redrawn as the pass reads it vs held (bench/redraw.py)
13. two threads: --threads 2 against one, and against PyTorch eager on two

``python -m bench --quick`` (``make bench-quick``) runs the headline ratios only: one floor case
per dtype, depth 20,000 at width 16, compare's CLI latency, and the torch side-by-side at
width 256.

Each run also writes its tables, with the machine facts, to bench/results.json
(bench/results-quick.json for --quick), so runs can be compared.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PY = sys.executable
HERE = Path(__file__).resolve().parent
TARGETS = {256: 1.3}  # width → ratio target; wider layers: 1.15
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE")


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    name: str
    floor_cases: list[tuple[int, int, int, str, str]]  # depth, width, batch, dtype, activation
    floor_repeat: int  # best of this many passes at width 256 (milliseconds each)
    wide_repeat: int  # and at the wider widths (seconds each)
    # depth, width, batch, and best of how many passes: the narrow case's ratio is the target,
    # and a single pass of it swung from 2.3 to 3.6 with the machine's load
    deep_cases: list[tuple[int, int, int, int]]
    cli_rounds: int
    cli_full: bool  # also --help/--version against `import typer`, and their NumPy check
    render: bool
    path_split: bool
    results: Path
    # 7: the side-by-side with torch: (depth, width, batch, dtype, repeat) and the (activation,
    # skip) cases each shape runs
    peer_shapes: tuple[tuple[int, int, int, str, int], ...] = ()
    peer_cases: tuple[tuple[str, str], ...] = ()
    under_load: bool = False  # 8: analyze with a CPU-bound process on every core
    # 11: compare's variants side by side against one after another: depth, width, batch
    side_by_side: tuple[tuple[int, int, int], ...] = ()
    # 12: a large weight stack drawn as the pass reads it, against drawn once and held
    redraw: tuple[tuple[int, int, int], ...] = ()
    # 13: --threads 2 against one thread and against torch on two: depth, width, batch, dtype,
    # activation, skip
    on_threads: tuple[tuple[int, int, int, str, str, str], ...] = ()


PEER_CASES = tuple(
    (activation, skip)
    for activation in ("relu", "tanh", "sigmoid", "gelu")
    for skip in ("none", "pre")
)

FULL = Plan(
    name="full",
    # Both activations at width 256, where a case takes milliseconds; the wide shapes (seconds
    # a pass) are measured against the same floor in section 7, beside torch.
    floor_cases=[
        (50, 256, 64, dtype, activation)
        for dtype in ("float64", "float32")
        for activation in ("sigmoid", "relu")
    ],
    floor_repeat=7,
    wide_repeat=3,
    # depth 1,000 at width 256 holds ~570 MB, enough to hold peak RSS to the estimate (section
    # 12 runs the same shape as analyze does, its weights redrawn)
    deep_cases=[(100_000, 16, 16, 3), (1_000, 256, 32, 1)],
    cli_rounds=9,
    cli_full=True,
    render=True,
    path_split=True,
    results=HERE / "results.json",
    # The wide shapes take seconds a pass: one each (32 cases), so that the run stays < 5 min
    peer_shapes=tuple(
        (depth, width, batch, dtype, repeat)
        for depth, width, batch, repeat in [
            (50, 256, 64, 7),  # milliseconds a pass: best of 7, as a single pass swings ±20%
            (50, 1024, 256, 1),
            (200, 512, 128, 1),
        ]
        for dtype in ("float64", "float32")
    ),
    peer_cases=PEER_CASES,
    under_load=True,
    side_by_side=((50, 128, 32), (50, 512, 128)),
    redraw=((1_000, 256, 32),),  # 512 MiB of float64 weights (analyze redraws from 96 MiB)
    on_threads=(
        (50, 1024, 256, "float32", "gelu", "pre"),
        (200, 512, 128, "float32", "sigmoid", "none"),  # products too small to split
    ),
)

QUICK = Plan(
    name="quick",
    floor_cases=[(50, 256, 64, "float64", "sigmoid"), (50, 256, 64, "float32", "sigmoid")],
    floor_repeat=7,
    wide_repeat=3,
    deep_cases=[(20_000, 16, 16, 3)],
    cli_rounds=3,
    cli_full=False,
    render=False,
    path_split=False,
    results=HERE / "results-quick.json",
    peer_shapes=((50, 256, 64, "float64", 5), (50, 256, 64, "float32", 5)),
    peer_cases=(("sigmoid", "none"), ("gelu", "pre")),
)

SECTIONS: list[dict[str, Any]] = []
THREADED: list[tuple[dict[str, Any], dict[str, Any]]] = []  # section 13's, measured in 7's run


def section(name: str, title: str, *notes: str) -> list[dict[str, Any]]:
    """Print a section's heading and notes; return the list its rows are recorded in."""
    print(f"\n{title}")
    for note in notes:
        print(f"   {note}")
    rows: list[dict[str, Any]] = []
    SECTIONS.append({"name": name, "title": title, "notes": list(notes), "rows": rows})
    return rows


def case(**spec: Any) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "bench.case", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def walls(commands: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    """Wall times of each command, in seconds, one a round, over rounds that run them all in
    turn (so a slow spell of the machine hits every command alike)."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return times


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def row(*cells: object) -> None:
    print(" ".join(f"{c!s:>12}" for c in cells))


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine() -> dict[str, Any]:
    """Facts that decide how the timings come out, printed first and stored with the results."""
    import numpy as np
    from threadpoolctl import threadpool_info

    keys = ("internal_api", "version", "threading_layer", "architecture", "num_threads", "filepath")
    blas = [
        {key: info.get(key) for key in keys}
        for info in threadpool_info()
        if info.get("user_api") == "blas"
    ]
    return {
        "cpu": cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "load_average": load_average(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "env": {key: os.environ.get(key) for key in THREAD_ENV},
    }


def print_machine(facts: dict[str, Any]) -> None:
    load = ", ".join(f"{x:.2f}" for x in facts["load_average"]) or "unknown"
    print(f"machine: {facts['cpu']} ({facts['machine']}), {facts['cores']} cores, load {load}")
    print(f"Python {facts['python']}, NumPy {facts['numpy']}")
    for lib in facts["blas"] or [{}]:
        print(
            f"BLAS: {lib.get('internal_api', 'none found')} {lib.get('version', '')}, "
            f"threading {lib.get('threading_layer')}, kernel {lib.get('architecture')}, "
            f"{lib.get('num_threads')} threads by default (each pass limits it to 1)"
        )
    print("env: " + ", ".join(f"{k}={v if v is not None else 'unset'}"
                              for k, v in facts["env"].items()))  # fmt: skip


def engine_vs_floor(plan: Plan) -> None:
    wide = any(width > 256 for _, width, *_ in plan.floor_cases)
    rows = section(
        "engine_vs_floor",
        "1. one analyzed pass vs the bare matmuls of the same shapes (best of "
        f"{plan.floor_repeat}{f', wider than 256: {plan.wide_repeat}' if wide else ''}; "
        "interleaved)",
        "floor: a @ W forward, a.T @ g and g @ W.T backward, nothing else",
        "engine: the pass as run; with B < n it takes |dL/dW| from B x B Gram matrices",
        "explicit: the same pass forming every n x n dL/dW, as the floor does",
        "phi: the activation's own elementwise work (sigmoid: an exp per value)",
    )
    row("case", "activation", "engine", "explicit", "floor", "ratio", "target", "explicit/fl",
        "phi", "peak RSS", "estimate")  # fmt: skip
    for depth, width, batch, dtype, activation in plan.floor_cases:
        repeat = plan.floor_repeat if width <= 256 else plan.wide_repeat
        r = case(
            depth=depth, width=width, batch=batch, dtype=dtype, activation=activation,
            repeat=repeat,
        )  # fmt: skip
        engine, explicit, floor = r["engine_s"], r["explicit_s"], r["floor_s"]
        target = TARGETS.get(width, 1.15)
        rows.append(
            {
                "depth": depth, "width": width, "batch": batch, "dtype": dtype,
                "activation": activation, "repeat": repeat, "engine_s": engine,
                "explicit_s": explicit if r["gram"] else None, "floor_s": floor,
                "ratio": engine / floor, "target": target,
                "explicit_ratio": explicit / floor, "activation_s": r["activation_s"],
                "peak_rss": r["peak_rss"], "estimate": r["estimate"],
            }
        )  # fmt: skip
        row(
            f"{depth}x{width}x{batch} {dtype[-2:]}", activation,
            f"{engine * 1e3:.1f} ms", f"{explicit * 1e3:.1f} ms" if r["gram"] else "-",
            f"{floor * 1e3:.1f} ms", f"{engine / floor:.2f}",
            f"<= {target}", f"{explicit / floor:.2f}",
            f"{r['activation_s'] * 1e3:.1f} ms", mib(r["peak_rss"]), mib(r["estimate"]),
        )  # fmt: skip


def deep_and_narrow(plan: Plan) -> None:
    cases = " and ".join(
        f"depth {d:,} (width {w}, batch {b}; best of {r})" for d, w, b, r in plan.deep_cases
    )
    rows = section(
        "deep_and_narrow",
        f"2+4. {cases}",
        "per layer: engine and floor time / depth; overhead: (engine - floor) / depth",
        "target: ratio <= 3; beside it, as section 7 counts it, the pass / (floor + phi)",
    )
    row("case", "engine", "floor", "ratio", "phi", "/(fl+phi)", "engine/layer", "overhead",
        "peak RSS", "estimate", "RSS/est", "log10 |dW1|")  # fmt: skip
    for depth, width, batch, repeat in plan.deep_cases:
        r = case(depth=depth, width=width, batch=batch, repeat=repeat, explicit=False)
        engine, floor, phi = r["engine_s"], r["floor_s"], r["activation_s"]
        rows.append(
            {
                "depth": depth, "width": width, "batch": batch, "engine_s": engine,
                "floor_s": floor, "ratio": engine / floor, "target": 3.0, "phi_s": phi,
                "limit": engine / (floor + phi),
                "engine_per_layer_s": engine / depth,
                "overhead_per_layer_s": (engine - floor) / depth,
                "peak_rss": r["peak_rss"], "estimate": r["estimate"],
                "rss_over_estimate": r["peak_rss"] / r["estimate"],
                "log10_first_grad": r["log10_first_grad"],
                "status_first_grad": r["status_first_grad"],
            }
        )  # fmt: skip
        row(
            f"{depth}x{width}x{batch}", f"{engine:.2f} s", f"{floor:.2f} s",
            f"{engine / floor:.2f}", f"{phi:.2f} s", f"{engine / (floor + phi):.2f}",
            f"{engine / depth * 1e6:.1f} us",
            f"{(engine - floor) / depth * 1e6:.1f} us", mib(r["peak_rss"]), mib(r["estimate"]),
            f"{r['peak_rss'] / r['estimate']:.2f}",
            f"{r['log10_first_grad']:.1f} ({r['status_first_grad']})",
        )  # fmt: skip


def cli_latency(plan: Plan) -> None:
    rows = section(
        "cli_latency",
        f"3. CLI latency (best of {plan.cli_rounds} interleaved rounds; bytecode compiled, "
        "as installs do)",
    )
    subprocess.run([PY, "-m", "compileall", "-q", "gradflow"], check=True)
    gradflow = [PY, "-m", "gradflow"]
    commands = {
        "imports": [PY, "-c", "import numpy, rich.console, typer"],
        "compare": [*gradflow, "compare", "--depth", "50"],
    }
    checks = [("compare", "imports", 1.5)]
    if plan.cli_full:
        commands |= {
            "typer": [PY, "-c", "import typer"],
            "--help": [*gradflow, "--help"],
            "--version": [*gradflow, "--version"],
        }
        checks += [("--help", "typer", 1.2), ("--version", "typer", 1.2)]
    times = walls(commands, rounds=plan.cli_rounds)
    t = {name: min(runs) for name, runs in times.items()}
    row("command", "time", "reference", "ratio", "target", "paired")
    for name, reference, target in checks:
        # each round's own ratio, the median of them: a slow spell within the run moves it less
        # than it can move the two minima, which may come from different moments
        ratios = [a / b for a, b in zip(times[name], times[reference], strict=True)]
        paired = statistics.median(ratios)
        rows.append(
            {
                "command": name, "time_s": t[name], "reference": reference,
                "reference_s": t[reference], "ratio": t[name] / t[reference], "target": target,
                "paired_median": paired,
            }
        )  # fmt: skip
        row(name, f"{t[name] * 1e3:.0f} ms", f"{t[reference] * 1e3:.0f} ms",
            f"{t[name] / t[reference]:.2f}", f"<= {target}", f"{paired:.2f}")  # fmt: skip
    print("   references: compare vs `import numpy, rich.console, typer`"
          + ("; flags vs `import typer`" if plan.cli_full else ""))  # fmt: skip
    print("   ratio: best against best; paired: the median of each round's own ratio")
    if not plan.cli_full:
        return
    probe = (
        "import sys; from gradflow.cli.app import main; sys.argv = ['gradflow', '{flag}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str('numpy' in sys.modules))"
    )
    for flag in ("--help", "--version"):
        out = subprocess.run([PY, "-c", probe.format(flag=flag)], capture_output=True, text=True)
        imports_numpy = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "?"
        SECTIONS[-1].setdefault("imports_numpy", {})[flag] = imports_numpy
        print(f"   {flag} imports numpy: {imports_numpy}")


def huge_render(plan: Plan) -> None:
    rows = section("huge_render", "5. rendering a 100,000-layer run (width 16, batch 16)")
    base = [PY, "-m", "gradflow", "analyze", "--depth", "100000", "--width", "16",
            "--batch", "16"]  # fmt: skip
    row("format", "time", "bytes", "valid")
    for fmt in ("table", "json"):
        start = time.perf_counter()
        out = subprocess.run([*base, "--format", fmt], capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        valid = "-"
        if fmt == "json":
            try:
                json.loads(out.stdout, parse_constant=lambda c: 1 / 0)  # no NaN/Infinity
                valid = "yes"
            except (ValueError, ZeroDivisionError):
                valid = "NO"
        rows.append({"format": fmt, "time_s": elapsed, "bytes": len(out.stdout), "valid": valid})
        row(fmt, f"{elapsed:.2f} s", f"{len(out.stdout):,}", valid)


def path_split(plan: Plan) -> None:
    rows = section(
        "path_split",
        "6. the exact path decomposition vs one ordinary pass (best of 3, same process)",
        "50 pre-activation ReLU blocks of 2 layers, width 256, batch 64; full split and K=10",
    )
    from gradflow.analysis.analyze import analyze
    from gradflow.analysis.paths import decompose
    from gradflow.engine.network import build
    from gradflow.engine.spec import Activation, Init, NetworkSpec, Skip

    spec = NetworkSpec(
        depth=100, width=256, batch=64, skip=Skip.PRE, activation=Activation.RELU, init=Init.HE
    )
    network = build(spec)

    def best(run: Callable[[], object]) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    one = best(lambda: analyze(spec, network=network, threads=1))
    full = best(lambda: decompose(spec, network=network, threads=1))
    short = best(lambda: decompose(spec, network=network, max_length=10, threads=1))
    rows.append(
        {
            "pass_s": one, "full_split_s": full, "full_ratio": full / one,
            "k10_s": short, "k10_ratio": short / one,
        }
    )  # fmt: skip
    row("pass", "full split", "ratio", "K=10", "ratio")
    row(f"{one * 1e3:.0f} ms", f"{full * 1e3:.0f} ms", f"{full / one:.1f}",
        f"{short * 1e3:.0f} ms", f"{short / one:.1f}")  # fmt: skip


def sweep_executors(plan: Plan) -> None:
    """gradflow sweep's executors: per-run overhead and the 2-job speed-up (bench/sweep.py)."""
    rows = section(
        "sweep",
        "10. gradflow sweep: per-run overhead beyond the pass; 2 jobs vs 1 on width-64 runs",
        "overhead: N tiny runs through the executor minus the same N passes called directly",
        "speed-up: warm pools, interleaved best of 3; a busy machine shows less than 2 cores",
        "in a fresh process, as gradflow sweep runs: this one's heap, grown by the sections "
        "above, makes its passes faster than a new process's (fewer page faults)",
    )
    out = subprocess.run([PY, "-m", "bench.sweep"], capture_output=True, text=True, check=True)
    *lines, results = out.stdout.splitlines()
    print("\n".join(lines))
    rows.append(json.loads(results))


def peer(plan: Plan) -> None:
    rows = section(
        "peer",
        "7. one analyzed pass vs PyTorch eager on the same network, one thread each (best of "
        + ", ".join(sorted({f"{r} at width {w}" for _, w, _, _, r in plan.peer_shapes}))
        + ")",
        "torch: forward, MSE loss, backward, every |dL/dW_i|; ours adds statistics and checks",
        "floor: the bare matmuls, dL/dW formed n x n (ours: |dL/dW| from B x B Grams if B < n); "
        "timed beside each case at width 256, best of 2 once a shape at the wider ones",
        "op floor: the same matmuls over this pass's own operands (recorded from it): they "
        "cost more where operands are subnormal, which the floor's random ones are not",
        "phi: our φ and φ' on this pass's own φ inputs; torch phi: its φ forward+backward",
        "limit: ours / (op floor + phi), target <= 1.1; vs torch: target <= 1.0 (φ gaps allowed)",
        "torch fl: the same bare matmuls in torch, on its own BLAS (MKL in its x86 wheels)",
        "same BLAS: ours / (torch - torch fl + floor), torch's pass with NumPy's products",
        "subnormal: share of φ outputs below the smallest normal (ours / torch's); every "
        "product reads them, and Intel CPUs slow down on such operands",
        "underflow: torch's first-layer |dL/dW| exactly 0 where ours is finite (in float32)",
    )
    row("case", "phi", "skip", "ours", "torch", "vs torch", "floor", "op floor", "torch fl",
        "phi", "torch phi", "limit", "same BLAS", "note")  # fmt: skip
    shapes: list[dict[str, Any]] = [
        {"depth": d, "width": w, "batch": b, "dtype": dtype, "repeat": repeat,
         "cases": [list(c) for c in plan.peer_cases]}
        for d, w, b, dtype, repeat in plan.peer_shapes
    ]  # fmt: skip
    # section 13's shapes run in the same process after these (one torch import), kept for it
    threaded: list[dict[str, Any]] = [
        {"depth": d, "width": w, "batch": b, "dtype": dtype, "repeat": 1, "threads": 2,
         "cases": [[activation, skip]]}
        for d, w, b, dtype, activation, skip in plan.on_threads
    ]  # fmt: skip
    with subprocess.Popen(
        [PY, "-m", "bench.peer", json.dumps(shapes + threaded)], stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        for shape, line in zip(shapes + threaded, child.stdout, strict=False):
            result = json.loads(line)
            if "threads" in shape:
                THREADED.append((shape, result))
                continue
            for c in result["cases"]:
                floor = c["floor_s"]  # timed beside this case (width 256), or once a shape
                limit = c["ours_s"] / (c["operand_floor_s"] + c["phi_s"])
                same_blas = c["ours_s"] / (c["torch_s"] - c["torch_floor_s"] + floor)
                notes = []
                if c["subnormal"] > c["torch_subnormal"]:
                    notes.append(f"subnormal {percent(c['subnormal'])} / "
                                 f"{percent(c['torch_subnormal'])}")  # fmt: skip
                if c["torch_first_underflow"]:
                    notes.append(f"torch |dW1| = 0, ours 1e{c['log10_first_grad']:.0f}")
                case_row = {
                    "depth": shape["depth"], "width": shape["width"], "batch": shape["batch"],
                    "dtype": shape["dtype"], "repeat": shape["repeat"], **c,
                    "vs_torch": c["ours_s"] / c["torch_s"], "limit": limit,
                    "vs_torch_same_blas": same_blas,
                }  # fmt: skip
                case_row["behind_torch"] = behind_torch(case_row)
                rows.append(case_row)
                row(
                    f"{shape['depth']}x{shape['width']}x{shape['batch']} {shape['dtype'][-2:]}",
                    c["activation"], c["skip"], f"{c['ours_s'] * 1e3:.1f} ms",
                    f"{c['torch_s'] * 1e3:.1f} ms", f"{c['ours_s'] / c['torch_s']:.2f}",
                    f"{floor * 1e3:.1f} ms", f"{c['operand_floor_s'] * 1e3:.1f} ms",
                    f"{c['torch_floor_s'] * 1e3:.1f} ms",
                    f"{c['phi_s'] * 1e3:.1f} ms", f"{c['torch_phi_s'] * 1e3:.1f} ms",
                    f"{limit:.2f}", f"{same_blas:.2f}", "; ".join(notes),
                )  # fmt: skip
    if child.returncode != 0:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    print_peer_summary(rows)


def percent(share: float) -> str:
    """A share as a percentage that shows a small one: 0%, 0.0031%, 1.7%."""
    return "0%" if share == 0 else f"{share * 100:.2g}%"


def behind_torch(c: dict[str, Any]) -> str:
    """Why a case is slower than torch, from its own columns: '' where it is not; 'blas' where
    torch's pass with NumPy's products would not be faster than ours; 'phi' where the gap is
    within our products' and φ's excess over torch's; 'subnormal' where our φ outputs hold
    subnormal values torch's do not and torch's pass with NumPy's products over our operands
    would not be faster than ours; else 'unexplained'."""
    if c["vs_torch"] <= 1.0:
        return ""
    if c["vs_torch_same_blas"] <= 1.0:
        return "blas"
    if c["ours_s"] - c["torch_s"] <= (
        max(0.0, c["floor_s"] - c["torch_floor_s"]) + max(0.0, c["phi_s"] - c["torch_phi_s"])
    ):
        return "phi"
    on_our_operands = c["torch_s"] - c["torch_floor_s"] + c["operand_floor_s"]
    if c["subnormal"] > c["torch_subnormal"] and c["ours_s"] <= on_our_operands:
        return "subnormal"
    return "unexplained"


def print_peer_summary(rows: list[dict[str, Any]]) -> None:
    """How many cases meet each target, and why the others are behind torch."""
    ahead = sum(not c["behind_torch"] for c in rows)
    within = sum(c["limit"] <= 1.1 for c in rows)
    reasons = {
        reason: sum(c["behind_torch"] == reason for c in rows)
        for reason in ("blas", "phi", "subnormal", "unexplained")
    }
    why = ", ".join(f"{count} {reason}" for reason, count in reasons.items() if count)
    print(f"   vs torch <= 1.0: {ahead} of {len(rows)}" + (f"; behind: {why}" if why else ""))
    print(f"   limit <= 1.1: {within} of {len(rows)}")


def under_load(plan: Plan) -> None:
    rows = section(
        "under_load",
        "8. analyze --depth 1000 --width 128 --batch 128 -q with a CPU-bound process on every "
        "core (best of 3 interleaved)",
        "default: as a user runs it; one thread: OPENBLAS_NUM_THREADS=OMP_NUM_THREADS=1 set",
        "target: default <= 1.5 x one thread (every pass runs on one BLAS thread by design)",
    )
    argv = [PY, "-m", "gradflow", "analyze", "--depth", "1000", "--width", "128",
            "--batch", "128", "-q"]  # fmt: skip
    single = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    spin = [PY, "-c", "while True: pass"]
    load = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
    try:
        best = {"default": math.inf, "one thread": math.inf}
        for _ in range(3):
            for name, env in (("default", None), ("one thread", single)):
                start = time.perf_counter()
                subprocess.run(argv, capture_output=True, env=env)  # exit 1: the verdict
                best[name] = min(best[name], time.perf_counter() - start)
    finally:
        for process in load:
            process.kill()
            process.wait()
    ratio = best["default"] / best["one thread"]
    rows.append({"default_s": best["default"], "one_thread_s": best["one thread"],
                 "ratio": ratio, "target": 1.5, "load_processes": len(load)})  # fmt: skip
    row("default", "one thread", "ratio", "target", "load")
    row(f"{best['default']:.2f} s", f"{best['one thread']:.2f} s", f"{ratio:.2f}", "<= 1.5",
        f"{len(load)} spinning")  # fmt: skip


def side_by_side(plan: Plan) -> None:
    rows = section(
        "side_by_side",
        "11. compare's three variants side by side (a thread a core) vs one after another "
        "(best of 3 interleaved, fresh process)",
        "the same reports, bit for bit (tests/test_side_by_side.py); no target: a busy machine "
        "gives less than its cores",
    )
    row("case", "one by one", "side by side", "ratio", "cores")
    for depth, width, batch in plan.side_by_side:
        spec = {"depth": depth, "width": width, "batch": batch, "repeat": 3}
        out = subprocess.run([PY, "-m", "bench.side", json.dumps(spec)], capture_output=True,
                             text=True, check=True)  # fmt: skip
        r = json.loads(out.stdout)
        ratio = r["side_by_side_s"] / r["serial_s"]
        rows.append({"depth": depth, "width": width, "batch": batch, **r, "ratio": ratio})
        row(f"{depth}x{width}x{batch}", f"{r['serial_s'] * 1e3:.0f} ms",
            f"{r['side_by_side_s'] * 1e3:.0f} ms", f"{ratio:.2f}", str(r["cores"]))  # fmt: skip


def redrawn_weights(plan: Plan) -> None:
    rows = section(
        "redrawn_weights",
        "12. analyze of a large weight stack: drawn as the pass reads it (twice, on threads "
        "beside it) vs drawn once and held (fresh process each)",
        "time: from the first draw to the report; the report's JSON digest is the same for both; "
        "keep: peak RSS <= 1.3 x estimate",
    )
    row("case", "weights", "time", "peak RSS", "estimate", "RSS/est", "digest")
    for depth, width, batch in plan.redraw:
        found = {}
        for redraw in (True, False):
            spec = {"depth": depth, "width": width, "batch": batch, "redraw": redraw}
            out = subprocess.run([PY, "-m", "bench.redraw", json.dumps(spec)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = found[redraw] = json.loads(out.stdout)
            rows.append({**spec, **r})
            row(f"{depth}x{width}x{batch}", "redrawn" if redraw else "held",
                f"{r['seconds']:.2f} s", mib(r["peak_rss"]), mib(r["estimate"]),
                f"{r['peak_rss'] / r['estimate']:.2f}", r["digest"])  # fmt: skip
        held, drawn = found[False], found[True]
        print(f"   redrawn / held: time {drawn['seconds'] / held['seconds']:.2f}, "
              f"peak RSS {drawn['peak_rss'] / held['peak_rss']:.2f}; same report: "
              f"{drawn['digest'] == held['digest']}")  # fmt: skip


def finite(value: Any) -> Any:
    """The value with every non-finite float replaced by None, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(v) for key, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


TRAIN_CASES = [(50, 256, 64, "sigmoid"), (50, 256, 64, "relu")]  # depth, width, batch, φ
TRAIN_TARGET = 1.2
TRAIN_REPEAT = 5


def train_step(plan: Plan) -> None:
    rows = section(
        "train_step",
        f"9. one training step vs PyTorch eager doing the same step (best of {TRAIN_REPEAT}; "
        "interleaved; float64, one thread each)",
        "gradflow: forward into the reused tape, mse, explicit backward into the gradient "
        "buffers, Adam; recorded: the same step with its update ratios taken",
        "torch: forward, mse, loss.backward(), Adam.step(), zero_grad()",
        "floor, torch fl: a step's bare matmuls on NumPy's BLAS and on torch's own (MKL on x86); "
        "same BLAS: gradflow / (torch - torch fl + floor)",
    )
    row("case", "activation", "gradflow", "recorded", "torch", "ratio", "target", "floor",
        "torch fl", "same BLAS")  # fmt: skip
    cases = [
        {"depth": depth, "width": width, "batch": batch, "activation": activation}
        for depth, width, batch, activation in TRAIN_CASES
    ]
    out = subprocess.run(
        [PY, "-m", "bench.train", json.dumps([{**c, "repeat": TRAIN_REPEAT} for c in cases])],
        capture_output=True,
        text=True,
        check=True,
    )
    for spec, line in zip(cases, out.stdout.splitlines(), strict=True):
        result = json.loads(line)
        row(
            f"{spec['depth']}x{spec['width']}x{spec['batch']}",
            spec["activation"],
            f"{result['gradflow'] * 1e3:.1f} ms",
            f"{result['recorded'] * 1e3:.1f} ms",
            f"{result['torch'] * 1e3:.1f} ms",
            f"{result['ratio']:.2f}",
            f"<= {TRAIN_TARGET}",
            f"{result['floor'] * 1e3:.1f} ms",
            f"{result['torch_floor'] * 1e3:.1f} ms",
            f"{result['same_blas']:.2f}",
        )
        rows.append({**spec, **result, "target": TRAIN_TARGET})


def on_threads(plan: Plan) -> None:
    rows = section(
        "on_threads",
        "13. two threads: one analyzed pass with --threads 2 vs one thread, and vs PyTorch eager "
        "on two (one each, interleaved; run in section 7's process, after its cases)",
        "ours: large products as two column halves, side by side (the same bits on any thread "
        "count); else each chunk's |dL/dW| on a side thread; φ and the rest on one thread",
        "hand-off: one task to the helper thread and back, after 1 ms of other work as in a pass "
        "(median; a woken thread's latency); one a split product",
    )
    row("case", "phi", "skip", "ours 2", "ours 1", "2 / 1", "torch 2", "vs torch")
    handoff = []
    for shape, result in THREADED:
        handoff.append(result["handoff_s"])
        for c in result["cases"]:
            speedup, vs = c["ours_s"] / c["ours_one_s"], c["ours_s"] / c["torch_s"]
            rows.append({key: shape[key] for key in ("depth", "width", "batch", "dtype")}
                        | c | {"two_over_one": speedup, "vs_torch": vs,
                               "handoff_s": result["handoff_s"]})  # fmt: skip
            row(f"{shape['depth']}x{shape['width']}x{shape['batch']} {shape['dtype'][-2:]}",
                c["activation"], c["skip"], f"{c['ours_s'] * 1e3:.0f} ms",
                f"{c['ours_one_s'] * 1e3:.0f} ms", f"{speedup:.2f}",
                f"{c['torch_s'] * 1e3:.0f} ms", f"{vs:.2f}")  # fmt: skip
    print(f"   hand-off: {statistics.median(handoff) * 1e6:.0f} µs")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the headline ratios only (<1 min)")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    started = time.perf_counter()
    facts = machine()
    print_machine(facts)
    steps: list[Callable[[Plan], None]] = [engine_vs_floor, deep_and_narrow, cli_latency]
    if plan.render:
        steps.append(huge_render)
    if plan.path_split:
        steps.append(path_split)
    if plan.peer_shapes:
        steps.append(peer)
    if plan.under_load:
        steps.append(under_load)
    if plan is FULL:
        steps.append(train_step)
        steps.append(sweep_executors)
    if plan.side_by_side:
        steps.append(side_by_side)
    if plan.redraw:
        steps.append(redrawn_weights)
    if plan.peer_shapes and plan.on_threads:  # measured in section 7's process
        steps.append(on_threads)
    for step in steps:
        start = time.perf_counter()
        step(plan)
        SECTIONS[-1]["elapsed_s"] = time.perf_counter() - start
        print(f"   ({SECTIONS[-1]['elapsed_s']:.0f} s)")

    elapsed = time.perf_counter() - started
    load = ", ".join(f"{x:.2f}" for x in load_average())
    print(f"\n{plan.name} bench: {elapsed:.0f} s; load average now {load}")
    output = args.output or plan.results
    results = {
        "mode": plan.name,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "load_average_end": load_average(),
        "machine": facts,
        "sections": SECTIONS,
    }
    output.write_text(json.dumps(finite(results), indent=1, allow_nan=False) + "\n")
    print(f"results: {output}")


if __name__ == "__main__":
    main()
