"""A typer group that turns a command into click options only when that command runs.

typer builds every command's click object on every start: it resolves the signature's type hints
and makes one click option per flag, 3-5 ms a command here. With five commands of ~35 flags that
was 20-30 ms of every run, a fifth of ``gradflow --help``. This group keeps the commands' typer
declarations and builds one when it is looked up; its help lists the commands from their
docstrings, as typer's listing would. A command registered on the root app itself is built by
typer as before, and kept.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, MutableMapping
from gettext import gettext as _
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_command_name
from typer.models import CommandInfo


class OnDemandCommands(MutableMapping[str, Any]):
    """Command name → click command, built from its typer declaration on first lookup."""

    def __init__(self, declared: typer.Typer, built: MutableMapping[str, Any], **how: Any) -> None:
        self._declared = {_name(info): info for info in declared.registered_commands}
        self._built = dict(built)  # commands typer built itself (declared on the root app)
        self._how = how  # get_command_from_info's settings: the root app's

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            info = self._declared[name]  # KeyError: no such command
            self._built[name] = get_command_from_info(info, **self._how)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._declared.pop(name, None)
        self._built.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._declared or name in self._built  # without building it

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._declared, *self._built]))  # declaration order

    def __len__(self) -> int:
        return len(dict.fromkeys([*self._declared, *self._built]))

    def summary(self, name: str) -> Any:
        """What the help's listing needs of a command: the built one, else a stand-in that
        carries only its help text (the docstring, as typer takes it)."""
        if name in self._built:
            return self._built[name]
        info = self._declared[name]
        doc = inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
        return TyperCommand(
            name=name,
            help=doc,
            short_help=info.short_help,
            hidden=info.hidden,
            deprecated=info.deprecated,
        )


class OnDemandGroup(TyperGroup):
    """A TyperGroup whose commands come from ``declared`` and are built when they run."""

    declared: ClassVar[typer.Typer]  # the Typer the commands are registered on

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = OnDemandCommands(
            self.declared,
            self.commands,
            pretty_exceptions_short=self.declared.pretty_exceptions_short,
            rich_markup_mode=self.rich_markup_mode,
        )

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """typer's listing (name, short help), from the summaries: nothing is built."""
        assert isinstance(self.commands, OnDemandCommands)
        listed = [(name, self.commands.summary(name)) for name in self.list_commands(ctx)]
        listed = [(name, command) for name, command in listed if not command.hidden]
        if not listed:
            return
        limit = formatter.width - 6 - max(len(name) for name, _command in listed)
        with formatter.section(_("Commands")):
            formatter.write_dl([(name, c.get_short_help_str(limit)) for name, c in listed])


def _name(info: CommandInfo) -> str:
    return info.name or get_command_name(info.callback.__name__)  # type: ignore[union-attr]
