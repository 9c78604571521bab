"""Record the golden corpus: the JSON of a dozen varied configurations.

    .venv/bin/python tests/golden/record.py

The files were recorded from the engine as it stood before the block-level redesign (commit
6f52118), which was checked against PyTorch and finite differences; ``test_golden.py`` holds
every later engine to them number by number. Re-record only on purpose, when a number is meant
to change, and say why in the commit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

CASES: dict[str, list[str]] = {
    "analyze_default": ["analyze"],
    "compare_default": ["compare", "--depth", "50"],
    "pre_relu_he_bias": [
        "analyze", "--skip", "pre", "--activation", "relu", "--init", "he", "--depth", "40",
        "--bias-var", "0.1", "--width", "64", "--batch", "16",
    ],
    "post_tanh_batchnorm": [
        "analyze", "--skip", "post", "--activation", "tanh", "--norm", "batch", "--depth", "24",
        "--block-size", "3", "--width", "48", "--batch", "32",
    ],
    "compare_gelu_layernorm_xent": [
        "compare", "--activation", "gelu", "--norm", "layer", "--depth", "12", "--width", "32",
        "--batch", "8", "--loss", "xent",
    ],
    "sigmoid_beyond_range": ["analyze", "--depth", "400", "--width", "16", "--batch", "8"],
    "float32_pre_relu": [
        "analyze", "--dtype", "float32", "--skip", "pre", "--activation", "relu", "--init", "he",
        "--depth", "60", "--width", "64", "--batch", "16",
    ],
    "compare_zero_init_alpha": [
        "compare", "--zero-init-residual", "--depth", "20", "--residual-scale", "0.5",
        "--activation", "elu", "--width", "40", "--batch", "12", "--bias-var", "0.05",
    ],
    "orthogonal_selu_linear_loss": [
        "analyze", "--init", "orthogonal", "--activation", "selu", "--depth", "30",
        "--loss", "linear", "--width", "32", "--batch", "16",
    ],
    "tanh_chaotic": [
        "analyze", "--weight-var", "4", "--activation", "tanh", "--depth", "100", "--width",
        "64", "--batch", "16", "--seed", "3",
    ],
    "compare_float32_silu_wide_batch": [
        "compare", "--dtype", "float32", "--activation", "silu", "--init", "lecun", "--depth",
        "40", "--width", "48", "--batch", "96",
    ],
    "post_softplus_xent_blocks4": [
        "analyze", "--activation", "softplus", "--skip", "post", "--depth", "16", "--block-size",
        "4", "--width", "48", "--batch", "64", "--loss", "xent", "--classes", "5",
    ],
    "compare_relu_xavier_deep": [
        "compare", "--activation", "relu", "--depth", "120", "--width", "24", "--batch", "8",
        "--seed", "7",
    ],
    "leaky_linear_batchnorm_float32": [
        "compare", "--activation", "leaky_relu", "--norm", "batch", "--dtype", "float32",
        "--depth", "18", "--block-size", "3", "--width", "20", "--batch", "10",
    ],
}  # fmt: skip


def main() -> None:
    for name, args in CASES.items():
        out = subprocess.run(
            [sys.executable, "-m", "gradflow", *args, "--format", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        (HERE / f"{name}.json").write_text(out.stdout)
    (HERE / "cases.json").write_text(json.dumps(CASES, indent=1) + "\n")


if __name__ == "__main__":
    main()
