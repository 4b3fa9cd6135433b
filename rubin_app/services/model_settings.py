"""Per-model switches an admin sets: which models' answers may be cached at any temperature."""

from __future__ import annotations

import json

from sqlmodel.ext.asyncio.session import AsyncSession

from rubin_app.config import Settings
from rubin_app.models import AppSetting, Role, User
from rubin_app.models.user import utcnow
from rubin_app.services import audit
from rubin_app.services.chats import InputError

KEY = "cache_models"


async def cacheable_models(*, session: AsyncSession, settings: Settings) -> set[str]:
    """CACHE_MODELS, with an admin's per-model on/off switches applied."""
    models = set(settings.cache_models)
    row = await session.get(AppSetting, KEY)
    if row is not None:
        for model, on in json.loads(row.value or "{}").items():
            (models.add if on else models.discard)(model)
    return models


async def set_cacheable(
    *, session: AsyncSession, settings: Settings, actor_id: int, model: str, on: bool, ip: str = ""
) -> set[str]:
    """Switch caching at any temperature on or off for one model (admins only)."""
    actor = await session.get(User, actor_id)
    if actor is None or actor.role != Role.admin:
        raise InputError("admin_only")
    model = model.strip()
    if not model or len(model) > 200:
        raise InputError("bad_setting")
    row = await session.get(AppSetting, KEY) or AppSetting(key=KEY, value="{}")
    switches = json.loads(row.value or "{}")
    switches[model] = bool(on)
    row.value, row.updated_at = json.dumps(switches), utcnow()
    if len(row.value) > 2000:
        raise InputError("bad_setting")
    session.add(row)
    await audit.record(
        session=session, action=audit.POLICY_CHANGED, user_id=actor_id, actor_id=actor_id, ip=ip,
        detail=f"cache {model}={bool(on)}",
    )  # fmt: skip
    await session.flush()
    return await cacheable_models(session=session, settings=settings)
