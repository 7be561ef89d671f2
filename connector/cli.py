"""The `crmsync` command: parse arguments, call the library, print. No logic lives here."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="crmsync",
    help="Keep HubSpot and Salesforce telling the same story about people and organisations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# ---- mappings (core issue) ---------------------------------------------------------------

# ---- sandbox (sandbox issue) -------------------------------------------------------------

# ---- check (adapters issue) --------------------------------------------------------------


def main() -> None:
    app()
