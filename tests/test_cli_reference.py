"""docs/cli.md is generated from the parsers (execrl.cli_reference) and must match them."""

from __future__ import annotations

from execrl import cli_reference


def test_docs_cli_md_is_up_to_date():
    path = cli_reference.DEFAULT_PATH
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if current != cli_reference.render():
        raise AssertionError(f"{path} is stale: run `{cli_reference.COMMAND}` and commit docs/cli.md")


def test_every_command_and_option_is_documented():
    text = cli_reference.render()
    for name, _, parser in cli_reference.commands():
        assert f"## execrl {name}\n" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in text, (name, flag)


def test_serve_is_documented_from_the_parser_that_runs_it():
    """`execrl serve` is handed to server.main; the entry in `execrl --help` must list the same flags."""
    from execrl.cli import _parser
    from execrl.generation import server

    listed = next(a for a in _parser()._actions if a.dest == "command").choices["serve"]
    flags = lambda p: {f for a in p._actions for f in a.option_strings}  # noqa: E731
    assert flags(listed) == flags(server.parser())
