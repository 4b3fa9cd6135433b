"""API keys and usage through the SDK: create, list, use, revoke; the user's and the admin's usage reports."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from rubin_client import ApiKey, CreatedKey, UsageReport

from tests.sdk.conftest import Rubin


def test_a_key_is_created_listed_used_and_revoked(rubin: Rubin) -> None:
    bob = rubin.bob
    made = bob.create_key("laptop", ["chat", "conversations:read", "conversations:write"], 7, requests_per_minute=30)
    assert isinstance(made, CreatedKey) and made.key.startswith("rk-") and made.key.startswith(made.prefix)
    assert made.key not in repr(made)  # the secret stays out of logs
    assert made.scopes == ("chat", "conversations:read", "conversations:write") and made.active
    assert made.requests_per_minute == 30 and made.tokens_per_day is None and made.revoked_at is None
    assert made.expires_at is not None
    assert abs(made.expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)

    listed = bob.keys()
    assert all(isinstance(k, ApiKey) and not isinstance(k, CreatedKey) for k in listed)
    assert {k.name for k in listed} == {"test", "laptop"}

    laptop = rubin.client(made.key)
    exchange = laptop.send(None, "from the laptop")
    assert exchange.answer.status == "complete"
    deadline = time.monotonic() + 5
    while True:  # the key's use is recorded in the background
        [used] = [k for k in bob.keys() if k.id == made.id]  # noqa: SIM118 (a list of API keys, not dict.keys())
        if used.last_used_at is not None or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert used.last_used_at is not None and used.last_used_ip == "127.0.0.1"

    revoked = bob.revoke_key(made.id)
    assert revoked.id == made.id and revoked.revoked_at is not None and not revoked.active
    assert [k.revoked_at is not None for k in bob.keys() if k.id == made.id] == [True]  # noqa: SIM118

    default = bob.create_key("defaults")
    assert default.scopes == ("chat", "conversations:read", "conversations:write") and default.expires_at is None
    everyone = rubin.ann.admin_keys()
    assert {k.owner_email for k in everyone} == {"ann@example.com", "bob@example.com"}
    assert rubin.ann.admin_revoke_key(default.id).revoked_at is not None


# rubin_app/usage/service.py calls AsyncSession.execute(), which sqlmodel 0.0.50 deprecates; with the suite's
# `filterwarnings = error` the server's usage routes then answer 500 (a bug of the app, reported, not fixed here).
# Warning filters are process-wide, so this also lets the server thread through while this test runs.
@pytest.mark.filterwarnings(r"ignore:(?s).*You probably want to use `session\.exec\(\)`:DeprecationWarning")
def test_usage_reports_the_users_answers_and_the_admin_sees_everyones(rubin: Rubin) -> None:
    bob = rubin.bob
    cid = bob.send(None, "hi").conversation_id
    bob.stream(cid, "hello").until_done()
    report = bob.usage(by="source")
    deadline = time.monotonic() + 5
    while not (report.data and report.data[0].requests == 2) and time.monotonic() < deadline:
        time.sleep(0.1)  # usage is written in batches
        report = bob.usage(by="source")
    assert isinstance(report, UsageReport) and (report.days, report.by) == (30, "source")
    [row] = report.data
    assert (row.group, row.requests, row.completion_tokens, row.cached, row.failed) == ("rest", 2, 40, 0, 0)
    assert row.total_tokens == row.prompt_tokens + row.completion_tokens and row.prompt_tokens > 0

    by_day = bob.usage(days=1)
    assert by_day.days == 1 and sum(r.requests for r in by_day.data) == 2
    assert rubin.ann.usage().data == []  # ann's own usage: none
    by_user = rubin.ann.admin_usage(days=7, by="user")
    assert by_user.by == "user" and [r.requests for r in by_user.data] == [2]
