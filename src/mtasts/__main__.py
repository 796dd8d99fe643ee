"""`python -m mtasts` runs the command line."""

from mtasts.entry import main

main()
