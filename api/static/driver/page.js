/* What every part of the driver app's page shares (stops.js, view.js, forms.js, queue.js,
   live.js, signin.js and app.js, loaded in that order after it): the settings the shell hands
   over, the one `state` object they all read and change (never replaced, only its fields),
   small DOM helpers, the app's texts, and the calls that read the vehicle's stops. Kept in
   one place so that no part needs another for these. */
(function (scope) {
  "use strict";

  var I18n = scope.DriverI18n;

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

  function button(text, className, data) {
    var node = el("button", className, text);
    node.type = "button";
    Object.keys(data || {}).forEach(function (name) {
      node.setAttribute("data-" + name, data[name]);
    });
    return node;
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

  scope.DriverPage = {
    config: config, state: state,
    $: $, el: el, button: button, t: t, announce: announce, quietly: quietly,
    base: base, auth: auth, getStops: getStops, refusal: refusal
  };
})(self);
