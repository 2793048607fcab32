/* The phone's GPS while a route is active: watchPosition, and which fixes go to the service.
   The same hygiene as the other trackers: a fix less accurate than 100 m says nothing about
   which street the van is on, so it is not sent; a fix no newer than the last one sent would
   move the van backwards; and a van standing still needs a fix every ~5 s, not every second,
   unless it has moved more than 30 m since. */
(function (scope) {
  "use strict";

  var WORST_ACCURACY_M = 100;
  var EVERY_MS = 5000;
  var MOVED_M = 30;
  var watch = null;

  function metres(a, b) {
    var rad = Math.PI / 180;
    var dLat = (b.lat - a.lat) * rad;
    var dLon = (b.lon - a.lon) * rad;
    var h = Math.pow(Math.sin(dLat / 2), 2) +
      Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.pow(Math.sin(dLon / 2), 2);
    return 2 * 6371008.8 * Math.asin(Math.min(1, Math.sqrt(h)));
  }

  /* A GeolocationPosition as our JSON position body (telematics/decoders.py). */
  function body(position) {
    var c = position.coords;
    var fix = {
      lat: c.latitude,
      lon: c.longitude,
      time: new Date(position.timestamp).toISOString(),
      accuracy_m: c.accuracy
    };
    if (isFinite(c.speed) && c.speed !== null && c.speed >= 0 && c.speed <= 150) {
      fix.speed_mps = c.speed;
    }
    if (isFinite(c.heading) && c.heading !== null && c.heading >= 0 && c.heading <= 360) {
      fix.heading_deg = c.heading;
    }
    if (isFinite(c.altitude) && c.altitude !== null) { fix.altitude_m = c.altitude; }
    return fix;
  }

  /* Whether a fix should be sent, given the last one sent ({lat, lon, t} or null). */
  function worthSending(fix, last) {
    if (!(fix.accuracy_m <= WORST_ACCURACY_M)) { return false; }
    var t = Date.parse(fix.time);
    if (last === null) { return true; }
    if (!(t > last.t)) { return false; }
    return t - last.t >= EVERY_MS || metres(last, fix) > MOVED_M;
  }

  /* onFix(position) for every fix; onProblem(code) with "denied", "unavailable", "timeout"
     or "unsupported"; a fix after a problem clears it (onFix). */
  function start(onFix, onProblem) {
    if (watch !== null) { return; }
    if (!("geolocation" in navigator)) { onProblem("unsupported"); return; }
    watch = navigator.geolocation.watchPosition(onFix, function (error) {
      var code = { 1: "denied", 2: "unavailable", 3: "timeout" }[error.code] || "unavailable";
      onProblem(code);
    }, { enableHighAccuracy: true, maximumAge: 5000, timeout: 60000 });
  }

  function stop() {
    if (watch !== null) { navigator.geolocation.clearWatch(watch); }
    watch = null;
  }

  scope.DriverGps = {
    start: start, stop: stop, body: body, worthSending: worthSending, metres: metres,
    running: function () { return watch !== null; }
  };
})(self);
