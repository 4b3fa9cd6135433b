// Rubin AI as an installable app: registers the service worker (sw.js) and offers a reload when a new
// version is deployed. Loaded with `defer` by a <script> in <head> on every page (rubin_app/components/pwa.py).
//
// Update check: GET /api/version answers {version: hash of the deployed build, build: React Router's
// manifest version}. The page compares it with what it was loaded with — at start, every few minutes,
// when the tab becomes visible again, when the network comes back and when a new service worker takes
// over — and shows a "new version — reload" prompt when they differ, instead of running on stale code.
(function () {
  "use strict";
  const CHECK_EVERY_MS = 5 * 60 * 1000;
  const MIN_GAP_MS = 1000;
  const root = document.documentElement;
  let loadedVersion = null;
  let dismissed = null;
  let lastCheck = 0;
  let prompt = null;

  // ---- strings: the catalogs' update prompt keys, in the interface language -----------------------
  function texts() {
    let all = {};
    try {
      all = JSON.parse(document.querySelector('meta[name="rubin-pwa-text"]').content);
    } catch (e) { /* no strings: English below */ }
    let lang = "";
    try {
      lang = (localStorage.getItem("rubin_lang") || "").replace(/"/g, "");
    } catch (e) { /* storage blocked */ }
    if (!all[lang]) {
      const langs = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
      lang = langs.map((l) => String(l).slice(0, 2).toLowerCase()).find((l) => all[l]) || "en";
    }
    return Object.assign(
      { pwa_update_available: "A new version of Rubin is available.", pwa_update_reload: "Reload", pwa_update_later: "Later" },
      all[lang] || {}
    );
  }

  // ---- the prompt: a small bar over the page, never blocking it ------------------------------------
  function showPrompt(version) {
    if (version && dismissed === version) return;
    const t = texts();
    if (!prompt) {
      prompt = document.createElement("div");
      prompt.dataset.testid = "update-prompt";
      prompt.setAttribute("role", "status");
      prompt.setAttribute("aria-live", "polite");
      prompt.style.cssText = [
        "position:fixed", "z-index:2147483000", "left:50%", "transform:translateX(-50%)",
        "top:calc(12px + env(safe-area-inset-top, 0px))", "max-width:calc(100vw - 24px)", "box-sizing:border-box",
        "display:flex", "align-items:center", "gap:12px", "flex-wrap:wrap", "justify-content:center",
        "padding:10px 12px 10px 16px", "border-radius:12px", "font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif",
        "background:var(--gray-12,#21201c)", "color:var(--gray-1,#fdfdfc)", "box-shadow:0 6px 24px rgba(0,0,0,.25)",
      ].join(";");
      const text = document.createElement("span");
      text.dataset.role = "text";
      const reload = document.createElement("button");
      reload.type = "button";
      reload.dataset.testid = "update-reload";
      reload.style.cssText = "font:inherit;font-weight:600;border:0;border-radius:8px;padding:6px 14px;cursor:pointer;"
        + "background:var(--accent-9,#e54666);color:var(--accent-contrast,#fff)";
      reload.addEventListener("click", () => window.location.reload());
      const later = document.createElement("button");
      later.type = "button";
      later.dataset.testid = "update-later";
      later.style.cssText = "font:inherit;border:0;border-radius:8px;padding:6px 10px;cursor:pointer;background:transparent;color:inherit;opacity:.8";
      later.addEventListener("click", () => {
        dismissed = prompt.dataset.version || null;
        prompt.remove();
      });
      prompt.append(text, reload, later);
    }
    prompt.dataset.version = version || "";
    prompt.querySelector('[data-role="text"]').textContent = t.pwa_update_available;
    prompt.querySelector('[data-testid="update-reload"]').textContent = t.pwa_update_reload;
    prompt.querySelector('[data-testid="update-later"]').textContent = t.pwa_update_later;
    if (!prompt.isConnected) document.body.appendChild(prompt);
  }

  // ---- the version check ---------------------------------------------------------------------------
  async function check(force) {
    const now = Date.now();
    if (!force && now - lastCheck < MIN_GAP_MS) return;
    lastCheck = now;
    let data;
    try {
      const response = await fetch("/api/version", { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) return;
      data = await response.json();
    } catch (e) {
      return; // offline or the server is restarting: try again at the next occasion
    }
    if (!data || !data.version) return; // no production build (dev mode)
    if (loadedVersion === null) {
      // The page knows its own build: a page older than the server's build is stale from the start.
      const manifest = window.__reactRouterManifest;
      const pageBuild = manifest && manifest.version;
      if (data.build && pageBuild && data.build !== pageBuild) {
        loadedVersion = "";
        showPrompt(data.version);
      } else {
        loadedVersion = data.version;
      }
    } else if (data.version !== loadedVersion) {
      showPrompt(data.version);
    }
  }

  // ---- the service worker --------------------------------------------------------------------------
  function register() {
    if (!("serviceWorker" in navigator)) return;
    if (document.querySelector('script[src*="/@vite/client"]')) {
      // Dev mode (Vite dev server): no service worker, and none left over from a production run.
      navigator.serviceWorker.getRegistrations().then((regs) => regs.forEach((r) => r.unregister()));
      return;
    }
    const hadController = !!navigator.serviceWorker.controller;
    navigator.serviceWorker
      .register("/sw.js", { scope: "/" })
      .then((registration) => {
        registration.addEventListener("updatefound", () => {
          const worker = registration.installing;
          if (!worker || !hadController) return; // the first install is not an update
          worker.addEventListener("statechange", () => {
            if (worker.state === "activated") check(true); // a new worker usually means a deploy
          });
        });
        document.addEventListener("visibilitychange", () => {
          if (document.visibilityState === "visible") registration.update().catch(() => {});
        });
        return navigator.serviceWorker.ready.then((ready) => {
          // The build files this page loaded before the worker was there: the worker keeps them.
          const urls = performance.getEntriesByType("resource").map((e) => e.name).filter((u) => u.includes("/assets/"));
          if (ready.active) ready.active.postMessage({ type: "keep-assets", urls: urls });
        });
      })
      .catch(() => { /* not fatal: the app works without it */ });
  }

  // ---- the browser's title bar follows the theme picked in the app ---------------------------------
  function followTheme() {
    const metas = document.querySelectorAll('meta[name="theme-color"]');
    if (!metas.length) return;
    const original = Array.from(metas, (m) => [m, m.getAttribute("media") || "", m.content]);
    const light = (original.find(([, media]) => media.includes("light")) || original[0])[2];
    const dark = (original.find(([, media]) => media.includes("dark")) || original[0])[2];
    const apply = () => {
      const color = root.classList.contains("dark") ? dark : root.classList.contains("light") ? light : null;
      for (const [meta, media] of original) {
        if (color) {
          meta.removeAttribute("media");
          meta.content = color;
        } else {
          meta.setAttribute("media", media);
        }
      }
    };
    apply();
    new MutationObserver(apply).observe(root, { attributes: true, attributeFilter: ["class"] });
  }

  function start() {
    register();
    followTheme();
    check(true);
    setInterval(() => {
      if (document.visibilityState === "visible") check(false);
    }, CHECK_EVERY_MS);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") check(false);
    });
    window.addEventListener("online", () => check(true));
    window.addEventListener("focus", () => check(false));
  }

  window.rubinPwa = { check: () => check(true) };
  if (document.readyState === "complete") start();
  else window.addEventListener("load", start, { once: true });
})();
