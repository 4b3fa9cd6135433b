// Rubin AI browser helpers: append streamed text to client-side state, keep the chat scrolled.
(function () {
  "use strict";
  const SET_TEXT = "_client_state_setRubinstream";
  const TEXT = "_client_state_rubinstream";
  const SET_THINK = "_client_state_setRubinthink";
  const THINK = "_client_state_rubinthink";

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 160;
  }

  function scrollToBottom(force) {
    const el = document.getElementById("rubin-scroll");
    if (!el) return;
    if (force || el.dataset.follow !== "0") el.scrollTop = el.scrollHeight;
  }

  document.addEventListener(
    "scroll",
    function (ev) {
      const el = ev.target;
      if (el && el.id === "rubin-scroll") el.dataset.follow = nearBottom(el) ? "1" : "0";
    },
    true
  );

  window.rubin = {
    // Append (or, with reset, replace) the streamed answer and its reasoning.
    stream: function (refs, text, think, reset) {
      if (reset) {
        refs[TEXT] = "";
        refs[THINK] = "";
      }
      if (refs[SET_TEXT] && (text || reset)) refs[SET_TEXT]((refs[TEXT] || "") + text);
      else if (text) refs[TEXT] = (refs[TEXT] || "") + text;
      if (refs[SET_THINK] && (think || reset)) refs[SET_THINK]((refs[THINK] || "") + think);
      else if (think) refs[THINK] = (refs[THINK] || "") + think;
      window.requestAnimationFrame(function () { scrollToBottom(reset); });
    },
    scrollToBottom: scrollToBottom,
  };

  // Enter sends, Shift+Enter adds a line (never while an input method is composing).
  document.addEventListener(
    "keydown",
    function (ev) {
      const el = ev.target;
      if (!el || el.id !== "composer") return;
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing && ev.keyCode !== 229) {
        ev.preventDefault();
        if (el.form) el.form.requestSubmit();
      }
    },
    true
  );
})();
