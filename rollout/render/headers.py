"""`Name: value` lines, each marked with the layer that owns it."""

from __future__ import annotations

from rollout.render import display_name, title
from rollout.settings import StageSettings

_ALIGN = 60


def render_headers(settings: StageSettings) -> str:
    """Every header of the stage as `Name: value   # app|edge`, app-owned first."""
    rows = [(f"{display_name(n)}: {v}", "app") for n, v in settings.app.items()]
    rows += [(f"{display_name(n)}: {v}", "edge") for n, v in settings.edge.items()]
    lines = [f"# {title(settings)}"]
    if not rows:
        lines.append("# no headers at this stage")
    # Align the owner marks, but a long CSP line should not push every mark far right.
    width = max((len(text) for text, _ in rows if len(text) <= _ALIGN), default=0)
    lines += [f"{text.ljust(width)}   # {owner}" for text, owner in rows]
    return "\n".join(lines) + "\n"
