"""Safe Markdown for model output: no raw HTML, links open in a new tab without opener.

The renderer (react-markdown, GFM, the code highlighter) is loaded on demand, not with the page: `LazyMarkdown`
imports it the first time a message is drawn, or ahead of that when a chat is opened by its address or the
user starts typing (docs/performance.md, "First load").
"""

from __future__ import annotations

import reflex as rx
from reflex.utils.imports import ImportDict, ImportVar
from reflex.vars.base import Var


def _link(text: Var, **props) -> rx.Component:
    return rx.link(text, is_external=True, rel="noopener noreferrer nofollow", **props)


def _code_block(text: Var, **props) -> rx.Component:
    return rx.code_block(text, can_copy=True, wrap_long_lines=False, margin_y="0.5em", font_size="0.85em", **props)


COMPONENT_MAP = {"a": _link, "pre": _code_block}


def markdown(source: Var | str, **props) -> rx.Component:
    """Render Markdown (GFM tables, lists, code) without executing HTML from the text."""
    return rx.markdown(
        source,
        component_map=COMPONENT_MAP,
        use_raw=False,
        use_math=False,
        use_katex=False,
        class_name="rubin-md",
        **props,
    )


@rx.memo
def finished_markdown(source: rx.Var[str]) -> rx.Component:
    """Markdown of a text (React-memoised: parsed again only when the text changes, not on every update of the
    page, e.g. when the next question is sent below the last answer). Its module is what LazyMarkdown loads."""
    return markdown(source)


_RENDERER = finished_markdown(source="")  # where the memo's module is and what it exports
# One loader for the whole page (every module that draws Markdown defines this code, they share `globalThis`):
# the renderer's module is imported once; a message drawn before it is in shows its text as it is (pre-wrap),
# then the Markdown. Chats opened by address and the first key or pointer press start the import ahead.
_LOADER = f"""
const rubinMd = (globalThis.__rubinMd ??= {{mod: null, load: null}});
function rubinMdLoad() {{
  rubinMd.load ??= import("{_RENDERER.library}").then((m) => (rubinMd.mod = m.{_RENDERER.tag}));
  return rubinMd.load;
}}
if (typeof window !== "undefined" && !rubinMd.armed) {{
  rubinMd.armed = true;
  if (location.pathname.startsWith("/c/")) rubinMdLoad();
  const opts = {{once: true, capture: true}};
  for (const type of ["keydown", "pointerdown"]) window.addEventListener(type, rubinMdLoad, opts);
}}
function RubinMarkdown({{source}}) {{
  const [Mod, setMod] = useState(() => rubinMd.mod);
  useEffect(() => {{ if (!Mod) rubinMdLoad().then((m) => setMod(() => m)); }}, []);
  return Mod ? jsx(Mod, {{source}}) : jsx("div", {{className: "rubin-md rubin-md-plain"}}, source);
}}
"""


class LazyMarkdown(rx.Component):
    """Markdown drawn by the renderer loaded on demand (the text as it is until then)."""

    tag = "RubinMarkdown"

    source: Var[str]

    def add_imports(self) -> ImportDict:
        """React's hooks and the JSX factory the loader uses."""
        hooks = [ImportVar(tag="useState"), ImportVar(tag="useEffect")]
        return {"react": hooks, "@emotion/react": [ImportVar(tag="jsx")]}

    def add_custom_code(self) -> list[str]:
        """The shared loader and the component."""
        return [_LOADER]


def lazy_markdown(source: Var | str) -> rx.Component:
    """Markdown whose renderer is loaded when first needed (the page's first load does not carry it)."""
    return LazyMarkdown.create(source=source)
