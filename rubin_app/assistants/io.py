"""An assistant's fields, validated, and the versioned JSON file assistants are exported to and imported from.

The file: {"format": "rubin.assistants", "version": 1, "assistants": [{name, description, emoji, base_model,
system_prompt, temperature, max_tokens, context_budget, starters}, ...]}. Knowledge bases are not exported
(they belong to this instance and its users); an imported assistant has none attached.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rubin_app.services import text
from rubin_app.services.chats import InputError

FORMAT = "rubin.assistants"
VERSION = 1
MAX_FILE_BYTES = 1_000_000
MAX_IN_FILE = 100
MAX_STARTERS = 6
MAX_KNOWLEDGE = 20


def _line(value: str) -> str:
    return " ".join(w for w in (text.strip_hidden(w) for w in value.split()) if w)


class AssistantSpec(BaseModel):
    """What a user sets on an assistant (the form, the REST API and each entry of an exported file)."""

    model_config = ConfigDict(extra="forbid", str_max_length=20_000)

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)
    emoji: str = Field(default="", max_length=16)
    base_model: str = Field(min_length=1, max_length=200)
    system_prompt: str = Field(default="", max_length=20_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=200_000)
    context_budget: int | None = Field(default=None, ge=64, le=1_000_000)
    starters: list[str] = Field(default_factory=list, max_length=MAX_STARTERS)
    knowledge_ids: list[int] = Field(default_factory=list, max_length=MAX_KNOWLEDGE, exclude=True)

    @field_validator("name", "description", "emoji", "base_model", mode="before")
    @classmethod
    def _one_line(cls, value: object) -> object:
        return _line(value) if isinstance(value, str) else value

    @field_validator("system_prompt", mode="before")
    @classmethod
    def _storable(cls, value: object) -> object:
        if isinstance(value, str):
            if text.has_unstorable(value):
                raise ValueError("has characters that cannot be stored (NUL, broken surrogates)")
            return text.strip_controls(value).strip()
        return value

    @field_validator("starters", mode="after")
    @classmethod
    def _starters(cls, value: list[str]) -> list[str]:
        cleaned = [_line(s) for s in value]
        if any(len(s) > 300 for s in cleaned):
            raise ValueError("a starter prompt is at most 300 characters")
        return [s for s in cleaned if s]

    @field_validator("knowledge_ids", mode="after")
    @classmethod
    def _knowledge(cls, value: list[int]) -> list[int]:
        return sorted({i for i in value if i > 0})


def spec_of(fields: dict[str, Any]) -> AssistantSpec:
    """Validated fields, or InputError("bad_assistant", field=..., reason=...) naming the first bad one."""
    try:
        return AssistantSpec.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "assistant"
        raise InputError("bad_assistant", field=field, reason=str(first["msg"])) from None


def export_document(specs: list[AssistantSpec]) -> dict[str, Any]:
    """The JSON document of these assistants."""
    return {"format": FORMAT, "version": VERSION, "assistants": [s.model_dump() for s in specs]}


def dumps(specs: list[AssistantSpec]) -> str:
    """The exported file's text."""
    return json.dumps(export_document(specs), ensure_ascii=False, indent=2)


def parse_document(raw: str | bytes) -> list[AssistantSpec]:
    """The assistants of an exported file; InputError("bad_assistant_file", reason=...) for anything else.

    Nothing is partly accepted: one bad entry refuses the file (and says which)."""
    if len(raw) > MAX_FILE_BYTES:
        raise InputError("bad_assistant_file", reason=f"over {MAX_FILE_BYTES // 1000} kB")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputError("bad_assistant_file", reason="not JSON") from None
    if isinstance(doc, dict) and "format" not in doc and "name" in doc:
        doc = {"format": FORMAT, "version": VERSION, "assistants": [doc]}  # one assistant's object alone
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError("bad_assistant_file", reason=f'not a "{FORMAT}" file')
    if doc.get("version") != VERSION:
        raise InputError("bad_assistant_file", reason=f"version {doc.get('version')!r} (this Rubin reads {VERSION})")
    entries = doc.get("assistants")
    if not isinstance(entries, list) or not entries:
        raise InputError("bad_assistant_file", reason="no assistants in it")
    if len(entries) > MAX_IN_FILE:
        raise InputError("bad_assistant_file", reason=f"more than {MAX_IN_FILE} assistants")
    specs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError("bad_assistant_file", reason=f"assistants.{index} is not an object")
        entry = {k: v for k, v in entry.items() if k != "knowledge_ids"}
        try:
            specs.append(AssistantSpec.model_validate(entry))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise InputError("bad_assistant_file", reason=f"assistants.{index}.{where}: {first['msg']}") from None
    return specs
