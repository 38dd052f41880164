"""Settings declared once: a dataclass field whose metadata carries its flag, parser, help and env variable.

Why: a setting used to be written three or four times (a dataclass field, an argparse call, a mapping from
the parsed namespace, a row of docs/API.md), and the environment layer read argparse's internals. Here the
field is the only declaration; `add_arguments` makes the command line from it (defaults taken from the
environment where a variable is set), `from_namespace` makes the dataclass from the parsed flags, and
`markdown_table` writes the docs table that a test compares with docs/API.md.

A field without `setting(...)` metadata is not a flag (a value derived from flags, or one only code sets).
Lives in `vision/` because the model flags (`vision.model_options.ModelSettings`) are declared with it and
`vision` must not import the server; it imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
METADATA_KEY = "setting"
SAME_AS_FIELD: Any = object()
"""`cli_default` when the command line's default is the dataclass field's own."""


class SettingError(ValueError):
    """A setting's value (from a flag or the environment) cannot be used; the message names it."""


@dataclass(frozen=True)
class Declaration:
    """How one setting reads from the command line and the environment, and how the docs show it."""

    help: str
    parse: Callable[[str], Any] | None = None
    """Text -> value; raises ValueError or argparse.ArgumentTypeError. None: the text itself."""
    choices: tuple[str, ...] | None = None
    switch: bool = False
    """A boolean: `--flag` / `--no-flag` (or only `--flag` with `negatable=False`); env 1/0, true/false..."""
    negatable: bool = True
    repeat: bool = False
    """Repeatable flag giving a tuple; the environment variable is a comma-separated list."""
    metavar: str | None = None
    shown_default: str | None = None
    """The default as the docs and --help show it, where the value's repr would mislead."""
    cli_default: Any = SAME_AS_FIELD
    """The command line's default when it differs from the dataclass's (which code and tests use)."""


def setting(
    default: Any,
    help: str,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    switch: bool = False,
    negatable: bool = True,
    repeat: bool = False,
    metavar: str | None = None,
    shown_default: str | None = None,
    cli_default: Any = SAME_AS_FIELD,
) -> Any:
    """A dataclass field declared as a setting (see the module docstring)."""
    declaration = Declaration(
        help, parse, choices, switch, negatable, repeat, metavar, shown_default, cli_default
    )
    return dataclasses.field(default=default, metadata={METADATA_KEY: declaration})


@dataclass(frozen=True)
class DeclaredField:
    """One declared setting of a dataclass: its field name and declaration."""

    name: str
    default: Any
    declaration: Declaration

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def env(self, prefix: str) -> str:
        return prefix + self.name.upper()

    @property
    def command_line_default(self) -> Any:
        cli = self.declaration.cli_default
        return self.default if cli is SAME_AS_FIELD else cli

    def shown_default(self) -> str:
        """The default as a person reads it (docs markup): `off` for a switch, `none` for no value."""
        if self.declaration.shown_default is not None:
            return self.declaration.shown_default
        value = self.command_line_default
        if self.declaration.switch:
            return "on" if value else "off"
        if value is None or value == ():
            return "none"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


def declared_fields(settings_class: type) -> Iterator[DeclaredField]:
    """The fields of a settings dataclass that are declared with `setting(...)`, in their order."""
    for item in dataclasses.fields(settings_class):
        declaration = item.metadata.get(METADATA_KEY)
        if isinstance(declaration, Declaration):
            yield DeclaredField(item.name, item.default, declaration)


def optional_text(text: str) -> str | None:
    """An empty value (`MASKCAM_TOKEN=`) means unset."""
    return text or None


def optional_path(text: str) -> Path | None:
    """A path, or unset when empty."""
    return Path(text) if text else None


def parse_bool(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name}={text!r} is not a boolean (1/0, true/false, yes/no, on/off)")


def _parse_value(where: str, declared: DeclaredField, text: str, check_choices: bool = True) -> Any:
    parse = declared.declaration.parse
    try:
        value = parse(text) if parse is not None else text
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise SettingError(f"{where}={text!r}: {exc}") from exc
    choices = declared.declaration.choices
    if check_choices and choices is not None and value not in choices:
        raise SettingError(f"{where}={text!r} is not one of {', '.join(choices)}")
    return value


def environment_value(declared: DeclaredField, environ: Mapping[str, str], prefix: str) -> Any:
    """The setting's value from its environment variable, or the command line's default when unset."""
    name = declared.env(prefix)
    if name not in environ:
        return declared.command_line_default
    raw = environ[name]
    if declared.declaration.switch:
        return parse_bool(name, raw)
    if declared.declaration.repeat:
        return tuple(_parse_value(name, declared, part.strip()) for part in raw.split(",") if part.strip())
    return _parse_value(name, declared, raw)


def _plain(text: str) -> str:
    """Docs markup out of a help text: --help is read in a terminal."""
    return text.replace("`", "")


def add_arguments(
    parser: argparse.ArgumentParser,
    settings_class: type,
    environ: Mapping[str, str] | None = None,
    env_prefix: str | None = None,
) -> None:
    """One flag per declared field; with `environ`, its default is the environment's value, if set.

    A repeatable flag's default stays None, so that flags replace (not extend) the environment's list;
    `from_namespace` fills it in. Raises SettingError for an environment value the setting cannot use.
    """
    for declared in declared_fields(settings_class):
        declaration = declared.declaration
        default = (
            declared.command_line_default
            if environ is None or env_prefix is None
            else environment_value(declared, environ, env_prefix)
        )
        help_text = _plain(declaration.help)
        if env_prefix is not None:
            help_text += f" [env {declared.env(env_prefix)}; default {_plain(declared.shown_default())}]"
        kwargs: dict[str, Any] = {"dest": declared.name, "help": help_text.replace("%", "%%")}
        if declaration.switch:
            action = argparse.BooleanOptionalAction if declaration.negatable else "store_true"
            parser.add_argument(declared.flag, action=action, default=default, **kwargs)
            continue
        if declaration.metavar is not None:
            kwargs["metavar"] = declaration.metavar
        if declaration.choices is not None:
            kwargs["choices"] = declaration.choices

        def parse(text: str, declared: DeclaredField = declared) -> Any:
            try:
                # argparse checks the choices itself, with its usual "invalid choice" message.
                return _parse_value(declared.flag, declared, text, check_choices=False)
            except SettingError as exc:
                raise argparse.ArgumentTypeError(str(exc)) from exc

        if declaration.repeat:
            parser.add_argument(declared.flag, action="append", type=parse, default=None, **kwargs)
            parser.set_defaults(**{"_default_" + declared.name: tuple(default)})
        else:
            parser.add_argument(declared.flag, type=parse, default=default, **kwargs)


def from_namespace(settings_class: type, args: argparse.Namespace) -> dict[str, Any]:
    """The declared fields' values from parsed flags (repeatable ones: the flags, else their default)."""
    values: dict[str, Any] = {}
    for declared in declared_fields(settings_class):
        value = getattr(args, declared.name)
        if declared.declaration.repeat:
            value = tuple(value) if value is not None else getattr(args, "_default_" + declared.name)
        values[declared.name] = value
    return values


def markdown_table(settings_class: type, env_prefix: str) -> str:
    """docs/API.md's settings table, one row per declared field."""
    lines = ["| flag | environment | default | what |", "|---|---|---|---|"]
    for declared in declared_fields(settings_class):
        declaration = declared.declaration
        flag = declared.flag + (f" {declaration.metavar}" if declaration.metavar else "")
        env = f"`{declared.env(env_prefix)}`" + (" (comma-separated)" if declaration.repeat else "")
        text = declaration.help
        if declaration.choices is not None and "`" not in text:
            text += " (" + ", ".join(f"`{choice}`" for choice in declaration.choices) + ")"
        if declaration.repeat:
            text += "; repeatable"
        row = (f"`{flag}`", env, declared.shown_default(), text)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    return "\n".join(lines) + "\n"


def _as_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(str(part) for part in value)
    return str(value)


def as_flags(settings: Any) -> list[str]:
    """The flags that give `settings` from the command line's defaults (for a child process's argv).

    Repeatable and switch settings are written out too; a value equal to its default is left out.
    """
    flags: list[str] = []
    for declared in declared_fields(type(settings)):
        value = getattr(settings, declared.name)
        if value == declared.command_line_default:
            continue
        if declared.declaration.switch:
            flags.append(declared.flag if value else "--no-" + declared.flag[2:])
        elif declared.declaration.repeat:
            for item in value:
                flags += [declared.flag, _as_text(item)]
        elif value is not None:
            flags += [declared.flag, _as_text(value)]
    return flags
