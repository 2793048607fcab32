/* The driver's app: sign in with the vehicle's device key, the day's stops in order with
   what the customer asked for, the next stop on a map of the route's roads, the phone's GPS
   sent while a route is active, and Arrived / Delivered / Failed with proof, queued on the
   phone so a dead zone loses nothing; live over the route's event stream.

   This file only wires the parts together and starts them, and is loaded last: the buttons
   and the browser's events (online, visibility, install, the service worker's messages) to
   what they do, then the start (the service worker, and the sign-in kept or from the link).
   The parts, each loaded before it in this order: page.js (state and helpers shared by all),
   stops.js (the stop cards), view.js (render() and the language), forms.js (Delivered /
   Failed with photo and signature), queue.js (actions and fixes queued and sent), live.js
   (the route refreshed, its stream and poll), signin.js (signing in and out). Each one is a
   global (DriverPage, DriverStops, ...), as store.js and the others are. A part that calls
   one loaded after it looks it up when called: nothing runs before boot() below. Data from
   the service only ever goes into the page as text (textContent, attributes). */
(function (scope) {
  "use strict";

  var Store = scope.DriverStore;
  var DriverMap = scope.DriverMap;
  var Broker = scope.DriverBroker;
  var Page = scope.DriverPage;
  var View = scope.DriverView;
  var Forms = scope.DriverForms;
  var Queue = scope.DriverQueue;
  var Live = scope.DriverLive;
  var SignIn = scope.DriverSignIn;
  var config = Page.config;
  var state = Page.state;
  var $ = Page.$;
  var t = Page.t;
  var quietly = Page.quietly;
  var render = View.render;
  var renderBanners = View.renderBanners;
  var renderPath = View.renderPath;
  var connection = View.connection;
  var chooseLanguage = View.chooseLanguage;
  var openForm = Forms.openForm;
  var closeForm = Forms.closeForm;
  var pickPhoto = Forms.pickPhoto;
  var removePhoto = Forms.removePhoto;
  var submitForm = Forms.submitForm;
  var refreshQueue = Queue.refreshQueue;
  var flush = Queue.flush;
  var flushed = Queue.flushed;
  var queueAction = Queue.queueAction;
  var refresh = Live.refresh;
  var reconnectNow = Live.reconnectNow;
  var linkCredentials = SignIn.linkCredentials;
  var showSignIn = SignIn.showSignIn;
  var signIn = SignIn.signIn;
  var signOut = SignIn.signOut;
  var start = SignIn.start;

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
      Forms.chooseReason(target);
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
  $("sign-in-again").addEventListener("click", SignIn.signInAgain);

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
})(self);
