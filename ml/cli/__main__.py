"""``python -m ml.cli`` runs the `recsys` command line."""

from ml.cli.app import main

main()
