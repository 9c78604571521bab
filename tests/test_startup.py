"""Start-up: a command loads and builds only what it uses, and the help that lists the commands
without building them reads exactly as typer's own listing."""

from __future__ import annotations

import subprocess
import sys

import typer
from typer.testing import CliRunner

from gradflow.cli.app import Group, app, commands
from gradflow.cli.errors import ALL_EXIT_CODES

# Modules that only another command or an option not given needs.
NOT_FOR_COMPARE = (
    "gradflow.analysis.theory",  # --theory
    "gradflow.analysis.train",  # gradflow train
    "gradflow.analysis.paths",  # gradflow paths
    "gradflow.analysis.sweep",  # gradflow sweep
    "gradflow.cli.execute_train",
    "gradflow.cli.execute_paths",
    "gradflow.cli.execute_sweep",
    "gradflow.cli.sweep_plan",
    "gradflow.cli.figure_files",  # --plot
    "gradflow.render.figures",
    "matplotlib",
    "gradflow.cli.files",  # --output, --save-arrays
    "gradflow.render.formats",  # --format json, csv or markdown, or a file
)


def test_compare_loads_only_what_it_uses() -> None:
    """A plain compare table runs (the engine and the page load) without the theory, the other
    commands, the figures or the output files."""
    probe = (
        "import sys\n"
        "from gradflow.cli.app import main\n"
        "sys.argv = ['gradflow', 'compare', '--depth', '4', '--width', '4', '--batch', '2']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        f"unused = {NOT_FOR_COMPARE!r}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in unused\n"
        "             or any(m == u or m.startswith(u + '.') for u in unused)))\n"
        "print('gradflow.analysis.analyze' in sys.modules, 'gradflow.render.table' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert "plain" in "\n".join(out[:-2])  # the page was printed
    assert out[-2:] == ["[]", "True True"]


def test_help_lists_every_command_as_typer_would() -> None:
    """The root help, listed from docstrings, equals the help of the same app built the usual
    way (typer building every command up front)."""
    eager = typer.Typer(
        epilog=ALL_EXIT_CODES, no_args_is_help=True, pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )  # fmt: skip
    eager.registered_callback = app.registered_callback  # --version, the root's help
    for info in commands.registered_commands:
        assert info.callback is not None
        eager.command(info.name, epilog=info.epilog)(info.callback)
    env = {"COLUMNS": "100"}
    ours = CliRunner().invoke(app, ["--help"], env=env, prog_name="gradflow")
    theirs = CliRunner().invoke(eager, ["--help"], env=env, prog_name="gradflow")
    assert ours.exit_code == theirs.exit_code == 0
    assert ours.stdout == theirs.stdout
    names = [info.callback.__name__ for info in commands.registered_commands]  # type: ignore[union-attr]
    rows = ours.stdout.split("Commands:\n")[1].split("\n\n")[0].splitlines()
    listed = [row.split()[0] for row in rows if row.startswith("  ") and row[2] != " "]
    assert listed == names  # every command, in order


def test_a_command_is_built_when_it_runs() -> None:
    """Every command is listed; looking one up builds it once, with all its flags."""
    group = typer.main.get_command(app)
    assert isinstance(group, Group)
    assert sorted(group.commands) == sorted(
        info.callback.__name__  # type: ignore[union-attr]
        for info in commands.registered_commands
    )
    compare = group.commands["compare"]
    assert group.commands["compare"] is compare
    assert {"--depth", "--variants", "--theory"} <= {o for p in compare.params for o in p.opts}


def test_looking_a_command_up_keeps_the_listing_in_order() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, Group)
    before = list(group.commands)
    assert "train" in group.commands and "nonsense" not in group.commands
    assert group.commands["train"].name == "train"  # built now
    assert list(group.commands) == before
    assert len(group.commands) == len(before)


# Collections, each noted by whether the command's modules had loaded by then.
# A hair-trigger threshold: any collection the collector would make, it makes (whether a run
# leaves 700 objects alive, the default's trigger, depends on the environment)
COLLECTIONS = """
import gc, sys
gc.set_threshold(10)
from gradflow.cli import main
seen = []
gc.callbacks.append(
    lambda phase, info: phase == "start" and seen.append("gradflow.cli.execute" in sys.modules)
)
sys.argv = ["gradflow", *{args!r}]
try:
    main()
except SystemExit as e:
    assert e.code in (0, None), e.code
print(len(seen) > 0, all(seen), gc.isenabled(), gc.get_freeze_count() > 0)
"""


def test_the_collector_sleeps_through_start_up_and_runs_with_the_command() -> None:
    """Through the entry point, no collection walks start-up's objects; once the command's
    modules are loaded the collector runs (a long run's cycles are freed)."""
    args = ["analyze", "--depth", "400", "--width", "4", "--batch", "2", "--format", "json"]
    probe = COLLECTIONS.format(args=args)
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[-1] == "True True True True"


def test_help_never_collects() -> None:
    out = subprocess.run(
        [sys.executable, "-c", COLLECTIONS.format(args=["--help"])],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert out[-1] == "False True False True"  # none ran; paused, then frozen for the exit
