"""Errors through the SDK: each HTTP failure of Rubin raises its RubinError subclass with status, code, param
and Retry-After, as the server answered them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rubin_client import (
    AuthenticationError,
    BadRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    RubinClient,
    RubinConnectionError,
    RubinError,
    ServerError,
)

from tests.api.helpers import new_key
from tests.conftest import free_port
from tests.fakes.localai_standin import StandIn
from tests.sdk.conftest import Rubin


def test_another_users_conversation_is_not_found_on_every_call(rubin: Rubin) -> None:
    cid = rubin.ann.create_conversation(title="Ann's secrets").id
    bob = rubin.bob
    calls: list[Callable[[], Any]] = [
        lambda: bob.conversation(cid),
        lambda: bob.rename(cid, "mine now"),
        lambda: bob.delete(cid),
        lambda: bob.send(cid, "hi"),
        lambda: bob.stream(cid, "hi"),
        lambda: bob.regenerate(cid),
        lambda: bob.stop(cid),
    ]
    for call in calls:
        with pytest.raises(NotFound) as info:
            call()
        assert (info.value.status, info.value.code, info.value.type) == (404, "not_found", "invalid_request_error")
        assert info.value.message and str(info.value).startswith("404 not_found: ")
    assert rubin.ann.conversation(cid).title == "Ann's secrets"
    assert rubin.app.query("SELECT count(*) FROM messages") == [(0,)]


def test_a_revoked_or_unknown_key_is_an_authentication_error(rubin: Rubin) -> None:
    made = rubin.bob.create_key("laptop", ["chat", "conversations:read"])
    laptop = rubin.client(made.key)
    assert laptop.conversations().data == []
    rubin.bob.revoke_key(made.id)
    with pytest.raises(AuthenticationError) as revoked:
        laptop.conversations()
    assert (revoked.value.status, revoked.value.code) == (401, "invalid_api_key")
    with pytest.raises(AuthenticationError):
        rubin.client("rk-" + "x" * 43).keys()
    with pytest.raises(ValueError, match="API key is required"):
        RubinClient(rubin.app.url, "")


def test_a_missing_scope_is_permission_denied(rubin: Rubin) -> None:
    reader = rubin.client(new_key(rubin.app, rubin.bob_id, "conversations:read"))
    assert reader.conversations().data == []
    with pytest.raises(PermissionDenied) as info:
        reader.send(None, "hi")
    assert (info.value.status, info.value.code, info.value.param) == (403, "insufficient_scope", "chat")
    with pytest.raises(PermissionDenied):
        rubin.bob.admin_keys()
    with pytest.raises(PermissionDenied) as escalation:
        rubin.bob.create_key("root", ["admin"])
    assert escalation.value.param == "scopes"


def test_invalid_input_is_a_bad_request_with_its_param(rubin: Rubin) -> None:
    with pytest.raises(BadRequest) as empty:
        rubin.bob.send(None, "")
    assert (empty.value.status, empty.value.code, empty.value.param) == (422, "invalid_value", "content")
    with pytest.raises(BadRequest) as limit:
        rubin.bob.conversations(limit=1000)
    assert (limit.value.status, limit.value.param) == (422, "limit")
    with pytest.raises(NotFound) as model:
        rubin.bob.create_conversation(model="no-such-model")
    assert model.value.code == "model_not_found"


def test_the_users_rate_limit_is_rate_limited_with_retry_after(rubin_factory: Callable[..., Rubin]) -> None:
    bob = rubin_factory(rate_limit_rpm=2).bob
    cid = bob.send(None, "one").conversation_id
    bob.stream(cid, "two").until_done()
    for call in (lambda: bob.send(cid, "three"), lambda: bob.stream(cid, "three")):
        with pytest.raises(RateLimited) as info:
            call()
        error = info.value
        assert (error.status, error.code, error.type) == (429, "rate_limit_exceeded", "rate_limit_error")
        assert error.retry_after is not None and 1 <= error.retry_after <= 60
    assert len(bob.conversation(cid).messages) == 4  # nothing of the refused sends was saved


def test_a_keys_rate_limit_is_rate_limited_with_retry_after(rubin: Rubin) -> None:
    limited = rubin.client(new_key(rubin.app, rubin.bob_id, rpm=2))
    cid = limited.send(None, "one").conversation_id
    limited.send(cid, "two")
    with pytest.raises(RateLimited) as info:
        limited.send(cid, "three")
    assert info.value.retry_after is not None and info.value.retry_after >= 1


def test_a_failing_model_server_is_a_server_error_and_no_server_a_connection_error(
    rubin: Rubin, standin: StandIn
) -> None:
    standin.config.models = []  # the model server lists no model: Rubin has none to answer with
    with pytest.raises(ServerError) as info:
        rubin.bob.create_conversation()
    assert (info.value.status, info.value.code) == (503, "no_model")
    nobody = RubinClient(f"http://127.0.0.1:{free_port()}", "rk-test", timeout=5)
    with nobody, pytest.raises(RubinConnectionError) as down:
        nobody.conversations()
    assert down.value.status is None and down.value.code == "connection_error"
    assert isinstance(down.value, RubinError)
