/* The driver app's service worker, served as /driver/sw.js behind a first line that sets
   self.BUILD = {version, shell, scope} (api/routes/driver_pages.py). Two jobs:
   - the app opens without signal: the shell's files are cached at install, the page itself
     is fetched fresh when there is a network and from the cache when not;
   - the outbox goes out when the page is closed: on Background Sync where the browser has
     it, and whenever a page asks. API calls are never cached here (the page keeps the last
     route in IndexedDB). */
/* global BUILD, DriverOutbox */
importScripts("/static/driver/store.js", "/static/driver/outbox.js");

var CACHE = "lastmile-driver-" + self.BUILD.version;
var SYNC_TAG = "lastmile-outbox";
var SHELL = {};
self.BUILD.shell.forEach(function (url) { SHELL[url] = true; });

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    // Past the HTTP cache: a stale copy of one file would pin it for this whole version.
    return cache.addAll(self.BUILD.shell.map(function (url) {
      return new Request(url, { cache: "reload", credentials: "omit" });
    }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (name) {
      return name.indexOf("lastmile-driver-") === 0 && name !== CACHE;
    }).map(function (name) { return caches.delete(name); }));
  }).then(function () { return self.clients.claim(); }));
});

function page(request) {
  return fetch(request).then(function (response) {
    if (response.ok) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { cache.put(self.BUILD.scope, copy); });
    }
    return response;
  }).catch(function () {
    var kept = { cacheName: CACHE, ignoreVary: true };
    return caches.match(self.BUILD.scope, kept).then(function (cached) {
      return cached || Response.error();
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") { return; }
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) { return; }
  if (request.mode === "navigate") {
    // The sign-in link's fragment never reaches here; a query string is ignored.
    if (url.pathname === self.BUILD.scope || url.pathname === self.BUILD.scope + "/") {
      event.respondWith(page(request));
    }
    return;
  }
  if (SHELL[url.pathname] && !url.search) {
    var kept = { cacheName: CACHE, ignoreVary: true };
    event.respondWith(caches.match(url.pathname, kept).then(function (hit) {
      return hit || fetch(request);
    }));
  }
});

function tellPages(result) {
  return self.clients.matchAll({ type: "window" }).then(function (pages) {
    pages.forEach(function (client) { client.postMessage({ type: "outbox", result: result }); });
  });
}

function flush() {
  return DriverOutbox.flush().then(function (result) {
    return tellPages(result).then(function () { return result; });
  });
}

self.addEventListener("sync", function (event) {
  if (event.tag !== SYNC_TAG) { return; }
  event.waitUntil(flush().then(function (result) {
    // Rejected: the browser tries this sync again later, with its own backoff.
    if (result.halted === "retry") { throw new Error("outbox not sent yet"); }
  }));
});

self.addEventListener("message", function (event) {
  if (event.data && event.data.type === "flush") { event.waitUntil(flush()); }
});
