"""`python -m connector` is the `crmsync` command."""

from connector.cli import main

main()
