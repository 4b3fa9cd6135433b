"""The model picker's view of the merged model list: one group per connection, unreachable ones shown, each
model with the capabilities worth a badge (chat is the norm: only vision, tools and embeddings are marked)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rubin_app.connections.capabilities import LABELS
from rubin_app.connections.router import ConnectionHealth, ModelEntry

BADGES = ("vision", "tools", "embeddings")


@dataclasses.dataclass
class ModelOption:
    """A model in the picker: its (merged) name and its badges' texts."""

    name: str = ""
    badges: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ModelGroup:
    """A connection in the picker: its label (with "unreachable" when its last fetch failed) and its models."""

    label: str = ""
    unreachable: bool = False
    models: list[ModelOption] = dataclasses.field(default_factory=list)


def groups_of(
    entries: list[ModelEntry], health: list[ConnectionHealth], translate: Callable[[str], str]
) -> list[ModelGroup]:
    """The picker's groups, in connection order: connections with models the user may use, and unreachable ones."""
    groups: list[ModelGroup] = []
    for connection in (h for h in health if h.enabled):
        options = [
            ModelOption(e.name, [translate(LABELS[c]) for c in e.capabilities if c in BADGES])
            for e in entries
            if e.connection_id == connection.id
        ]
        unreachable = connection.ok is False
        if options or unreachable:
            label = f"{connection.name} · {translate('connection_unreachable')}" if unreachable else connection.name
            groups.append(ModelGroup(label, unreachable, options))
    return groups
