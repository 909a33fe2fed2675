"""``python -m streams``: the ``corridor`` command line."""

from streams.cli import main

main()
