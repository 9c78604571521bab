"""``make bench``: every figure is a ratio of two timings taken side by side on this machine.

1. engine vs the matmul floor (one analyzed pass / the bare products of the same shapes)
2. per-layer overhead at depth 100,000, width 16
3. CLI latency vs the bare imports it cannot avoid; --help/--version must not import NumPy
4. peak RSS of a pass vs the documented estimate (the memory guard's own function)
5. a 100,000-layer run rendered as a table and as JSON: bounded time and size, valid JSON
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

PY = sys.executable
FLOOR_CASES = [(50, 256, 64), (50, 1024, 256), (200, 512, 128)]
TARGETS = {256: 1.3}  # width → ratio target; wider layers: 1.15


def case(**spec: Any) -> dict[str, Any]:
    out = subprocess.run(
        [PY, "-m", "bench.case", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def wall(argv: list[str], repeat: int = 5) -> float:
    """Best wall time of a command, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        best = min(best, time.perf_counter() - start)
    return best


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def row(*cells: object) -> None:
    print(" ".join(f"{c!s:>12}" for c in cells))


def engine_vs_floor() -> None:
    print("\n1. one analyzed pass vs the bare matmuls of the same shapes (best of 5, interleaved)")
    print("   phi: the activation's own elementwise work; ex-phi: (engine - phi) / floor")
    row("case", "activation", "engine", "floor", "ratio", "target", "phi", "ex-phi",
        "peak RSS", "estimate")  # fmt: skip
    for depth, width, batch in FLOOR_CASES:
        for dtype in ("float64", "float32"):
            for activation in ("sigmoid", "relu"):
                r = case(
                    depth=depth, width=width, batch=batch, dtype=dtype, activation=activation,
                    repeat=5,
                )  # fmt: skip
                engine, floor, phi = r["engine_s"], r["floor_s"], r["activation_s"]
                row(
                    f"{depth}x{width}x{batch} {dtype[-2:]}", activation,
                    f"{engine * 1e3:.1f} ms", f"{floor * 1e3:.1f} ms", f"{engine / floor:.2f}",
                    f"<= {TARGETS.get(width, 1.15)}", f"{phi * 1e3:.1f} ms",
                    f"{(engine - phi) / floor:.2f}", mib(r["peak_rss"]), mib(r["estimate"]),
                )  # fmt: skip


def deep_and_narrow() -> None:
    print("\n2+4. depth 100,000 (width 16, batch 16) and depth 10,000 (width 256, batch 32)")
    row("case", "engine", "floor", "ratio", "peak RSS", "estimate", "RSS/est", "log10 |dW1|")
    for depth, width, batch in [(100_000, 16, 16), (10_000, 256, 32)]:
        r = case(depth=depth, width=width, batch=batch, repeat=1)
        row(
            f"{depth}x{width}x{batch}", f"{r['engine_s']:.2f} s", f"{r['floor_s']:.2f} s",
            f"{r['engine_s'] / r['floor_s']:.2f}", mib(r["peak_rss"]), mib(r["estimate"]),
            f"{r['peak_rss'] / r['estimate']:.2f}",
            f"{r['log10_first_grad']:.1f} ({r['status_first_grad']})",
        )  # fmt: skip


def cli_latency() -> None:
    print("\n3. CLI latency (best of 5 wall times; gradflow's bytecode compiled, as installs do)")
    subprocess.run([PY, "-m", "compileall", "-q", "gradflow"], check=True)
    gradflow = [PY, "-m", "gradflow"]
    imports = wall([PY, "-c", "import numpy, rich.console, typer"])
    typer_only = wall([PY, "-c", "import typer"])
    compare = wall([*gradflow, "compare", "--depth", "50"])
    row("command", "time", "reference", "ratio", "target")
    row("compare", f"{compare * 1e3:.0f} ms", f"{imports * 1e3:.0f} ms",
        f"{compare / imports:.2f}", "<= 1.5")  # fmt: skip
    for flag in ("--help", "--version"):
        t = wall([*gradflow, flag])
        row(flag, f"{t * 1e3:.0f} ms", f"{typer_only * 1e3:.0f} ms",
            f"{t / typer_only:.2f}", "<= 1.2")  # fmt: skip
    probe = (
        "import sys; from gradflow.cli import main; sys.argv = ['gradflow', '{flag}']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "sys.stderr.write(str('numpy' in sys.modules))"
    )
    for flag in ("--help", "--version"):
        out = subprocess.run([PY, "-c", probe.format(flag=flag)], capture_output=True, text=True)
        print(f"   {flag} imports numpy: {out.stderr.strip().splitlines()[-1]}")


def huge_render() -> None:
    print("\n5. rendering a 100,000-layer run (width 16, batch 16)")
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
        row(fmt, f"{elapsed:.2f} s", f"{len(out.stdout):,}", valid)


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    engine_vs_floor()
    deep_and_narrow()
    cli_latency()
    huge_render()


if __name__ == "__main__":
    main()
