/* What the driver does, queued on the phone first so a dead zone loses nothing: the actions
   (Arrived / Delivered / Failed, each with its own UUID) and the GPS fixes taken while a
   route is active (over MQTT when the service offers a broker, broker.js, else queued for
   HTTP). This is the page's side of the outbox: store.js keeps it, outbox.js sends it (here
   or from the service worker), and this file starts the runs, retries them and shows what is
   still waiting. */
(function (scope) {
  "use strict";

  var Store = scope.DriverStore;
  var Outbox = scope.DriverOutbox;
  var Gps = scope.DriverGps;
  var DriverMap = scope.DriverMap;
  var Broker = scope.DriverBroker;
  var Page = scope.DriverPage;
  var Stops = scope.DriverStops;
  var View = scope.DriverView;
  var state = Page.state;
  var t = Page.t;
  var announce = Page.announce;
  var quietly = Page.quietly;
  var routeActive = Stops.routeActive;
  var render = View.render;
  var renderBanners = View.renderBanners;

  var FLUSH_RETRY_MAX_MS = 60000;
  // Positions kept queued while offline: the last hour at one every 5 s.
  var KEEP_POSITIONS = 720;
  var SYNC_TAG = "lastmile-outbox";

  /* live.js is loaded after this file: looked up when a run needs it. */
  function refresh() { return scope.DriverLive.refresh(); }
  function authLost() { scope.DriverLive.authLost(); }

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

  function onLocationProblem(code) {
    state.locationProblem = code;
    renderBanners();
  }

  function gps() {
    if (state.credentials && !state.authLost && routeActive()) {
      Gps.start(onFix, onLocationProblem);
    } else {
      Gps.stop();
    }
  }

  scope.DriverQueue = {
    refreshQueue: refreshQueue, flush: flush, flushed: flushed, queueAction: queueAction,
    gps: gps
  };
})(self);
