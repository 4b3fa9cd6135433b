"""Retention on real SQLite and PostgreSQL: exactly the chats past their owner's retention go (with their
messages), never one whose answer is streaming; a user may only shorten the instance's period; old audit,
usage and webhook delivery rows go; one audit row per run; one run at a time (Redis lock, or in-process)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from rubin_app.core.clock import utcnow
from rubin_app.models import AuditEvent, Conversation, Message, MessageStatus, Role, UsageRecord
from rubin_app.services import retention
from rubin_app.services.chats import InputError
from rubin_app.services.redis_store import RedisStore
from rubin_app.services.retention_job import Busy, RetentionJob
from rubin_app.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import make_account, make_audit_event, make_conversation, make_exchange, make_message

DAY = timedelta(days=1)


async def _user(scope, email: str, role: Role = Role.user) -> int:
    async with scope() as s:
        user = await make_account(s, email=email, role=role)
    assert user.id is not None
    return user.id


async def _chat(scope, user_id: int, idle_days: float, title: str, *, streaming: bool = False) -> str:
    """A chat with one exchange, last active `idle_days` ago (and a streaming answer when asked)."""
    when = utcnow() - timedelta(days=idle_days)
    async with scope() as s:
        chat = await make_conversation(s, user_id=user_id, title=title)
        await make_exchange(s, conversation=chat)
        if streaming:
            await make_message(s, conversation=chat, content="half an ans", status=MessageStatus.streaming)
        chat.updated_at = when
        s.add(chat)
    return chat.id


async def _titles(scope) -> set[str]:
    async with scope() as s:
        return {c.title for c in (await s.exec(select(Conversation))).all()}  # loaded: opened by the vault


async def _count(scope, table) -> int:
    async with scope() as s:
        return int((await s.exec(select(func.count()).select_from(table))).one())


async def test_only_chats_past_the_instance_retention_go_with_their_messages(scope, make_settings) -> None:
    """30 days: a chat idle for 31 days goes (every user's), one idle for 29 stays; its messages go too."""
    settings = make_settings(chat_retention_days=30)
    anna, boris = await _user(scope, "anna@example.com"), await _user(scope, "boris@example.com")
    await _chat(scope, anna, 31, "anna old")
    await _chat(scope, anna, 29, "anna recent")
    await _chat(scope, boris, 400, "boris ancient")
    report = await retention.run(scope=scope, settings=settings)
    assert (report.chats, report.messages) == (2, 4)
    assert await _titles(scope) == {"anna recent"}
    assert await _count(scope, Message) == 2  # the recent chat's exchange only
    async with scope() as s:
        rows = (await s.exec(select(AuditEvent).where(AuditEvent.action == "retention_run"))).all()
    assert [r.detail for r in rows] == ["chats=2 messages=4 audit=0 usage=0 webhook_deliveries=0"]
    again = await retention.run(scope=scope, settings=settings)
    assert (again.chats, again.messages) == (0, 0)


async def test_zero_keeps_every_chat(scope, make_settings) -> None:
    """CHAT_RETENTION_DAYS=0 (the default): nothing is deleted, however old."""
    anna = await _user(scope, "anna@example.com")
    await _chat(scope, anna, 5000, "very old")
    report = await retention.run(scope=scope, settings=make_settings())
    assert report.chats == 0
    assert await _titles(scope) == {"very old"}


async def test_a_chat_whose_answer_is_streaming_is_never_deleted(scope, make_settings) -> None:
    """An old chat with an answer being written (on any worker: its row says streaming) stays."""
    anna = await _user(scope, "anna@example.com")
    await _chat(scope, anna, 90, "answering", streaming=True)
    await _chat(scope, anna, 90, "idle")
    report = await retention.run(scope=scope, settings=make_settings(chat_retention_days=30))
    assert report.chats == 1
    assert await _titles(scope) == {"answering"}


async def test_a_user_may_keep_their_chats_for_less(scope, make_settings) -> None:
    """Instance: forever; Anna chose 7 days: her 8-day-old chat goes, Boris's (older) stay."""
    settings = make_settings()
    anna, boris = await _user(scope, "anna@example.com"), await _user(scope, "boris@example.com")
    async with scope() as s:
        assert await retention.set_user_days(session=s, settings=settings, user_id=anna, days=7) == 7
    await _chat(scope, anna, 8, "anna 8 days")
    await _chat(scope, anna, 6, "anna 6 days")
    await _chat(scope, boris, 8, "boris 8 days")
    await _chat(scope, boris, 3000, "boris old")
    report = await retention.run(scope=scope, settings=settings)
    assert report.chats == 1
    assert await _titles(scope) == {"anna 6 days", "boris 8 days", "boris old"}


async def test_a_users_choice_can_only_be_shorter_than_the_instances(scope, make_settings) -> None:
    """With 30 days on the instance, 60 is refused (nothing changes), 7 and "instance default" are taken; when
    the admin later shortens the instance to 5, the user's 7 counts as 5."""
    settings = make_settings(chat_retention_days=30)
    admin, anna = await _user(scope, "root@example.com", Role.admin), await _user(scope, "anna@example.com")
    async with scope() as s:
        await retention.set_user_days(session=s, settings=settings, user_id=anna, days=7)
    for bad in (60, 0, -1):
        with pytest.raises(InputError) as refused:
            async with scope() as s:
                await retention.set_user_days(session=s, settings=settings, user_id=anna, days=bad)
        assert (refused.value.code, refused.value.params) == ("bad_retention", {"max": 30})
    async with scope() as s:
        assert await retention.user_days(session=s, settings=settings, user_id=anna) == (7, 30, 7)
        await retention.set_instance_days(session=s, actor_id=admin, days=5)
    async with scope() as s:
        assert await retention.user_days(session=s, settings=settings, user_id=anna) == (7, 5, 5)
        await retention.set_user_days(session=s, settings=settings, user_id=anna, days=None)
        assert await retention.user_days(session=s, settings=settings, user_id=anna) == (None, 5, 5)
    await _chat(scope, anna, 6, "six days")
    assert (await retention.run(scope=scope, settings=settings)).chats == 1


async def test_only_an_admin_sets_the_instance_retention(scope) -> None:
    """A plain user is refused; an out-of-range value is refused; the change is audited."""
    admin, anna = await _user(scope, "root@example.com", Role.admin), await _user(scope, "anna@example.com")
    with pytest.raises(InputError, match="admin_only"):
        async with scope() as s:
            await retention.set_instance_days(session=s, actor_id=anna, days=1)
    with pytest.raises(InputError, match="bad_retention"):
        async with scope() as s:
            await retention.set_instance_days(session=s, actor_id=admin, days=retention.MAX_DAYS + 1)
    async with scope() as s:
        await retention.set_instance_days(session=s, actor_id=admin, days=90, ip="198.51.100.7")
        details = (await s.exec(select(AuditEvent.detail).where(AuditEvent.action == "policy_changed"))).all()
    assert details == ["chat_retention_days=90"]


async def test_chats_are_deleted_in_batches(scope, make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """More chats than a batch: all old ones go over several transactions, the counts add up."""
    monkeypatch.setattr(retention, "CHAT_BATCH", 3)
    anna = await _user(scope, "anna@example.com")
    for n in range(7):
        await _chat(scope, anna, 40, f"old {n}")
    await _chat(scope, anna, 1, "new")
    report = await retention.run(scope=scope, settings=make_settings(chat_retention_days=30))
    assert (report.chats, report.messages) == (7, 14)
    assert await _titles(scope) == {"new"}


async def test_old_audit_usage_and_finished_deliveries_go(scope, make_settings, monkeypatch) -> None:
    """Audit after AUDIT_RETENTION_DAYS, usage after USAGE_RETENTION_DAYS, webhook deliveries after theirs —
    but a delivery still waiting to be sent stays, whatever its age."""
    monkeypatch.setattr(retention, "ROW_BATCH", 2)
    anna = await _user(scope, "anna@example.com")
    now = utcnow()
    async with scope() as s:
        for age in (400, 380, 10):
            await make_audit_event(s, action="sign_in", ok=True, email=f"{age}@example.com", age=age * DAY)
        s.add_all([UsageRecord(user_id=anna, created_at=now - age * DAY) for age in (500, 450, 100)])
        hook = WebhookEndpoint(user_id=anna, url="https://hooks.example.com/x", secret="s")
        s.add(hook)
        await s.flush()
        assert hook.id is not None
        for n, (age, status) in enumerate([(40, "succeeded"), (40, "failed"), (40, "pending"), (5, "succeeded")]):
            s.add(WebhookDelivery(endpoint_id=hook.id, event_id=f"msg_{n}", event_type="x", payload="{}",
                                  status=status, created_at=now - age * DAY))  # fmt: skip
    settings = make_settings(audit_retention_days=365, usage_retention_days=400, webhook_delivery_retention_days=30)
    report = await retention.run(scope=scope, settings=settings)
    assert (report.audit, report.usage, report.webhook_deliveries) == (2, 2, 2)
    async with scope() as s:
        emails = (await s.exec(select(AuditEvent.email).where(col(AuditEvent.email).is_not(None)))).all()
        statuses = sorted((await s.exec(select(WebhookDelivery.status))).all())
    assert emails == ["10@example.com"]
    assert statuses == ["pending", "succeeded"]
    assert await _count(scope, UsageRecord) == 1


async def test_one_run_at_a_time_in_process(scope, make_settings) -> None:
    """Without Redis a second run while one is going on is refused (Busy), and a finished run is not due
    again before the interval."""
    job = RetentionJob(make_settings(retention_interval_minutes=60), None, scope)
    await _user(scope, "anna@example.com")
    first = asyncio.create_task(job.run_now())
    await asyncio.sleep(0)
    with pytest.raises(Busy):
        await job.run_now()
    await first
    assert await job.run_if_due() is None  # ran just now
    async with scope() as s:
        runs = (await s.exec(select(func.count()).where(AuditEvent.action == "retention_run"))).one()
    assert runs == 1


async def test_one_worker_at_a_time_with_redis(scope, make_settings, redis_url: str) -> None:
    """Two workers sharing Redis: while one holds the lock the other's run is refused; after it, it may run."""
    settings = make_settings(redis_url=redis_url)
    stores = [RedisStore(redis_url), RedisStore(redis_url)]
    one, two = (RetentionJob(settings, store, scope) for store in stores)
    try:
        async with one._lock.held() as ours:  # worker one is in the middle of a run
            assert ours
            with pytest.raises(Busy):
                await two.run_now()
        assert (await two.run_now()).chats == 0
    finally:
        for store in stores:
            await store.close()


async def test_an_unknown_user_cannot_choose(scope, make_settings) -> None:
    """The choice lives on the user row: a user id that does not exist is refused."""
    with pytest.raises(InputError, match="account_not_found"):
        async with scope() as s:
            await retention.set_user_days(session=s, settings=make_settings(), user_id=99999, days=7)
