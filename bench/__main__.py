"""``make bench``: every figure is a ratio of two timings taken side by side on this machine.

1. engine vs the matmul floor (one analyzed pass / the bare products of the same shapes)
2. per-layer overhead at depth 100,000, width 16
3. CLI latency vs the bare imports it cannot avoid; --help/--version must not import NumPy
4. peak RSS of a pass vs the documented estimate (the memory guard's own function)
5. a 100,000-layer run rendered as a table and as JSON: bounded time and size, valid JSON
6. the exact path decomposition against one ordinary pass
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


def walls(commands: dict[str, list[str]], rounds: int = 11) -> dict[str, float]:
    """Best wall time of each command, in seconds, over rounds that run them all in turn (so a
    slow spell of the machine hits every command alike)."""
    best = dict.fromkeys(commands, float("inf"))
    for _ in range(rounds):
        for name, argv in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def row(*cells: object) -> None:
    print(" ".join(f"{c!s:>12}" for c in cells))


def engine_vs_floor() -> None:
    print("\n1. one analyzed pass vs the bare matmuls of the same shapes (best of 5, interleaved)")
    print("   floor: a @ W forward, a.T @ g and g @ W.T backward, nothing else")
    print("   engine: the pass as run; with B < n it takes |dL/dW| from B x B Gram matrices")
    print("   explicit: the same pass forming every n x n dL/dW, as the floor does")
    print("   phi: the activation's own elementwise work (sigmoid: an exp per value)")
    row("case", "activation", "engine", "explicit", "floor", "ratio", "target", "explicit/fl",
        "phi", "peak RSS", "estimate")  # fmt: skip
    for depth, width, batch in FLOOR_CASES:
        for dtype in ("float64", "float32"):
            for activation in ("sigmoid", "relu"):
                r = case(
                    depth=depth, width=width, batch=batch, dtype=dtype, activation=activation,
                    repeat=5,
                )  # fmt: skip
                engine, explicit, floor = r["engine_s"], r["explicit_s"], r["floor_s"]
                row(
                    f"{depth}x{width}x{batch} {dtype[-2:]}", activation,
                    f"{engine * 1e3:.1f} ms", f"{explicit * 1e3:.1f} ms" if r["gram"] else "-",
                    f"{floor * 1e3:.1f} ms", f"{engine / floor:.2f}",
                    f"<= {TARGETS.get(width, 1.15)}", f"{explicit / floor:.2f}",
                    f"{r['activation_s'] * 1e3:.1f} ms", mib(r["peak_rss"]), mib(r["estimate"]),
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
    print("\n3. CLI latency (best of 11 interleaved rounds; bytecode compiled, as installs do)")
    subprocess.run([PY, "-m", "compileall", "-q", "gradflow"], check=True)
    gradflow = [PY, "-m", "gradflow"]
    t = walls(
        {
            "imports": [PY, "-c", "import numpy, rich.console, typer"],
            "typer": [PY, "-c", "import typer"],
            "compare": [*gradflow, "compare", "--depth", "50"],
            "--help": [*gradflow, "--help"],
            "--version": [*gradflow, "--version"],
        }
    )
    row("command", "time", "reference", "ratio", "target")
    for name, reference, target in [
        ("compare", "imports", 1.5),
        ("--help", "typer", 1.2),
        ("--version", "typer", 1.2),
    ]:
        row(name, f"{t[name] * 1e3:.0f} ms", f"{t[reference] * 1e3:.0f} ms",
            f"{t[name] / t[reference]:.2f}", f"<= {target}")  # fmt: skip
    print("   references: compare vs `import numpy, rich.console, typer`; flags vs `import typer`")
    probe = (
        "import sys; from gradflow.cli.app import main; sys.argv = ['gradflow', '{flag}']\n"
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


def path_split() -> None:
    print("\n6. the exact path decomposition vs one ordinary pass (best of 3, same process)")
    print("   50 pre-activation ReLU blocks of 2 layers, width 256, batch 64; full split and K=10")
    from gradflow.analysis.analyze import analyze
    from gradflow.analysis.paths import decompose
    from gradflow.engine.network import build
    from gradflow.engine.spec import NetworkSpec

    spec = NetworkSpec(depth=100, width=256, batch=64, skip="pre", activation="relu", init="he")
    network = build(spec)

    def best(run: Any) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times)

    one = best(lambda: analyze(spec, network=network))
    full = best(lambda: decompose(spec, network=network))
    short = best(lambda: decompose(spec, network=network, max_length=10))
    row("pass", "full split", "ratio", "K=10", "ratio")
    row(f"{one * 1e3:.0f} ms", f"{full * 1e3:.0f} ms", f"{full / one:.1f}",
        f"{short * 1e3:.0f} ms", f"{short / one:.1f}")  # fmt: skip


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    engine_vs_floor()
    deep_and_narrow()
    cli_latency()
    huge_render()
    path_split()


if __name__ == "__main__":
    main()
