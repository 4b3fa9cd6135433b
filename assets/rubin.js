// Rubin AI browser helpers: the theme before the first paint, streamed text into client-side state,
// the chat kept scrolled, hotkeys. Loaded by a plain <script> in <head>, so the first part runs before
// the page is drawn.
(function () {
  "use strict";

  // No flash of the wrong theme: apply the saved choice (Reflex keeps it in localStorage "theme") now,
  // not after React starts. Reflex's provider then takes over with the same value.
  (function applyTheme() {
    let mode = "system";
    try {
      mode = (localStorage.getItem("theme") || "system").replace(/"/g, "");
    } catch (e) { /* storage blocked: follow the system */ }
    const dark = mode === "dark" || (mode !== "light" && window.matchMedia("(prefers-color-scheme: dark)").matches);
    const root = document.documentElement;
    root.classList.remove("light", "dark");
    root.classList.add(dark ? "dark" : "light");
    root.style.colorScheme = dark ? "dark" : "light";
    try {
      if (localStorage.getItem("rubin_sidebar") === "hidden") root.dataset.sidebar = "hidden";
    } catch (e) { /* ignore */ }
  })();
  // The chat a tab shows is in its address (/c/<id>), which the app also sets with history.replaceState (a new chat
  // gets its address mid-answer). React Router does not see such a change, so after a reconnect (a restart, a worker
  // that died) the page would be loaded for the address it was opened with. The real path is kept per tab in
  // sessionStorage, which Reflex sends with every (re)connect (ChatState.tab_path).
  (function keepPath() {
    const save = function () {
      try { sessionStorage.setItem("rubin_path", location.pathname); } catch (e) { /* storage blocked */ }
    };
    ["pushState", "replaceState"].forEach(function (name) {
      const original = history[name];
      history[name] = function () {
        const result = original.apply(this, arguments);
        save();
        return result;
      };
    });
    window.addEventListener("popstate", save);
    save();
  })();
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
    // Append (or, with reset, replace) the streamed answer and its reasoning (assets/stream.js keeps it).
    stream: function (refs, text, think, reset) {
      window.rubinStream.push(refs, text, think, reset);
    },
    scrollToBottom: scrollToBottom,
  };

  function sendWithCtrl() {
    try {
      return (localStorage.getItem("rubin_send_key") || "").replace(/"/g, "") === "ctrl";
    } catch (e) {
      return false;
    }
  }

  function byTestId(id, within) {
    return (within || document).querySelector('[data-testid="' + id + '"]');
  }

  function visible(el) {
    return !!el && el.offsetParent !== null;
  }

  const wide = window.matchMedia("(min-width: 48em)"); // where the chat list is a column, not a drawer

  function toggleSidebar() {
    if (wide.matches) {
      const root = document.documentElement;
      const hide = root.dataset.sidebar !== "hidden";
      if (hide) root.dataset.sidebar = "hidden";
      else delete root.dataset.sidebar;
      try { localStorage.setItem("rubin_sidebar", hide ? "hidden" : "shown"); } catch (e) { /* ignore */ }
    } else {
      const button = byTestId("open-drawer");
      if (button) button.click();
    }
  }

  function searchChats() {
    const sidebar = byTestId("sidebar");
    if (wide.matches) {
      delete document.documentElement.dataset.sidebar;
      const input = sidebar && sidebar.querySelector("input");
      if (input) input.focus();
      return;
    }
    if (!byTestId("drawer")) toggleSidebar();
    let tries = 0;
    (function focusLater() {
      const drawer = byTestId("drawer");
      const input = drawer && drawer.querySelector("input");
      if (input) input.focus();
      else if (tries++ < 20) setTimeout(focusLater, 50);
    })();
  }

  function copyLastAnswer() {
    const answers = document.querySelectorAll('[data-testid="assistant-message"]');
    const last = answers[answers.length - 1];
    const button = last && byTestId("copy", last);
    if (button) button.click();
  }

  function typing(el) {
    if (!el) return false;
    const tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // "#" typed at the start of the message box or after a space opens the knowledge picker (the "#" button)
  // instead of typing the sign, when there are bases to pick; at the start of a later line (a Markdown heading,
  // a comment) or inside a word it is just a character.
  function openKnowledgePicker(box) {
    const before = box.value.slice(0, box.selectionStart || 0);
    if (before !== "" && !/[ \t]$/.test(before)) return false;
    const picker = document.getElementById("knowledge-picker");
    if (!picker || picker.getAttribute("data-bases") === "0") return false;
    picker.dispatchEvent(new PointerEvent("pointerdown", { bubbles: true, button: 0, pointerType: "mouse" }));
    return true;
  }

  function dialogOpen() {
    return !!document.querySelector('[role="dialog"], [role="alertdialog"], [role="menu"], [role="listbox"]');
  }

  // Keys in the message box: Enter sends and Shift+Enter adds a line, or (the "Ctrl+Enter" setting)
  // Ctrl/⌘+Enter sends and Enter adds a line. Never while an input method is composing.
  document.addEventListener(
    "keydown",
    function (ev) {
      const el = ev.target;
      if (!el || el.id !== "composer") return;
      if (ev.key === "#" && !ev.isComposing && openKnowledgePicker(el)) {
        ev.preventDefault();
        return;
      }
      if (ev.key !== "Enter" || ev.isComposing || ev.keyCode === 229) return;
      const mod = ev.ctrlKey || ev.metaKey;
      if (ev.shiftKey || (sendWithCtrl() && !mod)) return; // a new line
      ev.preventDefault();
      if (el.form) el.form.requestSubmit();
    },
    true
  );

  // App hotkeys (listed in the "?" dialog, rubin_app/components/prefs.py). Modified keys work anywhere;
  // bare keys ("/", "?") only when not typing in a field; Esc stops an answer unless a dialog or menu
  // is open (there Esc closes it).
  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.isComposing) return;
    const mod = ev.ctrlKey || ev.metaKey;
    const key = (ev.key || "").toLowerCase();
    let done = true;
    if (mod && ev.shiftKey && !ev.altKey && key === "o") {
      const button = byTestId("new-chat");
      if (button) button.click();
    } else if (mod && ev.shiftKey && !ev.altKey && key === "s") {
      toggleSidebar();
    } else if (mod && ev.shiftKey && !ev.altKey && key === "c") {
      copyLastAnswer();
    } else if (mod && !ev.shiftKey && !ev.altKey && key === "k") {
      searchChats();
    } else if (key === "escape" && !mod && !ev.shiftKey && !dialogOpen() && visible(byTestId("stop"))) {
      byTestId("stop").click();
    } else if (!mod && !ev.altKey && !typing(ev.target) && !dialogOpen() && ev.key === "/") {
      const box = document.getElementById("composer");
      if (box) box.focus();
    } else if (!mod && !ev.altKey && !typing(ev.target) && !dialogOpen() && ev.key === "?") {
      const opener = document.getElementById("rubin-hotkeys-open");
      if (opener) opener.click();
    } else {
      done = false;
    }
    if (done) ev.preventDefault();
  });

  window.rubin.toggleSidebar = toggleSidebar;
})();
