/* The screen around the stops: render() redraws it all from `state` (banners, the header's
   connection and positions chips, the call-dispatch button, the stops list of stops.js and
   the map of map.js), and the app's language (the selector, and wording the page again when
   it changes). Every part that changes `state` calls render() or one of these afterwards. */
(function (scope) {
  "use strict";

  var I18n = scope.DriverI18n;
  var DriverMap = scope.DriverMap;
  var Broker = scope.DriverBroker;
  var Page = scope.DriverPage;
  var Stops = scope.DriverStops;
  var config = Page.config;
  var state = Page.state;
  var $ = Page.$;
  var el = Page.el;
  var t = Page.t;
  var ACTIVE = Stops.ACTIVE;
  var shownStops = Stops.shownStops;
  var renderStops = Stops.renderStops;

  /* Starts or stops the GPS as the route asks (queue.js, loaded after this file): looked up
     when called, never before app.js has started the page. */
  function gps() { scope.DriverQueue.gps(); }

  function connection(kind) {
    var node = $("connection");
    node.className = "connection " + kind;
    node.textContent = t("connection_" + kind);
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

  scope.DriverView = {
    render: render, renderBanners: renderBanners, renderPath: renderPath,
    connection: connection, chooseLanguage: chooseLanguage
  };
})(self);
