"""The streamed-text operations (rubin_app/state/stream_channel.py) and what assets/stream.js assumes of them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from rubin_app.state import stream_channel
from rubin_app.state.chat.common import MsgView

STREAM_JS = (Path(__file__).resolve().parents[2] / "assets" / "stream.js").read_text()


def test_pieces_carry_their_code_point_offsets_and_a_reset_first() -> None:
    ops = stream_channel.pieces("Ёж 🦔", "думаю", 12, 3, reset=True)
    assert ops == ["x", "t12|Ёж 🦔", "r3|думаю"]
    assert stream_channel.pieces("", "", 5, 5) == []


def test_a_lone_surrogate_goes_out_as_a_replacement_character() -> None:
    assert stream_channel.text_op(0, "a\ud800b") == "t0|a\ufffdb"


def test_the_kept_answer_says_its_length() -> None:
    assert stream_channel.keep_op(42, 3919) == "d42:3919"


def test_a_folded_exchange_is_named_by_its_ids_and_the_page_knows_every_view_field() -> None:
    assert stream_channel.fold_op([7, 8]) == "f7,8"
    block = re.search(r"const VIEW = \{(.*?)\};", STREAM_JS, re.S)
    assert block, "assets/stream.js has no VIEW template"
    page_fields = set(re.findall(r"(\w+):", block.group(1)))
    assert page_fields == {f.name for f in dataclasses.fields(MsgView)}, "stream.js VIEW and MsgView differ"


def test_the_page_reads_the_event_the_server_emits() -> None:
    assert f'\\["{stream_channel.EVENT}",' in STREAM_JS


def test_the_page_knows_the_send_event_it_shows_as_pending() -> None:
    from rubin_app.state.chat import ChatState

    event = re.search(r'const SEND_EVENT = "([^"]+)"', STREAM_JS)
    assert event, "assets/stream.js names no send event"
    assert f"{ChatState.get_full_name()}.send".endswith(event.group(1))
    assert f'op[0] === "{stream_channel.UNPEND}"' in STREAM_JS
    from rubin_app.state.chat.common import PENDING_ANSWER, PENDING_QUESTION

    assert f'id: {PENDING_QUESTION}, role: "user"' in STREAM_JS
    assert f'id: {PENDING_ANSWER}, role: "assistant"' in STREAM_JS


def test_a_refused_send_drops_only_its_own_pending_question() -> None:
    from rubin_app.state.chat.common import unpend_js

    assert unpend_js('Ёж "🦔"') == 'window.rubinStream&&window.rubinStream.unpend(refs,"Ёж \\"🦔\\"")'
    assert unpend_js() == "window.rubinStream&&window.rubinStream.unpend(refs)"


def test_a_view_leaves_its_default_fields_out_and_the_page_fills_in_every_list_of_views() -> None:
    from reflex_base.utils.serializers import serialize

    from rubin_app.state.chat import ChatState

    view = MsgView(id=4, role="assistant", status="complete", kept=True, stats="3.2 s")
    assert serialize(view) == {"id": 4, "role": "assistant", "status": "complete", "stats": "3.2 s", "kept": True}
    assert serialize(MsgView()) == {"id": 0}
    lists = set(re.findall(r'"(\w+)_rx_state_"', re.search(r"const VIEW_LISTS = \[(.*?)\];", STREAM_JS).group(1)))
    views = {name for name, field in ChatState.get_fields().items() if "MsgView" in str(field.outer_type_)}
    assert views and views == lists, "every ChatState list of views must be filled in by assets/stream.js"
