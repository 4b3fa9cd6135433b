// Rubin AI: the streamed answer, read straight off the tab's websocket (rubin_app/state/chat/stream_channel.py).
// Loaded by a plain <script> in <head>, before the app opens its socket.
//
// The server emits socket.io event "rs" on the tab's own connection; its arguments are operations:
//   x            reset the live answer (text and reasoning)
//   t<n>|<text>  answer text starting at code point n: a tab that has more already skips the overlap, so a
//                resumed follower (reconnect, another worker) continues exactly where the text was; a piece that
//                comes ahead of the text before it waits for it
//   r<n>|<text>  reasoning, likewise
//   d<id>:<n>    the live text (n code points) is message <id>'s: kept here, because the saved answer's update does
//                not carry it
//   f<id>,<id>   the exchange leaving the tail, appended to the finished messages kept in the page: the views come
//                from the tails this page received (every Reflex frame naming the tail is read here too), so
//                the server does not send them again
//   p            the exchange shown as pending is saved: drop it (the tail now shows it)
// "d", "f" and "p" wait for the update that replaces the tail (the next Reflex frame naming it) and are applied in the
// same task, so the page never draws the answer twice or not at all.
//
// The pending exchange (the question just sent and its answer streaming in) is the page's own: when the app sends
// the chat's `send` event, the question goes into the client-side list the page shows after the tail, so the server
// need not echo it. A refused send drops it again (`unpend`, with the refused text), as does any reset of the live
// answer by the server (a failed send, a chat opened).
//
// Every send of a saved chat carries a send key (a random id, form field "key"). Until the page learns the send was
// taken (its exchange saved: "p"; refused or failed: `unpend`), it keeps the frame: if the socket goes meanwhile,
// the page's load after the reconnect calls `resend`, and a question the reloaded chat does not show is sent again
// with the same key ("again": the server saves it once, rubin_app/services/send_keys.py).
(function () {
  "use strict";

  const TEXT = "_client_state_rubinstream";
  const SET_TEXT = "_client_state_setRubinstream";
  const THINK = "_client_state_rubinthink";
  const SET_THINK = "_client_state_setRubinthink";
  const KEPT = "_client_state_rubinkept";
  const SET_KEPT = "_client_state_setRubinkept";
  const RECENT = "_client_state_rubinrecent";
  const SET_RECENT = "_client_state_setRubinrecent";
  const PENDING = "_client_state_rubinpending";
  const SET_PENDING = "_client_state_setRubinpending";
  const EVENT_FRAME = /^42\/_event,\["rs",/;
  const SEND_FRAME = /^42\/_event,\d*\["event",/;
  const SEND_EVENT = "chat____chat_state.send"; // rubin_app/state/chat/answers.py AnswersMixin.send
  const TAIL_FRAME = '"tail_rx_state_"';

  const live = { text: "", think: "", n: 0, m: 0, jump: false }; // jump: a new answer scrolls into view
  let refs = null; // Reflex's refs (client-side vars): handed over by the first script the server runs
  let stash = []; // "d" / "f" operations waiting for the tail's update
  let stashTimer = 0;
  let drawQueued = false;
  let owned = false; // the page's last send showed its exchange as pending
  let unacked = null; // {message, cid, text, before}: the last send, until the page learns it was taken
  let lastTail = []; // the chat's tail as the page last received it

  function codePoints(s) {
    let n = 0;
    for (const _ of s) n++; // eslint-disable-line no-unused-vars
    return n;
  }

  function dropCodePoints(s, k) {
    let i = 0;
    for (const ch of s) {
      if (k-- <= 0) break;
      i += ch.length;
    }
    return s.slice(i);
  }

  function set(name, setter, value) {
    if (!refs) return;
    if (refs[setter]) refs[setter](value);
    else refs[name] = value;
  }

  function draw() {
    drawQueued = false;
    set(TEXT, SET_TEXT, live.text);
    set(THINK, SET_THINK, live.think);
    const jump = live.jump;
    live.jump = false;
    window.requestAnimationFrame(function () {
      if (window.rubin) window.rubin.scrollToBottom(jump);
    });
  }

  function queueDraw() {
    if (!drawQueued) {
      drawQueued = true;
      // One draw per frame at most; a burst of frames (a reconnect's catch-up) is drawn once.
      window.requestAnimationFrame(draw);
    }
  }

  // Pieces that came ahead of the text before them (a follower's operations overtaking a script's): held until the
  // text before them arrives, dropped by a reset.
  let ahead = [];

  function append(kind, op) {
    const bar = op.indexOf("|");
    const at = parseInt(op.slice(1, bar), 10);
    let piece = op.slice(bar + 1);
    const have = kind === "t" ? live.n : live.m;
    if (at > have) {
      ahead.push(op);
      return;
    }
    if (at < have) piece = dropCodePoints(piece, have - at); // already shown: a resumed follower's overlap
    if (piece) {
      if (kind === "t") {
        live.text += piece;
        live.n = have + codePoints(piece);
      } else {
        live.think += piece;
        live.m = have + codePoints(piece);
      }
    }
    const waiting = ahead.filter(function (o) {
      return o[0] === kind && parseInt(o.slice(1, o.indexOf("|")), 10) <= (kind === "t" ? live.n : live.m);
    });
    if (waiting.length) {
      ahead = ahead.filter(function (o) { return waiting.indexOf(o) === -1; });
      waiting.forEach(function (o) { append(o[0], o); });
    }
  }

  // "d<id>:<n>": the answer has n code points; a page that has another count missed some (it cannot show the saved
  // answer from what it has), so it loads the chat again.
  function keep(spec) {
    const colon = spec.indexOf(":");
    const id = spec.slice(0, colon);
    if (parseInt(spec.slice(colon + 1), 10) !== live.n) {
      console.error("rubin: the streamed answer is incomplete; reloading the chat");
      window.location.reload();
      return;
    }
    const kept = Object.assign({}, (refs && refs[KEPT]) || {});
    kept[id] = live.text;
    set(KEPT, SET_KEPT, kept);
    reset_(true);
  }

  // A message view's fields as rubin_app/state/chat/common.py MsgView has them (a view may leave empty ones out).
  const VIEW = {
    id: 0, role: "", content: "", reasoning: "", status: "", error: "", error_detail: "", model: "", stats: "",
    sources: [], memories: [], kept: false,
  };

  // The views of the tails this page received, by id (the last few: a folded exchange is one of the last two tails).
  const seen = new Map();
  const SEEN_MAX = 16;

  function remember(data) {
    let delta;
    try {
      delta = JSON.parse(data.slice(data.indexOf("[")))[1].delta || {};
    } catch (e) {
      return;
    }
    Object.keys(delta).forEach(function (state) {
      const tail = delta[state] && delta[state].tail_rx_state_;
      if (!Array.isArray(tail)) return;
      lastTail = tail;
      tail.forEach(function (m) {
        seen.delete(m.id);
        seen.set(m.id, m);
      });
    });
    while (seen.size > SEEN_MAX) seen.delete(seen.keys().next().value);
  }

  // Message views cross the websocket without their fields at the default (rubin_app/state/chat/common.py
  // slim_view): the chat state's lists of them are filled in before the app reads the frame.
  const CHAT_STATE = "chat____chat_state";
  const VIEW_LISTS = ['"tail_rx_state_"', '"messages_rx_state_"'];

  function full(m) {
    return Object.assign({}, VIEW, { sources: [], memories: [] }, m);
  }

  function filled(data) {
    if (typeof data !== "string" || !VIEW_LISTS.some(function (k) { return data.indexOf(k) !== -1; })) return data;
    try {
      const at = data.indexOf("[");
      const message = JSON.parse(data.slice(at));
      const delta = (message[1] && message[1].delta) || {};
      Object.keys(delta).forEach(function (state) {
        if (!state.endsWith(CHAT_STATE)) return;
        VIEW_LISTS.forEach(function (key) {
          const name = key.slice(1, -1);
          if (Array.isArray(delta[state][name])) delta[state][name] = delta[state][name].map(full);
        });
      });
      return data.slice(0, at) + JSON.stringify(message);
    } catch (e) {
      return data;
    }
  }

  function fold(ids) {
    const missing = ids.filter(function (id) { return !seen.has(id); });
    if (missing.length) {
      console.error("rubin: a finished exchange is not in the page; reloading the chat");
      window.location.reload();
      return;
    }
    const kept = Object.assign({}, (refs && refs[KEPT]) || {});
    let changed = false;
    const page = ids.map(function (id) { return full(seen.get(id)); });
    page.forEach(function (m) {
      if (m.kept) {
        m.content = kept[String(m.id)] || "";
        m.kept = false;
        delete kept[String(m.id)];
        changed = true;
      }
    });
    if (changed) set(KEPT, SET_KEPT, kept);
    set(RECENT, SET_RECENT, ((refs && refs[RECENT]) || []).concat([page]));
  }

  function pending() {
    return (refs && refs[PENDING]) || [];
  }

  // The app sends a question: show it, and its answer to come, until the server's update shows the saved exchange.
  function pend(text) {
    owned = false;
    if (!refs || !text.trim() || pending().length) return; // the server refuses it (blank) or is busy
    owned = true;
    const question = Object.assign({}, VIEW, { id: -1, role: "user", content: text, status: "complete" });
    const answer = Object.assign({}, VIEW, { id: -2, role: "assistant", status: "streaming" });
    set(PENDING, SET_PENDING, [question, answer]);
    live.jump = true;
    queueDraw();
  }

  function unpend() {
    owned = false;
    if (pending().length) set(PENDING, SET_PENDING, []);
  }

  // The composer's text in the send event's form: Reflex encodes a form as {"__reflex_form_data__": [[name, value],
  // ...]} (a plain {text: ...} from other clients).
  function formText(form) {
    const entries = form.__reflex_form_data__;
    if (!Array.isArray(entries)) return String(form.text || "");
    const field = entries.find(function (e) { return e[0] === "text"; });
    return field ? String(field[1]) : "";
  }

  function chatOfPage() {
    const path = location.pathname;
    return path.indexOf("/c/") === 0 ? path.slice(3).replace(/\/+$/, "") : "";
  }

  function tailQuestion() {
    const question = lastTail.filter(function (m) { return m.role === "user"; })[0];
    return question ? { id: question.id, content: question.content || "" } : { id: 0, content: "" };
  }

  // A send of the app's: show its exchange as pending, and give it a send key (kept until the send is taken).
  function onSend(data) {
    if (!SEND_FRAME.test(data) || data.indexOf(SEND_EVENT + '"') === -1) return data;
    try {
      const at = data.indexOf("[");
      const message = JSON.parse(data.slice(at));
      const event = message[1];
      if (!String(event.name).endsWith(SEND_EVENT)) return data;
      const form = (event.payload && event.payload.form) || {};
      const text = formText(form);
      pend(text);
      const entries = form.__reflex_form_data__;
      const field = function (name) {
        if (!Array.isArray(entries)) return form[name];
        const found = entries.find(function (e) { return e[0] === name; });
        return found && found[1];
      };
      if (field("temporary") || !text.trim()) return data; // a temporary chat's question is saved nowhere
      if (!field("key")) {
        // 128 random bits as hex (getRandomValues works on plain http too, where randomUUID is missing)
        const key = Array.from(crypto.getRandomValues(new Uint8Array(16)), function (b) {
          return b.toString(16).padStart(2, "0");
        }).join("");
        if (Array.isArray(entries)) entries.push(["key", key]);
        else form.key = key;
        data = data.slice(0, at) + JSON.stringify(message);
      }
      const asked = tailQuestion();
      unacked = { message: message, cid: chatOfPage(), text: text, before: asked.id };
    } catch (e) {
      console.error("rubin send frame", e);
    }
    return data;
  }

  // After a reconnect (the page's load calls this): send again a question the socket took away before the page
  // learned it was saved, unless the chat as loaded now shows it (a newer question with its text).
  function resend(cid) {
    const last = unacked;
    unacked = null;
    if (!last || last.cid !== cid || !current || current.readyState !== 1) return;
    const asked = tailQuestion();
    if (asked.id !== last.before && asked.content === last.text) return; // saved: the chat shows it
    const event = last.message[1];
    const entries = event.payload.form.__reflex_form_data__;
    if (!Array.isArray(entries)) event.payload.form.again = "1";
    else if (!entries.some(function (e) { return e[0] === "again"; })) entries.push(["again", "1"]);
    current.send("42/_event," + JSON.stringify(last.message));
  }

  function reset_(quiet) {
    ahead = [];
    live.text = live.think = "";
    live.n = live.m = 0;
    live.jump = !quiet;
    queueDraw();
  }

  function applyStash() {
    const ops = stash;
    stash = [];
    clearTimeout(stashTimer);
    ops.forEach(function (op) {
      if (op[0] === "d") keep(op.slice(1));
      else if (op[0] === "p") {
        unpend();
        unacked = null; // the send is saved: nothing to send again
      }
      else fold(op.slice(1).split(",").map(Number));
    });
  }

  function apply(ops, now) {
    ops.forEach(function (op) {
      const kind = op[0];
      if (kind === "x") reset_();
      else if (kind === "t" || kind === "r") append(kind, op);
      else if (kind === "d" || kind === "f" || kind === "p") stash.push(op);
    });
    queueDraw();
    if (stash.length) {
      if (now) applyStash();
      else {
        clearTimeout(stashTimer);
        stashTimer = setTimeout(applyStash, 1000); // the tail's update went astray: do not keep them for ever
      }
    }
  }

  function onFrame(ev) {
    const data = ev.data;
    if (typeof data !== "string") return;
    if (EVENT_FRAME.test(data)) {
      try {
        apply(JSON.parse(data.slice(data.indexOf("["))).slice(1), false);
      } catch (e) {
        console.error("rubin stream frame", e);
      }
    } else if (data.indexOf(TAIL_FRAME) !== -1) {
      if (stash.length) applyStash(); // before the app reads this frame: both changes are drawn in one render
      remember(data); // after: a fold names the tail before this one
    }
  }

  const Native = window.WebSocket;
  let opened = 0;
  let current = null;
  class StreamSocket extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      if (String(url).indexOf("/_event") !== -1) {
        this.addEventListener("message", onFrame);
        opened += 1;
        current = this;
      }
    }

    // The app's socket.io client reads frames through onmessage: views are filled in first (`filled`).
    set onmessage(handler) {
      super.onmessage =
        typeof handler === "function"
          ? function (ev) {
              const data = filled(ev.data);
              return handler.call(this, data === ev.data ? ev : new MessageEvent("message", { data: data }));
            }
          : handler;
    }

    get onmessage() {
      return super.onmessage;
    }

    send(data) {
      super.send(this === current && typeof data === "string" ? onSend(data) : data);
    }
  }
  window.WebSocket = StreamSocket;

  window.rubinStream = {
    // The app's websocket now, and how many the page has opened (a reconnect opens another).
    socket: function () {
      return current;
    },
    opened: function () {
      return opened;
    },
    // Reflex's refs, handed over by every script of the server's that touches the stream.
    attach: function (r) {
      if (refs !== r) {
        refs = r;
        queueDraw();
      }
    },
    // Operations through Reflex's own events (the socket is on another worker, or the page just opened).
    apply: function (r, ops) {
      window.rubinStream.attach(r);
      apply(ops, true);
    },
    // Append (or, with reset, replace) text at the end of the live answer: the server's scripts (a chat opened
    // mid-answer shows what exists so far this way, then follows from exactly there).
    push: function (r, text, think, reset) {
      window.rubinStream.attach(r);
      if (reset) {
        reset_();
        unpend();
      }
      if (text) append("t", "t" + live.n + "|" + text);
      if (think) append("r", "r" + live.m + "|" + think);
      queueDraw();
    },
    // A send was refused: drop its pending exchange (`text`: only when it is the page's last send's; none: any).
    unpend: function (r, text) {
      window.rubinStream.attach(r);
      const shown = pending();
      if (text === undefined || (owned && shown.length && shown[0].content === text)) unpend();
      if (unacked && (text === undefined || unacked.text === text)) unacked = null; // refused or failed: taken
    },
    // The page loaded again after a reconnect: a send the socket took away goes again (see the top).
    resend: function (r, cid) {
      window.rubinStream.attach(r);
      resend(cid);
    },
    // A chat was opened: nothing kept from the last one.
    clear: function (r) {
      window.rubinStream.attach(r);
      stash = [];
      unpend();
      set(KEPT, SET_KEPT, {});
      set(RECENT, SET_RECENT, []);
    },
  };
})();
