"""Per-model cache switches: an admin turns caching at any temperature on or off, per model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rubin_app.models import Role
from rubin_app.services import model_settings
from rubin_app.services.chats import InputError
from tests.factories import make_account


async def test_admin_switches_override_the_settings_list(db_scope: Callable[[], Any], make_settings) -> None:
    settings = make_settings(cache_models="small,big")
    async with db_scope() as s:
        admin = await make_account(s, email="boss@example.com", role=Role.admin)
        assert await model_settings.cacheable_models(session=s, settings=settings) == {"small", "big"}
        await model_settings.set_cacheable(session=s, settings=settings, actor_id=admin.id, model="big", on=False)
        on = await model_settings.set_cacheable(session=s, settings=settings, actor_id=admin.id, model="new", on=True)
    assert on == {"small", "new"}
    async with db_scope() as s:  # kept: another worker reads the same switches
        assert await model_settings.cacheable_models(session=s, settings=settings) == {"small", "new"}


async def test_only_admins_switch_and_names_are_checked(db_scope: Callable[[], Any], make_settings) -> None:
    settings = make_settings()
    async with db_scope() as s:
        user = await make_account(s, email="u@example.com")
        admin = await make_account(s, email="a@example.com", role=Role.admin)
        with pytest.raises(InputError) as info:
            await model_settings.set_cacheable(session=s, settings=settings, actor_id=user.id, model="m", on=True)
        assert info.value.code == "admin_only"
        for bad in ("", " ", "x" * 201):
            with pytest.raises(InputError) as info:
                await model_settings.set_cacheable(session=s, settings=settings, actor_id=admin.id, model=bad, on=True)
            assert info.value.code == "bad_setting"
        assert await model_settings.cacheable_models(session=s, settings=settings) == set()
