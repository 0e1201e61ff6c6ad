"""The stage as one JSON object: the stage file's content, stage as number or "off"."""

from __future__ import annotations

import json

from rollout.settings import StageSettings


def render_json(settings: StageSettings) -> str:
    """`{"environment", "stage", "name", "updated", "app", "edge"}` on one document."""
    doc = {
        "environment": settings.environment,
        "stage": "off" if settings.stage is None else settings.stage,
        "name": settings.name,
        "updated": settings.updated,
        "app": dict(settings.app),
        "edge": dict(settings.edge),
    }
    return json.dumps(doc, indent=2) + "\n"
