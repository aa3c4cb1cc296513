"""``python -m pipekit``: the command line."""

from pipekit.cli import main

main()
