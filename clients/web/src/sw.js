// wrapsync web app service worker: keeps the app shell on the phone so the
// app opens offline. The plan data itself lives in IndexedDB (the replica);
// API requests (/v1/*) are never cached here.
const CACHE = "wrapsync-shell-__VERSION__";
const SHELL = __SHELL__;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL.map((f) => new URL(f, self.registration.scope).href)))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("wrapsync-shell-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const scope = new URL(self.registration.scope);
  const path = url.pathname.slice(scope.pathname.length - 1);
  if (path.startsWith("/v1/") || path === "/healthz") return; // the node's API: network only

  // The page and the app's config (the county crisis line): the network when
  // it answers, else the last copy, so both open offline.
  const fresh = request.mode === "navigate" ? "./" : path === "/config.json" ? "./config.json" : null;
  if (fresh) {
    const key = new URL(fresh, self.registration.scope).href;
    event.respondWith(
      fetch(request)
        .then((response) => {
          if (response.ok) {
            const copy = response.clone();
            caches.open(CACHE).then((cache) => cache.put(key, copy));
          }
          return response;
        })
        .catch(() => caches.match(key)),
    );
    return;
  }
  // Hashed assets and icons: the cache first.
  event.respondWith(caches.match(request, { ignoreSearch: true }).then((hit) => hit ?? fetch(request)));
});
