"""The exception tree of rollout.

    RolloutError                 anything rollout refuses or cannot do
    ├── InputError               bad input: plan, flag, value or settings file (exit 2)
    │   ├── HeaderValueError     a header value does not follow its grammar
    │   ├── PlanError            plan.toml is refused (names file and key)
    │   └── SettingsError        a stages/<env>.toml file is corrupt or hand-edited
    └── GateError                a probe or gate failed (exit 1)
        └── LockTimeout          another command held the environment's lock too long

Library code raises these; only the CLI turns them into messages and exit codes.
"""

from __future__ import annotations


class RolloutError(Exception):
    """Anything rollout refuses or cannot do."""

    exit_code = 1


class InputError(RolloutError):
    """Bad input: a plan, flag, value or settings file; nothing was written."""

    exit_code = 2


class HeaderValueError(InputError, ValueError):
    """A header value does not follow its grammar."""


class PlanError(InputError):
    """The plan file is refused; the message names the file and key."""


class SettingsError(InputError):
    """A settings file is unreadable, corrupt or hand-edited into nonsense."""


class GateError(RolloutError):
    """A probe or a gate failed."""


class LockTimeout(GateError):
    """Another command held the environment's lock past the lock timeout."""
