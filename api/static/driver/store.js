/* The driver app's storage on the phone (IndexedDB), shared by the page and the service
   worker (which loads it with importScripts): the sign-in, the last route seen (so the app
   opens without signal), the outbox of actions and positions waiting to be sent, and the
   actions the service refused. IndexedDB, not localStorage: the service worker cannot read
   localStorage, and it sends the outbox when the page is closed. */
(function (scope) {
  "use strict";

  var NAME = "lastmile-driver";
  var VERSION = 1;
  var opening = null;

  function request(req) {
    return new Promise(function (resolve, reject) {
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }

  function open() {
    if (opening === null) {
      opening = new Promise(function (resolve, reject) {
        var req = indexedDB.open(NAME, VERSION);
        req.onupgradeneeded = function () {
          var db = req.result;
          // Small values by name: the sign-in, the language chosen, the last route, the
          // last position queued (per vehicle).
          db.createObjectStore("kv");
          // In the order things happened: sent strictly in this order.
          var outbox = db.createObjectStore("outbox", { keyPath: "seq", autoIncrement: true });
          outbox.createIndex("vehicle", "vehicle");
          db.createObjectStore("rejected", { keyPath: "action_id" });
        };
        req.onsuccess = function () {
          var db = req.result;
          // Another tab (or the worker) upgrading: let it, and open again next time.
          db.onversionchange = function () { db.close(); opening = null; };
          resolve(db);
        };
        req.onerror = function () { opening = null; reject(req.error); };
        req.onblocked = function () { /* waits for the other connection to close */ };
      });
    }
    return opening;
  }

  /* Runs work(stores...) in one transaction; resolves with its result once committed. */
  function tx(names, mode, work) {
    return open().then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(names, mode);
        var result;
        t.oncomplete = function () { resolve(result); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error || new Error("transaction aborted")); };
        var stores = names.map(function (n) { return t.objectStore(n); });
        Promise.resolve(work.apply(null, stores)).then(function (value) { result = value; },
          function (error) { try { t.abort(); } catch (e) { /* already done */ } reject(error); });
      });
    });
  }

  function get(key) {
    return tx(["kv"], "readonly", function (kv) { return request(kv.get(key)); });
  }

  function set(key, value) {
    return tx(["kv"], "readwrite", function (kv) { return request(kv.put(value, key)); });
  }

  function remove(key) {
    return tx(["kv"], "readwrite", function (kv) { return request(kv.delete(key)); });
  }

  /* Queue one item: {vehicle, type: "action" | "position", body}. Resolves with its seq. */
  function enqueue(item) {
    item.queued_at = new Date().toISOString();
    return tx(["outbox"], "readwrite", function (outbox) { return request(outbox.add(item)); });
  }

  /* Every queued item of the vehicle, oldest first. */
  function queued(vehicle) {
    return tx(["outbox"], "readonly", function (outbox) {
      return request(outbox.index("vehicle").getAll(IDBKeyRange.only(vehicle)));
    }).then(function (items) {
      return items.sort(function (a, b) { return a.seq - b.seq; });
    });
  }

  /* The vehicle's oldest queued item, or null. */
  function first(vehicle) {
    return tx(["outbox"], "readonly", function (outbox) {
      return new Promise(function (resolve, reject) {
        var cursor = outbox.openCursor();
        cursor.onerror = function () { reject(cursor.error); };
        cursor.onsuccess = function () {
          var at = cursor.result;
          if (!at) { resolve(null); return; }
          if (at.value.vehicle === vehicle) { resolve(at.value); return; }
          at.continue();
        };
      });
    });
  }

  function dequeue(seq) {
    return tx(["outbox"], "readwrite", function (outbox) { return request(outbox.delete(seq)); });
  }

  /* Positions queued for the vehicle, counted, and the oldest dropped beyond `keep`: a phone
     offline for hours sends its recent track, not every fix of the morning first. */
  function trimPositions(vehicle, keep) {
    return tx(["outbox"], "readwrite", function (outbox) {
      return request(outbox.index("vehicle").getAll(IDBKeyRange.only(vehicle))).then(
        function (items) {
          var positions = items.filter(function (i) { return i.type === "position"; })
            .sort(function (a, b) { return a.seq - b.seq; });
          var drop = positions.slice(0, Math.max(0, positions.length - keep));
          return Promise.all(drop.map(function (i) { return request(outbox.delete(i.seq)); }));
        });
    });
  }

  /* An action the service refused for good: {action_id, vehicle, order_id, kind, status,
     message, at}. */
  function reject(entry) {
    return tx(["rejected"], "readwrite", function (store) { return request(store.put(entry)); });
  }

  function rejected(vehicle) {
    return tx(["rejected"], "readonly", function (store) { return request(store.getAll()); })
      .then(function (all) { return all.filter(function (r) { return r.vehicle === vehicle; }); });
  }

  function dismiss(actionId) {
    return tx(["rejected"], "readwrite", function (store) {
      return request(store.delete(actionId));
    });
  }

  scope.DriverStore = {
    get: get, set: set, remove: remove,
    enqueue: enqueue, queued: queued, first: first, dequeue: dequeue,
    trimPositions: trimPositions,
    reject: reject, rejected: rejected, dismiss: dismiss
  };
})(self);
