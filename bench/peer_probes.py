"""Browser-side probes for the side-by-side bench: the same JS for both apps, told apart by a few selectors.

Nothing here depends on the shape of an app's websocket frames: every moment is read from the page's DOM
(browser clock, performance.now()).
  - send: the Enter keydown (capture phase) or the scripted click on the send button;
  - first token: the newest answer element (not the one there before the send) shows the stand-in's "Echo:";
  - done: the app's own "finished" state in the DOM (Rubin: no stop button, no streaming bubble, one more
    completed answer; Open WebUI: no Stop button, the new answer has its finished-message buttons);
  - open: the newest answer of a seeded chat shows its marker;
  - long frames: PerformanceObserver longtask entries and gaps between requestAnimationFrame callbacks.
"""

from __future__ import annotations

import json

MARKER = "BENCH-LAST-ANSWER"

RUBIN = {
    "answer": "[data-testid=streaming-answer], [data-testid=assistant-message]",
    "done": "!document.querySelector('[data-testid=stop]') && !document.querySelector('[data-testid=streaming-answer]')"
    " && document.querySelectorAll('[data-testid=assistant-message][data-status=complete]').length > P.completeBefore",
    "send_button": "[data-testid=send]",
    "composer": "[data-testid=composer]",
    "scroller": "#rubin-scroll",
    "older_item": "[data-testid=user-message]",
}
OWUI = {
    "answer": ".chat-assistant",
    "done": "!document.querySelector('button[aria-label=Stop]') && P.lastAnswer() !== P.prev && !!P.lastAnswer()"
    " && !!P.lastAnswer().closest('[id^=message-]')?.querySelector('button[aria-label=Copy]')",
    "send_button": "#send-message-button",
    "composer": "#chat-input",
    "scroller": "#messages-container",
    "older_item": ".chat-user",
}

PROBE = r"""
(() => {
  const C = __CFG__, MARKER = __MARKER__;
  const P = window.__peer = {sendAt: null, firstAt: null, doneAt: null, openAt: null, sendEpoch: null,
    doneEpoch: null, firstEpoch: null, prev: null, prevText: '', completeBefore: 0, pending: false,
    longtasks: [], gaps: []};
  P.lastAnswer = () => { const a = document.querySelectorAll(C.answer); return a[a.length - 1] || null; };
  P.isDone = () => { try { return !!(__DONE__); } catch (e) { return false; } };
  P.arm = () => {
    P.prev = P.lastAnswer();
    P.prevText = P.prev ? P.prev.textContent : '';
    P.completeBefore = document.querySelectorAll('[data-testid=assistant-message][data-status=complete]').length;
    P.sendAt = P.firstAt = P.doneAt = P.sendEpoch = P.doneEpoch = P.firstEpoch = P.doneSeen = null;
    P.failed = false;
    P.pending = true;
  };
  P.check = () => {
    if (!P.pending || P.sendAt === null) return;
    const now = performance.now();
    if (P.firstAt === null) {
      const el = P.lastAnswer();
      // A new answer element, or the old one with new text (a list that reuses its last node).
      if (el && el.textContent.includes('Echo:') && (el !== P.prev || el.textContent !== P.prevText)) {
        P.firstAt = now; P.firstEpoch = Date.now();
      }
    }
    // Done once the text is in the page (Open WebUI can show a short answer's finished buttons first); finished
    // for 3 s with no answer text at all is a failed answer (e.g. an error shown in its place).
    const done = P.isDone();
    if (done && P.firstAt === null) P.doneSeen = P.doneSeen ?? now;
    if (done && (P.firstAt !== null || now - P.doneSeen > 3000)) {
      P.failed = P.firstAt === null; P.doneAt = now; P.doneEpoch = Date.now(); P.pending = false;
    }
  };
  P.markSend = () => { if (P.pending && P.sendAt === null) { P.sendAt = performance.now(); P.sendEpoch = Date.now(); } };
  P.sendAtEpoch = (epoch) => new Promise((resolve) => {
    P.arm();
    setTimeout(() => { P.markSend(); document.querySelector(C.send_button).click(); resolve(P.sendEpoch); },
               Math.max(0, epoch - Date.now()));
  });
  window.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) P.markSend(); }, true);
  const start = () => {
    new MutationObserver(P.check).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
    setInterval(() => { if (P.pending) P.check(); }, 50);
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
  if (location.pathname.startsWith('/c/')) (function watchOpen() {  // a chat opened by URL: until its marker shows
    const el = P.lastAnswer();
    if (el && el.textContent.includes(MARKER)) P.openAt = performance.now();
    else if (performance.now() < 120000) requestAnimationFrame(watchOpen);
  })();
  try {
    new PerformanceObserver((list) => { for (const e of list.getEntries()) P.longtasks.push([e.startTime, e.duration]); })
      .observe({type: 'longtask', buffered: true});
  } catch (e) {}
  P.scrollUp = async (pages, settle) => {
    const box = () => document.querySelector(C.scroller);
    const count = () => document.querySelectorAll(C.older_item).length;
    const t0 = performance.now(), gaps = [], times = [];
    let last = t0, recording = true;
    (function frame(t) { if (!recording) return; gaps.push(t - last); last = t; requestAnimationFrame(frame); })(t0);
    await new Promise((r) => requestAnimationFrame(r));
    for (let i = 0; i < pages; i++) {
      const n = count(), s = performance.now();
      box().dispatchEvent(new WheelEvent('wheel', {bubbles: true, deltaY: -800}));
      box().scrollTop = 0;
      while (count() <= n) {
        if (performance.now() - s > 20000) { recording = false; return {error: 'an older page did not arrive'}; }
        await new Promise((r) => requestAnimationFrame(r));
      }
      times.push(performance.now() - s);
      await new Promise((r) => setTimeout(r, settle));
    }
    recording = false;
    const t1 = performance.now();
    const tasks = P.longtasks.filter(([s, d]) => s + d > t0 && s < t1);
    const tbt = tasks.reduce((sum, [, d]) => sum + Math.max(0, d - 50), 0);
    const longestTask = tasks.reduce((m, [, d]) => Math.max(m, d), 0);
    return {times, tbt, longestTask, longestFrame: Math.max(...gaps.slice(1)), items: count()};
  };
})();
"""


def probe_js(cfg: dict[str, str]) -> str:
    """The init script for one app's pages."""
    data = {k: v for k, v in cfg.items() if k != "done"}
    return (
        PROBE.replace("__CFG__", json.dumps(data))
        .replace("__MARKER__", json.dumps(MARKER))
        .replace("__DONE__", cfg["done"])
    )
