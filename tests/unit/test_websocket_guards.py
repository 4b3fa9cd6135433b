"""The websocket's pure parts: the rate gate's limits and memory, log redaction, tab keys, streamed text."""

from __future__ import annotations

import json
import logging
import time

from rubin_app.state.chat.common import push_js
from rubin_app.state.log_redaction import RedactSecrets, redact
from rubin_app.state.rate_gate import OPEN_WINDOW, RateGate
from rubin_app.state.socket import is_anonymous, session_tail, tab_key

SESSION = "ab" * 32  # a session token's SHA-256 (hex)


def test_tab_keys_bind_the_token_to_the_session() -> None:
    token = "0b6b1c7e-2f1d-4c55-9a39-5d6f7f3f2e10"
    signed_in, signed_out = tab_key(token, SESSION), tab_key(token, "")
    assert signed_in != signed_out != token
    assert tab_key(token, SESSION) == signed_in  # a reload finds its state
    assert signed_in.endswith(session_tail(SESSION)) and not is_anonymous(signed_in)
    assert is_anonymous(signed_out)
    assert tab_key(signed_in, "") != signed_in  # presenting a key as a token leads elsewhere
    assert "_" not in signed_in  # Reflex splits state keys at the first underscore


def test_a_tab_over_its_rate_waits_and_a_flood_is_dropped() -> None:
    gate = RateGate(events_per_second=10, connections_per_ip=0)
    waits = [gate.event_delay("tab", "user") for _ in range(50)]
    assert waits[:50] == [0.0] * 50  # the burst: 5 seconds' worth
    assert 0 < (gate.event_delay("tab", "user") or 0) <= 0.11
    for _ in range(19):
        gate.event_delay("tab", "user")
    assert gate.event_delay("tab", "user") is None  # would wait over 2 s: dropped
    assert not any(gate.note_dropped("tab") for _ in range(49))
    assert gate.note_dropped("tab")  # the 50th drop: disconnect


def test_one_users_tabs_share_a_budget_other_users_do_not() -> None:
    gate = RateGate(events_per_second=10, connections_per_ip=0)
    for tab in ("a", "b", "c", "d"):  # four tabs of one user: 200 events between them, at once
        for _ in range(50):
            gate.event_delay(tab, "mallory")
    assert (gate.event_delay("e", "mallory") or 99) > 1  # the user's shared bucket is spent
    assert gate.event_delay("f", "alice") == 0.0  # someone else is not slowed


def test_connections_per_address_are_capped_and_forgotten() -> None:
    gate = RateGate(events_per_second=0, connections_per_ip=3)
    assert [gate.open_connection("203.0.113.7") for _ in range(4)] == [True, True, True, False]
    assert gate.open_connection("203.0.113.8")  # another address is not affected
    gate.close_connection("203.0.113.7")
    assert gate.open_connection("203.0.113.7")
    for i in range(1000):  # many addresses come and go
        ip = f"198.51.{i // 250}.{i % 250}"
        gate.open_connection(ip)
        gate.close_connection(ip)
    gate._swept = 0.0
    for opened in gate._opened.values():  # an hour later nothing of them is kept
        for j in range(len(opened)):
            opened[j] -= OPEN_WINDOW + 1
    gate.close_connection("203.0.113.8")
    assert set(gate._opened) == {"203.0.113.7"}


def test_redaction_masks_cookies_tokens_and_session_hashes() -> None:
    line = (
        "Event(router_data={'headers': {'cookie': 'rubin_session=abcdefghijklmnopqrstuvwxyz0123', "
        "'x-rubin-session': 'f00d'}, 'token': 't" + "a" * 32 + "-0123456789abcdef'}) /_event/?token=zzz&EIO=4"
    )
    clean = redact(line)
    for secret in ("abcdefghijklmnopqrstuvwxyz0123", "f00d", "a" * 32, "token=zzz"):
        assert secret not in clean
    record = logging.LogRecord("reflex", logging.ERROR, __file__, 1, "seen %s", (line,), None)
    assert RedactSecrets().filter(record) and "abcdefghijklmnopqrstuvwxyz0123" not in record.getMessage()


def test_redaction_masks_a_connection_key_in_a_logged_form_event() -> None:
    line = "Event(name='add_connection', payload={'form': {'name': 'Cloud', 'api_key': 'sk-live-123 456'}})"
    clean = redact(line)
    assert "sk-live-123" not in clean and "'name': 'Cloud'" in clean and "'api_key': '[redacted]'" in clean


def test_a_lone_surrogate_in_a_streamed_piece_is_shown_not_fatal() -> None:
    script = push_js("half an emoji \ud83d then more")
    script.encode("utf-8")  # what the websocket does with it: no UnicodeEncodeError
    assert "\ufffd" in script and json.dumps("then more")[1:-1] in script


def test_the_gate_has_no_cost_when_off() -> None:
    gate = RateGate(events_per_second=0, connections_per_ip=0)
    started = time.perf_counter()
    assert all(gate.event_delay("t", "u") == 0.0 for _ in range(10_000))
    assert all(gate.open_connection("192.0.2.1") for _ in range(1_000))
    assert time.perf_counter() - started < 5
