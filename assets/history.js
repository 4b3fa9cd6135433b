// Rubin AI: long chats. A chat opens with its newest page of messages; when the reader scrolls near the
// top, the next older page is asked for (a click on the hidden #rubin-older-load button, which sends
// ChatState.load_older) and arrives with `prepend`, which adds it to the client-side list of pages
// (state/chat/common.py `older_pages`) a slice per frame, and keeps the message the reader was looking at
// exactly where it was.
(function () {
  "use strict";

  const PAGES = "_client_state_rubinolder";
  const SET_PAGES = "_client_state_setRubinolder";
  const MESSAGE = '[data-testid="user-message"], [data-testid="assistant-message"]';
  // `shown` counts the chats opened in this tab: a page being put in stops when another opening starts.
  const state = { cid: "", shown: 0, loading: false, timer: 0, stick: 0, slice: 2, perMessage: 8 };
  const SLICE_MS = 16; // a slice of an older page should take about this long to draw
  const SLICE_MAX = 10;

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

  // The message nearest the top edge of the scroll box that is (at least partly) visible. History
  // messages are measured by their wrapper (.rubin-hist): the box of an element inside a far-off wrapper is
  // not laid out (content-visibility), and asking for it would make the browser lay out every one of them.
  const CANDIDATES = '.rubin-hist, :is(' + MESSAGE + '):not(.rubin-hist *)';
  function anchorOf(el) {
    const top = el.getBoundingClientRect().top;
    let best = null;
    let bestTop = Infinity;
    for (const node of el.querySelectorAll(CANDIDATES)) {
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
      state.shown++;
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

    // The next older page (oldest first) arrived; `more` says whether still older ones exist. It goes in
    // in slices, newest first (nearest the view), one slice per frame, each sized to take about SLICE_MS
    // to draw (measured as it goes): so no frame stalls the scrolling reader, however big the page.
    prepend: function (refs, cid, page, more) {
      if (cid !== state.cid) return; // the reader moved to another chat meanwhile
      clearTimeout(state.timer);
      const el = box();
      if (!page.length || !el || !refs[SET_PAGES]) {
        state.loading = false;
        return;
      }
      const anchor = anchorOf(el);
      let before = anchor ? anchor.getBoundingClientRect().top : 0;
      const shown = state.shown;
      // Hold the anchor in place ourselves (the browser's own scroll anchoring is off meanwhile): right
      // after React puts each slice in, before the browser paints, then for a few frames while the
      // messages near the view are drawn for real and take their true height. Where the reader scrolls
      // meanwhile, the anchor is held where the scrolling took it (`before` follows each scroll).
      el.style.overflowAnchor = "none";
      const token = ++state.stick;
      let ours = el.scrollTop; // where we last put the view: a scroll elsewhere is the reader's
      function hold() {
        if (!anchor || !anchor.isConnected) return;
        const shift = anchor.getBoundingClientRect().top - before;
        if (Math.abs(shift) >= 0.5) el.scrollTop += shift;
        ours = el.scrollTop;
      }
      function scrolled() {
        if (Math.abs(el.scrollTop - ours) < 1 || !anchor || !anchor.isConnected) return;
        before = anchor.getBoundingClientRect().top;
        ours = el.scrollTop;
      }
      el.addEventListener("scroll", scrolled, { passive: true });
      const pages = document.getElementById("rubin-older-pages");
      let drawn = 0; // when React last put something in
      const observer = new MutationObserver(function (records) {
        if (pages && records.some((r) => pages.contains(r.target))) drawn = performance.now();
        hold(); // (this makes the browser lay the page out now: not counted in the slice's cost)
      });
      // Messages near the view take their true height (content-visibility) in the browser's layout, after
      // requestAnimationFrame: hold there too, before that frame is painted.
      const resized = window.ResizeObserver ? new ResizeObserver(hold) : null;
      // (The whole chat is watched: the "Loading earlier messages" row above goes with the last page.)
      observer.observe(el, { childList: true, subtree: true });
      if (pages && resized) resized.observe(pages);
      const rest = page.slice();
      let until = 0;
      function settle() {
        if (token === state.stick && shown === state.shown && performance.now() < until) {
          hold();
          window.requestAnimationFrame(settle);
          return;
        }
        observer.disconnect();
        if (resized) resized.disconnect();
        el.removeEventListener("scroll", scrolled);
        el.style.overflowAnchor = "";
        if (shown !== state.shown) return;
        state.loading = false;
        if (more) check();
      }
      function next() {
        if (shown !== state.shown || !rest.length) {
          until = performance.now() + 600;
          settle();
          return;
        }
        const slice = rest.splice(Math.max(0, rest.length - state.slice), state.slice);
        const asked = performance.now();
        drawn = 0;
        refs[SET_PAGES]((refs[PAGES] || []).concat([slice]));
        // React draws it in a task of its own; once it is in (or after a frame without it), size the
        // next slice from what this one cost, and go on after the browser has painted.
        window.requestAnimationFrame(function () {
          if (drawn) state.perMessage = 0.5 * state.perMessage + (0.5 * (drawn - asked)) / slice.length;
          const fits = Math.floor(SLICE_MS / Math.max(0.1, state.perMessage));
          state.slice = Math.max(1, Math.min(SLICE_MAX, 2 * state.slice, fits)); // grows at most twofold
          hold();
          setTimeout(next, 0);
        });
      }
      next();
    },

    check: check,
    // What a message of history costs to draw (ms, a running estimate) and the slice size it gives.
    cost: function () {
      return { perMessage: state.perMessage, slice: state.slice };
    },
  };
})();
