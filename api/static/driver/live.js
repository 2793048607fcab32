/* The route kept current: fetched with its ETag (a 304 when nothing changed), kept on the
   phone so the app opens without signal, and refreshed whenever the route's event stream says
   it changed. The stream is read with fetch because EventSource cannot send the key; while it
   is down the route is polled, and the stream is tried again with a growing wait. Also
   stopping all of that (and the GPS and broker) at sign-out or when the key stops working. */
(function (scope) {
  "use strict";

  var Store = scope.DriverStore;
  var Gps = scope.DriverGps;
  var Broker = scope.DriverBroker;
  var Page = scope.DriverPage;
  var View = scope.DriverView;
  var Queue = scope.DriverQueue;
  var state = Page.state;
  var announce = Page.announce;
  var quietly = Page.quietly;
  var base = Page.base;
  var auth = Page.auth;
  var getStops = Page.getStops;
  var refusal = Page.refusal;
  var render = View.render;
  var renderBanners = View.renderBanners;
  var connection = View.connection;
  var chooseLanguage = View.chooseLanguage;
  var refreshQueue = Queue.refreshQueue;

  var POLL_MS = 20000;
  var STREAM_RETRY_MAX_MS = 60000;

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

  function authLost() {
    state.authLost = true;
    stopLive();
    renderBanners();
    connection("lost");
  }

  scope.DriverLive = {
    accept: accept, refresh: refresh, connect: connect, reconnectNow: reconnectNow,
    stopLive: stopLive, authLost: authLost
  };
})(self);
