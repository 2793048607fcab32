/* The phone's fixes over MQTT over WebSockets (issue 20), when the service offers a broker
   for them (the stops' `mqtt`, api/driver_mqtt.py): one small frame per fix on a connection
   kept open, rather than an HTTP request each. It needs the vendored MQTT.js (global `mqtt`).

   Only a fix the broker acknowledged (QoS 1) counts as sent. With no connection, or when a
   publish fails or is not acknowledged in time, publish() answers false and the caller
   queues the fix for HTTP (outbox.js), so a dead zone loses nothing. A fix taken back that
   way may still have reached the broker; the ingester stores a fix it already has once. The
   one gap: a fix in flight when the page is closed (the milliseconds between the publish and
   the broker's acknowledgement) is in neither queue. */
(function (scope) {
  "use strict";

  // How long a fix waits for a connection being made before it goes over HTTP instead: the
  // first fix comes as soon as the app starts, a moment before the connection is up.
  var CONNECT_WAIT_MS = 5000;
  var ACK_WAIT_MS = 10000;
  var RETRY_MIN_MS = 2000;
  var RETRY_MAX_MS = 60000;

  var client = null;
  var offer = null;
  var using = null;
  var connecting = false;
  var waiting = [];
  var listeners = [];
  var path = "http";

  function setPath(next) {
    if (next === path) { return; }
    path = next;
    listeners.forEach(function (listener) { listener(path); });
  }

  function settleWaiting(up) {
    var settle = waiting;
    waiting = [];
    settle.forEach(function (resolve) { resolve(up); });
  }

  function stop() {
    var old = client;
    client = null;
    offer = null;
    using = null;
    connecting = false;
    settleWaiting(false);
    setPath("http");
    if (old) { old.end(true); }
  }

  /* Connects for `given` (the stops' mqtt, or null: none), once per offer and key. */
  function use(given, key) {
    var wanted = given ? JSON.stringify([given, key]) : null;
    if (wanted === using) { return; }
    stop();
    if (!given || !scope.mqtt) { return; }
    var options = {
      clientId: given.client_id,
      // The broker keeps the phone's session across drops: QoS 1 frames in flight go on.
      clean: false,
      protocolVersion: 4,
      keepalive: 30,
      connectTimeout: 10000,
      reconnectPeriod: RETRY_MIN_MS,
      resubscribe: false
    };
    // A broker that checks no one (the service's own, on this machine) is sent no secret.
    if (given.username !== null && given.username !== undefined) {
      options.username = given.username;
      options.password = key;
    }
    var own = scope.mqtt.connect(given.url, options);
    client = own;
    offer = given;
    using = wanted;
    connecting = true;
    own.on("connect", function () {
      if (client !== own) { return; }
      connecting = false;
      own.options.reconnectPeriod = RETRY_MIN_MS;
      setPath("mqtt");
      settleWaiting(true);
    });
    own.on("reconnect", function () { if (client === own) { connecting = true; } });
    own.on("close", function () {
      if (client !== own) { return; }
      connecting = false;
      setPath("http");
      settleWaiting(false);
      // A broker that keeps refusing or cannot be reached is asked less and less often.
      own.options.reconnectPeriod = Math.min(own.options.reconnectPeriod * 2, RETRY_MAX_MS);
    });
    // A refused CONNECT (user name or key) ends the attempts: the fixes go over HTTP.
    own.on("error", function () { /* "close" follows */ });
  }

  function ready() {
    if (!client || !navigator.onLine) { return Promise.resolve(false); }
    if (client.connected) { return Promise.resolve(true); }
    if (!connecting) { return Promise.resolve(false); }
    return new Promise(function (resolve) {
      var timer = setTimeout(function () { resolve(false); }, CONNECT_WAIT_MS);
      waiting.push(function (up) { clearTimeout(timer); resolve(up); });
    });
  }

  /* Takes a frame not acknowledged in time out of MQTT.js's queue, so that it is not sent
     again on reconnection after it went over HTTP. */
  function forget(own, callback) {
    var ids = Object.keys(own.outgoing || {});
    for (var i = 0; i < ids.length; i += 1) {
      if (own.outgoing[ids[i]].cb === callback) {
        own.removeOutgoingMessage(Number(ids[i]));
        return;
      }
    }
  }

  function send(body) {
    var own = client;
    var topic = offer.topic;
    return new Promise(function (resolve) {
      var done = false;
      var timer = null;
      function finish(sent) {
        if (done) { return; }
        done = true;
        clearTimeout(timer);
        resolve(sent);
      }
      function acked(error) { finish(!error); }
      timer = setTimeout(function () {
        finish(false);
        forget(own, acked);
      }, ACK_WAIT_MS);
      try {
        own.publish(topic, JSON.stringify(body), { qos: 1 }, acked);
      } catch (e) {
        finish(false);
      }
    });
  }

  /* One fix (our JSON position body): resolves true once the broker has it, false when it
     must go over HTTP. */
  function publish(body) {
    return ready().then(function (up) { return up && client ? send(body) : false; });
  }

  /* listener(path) with "mqtt" or "http" whenever the path changes. */
  function onChange(listener) { listeners.push(listener); }

  scope.DriverBroker = {
    use: use, stop: stop, publish: publish, onChange: onChange,
    path: function () { return path; }
  };
})(self);
