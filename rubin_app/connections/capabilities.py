"""What a model can do (chat, embeddings, vision, tools): guessed from its name, overridden by an admin.

OpenAI-compatible servers do not say what a model can do in `GET /v1/models` (LocalAI lists bare ids), so the
guess is by name: the families that are known to embed, to see images or to call tools. An admin's override
(stored per connection and upstream model) always wins.
"""

from __future__ import annotations

import re

CAPABILITIES = ("chat", "embeddings", "vision", "tools")
# Their names in the interface (i18n keys).
LABELS = {
    "chat": "capability_chat", "embeddings": "capability_embeddings", "vision": "capability_vision",
    "tools": "capability_tools",
}  # fmt: skip

_EMBEDDINGS = re.compile(r"embed|(^|[/_-])(bge|e5|gte|minilm|mxbai|nomic|jina-emb|arctic-embed|sentence)", re.I)
_NOT_CHAT = re.compile(r"rerank|whisper|tts|stable-?diffusion|dall-?e|flux|sdxl|piper|bark|moderation", re.I)
_VISION = re.compile(
    r"vision|llava|bakllava|(^|[/_.-])vl([/_.-]|$)|-vl-|qwen2(\.5)?-vl|pixtral|minicpm-v|moondream|gpt-4o|gpt-4\.1"
    r"|gpt-5|claude-3|claude-(sonnet|opus|haiku)-4|gemini|gemma-?3-(4|12|27)b|llama-?4|internvl|smolvlm",
    re.I,
)
_TOOLS = re.compile(
    r"gpt-(3\.5|4|5)|o[134](-mini)?($|-)|claude|gemini|mistral|mixtral|ministral|codestral|qwen2\.5|qwen-?3|qwq"
    r"|llama-?3\.[123]|llama3\.[123]|llama-?4|hermes|functionary|command-r|granite|firefunction|deepseek-(v3|chat)",
    re.I,
)


def guess(model: str) -> list[str]:
    """Capabilities a model probably has, from its name."""
    if _EMBEDDINGS.search(model):
        return ["embeddings"]
    if _NOT_CHAT.search(model):
        return []
    found = ["chat"]
    if _VISION.search(model):
        found.append("vision")
    if _TOOLS.search(model):
        found.append("tools")
    return found


def clean(values: list[str]) -> list[str]:
    """Known capability names only, in the canonical order (ValueError for an unknown one)."""
    unknown = set(values) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(sorted(unknown))}")
    return [c for c in CAPABILITIES if c in values]


def of(model: str, overrides: dict[str, list[str]]) -> list[str]:
    """The model's capabilities: the admin's override, else the guess."""
    return list(overrides[model]) if model in overrides else guess(model)
