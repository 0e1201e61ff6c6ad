"""`python -m rollout`."""

from rollout.cli import main

main()
