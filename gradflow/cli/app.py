"""The command line: five thin commands (analyze, compare, paths, train, sweep) over validated
plans, and the exit codes they end with.

Each command hands its flags, in groups, to its ``make_*plan``, which checks every one of them
before any work (a bad one is one line and exit 2), then to its ``execute*``, imported only then
so that ``gradflow --help`` and ``--version`` never load NumPy. Commands are declared on
``commands`` and built by ``on_demand`` only when they run. ``Group`` turns every way out into
an exit code (``errors.ExitCode``) with at most one line on stderr; only a bug shows a traceback.
"""

# No ``from __future__ import annotations``: typer reads every signature below when it builds a
# command, and annotations kept as objects spare it eval-ing each string (~2.5 ms a command).

import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, overload

import typer

from gradflow.cli import VERSION_LINE, start_collecting
from gradflow.cli import options as o
from gradflow.cli.errors import (
    ALL_EXIT_CODES,
    EXIT_CODES,
    EXIT_CODES_NO_CHECKS,
    ExitCode,
    close_command,
    note,
    one_line,
    stdout_broken,
    stdout_failed,
)
from gradflow.cli.on_demand import OnDemandGroup
from gradflow.cli.options import SPEC
from gradflow.engine.optim_spec import Optimizer
from gradflow.engine.spec import Skip

if TYPE_CHECKING:  # a command imports the plan when it runs: --help never needs it
    from gradflow.cli.plan import Plan

MAX_ROWS = 25  # rows per table/chart before layers are grouped; depth 50 gives pairs

# The commands are declared on their own Typer, not on ``app``: typer would build every
# command's click options on every start; Group builds only the one that runs.
commands = typer.Typer()


class Interrupted(Exception):
    """Ctrl-C during a command, carried past typer (which would exit 130 without a word)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, a cancelled CI job), raised where the program is, as Ctrl-C is:
    every half-written file is removed on the way out. ``main`` then ends the process by the
    signal, so that whoever sent it sees it."""


_SIGTERM = {"received": False, "said": False}  # once ``main`` handles SIGTERM


def _terminate(signum: int, frame: object) -> None:
    _SIGTERM["received"] = True
    # a second one must not cut the clean-up short; a handler, not SIG_IGN, so that a stretch
    # that ends early on purpose (a sweep's pool, ending its workers) can still take it over
    signal.signal(signal.SIGTERM, _terminate_again)
    raise Terminated


def _terminate_again(signum: int, frame: object) -> None:
    pass


def _interrupted_line() -> str:
    if _SIGTERM["received"]:
        _SIGTERM["said"] = True
        return "gradflow: terminated"
    return "gradflow: interrupted"


class Group(OnDemandGroup):
    """Every way out of a command as an exit code: usage errors and Ctrl-C as one line on
    stderr, a bug as its traceback and exit 70."""

    declared = commands

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        name = prog_name or "gradflow"
        try:
            code = super().main(args, name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:  # usage errors, including BadInput
            if type(error).__name__ == "NoArgsIsHelpError":  # bare `gradflow`: the help
                try:
                    code = super().main(["--help"], name, standalone_mode=False)
                except OSError as failed:
                    if not stdout_broken(failed):
                        raise
                    code = stdout_failed(failed)
            else:
                if type(error).__name__ == "NoSuchOption":  # which commands have it, if any
                    error.elsewhere = self.commands_with(getattr(error, "option_name", ""))  # type: ignore[attr-defined]
                note(f"gradflow: error: {one_line(error)}")
                code = ExitCode.BAD_INPUT
        except Interrupted:
            note(_interrupted_line())
            code = ExitCode.INTERRUPTED
        except OSError as error:  # --help into /dev/full; the commands catch their own
            if not stdout_broken(error):
                traceback.print_exc()
                code = ExitCode.INTERNAL_ERROR
            else:
                code = stdout_failed(error)
        except Exception:  # a bug: its traceback, and a code no check or input error uses
            traceback.print_exc()
            code = ExitCode.INTERNAL_ERROR
        if not standalone_mode:
            return code
        sys.exit(int(code) if isinstance(code, int) else 0)

    def commands_with(self, option: str) -> list[str]:
        """The commands that take ``option`` (each is built: for an error's line only)."""
        return [
            name
            for name in self.list_commands(None)
            if any(option in param.opts for param in self.commands[name].params)
        ]

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted from None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """An unknown command gets a suggestion only when one is a close match."""
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as error:
            meant = close_command(args[0], list(self.commands)) if args else None
            message = getattr(error, "message", None)
            if meant is not None and isinstance(message, str):
                error.message = f"{message.rstrip('.')}; did you mean {meant}?"
            raise


app = typer.Typer(
    cls=Group,
    epilog=ALL_EXIT_CODES,
    no_args_is_help=True,
    suggest_commands=False,  # Group suggests only close matches
    pretty_exceptions_enable=False,
    # plain help: rich's help formatter imports markdown-it and triples the time of --help
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(VERSION_LINE)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """See, layer by layer, how gradients flow back through deep networks with and without
    skip connections."""


@commands.command(epilog=EXIT_CODES)
def analyze(
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    skip: o.SkipOpt = SPEC.skip.value,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = None,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    vanish_below: o.VanishBelow = None,
    explode_above: o.ExplodeAbove = None,
    gain_below: o.GainBelow = None,
    gain_above: o.GainAbove = None,
    signal_below: o.SignalBelow = None,
    signal_above: o.SignalAbove = None,
    fail_on: o.FailOn = None,
    format: o.FormatOpt = None,
    output: o.Output = None,
    save_arrays: o.SaveArrays = None,
    plot: o.Plot = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    unicode: o.Unicode = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
    threads: o.Threads = None,
    theory: o.Theory = False,
) -> None:
    """One network: gradient per layer, the split at each addition, a chart and a verdict."""
    from gradflow.cli.plan import NetworkFlags, OutputFlags, ThresholdFlags, make_plan, pick

    plan = make_plan(
        "analyze",
        skip=skip,
        variants=None,
        fail_on=joined(fail_on),
        network=pick(NetworkFlags, locals()),
        thresholds=pick(ThresholdFlags, locals()),
        output=pick(OutputFlags, locals()),
        max_memory=max_memory,
        threads=threads,
    )
    _execute(plan)


@commands.command(epilog=EXIT_CODES_NO_CHECKS)
def compare(
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    variants: o.Variants = None,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = None,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    vanish_below: o.VanishBelow = None,
    explode_above: o.ExplodeAbove = None,
    gain_below: o.GainBelow = None,
    gain_above: o.GainAbove = None,
    signal_below: o.SignalBelow = None,
    signal_above: o.SignalAbove = None,
    format: o.FormatOpt = None,
    output: o.Output = None,
    save_arrays: o.SaveArrays = None,
    plot: o.Plot = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    unicode: o.Unicode = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
    threads: o.Threads = None,
    theory: o.Theory = False,
) -> None:
    """The same weights with and without shortcuts, side by side (default: plain, post, pre)."""
    from gradflow.cli.plan import NetworkFlags, OutputFlags, ThresholdFlags, make_plan, pick

    plan = make_plan(
        "compare",
        skip=None,
        variants=joined(variants, o.ALL_VARIANTS),
        fail_on=None,
        network=pick(NetworkFlags, locals()),
        thresholds=pick(ThresholdFlags, locals()),
        output=pick(OutputFlags, locals()),
        max_memory=max_memory,
        threads=threads,
    )
    _execute(plan)


@commands.command(epilog=EXIT_CODES_NO_CHECKS)
def paths(
    ctx: typer.Context,
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    skip: o.SkipOpt = Skip.PRE.value,
    variants: o.PathVariants = None,
    max_length: o.MaxLength = None,
    samples: o.Samples = 0,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = None,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    format: o.FormatOpt = None,
    output: o.Output = None,
    plot: o.Plot = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
    threads: o.Threads = None,
) -> None:
    """Which paths carry the gradient: ∂L/∂x split exactly by the number of branches a path
    passes through (Veit et al. 2016), for residual networks (default --skip pre)."""
    from gradflow.cli.errors import BadInput
    from gradflow.cli.plan import (
        NetworkFlags,
        OutputFlags,
        PathsFlags,
        ThresholdFlags,
        make_plan,
        pick,
    )

    if {"skip", "variants"} <= given_flags(ctx):  # --variants would silently win
        raise BadInput("--variants", "takes the wirings itself; give it or --skip, not both")
    plan = make_plan(
        "paths",
        skip=skip,
        variants=joined(variants),
        fail_on=None,
        network=pick(NetworkFlags, locals()),
        thresholds=ThresholdFlags(),
        output=pick(OutputFlags, locals()),
        max_memory=max_memory,
        threads=threads,
        paths=PathsFlags(max_length=max_length, samples=samples),
    )
    _execute(plan)


@commands.command(epilog=EXIT_CODES)
def train(
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.MiniBatch = SPEC.batch,
    variants: o.Variants = None,
    steps: o.Steps = 200,
    optimizer: o.OptimizerOpt = Optimizer.ADAM,
    lr: o.LearningRate = None,
    samples: o.TrainSamples = 1024,
    every: o.Every = None,
    eval_every: o.EvalEvery = None,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = None,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    fail_on: o.TrainFailOn = None,
    format: o.FormatOpt = None,
    output: o.Output = None,
    save_arrays: o.TrainSaveArrays = None,
    max_rows: o.MaxRows = MAX_ROWS,
    all_rows: o.AllRows = False,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
    threads: o.Threads = None,
    plot: o.Plot = None,
) -> None:
    """Train the variants from the same weights on the same minibatches of a teacher's data:
    loss curves, ‖∂L/∂W‖ and update ratios per layer over the steps, and a verdict."""
    from gradflow.cli.plan import NetworkFlags, OutputFlags, pick
    from gradflow.cli.train_plan import TrainFlags, make_train_plan

    plan = make_train_plan(
        variants=joined(variants, o.ALL_VARIANTS),
        fail_on=joined(fail_on),
        network=pick(NetworkFlags, locals()),
        train=pick(TrainFlags, locals()),
        output=pick(OutputFlags, locals()),
        max_memory=max_memory,
        threads=threads,
    )
    _execute(plan)


@commands.command(epilog=EXIT_CODES_NO_CHECKS)
def sweep(
    ctx: typer.Context,
    vary: o.Vary,
    variants: o.SweepVariants = None,
    seeds: o.Seeds = 1,
    theory: o.SweepTheory = False,
    jobs: o.Jobs = None,
    scheduler: o.Scheduler = None,
    resume: o.Resume = False,
    yes: o.Yes = False,
    depth: o.Depth = SPEC.depth,
    width: o.Width = SPEC.width,
    batch: o.Batch = SPEC.batch,
    block_size: o.BlockSize = SPEC.block_size,
    residual_scale: o.ResidualScale = SPEC.residual_scale,
    skip_scale: o.SkipScale = SPEC.skip_scale,
    branch_weight_scale: o.BranchWeightScale = SPEC.branch_weight_scale,
    activation: o.ActivationOpt = SPEC.activation,
    init: o.InitOpt = SPEC.init,
    weight_var: o.WeightVar = SPEC.weight_var,
    bias_var: o.BiasVar = SPEC.bias_var,
    zero_init_residual: o.ZeroInitResidual = SPEC.zero_init_residual,
    norm: o.NormOpt = SPEC.norm,
    loss: o.LossOpt = SPEC.loss,
    classes: o.Classes = None,
    dtype: o.DTypeOpt = SPEC.dtype,
    seed: o.Seed = SPEC.seed,
    vanish_below: o.VanishBelow = None,
    explode_above: o.ExplodeAbove = None,
    gain_below: o.GainBelow = None,
    gain_above: o.GainAbove = None,
    signal_below: o.SignalBelow = None,
    signal_above: o.SignalAbove = None,
    format: o.SweepFormatOpt = None,
    output: o.Output = None,
    quiet: o.Quiet = False,
    max_memory: o.MaxMemory = None,
    threads: o.Threads = None,
    plot: o.Plot = None,
) -> None:
    """Scaling curves: the gain and first/last ratio over a grid of any network flags, for
    each variant and seed, with an optional mean-field theory line."""
    from gradflow.cli.plan import NetworkFlags, ThresholdFlags, pick
    from gradflow.cli.sweep_plan import SweepFlags, make_sweep_plan

    plan = make_sweep_plan(
        sweep_flags=SweepFlags(
            tuple(vary),
            joined(variants, o.ALL_VARIANTS),
            seeds,
            theory,
            jobs,
            scheduler,
            resume,
            yes,
        ),
        network=pick(NetworkFlags, locals()),
        given=given_flags(ctx),
        thresholds=pick(ThresholdFlags, locals()),
        format=format,
        output=output,
        max_memory=max_memory,
        threads=threads,
        quiet=quiet,
        plot=plot,
    )
    from gradflow.cli.execute_sweep import execute_sweep  # NumPy and the engine load here

    start_collecting()
    raise typer.Exit(int(execute_sweep(plan)))


def _execute(plan: "Plan") -> None:
    from gradflow.cli.execute import execute  # NumPy, rich and the engine load here

    start_collecting()
    raise typer.Exit(int(execute(plan)))


def main() -> None:
    """Entry point of the ``gradflow`` command (and ``python -m gradflow``)."""
    if sys.argv[1:] == ["--version"]:  # answered before typer builds the commands
        try:
            typer.echo(VERSION_LINE)
        except OSError as error:
            sys.exit(stdout_failed(error))
        return
    _SIGTERM.update(received=False, said=False)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_IGN:  # a caller that ignores SIGTERM keeps it ignored
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app(prog_name="gradflow")
    except KeyboardInterrupt:  # before or after a command: while typer starts up, say
        note(_interrupted_line())
        sys.exit(ExitCode.INTERRUPTED)
    finally:
        if _SIGTERM["received"]:  # the half-written files are gone: end by the signal, as sent
            if not _SIGTERM["said"]:  # typer took it while parsing, without a word
                note("gradflow: terminated")
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def given_flags(ctx: typer.Context) -> frozenset[str]:
    """The parameters the command line set itself (not left at their defaults)."""
    return frozenset(
        name
        for name in ctx.params
        if (source := ctx.get_parameter_source(name)) is not None and source.name == "COMMANDLINE"
    )


@overload
def joined(lists: list[str] | None) -> str | None: ...
@overload
def joined(lists: list[str] | None, default: str) -> str: ...
def joined(lists: list[str] | None, default: str | None = None) -> str | None:
    """A repeated list flag as one comma-separated list: --fail-on a --fail-on b is a,b;
    ``default`` where the flag is not given (given empty, it is refused as empty)."""
    return default if lists is None else ",".join(lists)
