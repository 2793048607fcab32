/* Sends the outbox (store.js), shared by the page and the service worker: oldest first, one
   at a time, each until the service answers 2xx. An action carries its own UUID, made when
   the driver pressed the button, so sending it again after a lost answer is harmless (the
   service answers 200 instead of 201); the order matters (arrived before delivered), so a
   failure stops the run and the next run starts from the same item.

   What an answer means: 2xx sent; network error, 408, 429 or 5xx: try again later; 401: the
   key no longer works, keep everything for when the driver signs in again; any other 4xx:
   the service will never take it, so it is dropped (an action is recorded as refused, to
   show on its stop). A Web Lock keeps the page and the worker from sending at once. */
(function (scope) {
  "use strict";

  var LOCK = "lastmile-driver-outbox";
  var RETRY = { 408: true, 429: true };

  function url(vehicle, type) {
    var base = "/v1/vehicles/" + encodeURIComponent(vehicle);
    return base + (type === "action" ? "/actions" : "/positions");
  }

  function problem(response) {
    return response.json().then(function (body) {
      var error = body && body.error;
      if (error && error.message) {
        var details = (error.problems || []).map(function (p) {
          return (p.field ? p.field + ": " : "") + p.message;
        });
        return [error.message].concat(details).join("; ");
      }
      return body && body.reason ? String(body.reason) : "HTTP " + response.status;
    }).catch(function () { return "HTTP " + response.status; });
  }

  /* One item: "sent", "dropped", "retry" or "auth". */
  function sendOne(item, key) {
    return fetch(url(item.vehicle, item.type), {
      method: "POST",
      headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" },
      body: JSON.stringify(item.body),
      cache: "no-store",
      credentials: "omit"
    }).then(function (response) {
      if (response.ok) { return "sent"; }
      if (response.status === 401) { return "auth"; }
      if (response.status >= 500 || RETRY[response.status]) { return "retry"; }
      if (item.type !== "action") { return "dropped"; }
      return problem(response).then(function (message) {
        return scope.DriverStore.reject({
          action_id: item.body.action_id,
          vehicle: item.vehicle,
          order_id: item.body.order_id,
          kind: item.body.kind,
          status: response.status,
          message: message,
          at: new Date().toISOString()
        }).then(function () { return "dropped"; });
      });
    }, function () { return "retry"; });
  }

  function run(vehicle, key) {
    var result = { sent: 0, dropped: 0, actions: 0, halted: null };
    function next() {
      return scope.DriverStore.first(vehicle).then(function (item) {
        if (item === null) { return result; }
        return sendOne(item, key).then(function (outcome) {
          if (outcome === "retry" || outcome === "auth") {
            result.halted = outcome;
            return result;
          }
          result[outcome] += 1;
          if (item.type === "action") { result.actions += 1; }
          return scope.DriverStore.dequeue(item.seq).then(next);
        });
      });
    }
    return next();
  }

  /* Sends the signed-in vehicle's queue. Resolves with {sent, dropped, actions, halted}:
     halted is null when the queue is empty, else "retry" or "auth". */
  function flush() {
    return scope.DriverStore.get("credentials").then(function (credentials) {
      if (!credentials) { return { sent: 0, dropped: 0, actions: 0, halted: "auth" }; }
      var work = function () { return run(credentials.vehicle, credentials.key); };
      var locks = scope.navigator && scope.navigator.locks;
      return locks ? locks.request(LOCK, work) : work();
    });
  }

  scope.DriverOutbox = { flush: flush };
})(self);
