"""`python -m mtasts` runs the command line."""

from mtasts.cli import main

main()
