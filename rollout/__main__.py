"""`python -m rollout`."""

from rollout.entry import main

main()
