"""What a user may do, as one value: the union over their groups, the instance defaults, or everything (admins)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

FEATURES = ("api_keys", "webhooks", "knowledge_sharing")


@dataclass(frozen=True)
class Permissions:
    """Effective permissions: `models` None means every model; the flags switch features on."""

    models: frozenset[str] | None = None
    api_keys: bool = True
    webhooks: bool = True
    knowledge_sharing: bool = True  # an admin may publish the user's knowledge bases (knowledge.service.set_shared)

    def allows_model(self, model: str) -> bool:
        """Whether the user may ask `model`."""
        return self.models is None or model in self.models

    def filter(self, models: Iterable[str]) -> list[str]:
        """The models of a list the user may use, in its order."""
        return [m for m in models if self.allows_model(m)]

    @classmethod
    def union(cls, grants: Iterable[Permissions]) -> Permissions:
        """Everything any of `grants` allows (an empty model list in one of them: every model)."""
        items = list(grants)
        if not items:
            return cls(models=frozenset(), api_keys=False, webhooks=False, knowledge_sharing=False)
        every = any(g.models is None for g in items)
        models = frozenset().union(*(g.models for g in items if g.models is not None))
        return cls(
            models=None if every else models,
            api_keys=any(g.api_keys for g in items),
            webhooks=any(g.webhooks for g in items),
            knowledge_sharing=any(g.knowledge_sharing for g in items),
        )


EVERYTHING = Permissions()
