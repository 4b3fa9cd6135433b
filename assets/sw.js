// Rubin AI service worker: the app shell and static files only, never chat data.
//
// - Navigations go to the network first (a reload after a deploy gets the new page); without a network
//   the cached offline page is shown instead.
// - /assets/* are Vite's content-hashed build files: cache first (a name never changes its content).
// - The few unhashed static files at the root and in /icons/ (manifest, /rubin.js, /pwa.js, ...) are
//   network first, cache fallback.
// - Everything else passes straight through, untouched and uncached: the /_event websocket, /api/*,
//   /auth/*, uploads, any non-GET request and other origins.
"use strict";

const VERSION = "v1"; // bump when this file's caching rules change: old caches are dropped on activate
const SHELL = `rubin-shell-${VERSION}`;
const ASSETS = `rubin-assets-${VERSION}`;
const OFFLINE = "/offline.html";
const PRECACHE = [
  OFFLINE,
  "/manifest.webmanifest",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
  "/icons/icon.svg",
  "/icons/favicon.ico",
];
const STATIC_FILES = /^\/(icons\/)?[\w.-]+\.(js|css|webmanifest|png|svg|ico|html)$/; // sw.js itself never gets here
const PASS_THROUGH = /^\/(_event|_upload|api|auth|ping|_health)(\/|$)/;
const MAX_ASSETS = 400; // old builds' hashed files are trimmed, oldest first

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(SHELL)
      .then((cache) => cache.addAll(PRECACHE.map((url) => new Request(url, { cache: "reload" }))))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) =>
        Promise.all(
          names.filter((n) => n.startsWith("rubin-") && n !== SHELL && n !== ASSETS).map((n) => caches.delete(n))
        )
      )
      .then(() => self.clients.claim())
  );
});

async function trim(cache) {
  const keys = await cache.keys();
  for (let i = 0; i < keys.length - MAX_ASSETS; i++) await cache.delete(keys[i]);
}

async function cacheFirst(request) {
  const cache = await caches.open(ASSETS);
  const hit = await cache.match(request);
  if (hit) return hit;
  const response = await fetch(request);
  if (response.ok && response.type === "basic") {
    await cache.put(request, response.clone());
    trim(cache);
  }
  return response;
}

async function networkFirst(request) {
  const cache = await caches.open(SHELL);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === "basic") await cache.put(request, response.clone());
    return response;
  } catch (err) {
    const hit = await cache.match(request);
    if (hit) return hit;
    throw err;
  }
}

async function navigate(event) {
  try {
    return await fetch(event.request);
  } catch (err) {
    // No network (or the server is down): the offline page, under the URL the user asked for.
    const offline = await caches.match(OFFLINE);
    if (offline) return offline;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || PASS_THROUGH.test(url.pathname)) return;
  if (request.mode === "navigate") {
    event.respondWith(navigate(event));
  } else if (url.pathname.startsWith("/assets/") && !url.search) {
    event.respondWith(cacheFirst(request));
  } else if (STATIC_FILES.test(url.pathname)) {
    event.respondWith(networkFirst(request));
  }
});

// The page lists the build files it loaded before this worker controlled it: keep them too.
async function keep(urls) {
  const cache = await caches.open(ASSETS);
  for (const href of urls) {
    const url = new URL(href, self.location.origin);
    if (url.origin !== self.location.origin || !url.pathname.startsWith("/assets/") || url.search) continue;
    if (await cache.match(url.pathname)) continue;
    try {
      const response = await fetch(url.pathname);
      if (response.ok) await cache.put(url.pathname, response);
    } catch (err) { /* offline: next time */ }
  }
  await trim(cache);
}

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type === "keep-assets" && Array.isArray(data.urls)) event.waitUntil(keep(data.urls.slice(0, MAX_ASSETS)));
});
