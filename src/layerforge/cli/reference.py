"""The command-line reference as Markdown, made from the commands' own definitions (their help,
arguments and options), so that the documentation cannot drift from the program. The
documentation site's build calls it (``docs/hooks.py``)."""

from __future__ import annotations


def markdown() -> str:
    """Every command of ``layerforge``: what it does, its arguments and its options."""
    import typer

    from . import app

    group = typer.main.get_command(app)
    context = group.context_class(group, info_name="layerforge")
    parts = ["`layerforge --help` lists the commands; `layerforge COMMAND --help` shows one. "
             "Every command below, with its arguments and options as the program defines them.\n"]
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        usage = " ".join(command.collect_usage_pieces(command.context_class(command, info_name=name, parent=context)))
        parts.append(f"## `layerforge {name}`\n\n{_text(command.help)}\n\n```text\nlayerforge {name} {usage}\n```\n")
        own = command.context_class(command, info_name=name, parent=context)
        rows = [record for record in (p.get_help_record(own) for p in command.params if not p.hidden) if record]
        if rows:
            parts.append("| argument or option | what it does |\n|---|---|\n" + "".join(
                f"| `{_cell(names)}` | {_cell(about)} |\n" for names, about in rows))
    return "\n".join(parts)


def _text(help_text: str | None) -> str:
    return " ".join((help_text or "").split())


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|")


