"""The chat page's stored tab state (Redis, or DATA_DIR/.states) holds no chat text in clear."""

from __future__ import annotations

from pathlib import Path

import pytest

from rubin_app import config
from rubin_app.state.chat import ChatState
from rubin_app.state.chat.common import ChatItem, MsgView
from rubin_app.vault.service import reset_vault

MARKER = "Ящерица-marker-7Q2"


@pytest.fixture
def keys_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def use(**env: str) -> None:
        monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        config.get_settings.cache_clear()
        reset_vault()

    yield use
    config.get_settings.cache_clear()
    reset_vault()


def _state() -> ChatState:
    state = ChatState(_reflex_internal_init=True)  # type: ignore[call-arg]
    state.messages = [MsgView(id=1, role="user", content=f"question {MARKER}")]
    state.tail = [MsgView(id=2, role="assistant", content=f"answer {MARKER}")]
    state.title = f"title {MARKER}"
    state.chats = [ChatItem(id="c1", title=f"listed {MARKER}")]
    state.edit_text = f"draft {MARKER}"
    state._asked = f"being sent {MARKER}"  # the question of the exchange the page shows as pending
    return state


def test_the_stored_state_is_sealed_and_comes_back_whole(keys_in) -> None:  # type: ignore[no-untyped-def]
    keys_in()
    blob = _state()._serialize()
    assert MARKER.encode() not in blob and b"question" not in blob
    back = ChatState._deserialize(blob)
    assert isinstance(back, ChatState)
    assert back.messages[0].content == f"question {MARKER}" and back.tail[0].content == f"answer {MARKER}"
    assert (back.title, back.chats[0].title, back.edit_text, back._asked) == (
        f"title {MARKER}",
        f"listed {MARKER}",
        f"draft {MARKER}",
        f"being sent {MARKER}",
    )


def test_a_state_sealed_under_another_key_starts_empty_instead_of_failing(keys_in) -> None:  # type: ignore[no-untyped-def]
    keys_in()
    blob = _state()._serialize()
    keys_in(ENCRYPTION_KEY="A" * 43 + "=")  # another key: the page reloads the chat from the database
    back = ChatState._deserialize(blob)
    assert isinstance(back, ChatState) and back.messages == [] and back.title == ""


def test_with_encryption_off_the_state_is_stored_as_reflex_does(keys_in) -> None:  # type: ignore[no-untyped-def]
    keys_in(ENCRYPTION_AT_REST="false")
    assert MARKER.encode() in _state()._serialize()


def test_a_two_factor_secret_being_set_up_is_sealed_too(keys_in) -> None:  # type: ignore[no-untyped-def]
    from rubin_app.state.two_factor import TwoFactorState

    keys_in()
    state = TwoFactorState(_reflex_internal_init=True)  # type: ignore[call-arg]
    state.tf_secret, state.tf_codes = "JBSWY3DPEHPK3PXP", ["abcd-efgh-jkmn"]
    blob = state._serialize()
    assert b"JBSWY3DPEHPK3PXP" not in blob and b"abcd-efgh-jkmn" not in blob
    back = TwoFactorState._deserialize(blob)
    assert isinstance(back, TwoFactorState) and (back.tf_secret, back.tf_codes) == (
        "JBSWY3DPEHPK3PXP",
        ["abcd-efgh-jkmn"],
    )


def test_the_personal_states_are_sealed_too(keys_in) -> None:  # type: ignore[no-untyped-def]
    from rubin_app.state.assistants import AssistantsState
    from rubin_app.state.personal import PersonalState

    keys_in()
    personal = PersonalState(_reflex_internal_init=True)  # type: ignore[call-arg]
    personal.about, personal.style = f"about {MARKER}", f"style {MARKER}"
    personal.memories = [{"id": "1", "text": f"memory {MARKER}"}]
    personal.undo_text = f"undo {MARKER}"
    mine = AssistantsState(_reflex_internal_init=True)  # type: ignore[call-arg]
    mine.items = [{"id": "1", "name": f"bot {MARKER}"}]
    mine.form = {"system_prompt": f"prompt {MARKER}"}
    mine.import_text = f"file {MARKER}"
    for state in (personal, mine):
        blob = state._serialize()
        assert MARKER.encode() not in blob
    back = PersonalState._deserialize(personal._serialize())
    assert isinstance(back, PersonalState) and back.memories[0]["text"] == f"memory {MARKER}"
    assert back.about == f"about {MARKER}"
    again = AssistantsState._deserialize(mine._serialize())
    assert isinstance(again, AssistantsState) and again.form["system_prompt"] == f"prompt {MARKER}"
