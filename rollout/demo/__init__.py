"""The embedded local environment behind `rollout demo`."""
