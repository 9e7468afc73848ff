"""Run the command line as ``python -m modelscan``."""

from modelscan.cli import main

main()
