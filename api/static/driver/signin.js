/* Signing in and out with the vehicle's device key: typed, or from the dispatcher's link
   (/driver#vehicle=...&key=...), checked by reading the vehicle's stops, and kept in the
   phone's IndexedDB (store.js), never in a cookie. Signed in, start() shows the route (the
   one just fetched, else the one kept from last time) and goes live (live.js, queue.js). */
(function (scope) {
  "use strict";

  var Store = scope.DriverStore;
  var DriverMap = scope.DriverMap;
  var Page = scope.DriverPage;
  var View = scope.DriverView;
  var Queue = scope.DriverQueue;
  var Live = scope.DriverLive;
  var state = Page.state;
  var $ = Page.$;
  var t = Page.t;
  var announce = Page.announce;
  var quietly = Page.quietly;
  var getStops = Page.getStops;
  var refusal = Page.refusal;
  var render = View.render;
  var renderBanners = View.renderBanners;
  var accept = Live.accept;
  var refresh = Live.refresh;
  var connect = Live.connect;
  var stopLive = Live.stopLive;
  var flush = Queue.flush;

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

  /* The key stopped working ("Sign in again" on its banner). */
  function signInAgain() {
    var vehicle = state.credentials ? state.credentials.vehicle : "";
    state.authLost = false;
    stopLive();
    state.credentials = null;
    // The outbox stays: it goes out once the driver signs in again with a working key.
    quietly(Store.remove("credentials")).then(function () { showSignIn("", vehicle); });
  }

  scope.DriverSignIn = {
    linkCredentials: linkCredentials, showSignIn: showSignIn, signIn: signIn,
    signOut: signOut, signInAgain: signInAgain, start: start
  };
})(self);
