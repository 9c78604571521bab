"""Every command-line option, declared once and shared by ``analyze`` and ``compare``.

Defaults live in the command signatures and come from ``NetworkSpec()``, so each default has one
source. This module imports only typer, the spec and the error types (no NumPy): ``gradflow
--help`` stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from gradflow.analysis.thresholds import Thresholds
from gradflow.analysis.training import DEFAULT_LR, EVALS, RECORDS
from gradflow.cli.errors import BadInput, quoted
from gradflow.engine.optim_spec import Optimizer
from gradflow.engine.spec import Activation, Choice, DType, Init, Loss, NetworkSpec, Norm, Skip


class Format(Choice):
    TABLE = "table"  # rich tables and the bar chart, for people
    JSON = "json"  # strict, versioned; for scripts
    CSV = "csv"  # one row per layer per variant
    MARKDOWN = "markdown"  # tables and chart for a pull-request comment


SPEC = NetworkSpec()  # every network default, from the engine's own declaration
THRESHOLDS = Thresholds()  # the verdict's defaults, likewise
# --skip and --variants take each Skip by its value and by its label (plain for none)
SKIP_NAMES = {name: skip for skip in Skip for name in dict.fromkeys((skip.value, skip.label))}

NETWORK = "Network"
VERDICT = "Verdict and checks"
OUTPUT = "Output"

# Network: one option per NetworkSpec field.
Depth = Annotated[
    int, typer.Option(help="Dense layers L (the xent head is extra).", rich_help_panel=NETWORK)
]
Width = Annotated[
    int,
    typer.Option(help="Units per layer; every layer is width → width.", rich_help_panel=NETWORK),
]
Batch = Annotated[int, typer.Option(help="Rows of the input x ~ N(0, 1).", rich_help_panel=NETWORK)]
SkipOpt = Annotated[
    str,
    typer.Option(
        "--skip",
        metavar="[" + "|".join(SKIP_NAMES) + "]",
        help="none (or plain): no shortcuts; post: original ResNet (activation after the add); "
        "pre: pre-activation (nothing after the add); postnorm: Post-LN (--norm after the add).",
        rich_help_panel=NETWORK,
    ),
]
ALL_VARIANTS = "none,post,pre"
Variants = Annotated[
    list[str] | None,
    typer.Option(
        metavar="LIST",
        help="Skip variants to run on the same weights (comma-separated, or the flag repeated: "
        f"none = plain, post, pre, postnorm); the first is the baseline. Default: {ALL_VARIANTS}.",
        show_default=False,
        rich_help_panel=NETWORK,
    ),
]
PathVariants = Annotated[
    list[str] | None,
    typer.Option(
        "--variants",
        metavar="LIST",
        help="Residual wirings to split side by side on the same weights (comma-separated, or "
        "the flag repeated: post, pre, postnorm); default: --skip.",
        show_default=False,
        rich_help_panel=NETWORK,
    ),
]
MaxLength = Annotated[
    int | None,
    typer.Option(
        metavar="K",
        help="Split lengths 0..K one by one and the longer paths as one remainder "
        "(cost O(blocks·K) instead of ~blocks²/2); default: every length.",
        show_default=False,
        rich_help_panel="Paths",
    ),
]
Samples = Annotated[
    int,
    typer.Option(
        metavar="M",
        help="Also draw M random single paths per length and report their gradient norms "
        "(Veit's per-path magnitude).",
        rich_help_panel="Paths",
    ),
]
BlockSize = Annotated[
    int,
    typer.Option(
        help="Dense layers per residual block; depth must be a multiple.", rich_help_panel=NETWORK
    ),
]
ResidualScale = Annotated[
    float, typer.Option(help="α in s·h_in + α·branch.", rich_help_panel=NETWORK)
]
SkipScale = Annotated[
    float,
    typer.Option(help="s in s·h_in + α·branch (DeepNorm's skip weight).", rich_help_panel=NETWORK),
]
BranchWeightScale = Annotated[
    float,
    typer.Option(
        help="β: multiply the initial weights (not biases) inside residual branches.",
        rich_help_panel=NETWORK,
    ),
]
ActivationOpt = Annotated[
    Activation,
    typer.Option(
        "--activation", help="Activation φ.", case_sensitive=False, rich_help_panel=NETWORK
    ),
]
InitOpt = Annotated[
    Init,
    typer.Option(
        "--init",
        help="Weight initialisation (he gain follows the activation).",
        case_sensitive=False,
        rich_help_panel=NETWORK,
    ),
]
WeightVar = Annotated[
    float | None,
    typer.Option(
        help="σ_w²: overrides the init scale, Var W = σ_w²/fan_in.", rich_help_panel=NETWORK
    ),
]
BiasVar = Annotated[float, typer.Option(help="σ_b²: biases ~ N(0, σ_b²).", rich_help_panel=NETWORK)]
ZeroInitResidual = Annotated[
    bool,
    typer.Option(
        "--zero-init-residual",
        help="Zero the last layer of every residual branch (residual variants only).",
        rich_help_panel=NETWORK,
    ),
]
NormOpt = Annotated[
    Norm,
    typer.Option(
        "--norm",
        help="Normalisation: before each activation; with --skip postnorm, after each add.",
        case_sensitive=False,
        rich_help_panel=NETWORK,
    ),
]
LossOpt = Annotated[
    Loss,
    typer.Option(
        "--loss",
        help="mse; xent (linear head + softmax cross-entropy); linear (fixed upstream gradient).",
        case_sensitive=False,
        rich_help_panel=NETWORK,
    ),
]
Classes = Annotated[
    int | None,
    typer.Option(
        help=f"Head width for --loss xent (default {SPEC.classes}).",
        show_default=False,
        rich_help_panel=NETWORK,
    ),
]
DTypeOpt = Annotated[
    DType,
    typer.Option(
        "--dtype",
        help="Floating-point type of the pass.",
        case_sensitive=False,
        rich_help_panel=NETWORK,
    ),
]
Seed = Annotated[
    int,
    typer.Option(help="Seeds every random draw; same seed, same bits.", rich_help_panel=NETWORK),
]

# Verdict and checks: one (below, above) pair per judged ratio.


def _threshold(field: str, verdict: str, ratio: str) -> object:
    side = "below" if verdict == "vanishing" else "above"
    return typer.Option(
        help=f"Verdict '{verdict}' when {ratio} is {side} this "
        f"(default {getattr(THRESHOLDS, field):g}).",
        show_default=False,
        rich_help_panel=VERDICT,
    )


WEIGHT_RATIO = "the first/last-layer weight-gradient ratio"
GAIN = "the gradient gain ‖∂L/∂x‖/‖∂L/∂y‖"
SIGNAL = "the forward signal rms(y)/rms(x)"
VanishBelow = Annotated[float | None, _threshold("vanish_below", "vanishing", WEIGHT_RATIO)]
ExplodeAbove = Annotated[float | None, _threshold("explode_above", "exploding", WEIGHT_RATIO)]
GainBelow = Annotated[float | None, _threshold("gain_below", "vanishing", GAIN)]
GainAbove = Annotated[float | None, _threshold("gain_above", "exploding", GAIN)]
SignalBelow = Annotated[float | None, _threshold("signal_below", "vanishing", SIGNAL)]
SignalAbove = Annotated[float | None, _threshold("signal_above", "exploding", SIGNAL)]
FailOn = Annotated[
    list[str] | None,
    typer.Option(
        metavar="LIST",
        help="Exit 1 when the verdict, or a finding behind it, is one of these (comma-separated, "
        "or the flag repeated: vanishing, exploding, nonfinite).",
        show_default=False,
        rich_help_panel=VERDICT,
    ),
]

# Output.


def file_name(flag: str) -> Callable[[str], Path]:
    """An output flag's value as a Path, refusing a name that ends in a separator, '.' or '..':
    that names a directory, which Path would hide ('x.json/' becomes 'x.json')."""

    def parse(value: str) -> Path:
        if not value:
            dash = ", or - for stdout" if flag == "--output" else ""
            raise BadInput(flag, f"empty; give a file name{dash}")
        if value != "-" and os.path.basename(value) in ("", ".", ".."):
            raise BadInput(flag, f"{quoted(value)} names a directory; give a file name")
        return Path(value)

    return parse


FormatOpt = Annotated[
    Format | None,
    typer.Option(
        "--format",
        help="What to write (default: from the --output suffix, any case: .json, .csv, "
        ".md or .markdown, .txt or none for the table; another suffix needs --format).",
        case_sensitive=False,
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
]
Output = Annotated[
    Path | None,
    typer.Option(
        parser=file_name("--output"),
        metavar="FILE",
        help="Write the report here and only the summary to stdout (- is stdout). A file is "
        "replaced whole or not at all; a symlink's target is written; devices and pipes are "
        "written directly.",
        rich_help_panel=OUTPUT,
    ),
]
SaveArrays = Annotated[
    Path | None,
    typer.Option(
        parser=file_name("--save-arrays"),
        metavar="FILE.npz",
        help="Save the run's arrays (x, target, W1…WL, b1…bL; with --loss xent labels, W_head "
        "and b_head instead of target) for use in another framework.",
        rich_help_panel=OUTPUT,
    ),
]
TrainSaveArrays = Annotated[
    Path | None,
    typer.Option(
        "--save-arrays",
        parser=file_name("--save-arrays"),
        metavar="FILE.npz",
        help="Save what a replay elsewhere needs: x, target (labels, W_head and b_head with "
        "--loss xent), order (each step's sample rows) and the initial W1…WL, b1…bL.",
        rich_help_panel=OUTPUT,
    ),
]
Plot = Annotated[
    Path | None,
    typer.Option(
        parser=file_name("--plot"),
        metavar="FILE",
        help="Also draw the figure to FILE; its suffix chooses the format, in any case: .png, "
        ".svg or .pdf (needs matplotlib: pip install 'gradflow-cli[plot]'). Written like "
        "--output, but never to stdout.",
        rich_help_panel=OUTPUT,
    ),
]
MaxRows = Annotated[
    int,
    typer.Option(help="Group layers into at most this many rows.", rich_help_panel=OUTPUT),
]
AllRows = Annotated[
    bool,
    typer.Option("--all-rows", help="One row per layer, however deep.", rich_help_panel=OUTPUT),
]
Unicode = Annotated[
    bool,
    typer.Option(
        "--unicode",
        help="Draw the chart with finer Unicode blocks (default: pure ASCII).",
        rich_help_panel=OUTPUT,
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", help="Only the summary lines.", rich_help_panel=OUTPUT)
]
MaxMemory = Annotated[
    str | None,
    typer.Option(
        metavar="SIZE",
        help="Refuse runs needing more than this, e.g. 512M or 2G (default: the free memory).",
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help="Threads to use (default: OMP_NUM_THREADS or OPENBLAS_NUM_THREADS where set, else "
        "one per core). The results are the same bits for any N.",
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
]

# Theory: the mean-field prediction beside the measurement (analyze, compare; sweep too).
Theory = Annotated[
    bool,
    typer.Option(
        "--theory",
        help="Show the mean-field prediction beside the measurement: ‖∂L/∂in‖ per layer and "
        "the gain (no prediction with batch or layer norm).",
        rich_help_panel=OUTPUT,
    ),
]
SweepTheory = Annotated[
    bool,
    typer.Option(
        "--theory",
        help="Show the mean-field prediction of each point's gain beside the measured one (no "
        "prediction with batch or layer norm).",
        rich_help_panel=OUTPUT,
    ),
]

# Training (gradflow train).
TRAIN = "Training"
OptimizerOpt = Annotated[
    Optimizer,
    typer.Option(
        "--optimizer",
        help="sgd (w -= lr·g), momentum (0.9, PyTorch's), adam (β 0.9/0.999, ε 1e-8).",
        case_sensitive=False,
        rich_help_panel=TRAIN,
    ),
]
MiniBatch = Annotated[
    int,
    typer.Option("--batch", help="Rows per minibatch (one training step).", rich_help_panel=TRAIN),
]
Steps = Annotated[
    int, typer.Option(help="Training steps (one minibatch each).", rich_help_panel=TRAIN)
]
LearningRate = Annotated[
    float | None,
    typer.Option(
        "--lr",
        help="Learning rate (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ").",
        show_default=False,
        rich_help_panel=TRAIN,
    ),
]
TrainSamples = Annotated[
    int,
    typer.Option(
        "--samples",
        help="Training rows x ~ N(0, I); a multiple of --batch (the minibatch size).",
        rich_help_panel=TRAIN,
    ),
]
Every = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help=f"Record every N steps (default: about {RECORDS} records).",
        show_default=False,
        rich_help_panel=TRAIN,
    ),
]
EvalEvery = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help=f"Loss on all samples every N steps and after the last (default: about {EVALS}).",
        show_default=False,
        rich_help_panel=TRAIN,
    ),
]
TrainFailOn = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-on",
        metavar="LIST",
        help="Exit 1 when a variant is one of these (comma-separated, or the flag repeated: "
        "nonfinite, no-progress: "
        "final loss above 90% of the initial, frozen: layer 1's median update ratio below "
        "1e-6).",
        show_default=False,
        rich_help_panel=VERDICT,
    ),
]


# ---- gradflow sweep ---------------------------------------------------------------------------


class SweepFormat(Choice):
    TABLE = "table"  # the table, the chart and the reading, for people
    JSON = "json"  # points and runs, strict and versioned
    JSONL = "jsonl"  # one run per line, written as the runs finish (in grid order)
    CSV = "csv"  # one row per grid point and variant
    MARKDOWN = "markdown"  # table, chart and reading for a pull-request comment


SWEEP = "Sweep"
Vary = Annotated[
    list[str],
    typer.Option(
        metavar="FLAG=VALUES",
        help="A network flag and its values: a comma list (depth=10,20,50), an even range "
        "start:stop:count or a geometric one start:stop:count:log (integer flags round to "
        "distinct integers). Repeat for a grid; the first is the chart's x axis.",
        show_default=False,
        rich_help_panel=SWEEP,
    ),
]
SweepVariants = Annotated[
    list[str] | None,
    typer.Option(
        "--variants",
        metavar="LIST",
        help="Skip variants run at every grid point (comma-separated, or the flag repeated: "
        f"none = plain, post, pre, postnorm). Default: {ALL_VARIANTS}.",
        show_default=False,
        rich_help_panel=SWEEP,
    ),
]
Seeds = Annotated[
    int,
    typer.Option(
        metavar="N", help="Run seeds --seed … --seed+N-1 at every point.", rich_help_panel=SWEEP
    ),
]
Jobs = Annotated[
    int | None,
    typer.Option(
        metavar="N",
        help="Runs at once in a local process pool (default: one per core).",
        show_default=False,
        rich_help_panel=SWEEP,
    ),
]
Scheduler = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="Send the runs to a Dask distributed scheduler (tcp://host:8786); needs "
        "pip install 'gradflow-cli[dask]'.",
        show_default=False,
        rich_help_panel=SWEEP,
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="With --output FILE.jsonl: skip the runs already in FILE and complete it.",
        rich_help_panel=SWEEP,
    ),
]
Yes = Annotated[
    bool,
    typer.Option(
        "--yes",
        help="Run a grid of more than 100,000 runs (up to 1,000,000).",
        rich_help_panel=SWEEP,
    ),
]
SweepFormatOpt = Annotated[
    SweepFormat | None,
    typer.Option(
        "--format",
        help="What to write (default: from the --output suffix: .json, .jsonl, .csv, .md, "
        ".txt or none for the table).",
        case_sensitive=False,
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
]
