/* The driver's app: sign in with the vehicle's device key, the day's stops in order with
   what the customer asked for, the next stop on a map of the route's roads, the phone's GPS
   sent while a route is active (over MQTT when the service offers a broker, broker.js, else
   over HTTP), and Arrived / Delivered / Failed with proof, queued on the phone (outbox.js)
   so a dead zone loses nothing. Live over the route's event stream, read
   with fetch because EventSource cannot send the key; polled when the stream is down.
   Data from the service only ever goes into the page as text (textContent, attributes). */
(function () {
  "use strict";

  var Store = self.DriverStore;
  var Outbox = self.DriverOutbox;
  var I18n = self.DriverI18n;
  var Gps = self.DriverGps;
  var Proof = self.DriverProof;
  var DriverMap = self.DriverMap;
  var Broker = self.DriverBroker;

  var POLL_MS = 20000;
  var STREAM_RETRY_MAX_MS = 60000;
  var FLUSH_RETRY_MAX_MS = 60000;
  // Positions kept queued while offline: the last hour at one every 5 s.
  var KEEP_POSITIONS = 720;
  var SYNC_TAG = "lastmile-outbox";
  var ACTIVE = { pending: true, arrived: true };
  var SHOWN_BY_KIND = { arrived: "arrived", delivered: "delivered", failed: "failed" };
  var REASONS = ["not_home", "refused", "address_not_found", "access"];

  var config = JSON.parse(document.getElementById("driver-config").textContent);
  I18n.remember(config.lang, config.texts);

  var state = {
    credentials: null,
    route: null,
    etag: null,
    queued: [],
    rejected: [],
    chosenLang: "",
    fix: null,
    lastSent: null,
    form: null,
    stream: null,
    streamLive: false,
    streamRetryMs: 1000,
    streamTimer: null,
    pollTimer: null,
    flushing: null,
    flushAgain: false,
    flushTimer: null,
    flushRetryMs: 5000,
    locationProblem: null,
    authLost: false,
    routeError: null,
    installPrompt: null,
    formSeq: 0
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function t(key, params) { return I18n.t(key, params); }

  function announce(key, params) {
    var node = $("announce");
    node.textContent = t(key, params);
    node.hidden = false;
  }

  function uuid() {
    if (self.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    // Outside a secure context randomUUID is missing; getRandomValues is not.
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) {
      return (x + 0x100).toString(16).slice(1);
    });
    return hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" +
      hex.slice(6, 8).join("") + "-" + hex.slice(8, 10).join("") + "-" + hex.slice(10).join("");
  }

  function quietly(promise) { return Promise.resolve(promise).catch(function () { return null; }); }

  // --- the service -----------------------------------------------------------------------

  function base() { return "/v1/vehicles/" + encodeURIComponent(state.credentials.vehicle); }

  function auth(key) { return { "Authorization": "Bearer " + key }; }

  function getStops(vehicle, key, etag) {
    var headers = auth(key);
    if (etag) { headers["If-None-Match"] = etag; }
    return fetch("/v1/vehicles/" + encodeURIComponent(vehicle) + "/stops",
      { headers: headers, cache: "no-store", credentials: "omit" });
  }

  /* The service answers another vehicle's key (or another organisation's) as it answers a
     vehicle that does not exist, 404: the phone learns nothing of vehicles not its own. */
  function refusal(status, vehicle) {
    if (status === 401) { return t("error_key"); }
    if (status === 403 || status === 404) { return t("error_vehicle", { vehicle: vehicle }); }
    return t("error_server", { status: status });
  }

  // --- signing in and out ----------------------------------------------------------------

  /* The dispatcher's link /driver#vehicle=...&key=...: read once, then gone from the address
     bar (and so from the history and any screenshot of it). */
  function linkCredentials() {
    var hash = location.hash.replace(/^#/, "");
    if (!hash) { return null; }
    var fields = new URLSearchParams(hash);
    var vehicle = (fields.get("vehicle") || "").trim();
    var key = (fields.get("key") || "").trim();
    history.replaceState(null, "", location.pathname + location.search);
    return vehicle && key ? { vehicle: vehicle, key: key } : null;
  }

  /* keepKey: the key typed stays in its field (a refusal that is not the key's fault). */
  function showSignIn(message, vehicle, keepKey) {
    $("app").hidden = true;
    $("signin").hidden = false;
    $("sign-out").hidden = true;
    $("vehicle-name").hidden = true;
    $("connection").textContent = "";
    var error = $("signin-error");
    error.textContent = message || "";
    error.hidden = !message;
    if (vehicle) { $("vehicle").value = vehicle; }
    if (!keepKey) { $("key").value = ""; }
    renderBanners();
  }

  function signIn(vehicle, key) {
    var button = $("signin-form").querySelector("button[type=submit]");
    button.disabled = true;
    $("signin-error").hidden = true;
    announce("signing_in");
    return getStops(vehicle, key, null).then(function (response) {
      if (!response.ok) {
        showSignIn(refusal(response.status, vehicle), vehicle, response.status !== 401);
        return;
      }
      return response.json().then(function (body) {
        state.credentials = { vehicle: vehicle, key: key };
        state.etag = response.headers.get("ETag");
        state.authLost = false;
        return quietly(Store.set("credentials", state.credentials)).then(function () {
          return start(body);
        });
      });
    }, function () {
      showSignIn(t("error_offline_sign_in"), vehicle, true);
    }).then(function () {
      button.disabled = false;
      $("announce").textContent = "";
    });
  }

  function stopLive() {
    if (state.stream) { state.stream.abort(); }
    state.stream = null;
    state.streamLive = false;
    clearTimeout(state.streamTimer);
    clearInterval(state.pollTimer);
    state.pollTimer = null;
    clearTimeout(state.flushTimer);
    Gps.stop();
    Broker.stop();
  }

  function signOut() {
    var waiting = state.queued.filter(function (i) { return i.type === "action"; }).length;
    if (waiting > 0 && !confirm(t("sign_out_pending", { count: waiting }))) { return; }
    var vehicle = state.credentials ? state.credentials.vehicle : "";
    stopLive();
    state.credentials = null;
    state.route = null;
    state.etag = null;
    state.queued = [];
    state.rejected = [];
    state.form = null;
    state.authLost = false;
    $("stops").replaceChildren();
    // The route names customers and their addresses: not kept past the driver's day. The
    // form shows once both are gone, so a restart right after cannot sign in again.
    var forgotten = [Store.remove("credentials")];
    if (vehicle) { forgotten.push(Store.remove("route:" + vehicle)); }
    return quietly(Promise.all(forgotten)).then(function () { showSignIn("", vehicle); });
  }

  /* Signed in: show the route (the one just fetched, else the one kept from last time) and
     go live. */
  function start(body) {
    $("signin").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    $("vehicle-name").hidden = false;
    $("vehicle-name").textContent = t("vehicle_name", { vehicle: state.credentials.vehicle });
    var vehicle = state.credentials.vehicle;
    var kept = body ? Promise.resolve(null) : quietly(Store.get("route:" + vehicle));
    return Promise.all([kept, quietly(Store.get("lastSent:" + vehicle))]).then(function (got) {
      state.lastSent = got[1] || null;
      if (body) {
        return accept(body);
      }
      if (got[0]) {
        state.etag = got[0].etag;
        return accept(got[0].body, true);
      }
      return render();
    }).then(function () {
      DriverMap.refresh();
      if (!body) { refresh(); }
      connect();
      flush();
    });
  }

  function authLost() {
    state.authLost = true;
    stopLive();
    renderBanners();
    connection("lost");
  }

  // --- the route -------------------------------------------------------------------------

  function orderOf(route) {
    return route ? route.stops.map(function (s) { return s.order_id; }).join("|") : "";
  }

  /* A route from the service (or kept from last time: `kept`). */
  function accept(body, kept) {
    var before = state.route;
    state.route = body;
    state.routeError = null;
    Broker.use(body.mqtt || null, state.credentials.key);
    if (!kept) {
      quietly(Store.set("route:" + state.credentials.vehicle, { body: body, etag: state.etag }));
    }
    if (before !== null && !kept && orderOf(before) !== orderOf(body)) {
      announce("route_changed");
    }
    return chooseLanguage().then(function () { return refreshQueue(); }).then(render);
  }

  function refresh() {
    if (!state.credentials || state.authLost) { return Promise.resolve(); }
    var credentials = state.credentials;
    return getStops(credentials.vehicle, credentials.key, state.etag).then(function (response) {
      if (state.credentials !== credentials) { return; }
      if (response.status === 304) { return; }
      if (response.status === 401) { authLost(); return; }
      if (!response.ok) {
        state.routeError = refusal(response.status, credentials.vehicle);
        renderBanners();
        return;
      }
      var etag = response.headers.get("ETag");
      return response.json().then(function (body) {
        state.etag = etag;
        return accept(body);
      });
    }, function () { /* offline: the route kept is shown; the next poll or stream tries */ });
  }

  // --- live updates ----------------------------------------------------------------------

  function connection(kind) {
    var node = $("connection");
    node.className = "connection " + kind;
    node.textContent = t("connection_" + kind);
  }

  function poll(on) {
    if (on && state.pollTimer === null) {
      state.pollTimer = setInterval(refresh, POLL_MS);
    } else if (!on && state.pollTimer !== null) {
      clearInterval(state.pollTimer);
      state.pollTimer = null;
    }
  }

  /* Server-sent events over fetch: "route" events carry {route_version}; a version other
     than the one shown means the stops changed. */
  function read(reader, onEvent) {
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) { return; }
        buffer += decoder.decode(chunk.value, { stream: true });
        // A lone "\r" at the end may be half of a "\r\n" still on its way.
        var tail = buffer.slice(-1) === "\r" ? "\r" : "";
        buffer = buffer.slice(0, buffer.length - tail.length).replace(/\r\n?/g, "\n");
        var cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          var block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          var name = "message";
          var data = [];
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) { name = line.slice(6).trim(); }
            if (line.indexOf("data:") === 0) { data.push(line.slice(5).replace(/^ /, "")); }
          });
          if (data.length) { onEvent(name, data.join("\n")); }
          cut = buffer.indexOf("\n\n");
        }
        buffer += tail;
        return pump();
      });
    }
    return pump();
  }

  function onRouteEvent(name, data) {
    if (name !== "route") { return; }
    var version;
    try { version = JSON.parse(data).route_version; } catch (e) { return; }
    if (!state.route || version !== state.route.route_version) { refresh(); }
  }

  function connect() {
    if (!state.credentials || state.stream || state.authLost) { return; }
    clearTimeout(state.streamTimer);
    var controller = new AbortController();
    var credentials = state.credentials;
    state.stream = controller;
    if (!navigator.onLine) { connection("offline"); }
    fetch(base() + "/stops/events", {
      headers: Object.assign(auth(credentials.key), { "Accept": "text/event-stream" }),
      signal: controller.signal,
      cache: "no-store",
      credentials: "omit"
    }).then(function (response) {
      if (response.status === 401) { authLost(); return; }
      if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
      state.streamLive = true;
      state.streamRetryMs = 1000;
      connection("live");
      poll(false);
      // Changes missed while the stream was down.
      refresh();
      return read(response.body.getReader(), onRouteEvent);
    }).catch(function () { /* reconnected below */ }).then(function () {
      if (state.stream !== controller || controller.signal.aborted) { return; }
      state.stream = null;
      state.streamLive = false;
      if (state.authLost) { return; }
      connection(navigator.onLine ? "polling" : "offline");
      poll(true);
      state.streamTimer = setTimeout(connect, state.streamRetryMs);
      state.streamRetryMs = Math.min(state.streamRetryMs * 2, STREAM_RETRY_MAX_MS);
    });
  }

  function reconnectNow() {
    if (state.stream && state.streamLive) { return; }
    if (state.stream) { state.stream.abort(); state.stream = null; }
    state.streamRetryMs = 1000;
    connect();
  }

  // --- the outbox ------------------------------------------------------------------------

  function refreshQueue() {
    if (!state.credentials) { return Promise.resolve(false); }
    var vehicle = state.credentials.vehicle;
    var before = actionKey();
    return Promise.all([quietly(Store.queued(vehicle)), quietly(Store.rejected(vehicle))])
      .then(function (got) {
        state.queued = got[0] || [];
        state.rejected = got[1] || [];
        return actionKey() !== before;
      });
  }

  /* What the page shows of the outbox: its actions and the refused ones. */
  function actionKey() {
    return state.queued.filter(function (i) { return i.type === "action"; })
      .map(function (i) { return i.body.action_id; }).join() + "/" +
      state.rejected.map(function (r) { return r.action_id; }).join();
  }

  function requestSync() {
    if (!("serviceWorker" in navigator)) { return; }
    quietly(navigator.serviceWorker.ready.then(function (registration) {
      return registration.sync ? registration.sync.register(SYNC_TAG) : null;
    }));
  }

  function flush() {
    if (!state.credentials || state.authLost) { return Promise.resolve(); }
    if (state.flushing) { state.flushAgain = true; return state.flushing; }
    clearTimeout(state.flushTimer);
    state.flushing = Outbox.flush().then(flushed, function () {
      return { sent: 0, dropped: 0, actions: 0, halted: "retry" };
    }).then(function (result) {
      state.flushing = null;
      if (result && result.halted === "retry") {
        state.flushTimer = setTimeout(flush, state.flushRetryMs);
        state.flushRetryMs = Math.min(state.flushRetryMs * 2, FLUSH_RETRY_MAX_MS);
      } else {
        state.flushRetryMs = 5000;
      }
      if (state.flushAgain) {
        state.flushAgain = false;
        return flush();
      }
    });
    return state.flushing;
  }

  /* After a run (the page's or the worker's). */
  function flushed(result) {
    if (result.halted === "auth" && state.credentials) { authLost(); }
    return refreshQueue().then(function (changed) {
      // Sent actions change the stops' statuses on the service; a 304 (it already told us)
      // re-renders nothing, so the queue's change is rendered here either way.
      var after = result.actions > 0 ? refresh() : Promise.resolve();
      return after.then(function () {
        if (changed) { render(); }
        return result;
      });
    });
  }

  function queueAction(orderId, kind, proof) {
    var fix = state.fix;
    var body = {
      action_id: uuid(),
      order_id: orderId,
      kind: kind,
      reason: proof.reason || null,
      recipient_name: proof.recipient_name || null,
      at: new Date().toISOString(),
      lat: fix ? fix.lat : null,
      lon: fix ? fix.lon : null,
      accuracy_m: fix ? fix.accuracy_m : null,
      photo: proof.photo || null,
      signature: proof.signature || null
    };
    var item = { vehicle: state.credentials.vehicle, type: "action", body: body };
    return Store.enqueue(item).then(function () {
      announce(navigator.onLine ? "saved" : "saved_offline");
      return refreshQueue();
    }, function () {
      announce("save_failed");
    }).then(function () {
      render();
      requestSync();
      flush();
    });
  }

  // --- GPS -------------------------------------------------------------------------------

  function onFix(position) {
    var body = Gps.body(position);
    state.fix = { lat: body.lat, lon: body.lon, accuracy_m: body.accuracy_m };
    if (state.locationProblem !== null) {
      state.locationProblem = null;
      renderBanners();
    }
    DriverMap.drawVan(state.fix, { van: t("map_van") });
    if (!state.credentials || !routeActive() || !Gps.worthSending(body, state.lastSent)) {
      return;
    }
    var vehicle = state.credentials.vehicle;
    state.lastSent = { lat: body.lat, lon: body.lon, t: Date.parse(body.time) };
    quietly(Store.set("lastSent:" + vehicle, state.lastSent));
    // Over MQTT when the broker takes it; else, or when that fails, queued for HTTP.
    Broker.publish(body).then(function (sent) {
      if (!sent) { queuePosition(vehicle, body); }
    });
  }

  function queuePosition(vehicle, body) {
    quietly(Store.enqueue({ vehicle: vehicle, type: "position", body: body }).then(function () {
      return Store.trimPositions(vehicle, KEEP_POSITIONS);
    }).then(function () {
      if (navigator.onLine) { flush(); } else { requestSync(); }
    }));
  }

  /* Which way the fixes go: the chip in the header. */
  function renderPath() {
    var chip = $("positions-path");
    var path = Broker.path();
    chip.hidden = !state.credentials;
    chip.className = "chip " + path;
    chip.setAttribute("data-path", path);
    chip.textContent = t(path === "mqtt" ? "positions_mqtt" : "positions_http");
  }

  function onLocationProblem(code) {
    state.locationProblem = code;
    renderBanners();
  }

  function routeActive() {
    return shownStops().some(function (s) { return ACTIVE[s.shown]; });
  }

  function gps() {
    if (state.credentials && !state.authLost && routeActive()) {
      Gps.start(onFix, onLocationProblem);
    } else {
      Gps.stop();
    }
  }

  // --- rendering -------------------------------------------------------------------------

  function timeLocale() {
    var lang = I18n.lang();
    var tags = navigator.languages || [navigator.language];
    for (var i = 0; i < tags.length; i += 1) {
      if (String(tags[i]).split("-")[0].toLowerCase() === lang) { return tags[i]; }
    }
    return lang;
  }

  function clock(iso) {
    if (!iso) { return "—"; }
    var at = new Date(iso);
    if (isNaN(at.getTime())) { return "—"; }
    // The phone's own time zone (the driver is where the customer is), and its own clock
    // style when it speaks the app's language (en-GB: 24 h, en-US: 12 h).
    return at.toLocaleTimeString(timeLocale(), { hour: "2-digit", minute: "2-digit" });
  }

  function coordinates(stop) {
    return Number(stop.lat).toFixed(6) + "," + Number(stop.lon).toFixed(6);
  }

  /* The phone's navigation app at the stop. */
  function navigateHref(stop) {
    var at = coordinates(stop);
    var agent = navigator.userAgent;
    if (/Android/i.test(agent)) { return "geo:" + at + "?q=" + at; }
    var apple = /iPad|iPhone|iPod/.test(agent) ||
      (/Macintosh/.test(agent) && navigator.maxTouchPoints > 1);  // iPadOS asks as a Mac
    if (apple) {
      return "https://maps.apple.com/?daddr=" + at;
    }
    return "https://www.google.com/maps/dir/?api=1&destination=" + at;
  }

  /* The route's stops with what the phone knows that the service may not yet: the status
     an action waiting to be sent will give it, and actions the service refused. */
  function shownStops() {
    if (!state.route) { return []; }
    var waiting = {};
    state.queued.forEach(function (item) {
      if (item.type === "action") { waiting[item.body.order_id] = item.body.kind; }
    });
    var refused = {};
    state.rejected.forEach(function (r) { refused[r.order_id] = r; });
    return state.route.stops.map(function (stop) {
      var kind = waiting[stop.order_id];
      return Object.assign({}, stop, {
        shown: kind ? SHOWN_BY_KIND[kind] : stop.status,
        waiting: Boolean(kind),
        refused: refused[stop.order_id] || null
      });
    });
  }

  function detail(list, label, value, className) {
    if (value === undefined || value === null || value === "") { return; }
    var row = el("div", className);
    row.appendChild(el("dt", null, label));
    row.appendChild(el("dd", null, value));
    list.appendChild(row);
  }

  function button(text, className, data) {
    var node = el("button", className, text);
    node.type = "button";
    Object.keys(data || {}).forEach(function (name) {
      node.setAttribute("data-" + name, data[name]);
    });
    return node;
  }

  function link(text, className, href) {
    var node = el("a", "button " + (className || ""), text);
    node.href = href;
    return node;
  }

  function stopMain(stop, isNext) {
    var main = el("div", "stop-main");
    var head = el("div", "stop-head");
    var seq = el("span", "seq", stop.sequence);
    seq.setAttribute("aria-label", t("stop_number", { number: stop.sequence }));
    head.appendChild(seq);
    head.appendChild(el("h3", "address", stop.address));
    main.appendChild(head);
    var where = el("p", "stop-status");
    where.appendChild(el("span", "badge status-" + stop.shown, t("status_" + stop.shown)));
    if (isNext) { where.appendChild(el("span", "next-label", t("next_stop"))); }
    main.appendChild(where);
    if (stop.contact_name) { main.appendChild(el("p", "contact", stop.contact_name)); }

    var times = el("dl", "times");
    var slot = stop.window ? clock(stop.window.start) + "–" + clock(stop.window.end) : "";
    detail(times, t("window"), slot);
    if (ACTIVE[stop.shown]) { detail(times, t("eta"), clock(stop.eta), "eta"); }
    main.appendChild(times);

    var given = stop.instructions || {};
    if (given.safe_place || given.notes || given.access_code) {
      var asked = el("dl", "instructions");
      detail(asked, t("safe_place"), given.safe_place);
      detail(asked, t("notes"), given.notes);
      detail(asked, t("access_code"), given.access_code, "code");
      main.appendChild(asked);
    }
    if (stop.waiting) { main.appendChild(el("p", "waiting", t("waiting_to_send"))); }
    if (stop.refused) {
      var refused = el("div", "refused");
      refused.setAttribute("role", "alert");
      refused.appendChild(el("p", null, t("send_refused", {
        action: t(stop.refused.kind), message: stop.refused.message })));
      refused.appendChild(button(t("dismiss"), "secondary small",
        { dismiss: stop.refused.action_id }));
      main.appendChild(refused);
    }

    var go = el("div", "buttons");
    if (typeof stop.call === "string" && stop.call.indexOf("tel:") === 0) {
      go.appendChild(link(t("call"), "call", stop.call));
    }
    if (ACTIVE[stop.shown]) {
      var nav = link(t("navigate"), "navigate", navigateHref(stop));
      if (nav.href.indexOf("https:") === 0) {
        nav.target = "_blank";
        nav.rel = "noopener";
      }
      go.appendChild(nav);
    }
    if (go.children.length) { main.appendChild(go); }

    var formOpen = state.form !== null && state.form.order_id === stop.order_id;
    if (ACTIVE[stop.shown] && !formOpen) {
      var actions = el("div", "actions");
      if (stop.shown === "pending") {
        actions.appendChild(button(t("arrived"), "arrived", { action: "arrived" }));
      }
      actions.appendChild(button(t("delivered"), "delivered", { action: "delivered" }));
      actions.appendChild(button(t("failed"), "failed", { action: "failed" }));
      main.appendChild(actions);
    }
    return main;
  }

  function fillCard(li, stop, isNext) {
    li.className = "stop status-" + stop.shown + (isNext ? " next" : "") +
      (stop.waiting ? " queued" : "") + (ACTIVE[stop.shown] ? "" : " done");
    li.setAttribute("data-order", stop.order_id);
    li.setAttribute("data-status", stop.shown);
    li.setAttribute("data-sequence", String(stop.sequence));
    var formNode = state.form && state.form.order_id === stop.order_id ? state.form.node : null;
    Array.prototype.slice.call(li.children).forEach(function (child) {
      if (child !== formNode) { li.removeChild(child); }
    });
    li.insertBefore(stopMain(stop, isNext), li.firstChild);
    if (formNode && formNode.parentNode !== li) { li.appendChild(formNode); }
  }

  function renderStops(stops, next) {
    var list = $("stops");
    var kept = null;
    if (state.form) {
      var open = state.form.order_id;
      var stop = stops.filter(function (s) { return s.order_id === open; })[0];
      if (!stop || !ACTIVE[stop.shown]) {
        state.form = null;
        announce("stop_removed");
      } else {
        kept = state.form.node.parentNode && state.form.node.parentNode.parentNode === list ?
          state.form.node.parentNode : null;
      }
    }
    var focused = document.activeElement;
    var nodes = stops.map(function (stop) {
      var li = kept && stop.order_id === state.form.order_id ? kept : el("li");
      fillCard(li, stop, next !== null && stop.order_id === next.order_id);
      return li;
    });
    // Reordered around the card with the open form, never detaching it: a detached form
    // loses the focus (and the driver's place in it).
    Array.prototype.slice.call(list.children).forEach(function (child) {
      if (child !== kept) { list.removeChild(child); }
    });
    var at = kept ? nodes.indexOf(kept) : nodes.length;
    nodes.slice(0, at).forEach(function (node) { list.insertBefore(node, kept); });
    nodes.slice(at + 1).forEach(function (node) { list.appendChild(node); });
    if (focused && focused !== document.activeElement && list.contains(focused)) {
      focused.focus();
    }
    var empty = $("route-empty");
    var done = stops.length > 0 && next === null;
    empty.hidden = stops.length > 0 && !done;
    empty.textContent = stops.length === 0 ? t("no_route") : done ? t("all_done") : "";
  }

  function renderBanners() {
    var location = $("banner-location");
    var problem = state.credentials && state.locationProblem;
    location.hidden = !problem;
    location.textContent = problem ? t("location_" + problem) : "";
    $("banner-offline").hidden = navigator.onLine || !state.credentials;
    var waiting = state.queued.filter(function (i) { return i.type === "action"; }).length;
    var pending = $("banner-pending");
    pending.hidden = waiting === 0;
    pending.textContent = waiting ? t("pending_count", { count: waiting }) : "";
    $("banner-auth").hidden = !state.authLost;
    var routeError = $("banner-route");
    routeError.hidden = !state.routeError || state.authLost;
    routeError.textContent = state.routeError || "";
    renderPath();
  }

  function render() {
    renderBanners();
    var call = $("call-dispatch");
    var phone = state.route && state.route.support_phone;
    call.hidden = !phone;
    if (phone) { call.href = "tel:" + String(phone).replace(/[^0-9+*#,;]/g, ""); }
    if (!state.route) { gps(); return; }
    var stops = shownStops();
    var next = stops.filter(function (s) { return ACTIVE[s.shown]; })[0] || null;
    renderStops(stops, next);
    DriverMap.draw($("map"), state.route, stops, next, state.fix, { van: t("map_van") });
    gps();
  }

  // --- the proof form --------------------------------------------------------------------

  function field(form, id, labelKey, input) {
    var label = el("label", null, t(labelKey));
    label.htmlFor = id;
    input.id = id;
    form.appendChild(label);
    form.appendChild(input);
    return input;
  }

  function proofForm(orderId, kind) {
    state.formSeq += 1;
    var id = "proof-" + state.formSeq;
    var form = el("form", "proof " + kind);
    form.noValidate = true;
    form.setAttribute("aria-labelledby", id + "-title");
    var title = el("h4", null, t(kind === "delivered" ? "delivered_heading" : "failed_heading"));
    title.id = id + "-title";
    form.appendChild(title);
    var open = { order_id: orderId, kind: kind, node: form, reason: null, photo: null,
      photoWork: null, pad: null };

    if (kind === "failed") {
      var reasons = el("fieldset", "reasons");
      reasons.appendChild(el("legend", null, t("reason_heading")));
      REASONS.forEach(function (reason) {
        var choice = button(t("reason_" + reason), "reason", { reason: reason });
        choice.setAttribute("aria-pressed", "false");
        reasons.appendChild(choice);
      });
      form.appendChild(reasons);
    }

    var name = el("input");
    name.autocomplete = "off";
    name.name = "recipient_name";
    name.maxLength = 120;
    field(form, id + "-name", kind === "delivered" ? "recipient_label" : "recipient_optional",
      name);

    var photoInput = el("input", "sr-only");
    photoInput.type = "file";
    photoInput.accept = "image/*";
    photoInput.setAttribute("capture", "environment");
    photoInput.name = "photo";
    var photoLabel = el("label", "button secondary photo-button", t("photo_take"));
    photoLabel.htmlFor = id + "-photo";
    photoInput.id = id + "-photo";
    form.appendChild(photoInput);
    form.appendChild(photoLabel);
    var preview = el("img", "preview");
    preview.alt = t("photo_preview");
    preview.hidden = true;
    form.appendChild(preview);
    var remove = button(t("photo_remove"), "secondary small remove-photo", { "remove-photo": "1" });
    remove.hidden = true;
    form.appendChild(remove);

    if (kind === "delivered") {
      var sigLabel = el("p", "signature-label", t("signature_label"));
      sigLabel.id = id + "-sig";
      form.appendChild(sigLabel);
      var canvas = el("canvas", "signature");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-labelledby", id + "-sig");
      form.appendChild(canvas);
      form.appendChild(button(t("signature_clear"), "secondary small",
        { "clear-signature": "1" }));
      open.canvas = canvas;
    }

    var problem = el("p", "form-error");
    problem.setAttribute("role", "alert");
    problem.hidden = true;
    form.appendChild(problem);
    var row = el("div", "form-buttons");
    var submit = el("button", "confirm " + kind,
      t(kind === "delivered" ? "confirm_delivered" : "confirm_failed"));
    submit.type = "submit";
    row.appendChild(submit);
    row.appendChild(button(t("cancel"), "secondary", { cancel: "1" }));
    form.appendChild(row);
    return open;
  }

  function openForm(orderId, kind) {
    state.form = proofForm(orderId, kind);
    render();
    if (state.form.canvas) {
      state.form.pad = Proof.signaturePad(state.form.canvas);
      state.form.pad.size();
    }
    var first = state.form.node.querySelector("button.reason, input");
    if (first) { first.focus(); }
    state.form.node.scrollIntoView({ block: "nearest" });
  }

  function closeForm() {
    var orderId = state.form ? state.form.order_id : null;
    state.form = null;
    render();
    var card = orderId && $("stops").querySelector('li[data-order="' + CSS.escape(orderId) + '"]');
    var back = card && card.querySelector(".actions button, .buttons a");
    if (back) { back.focus(); }
  }

  function formProblem(key) {
    var node = state.form.node.querySelector(".form-error");
    node.textContent = t(key);
    node.hidden = false;
  }

  function pickPhoto(input) {
    var open = state.form;
    var file = input.files && input.files[0];
    if (!open || !file) { return; }
    announce("photo_working");
    open.photoWork = Proof.photo(file).then(function (url) {
      open.photo = url;
      var preview = open.node.querySelector(".preview");
      preview.src = url;
      preview.hidden = false;
      open.node.querySelector(".remove-photo").hidden = false;
      announce("photo_ready");
    }, function () {
      open.photo = null;
      if (state.form === open) { formProblem("photo_error"); }
    });
  }

  function removePhoto() {
    var open = state.form;
    open.photo = null;
    open.photoWork = null;
    var preview = open.node.querySelector(".preview");
    preview.hidden = true;
    preview.removeAttribute("src");
    open.node.querySelector(".remove-photo").hidden = true;
    open.node.querySelector("input[type=file]").value = "";
  }

  function submitForm() {
    var open = state.form;
    if (open.kind === "failed" && !open.reason) { formProblem("choose_reason"); return; }
    var submit = open.node.querySelector("button[type=submit]");
    submit.disabled = true;
    Promise.resolve(open.photoWork).then(function () {
      var proof = {
        reason: open.kind === "failed" ? open.reason : null,
        recipient_name: open.node.querySelector("input[name=recipient_name]").value.trim(),
        photo: open.photo,
        signature: open.pad ? open.pad.dataUrl() : null
      };
      state.form = null;
      return queueAction(open.order_id, open.kind, proof);
    }).then(function () {
      var card = $("stops").querySelector('li[data-order="' + CSS.escape(open.order_id) + '"]');
      var next = $("stops").querySelector("li.next .actions button");
      (next || card || $("stops-heading")).focus();
    });
  }

  // --- events ----------------------------------------------------------------------------

  function cardOrder(node) {
    var card = node.closest("li[data-order]");
    return card ? card.getAttribute("data-order") : null;
  }

  $("stops").addEventListener("click", function (event) {
    var target = event.target.closest("button");
    if (!target) { return; }
    var orderId = cardOrder(target);
    var action = target.getAttribute("data-action");
    if (action === "arrived") {
      target.disabled = true;
      queueAction(orderId, "arrived", {});
    } else if (action === "delivered" || action === "failed") {
      openForm(orderId, action);
    } else if (target.hasAttribute("data-reason") && state.form) {
      state.form.reason = target.getAttribute("data-reason");
      state.form.node.querySelectorAll("button.reason").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === target));
      });
      state.form.node.querySelector(".form-error").hidden = true;
    } else if (target.hasAttribute("data-cancel")) {
      closeForm();
    } else if (target.hasAttribute("data-clear-signature") && state.form && state.form.pad) {
      state.form.pad.clear();
    } else if (target.hasAttribute("data-remove-photo") && state.form) {
      removePhoto();
    } else if (target.hasAttribute("data-dismiss")) {
      quietly(Store.dismiss(target.getAttribute("data-dismiss"))).then(refreshQueue)
        .then(render);
    }
  });

  $("stops").addEventListener("change", function (event) {
    if (event.target.type === "file") { pickPhoto(event.target); }
  });

  $("stops").addEventListener("submit", function (event) {
    event.preventDefault();
    if (state.form && event.target === state.form.node) { submitForm(); }
  });

  $("signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var vehicle = $("vehicle").value.trim();
    var key = $("key").value.trim();
    if (!vehicle || !key) {
      showSignIn(t("error_missing"), vehicle);
      return;
    }
    signIn(vehicle, key);
  });

  $("sign-out").addEventListener("click", signOut);
  $("sign-in-again").addEventListener("click", function () {
    var vehicle = state.credentials ? state.credentials.vehicle : "";
    state.authLost = false;
    stopLive();
    state.credentials = null;
    // The outbox stays: it goes out once the driver signs in again with a working key.
    quietly(Store.remove("credentials")).then(function () { showSignIn("", vehicle); });
  });

  $("language").addEventListener("change", function (event) {
    state.chosenLang = event.target.value;
    quietly(Store.set("language", state.chosenLang));
    chooseLanguage().then(render);
  });

  $("install").addEventListener("click", function () {
    if (!state.installPrompt) { return; }
    state.installPrompt.prompt();
    state.installPrompt = null;
    $("install").hidden = true;
  });

  self.addEventListener("beforeinstallprompt", function (event) {
    // Offered as a button of our own, in the driver's language.
    event.preventDefault();
    state.installPrompt = event;
    $("install").hidden = false;
  });

  self.addEventListener("online", function () {
    renderBanners();
    flush();
    refresh();
    reconnectNow();
  });

  self.addEventListener("offline", function () {
    renderBanners();
    if (state.credentials && !state.authLost) { connection("offline"); }
  });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible" && state.credentials) {
      refresh();
      flush();
      reconnectNow();
    }
  });

  self.addEventListener("resize", function () { DriverMap.refresh(); });

  Broker.onChange(renderPath);

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.addEventListener("message", function (event) {
      if (event.data && event.data.type === "outbox") { quietly(flushed(event.data.result)); }
    });
  }

  // --- language --------------------------------------------------------------------------

  function languageOptions() {
    var select = $("language");
    var options = [el("option", null, t("language_auto"))];
    options[0].value = "";
    I18n.SHIPPED.forEach(function (lang) {
      var option = el("option", null, config.languages[lang]);
      option.value = lang;
      option.lang = lang;
      options.push(option);
    });
    select.replaceChildren.apply(select, options);
    select.value = state.chosenLang;
  }

  function chooseLanguage() {
    var wanted = I18n.pick(state.chosenLang, state.route ? state.route.language : null);
    return I18n.use(wanted).then(function () {
      I18n.apply(document);
      document.title = t("app_title");
      languageOptions();
      if (state.credentials) {
        $("vehicle-name").textContent = t("vehicle_name", { vehicle: state.credentials.vehicle });
        if (!state.authLost) {
          connection(state.streamLive ? "live" : navigator.onLine ? "polling" : "offline");
        }
      }
    });
  }

  // --- start -----------------------------------------------------------------------------

  function registerWorker() {
    if (!("serviceWorker" in navigator)) { return; }
    navigator.serviceWorker.register(config.sw, { scope: config.scope }).catch(function () {
      // Without it the app still works online; it only cannot open offline.
    });
  }

  function boot() {
    registerWorker();
    var link = linkCredentials();
    return Promise.all([quietly(Store.get("language")), quietly(Store.get("credentials"))])
      .then(function (got) {
        state.chosenLang = got[0] || "";
        return chooseLanguage().then(function () { return got[1]; });
      }).then(function (stored) {
        if (link && !(stored && stored.vehicle === link.vehicle && stored.key === link.key)) {
          return signIn(link.vehicle, link.key);
        }
        if (stored) {
          state.credentials = stored;
          return start(null);
        }
        showSignIn("", "");
      });
  }

  boot();
})();
