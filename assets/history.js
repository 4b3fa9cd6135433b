// Rubin AI: long chats. A chat opens with its newest page of messages; when the reader scrolls near the
// top, the next older page is asked for (a click on the hidden #rubin-older-load button, which sends
// ChatState.load_older) and arrives with `prepend`, which adds it to the client-side list of pages
// (state/chat.py `older_pages`) and keeps the message the reader was looking at exactly where it was.
(function () {
  "use strict";

  const PAGES = "_client_state_rubinolder";
  const SET_PAGES = "_client_state_setRubinolder";
  const MESSAGE = '[data-testid="user-message"], [data-testid="assistant-message"]';
  const state = { cid: "", loading: false, timer: 0, stick: 0 };

  // History messages far from the view skip layout and paint (content-visibility), but only where the
  // browser keeps the view steady when their real height replaces the estimate (scroll anchoring);
  // elsewhere (Safari) that would make the chat jump while scrolling up.
  if (window.CSS && CSS.supports("content-visibility", "auto") && CSS.supports("overflow-anchor", "auto")) {
    const style = document.createElement("style");
    style.textContent = ".rubin-hist{content-visibility:auto;contain-intrinsic-size:auto 8rem}";
    document.head.appendChild(style);
  }

  function box() {
    return document.getElementById("rubin-scroll");
  }

  // Near the top: within one and a half screens, so the next page is usually there before it is needed.
  function nearTop(el) {
    return el.scrollTop < Math.max(600, el.clientHeight * 1.5);
  }

  function check() {
    const el = box();
    const button = document.getElementById("rubin-older-load");
    if (!el || !button || state.loading || !nearTop(el)) return;
    state.loading = true;
    clearTimeout(state.timer);
    state.timer = setTimeout(function () { state.loading = false; }, 15000); // an answer that never came
    button.click();
  }

  // The message nearest the top edge of the scroll box that is (at least partly) visible.
  function anchorOf(el) {
    const top = el.getBoundingClientRect().top;
    let best = null;
    let bestTop = Infinity;
    for (const node of el.querySelectorAll(MESSAGE)) {
      const rect = node.getBoundingClientRect();
      if (rect.bottom > top && rect.top < bestTop) {
        best = node;
        bestTop = rect.top;
      }
    }
    return best;
  }

  // The reader takes over: stop keeping the chat at the bottom.
  function reader(ev) {
    const el = box();
    if (el && ev.target instanceof Node && el.contains(ev.target)) {
      state.stick++;
      window.requestAnimationFrame(check);
    }
  }
  for (const type of ["wheel", "touchstart", "mousedown", "keydown"]) {
    document.addEventListener(type, reader, { capture: true, passive: true });
  }

  document.addEventListener(
    "scroll",
    function (ev) {
      if (ev.target && ev.target.id === "rubin-scroll") check();
    },
    { capture: true, passive: true }
  );

  window.rubinHistory = {
    // A chat was opened: no older pages; show its newest message.
    reset: function (refs, cid) {
      state.cid = cid;
      state.loading = false;
      clearTimeout(state.timer);
      if (refs[SET_PAGES]) refs[SET_PAGES]([]);
      else refs[PAGES] = [];
      // Keep to the bottom while the chat draws (the state update, the Markdown, fonts land after this
      // script runs), until the reader scrolls or for at most 2 s.
      const until = performance.now() + 2000;
      const token = ++state.stick;
      (function settle() {
        if (token !== state.stick) return;
        const el = box();
        if (el && el.querySelector(MESSAGE)) {
          el.scrollTop = el.scrollHeight;
          el.dataset.follow = "1";
        }
        if (performance.now() < until) window.requestAnimationFrame(settle);
        else check();
      })();
    },

    // The next older page (oldest first) arrived; `more` says whether still older ones exist.
    prepend: function (refs, cid, page, more) {
      if (cid !== state.cid) return; // the reader moved to another chat meanwhile
      clearTimeout(state.timer);
      const el = box();
      if (!page.length || !el || !refs[SET_PAGES]) {
        state.loading = false;
        return;
      }
      const anchor = anchorOf(el);
      const before = anchor ? anchor.getBoundingClientRect().top : 0;
      const pages = document.getElementById("rubin-older-pages");
      // Hold the anchor in place ourselves (the browser's own scroll anchoring is off meanwhile): first
      // right after React puts the page in, before the browser paints, then for a few frames while the
      // messages near the view are drawn for real and take their true height.
      el.style.overflowAnchor = "none";
      const token = ++state.stick;
      let until = 0;
      function hold() {
        if (anchor && anchor.isConnected) {
          const shift = anchor.getBoundingClientRect().top - before;
          if (Math.abs(shift) >= 0.5) el.scrollTop += shift;
        }
      }
      let added = false;
      function frame() {
        if (token === state.stick && performance.now() < until) {
          hold();
          window.requestAnimationFrame(frame);
          return;
        }
        el.style.overflowAnchor = "";
        state.loading = false;
        if (more) check();
      }
      const observer = new MutationObserver(function () {
        observer.disconnect();
        if (added) return;
        added = true;
        until = performance.now() + 600;
        hold();
        window.requestAnimationFrame(frame);
      });
      if (pages) observer.observe(pages, { childList: true, subtree: true });
      setTimeout(function () {
        if (added) return;
        observer.disconnect();
        added = true;
        frame();
      }, 1000);
      refs[SET_PAGES]((refs[PAGES] || []).concat([page]));
    },

    check: check,
  };
})();
