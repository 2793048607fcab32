/* The dispatcher dashboard: draws the state the server rendered into the page, then every
   state the event stream sends. Data only ever goes into the page as text (textContent,
   Leaflet content given as elements), never as HTML. */
(function () {
  "use strict";

  // Kept in step with dashboard.css (the legend's swatches).
  var STATUS_COLOUR = {
    planned: "#6b7280",
    next: "#0b57d0",
    arrived: "#7c3aed",
    left: "#0f766e",
    delivered: "#1b6e3a",
    failed: "#92400e",
    cancelled: "#c4c4c4"
  };
  var LATE_COLOUR = "#dc2626";
  var ROUTE_COLOURS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2",
    "#65a30d", "#be123c", "#4f46e5", "#0d9488"];
  var DONE = { delivered: true, failed: true, left: true, cancelled: true };

  var map = null;
  var layers = null;
  var routeKey = null;
  var clockFormat = null;
  var zone = null;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function clock(iso) {
    if (!iso) { return ""; }
    return clockFormat.format(new Date(iso));
  }

  function range(pair) {
    return pair ? clock(pair[0]) + "–" + clock(pair[1]) : "";
  }

  function setFormat(timezone) {
    if (timezone === zone) { return; }
    zone = timezone;
    try {
      clockFormat = new Intl.DateTimeFormat(undefined,
        { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: timezone });
    } catch (e) {
      clockFormat = new Intl.DateTimeFormat(undefined,
        { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    }
  }

  function renderCounts(state) {
    var counts = state.counts;
    document.querySelectorAll("#counts [data-count]").forEach(function (node) {
      var name = node.getAttribute("data-count");
      node.textContent = String(counts[name] !== undefined ? counts[name] : "");
    });
    document.getElementById("day").textContent = state.day;
    document.getElementById("org").textContent = state.organisation;
  }

  function renderAccuracy(state) {
    var accuracy = state.accuracy || {};
    document.querySelectorAll("[data-accuracy]").forEach(function (node) {
      var name = node.getAttribute("data-accuracy");
      node.textContent = String(accuracy[name] !== undefined ? accuracy[name] : "");
    });
  }

  function stopRow(vehicle, stop) {
    var tr = el("tr");
    tr.setAttribute("data-order", stop.order);
    tr.setAttribute("data-vehicle", vehicle.id);
    tr.setAttribute("data-status", stop.status);
    if (stop.late) { tr.classList.add("late"); }
    if (DONE[stop.status]) { tr.classList.add("done"); }
    var who = el("td", null, vehicle.id);
    if (vehicle.no_signal) {
      // Silent past the threshold: its ETAs assume it has not moved since its last fix.
      tr.setAttribute("data-no-signal", "true");
      who.appendChild(document.createTextNode(" "));
      who.appendChild(el("span", "no-signal", "no signal"));
    }
    tr.appendChild(who);
    tr.appendChild(el("td", "num", stop.seq));
    var order = el("th", null, stop.order);
    order.setAttribute("scope", "row");
    tr.appendChild(order);
    tr.appendChild(el("td", null, stop.ref));
    var status = el("td");
    status.appendChild(el("span", "badge status-" + stop.status, stop.status));
    tr.appendChild(status);
    tr.appendChild(el("td", null, stop.time_windows.map(range).join(", ")));
    tr.appendChild(el("td", null, clock(stop.planned_arrival)));
    tr.appendChild(el("td", null, clock(stop.eta)));
    tr.appendChild(el("td", null, range(stop.eta_window)));
    var late = "";
    if (stop.late) {
      late = stop.late_min + " min (" + stop.late_reasons.map(function (r) {
        return r === "told" ? "vs told" : "vs window";
      }).join(", ") + ")";
    }
    tr.appendChild(el("td", "late-cell", late));
    return tr;
  }

  function renderStops(state) {
    var body = document.querySelector("#stops tbody");
    var rows = document.createDocumentFragment();
    var count = 0;
    state.vehicles.forEach(function (vehicle) {
      vehicle.stops.forEach(function (stop) {
        rows.appendChild(stopRow(vehicle, stop));
        count += 1;
      });
    });
    body.replaceChildren(rows);
    document.getElementById("stops-empty").hidden = count > 0;
  }

  function renderUnassigned(state) {
    var list = document.getElementById("unassigned");
    var items = document.createDocumentFragment();
    state.unassigned.forEach(function (u) {
      var li = el("li");
      li.setAttribute("data-order", u.order);
      var name = el("strong", null, u.order);
      li.appendChild(name);
      if (u.ref) { li.appendChild(document.createTextNode(" · " + u.ref)); }
      if (u.time_windows.length) {
        li.appendChild(document.createTextNode(" · " + u.time_windows.map(range).join(", ")));
      }
      li.appendChild(el("span", "why", u.reason));
      items.appendChild(li);
    });
    if (!state.unassigned.length) { items.appendChild(el("li", "muted", "None.")); }
    list.replaceChildren(items);
    var more = document.getElementById("unassigned-more");
    var hidden = state.counts.unassigned - state.unassigned.length;
    more.hidden = hidden <= 0;
    more.textContent = hidden > 0 ? "and " + hidden + " more" : "";
  }

  function renderFeed(state) {
    var list = document.getElementById("feed");
    var items = document.createDocumentFragment();
    state.feed.forEach(function (n) {
      var li = el("li", n.status);
      li.setAttribute("data-id", String(n.id));
      li.setAttribute("data-order", n.order);
      li.appendChild(el("span", "when", clock(n.sent_at || n.at)));
      li.appendChild(el("strong", null, n.order));
      li.appendChild(document.createTextNode(
        (n.ref ? " · " + n.ref : "") + " · " + n.trigger + " · " + n.channel + " · " + n.status));
      if (n.last_error) { li.appendChild(el("span", "why", n.last_error)); }
      items.appendChild(li);
    });
    if (!state.feed.length) { items.appendChild(el("li", "muted", "No messages yet.")); }
    list.replaceChildren(items);
  }

  function tooltip(lines) {
    var box = el("div");
    lines.forEach(function (line) {
      if (line) { box.appendChild(el("div", null, line)); }
    });
    return box;
  }

  function renderMap(state) {
    if (!window.L) { return; }
    if (map === null) {
      // No tile layer: the dashboard must work without internet.
      map = L.map("dashboard-map", { attributionControl: false, zoomSnap: 0.25 });
      map.setView([0, 0], 2);
      layers = { routes: L.layerGroup().addTo(map), stops: L.layerGroup().addTo(map),
        vehicles: L.layerGroup().addTo(map) };
    }
    var bounds = L.latLngBounds([]);
    var key = state.vehicles.map(function (v) { return v.id + "@" + v.plan_id; }).join("|");
    var newRoutes = key !== routeKey;
    if (newRoutes) {
      layers.routes.clearLayers();
      state.vehicles.forEach(function (vehicle, i) {
        if (vehicle.line.length > 1) {
          L.polyline(vehicle.line, { color: ROUTE_COLOURS[i % ROUTE_COLOURS.length], weight: 4,
            opacity: 0.7, interactive: false }).addTo(layers.routes);
        }
      });
      routeKey = key;
    }
    layers.routes.eachLayer(function (line) { bounds.extend(line.getBounds()); });
    layers.stops.clearLayers();
    layers.vehicles.clearLayers();
    state.vehicles.forEach(function (vehicle) {
      vehicle.stops.forEach(function (stop) {
        var marker = L.circleMarker([stop.lat, stop.lon], {
          radius: stop.status === "next" ? 8 : 6,
          fillColor: STATUS_COLOUR[stop.status] || STATUS_COLOUR.planned,
          fillOpacity: 0.95,
          color: stop.late ? LATE_COLOUR : "#ffffff",
          weight: stop.late ? 4 : 1.5
        });
        marker.bindTooltip(tooltip([
          stop.order + (stop.ref ? " · " + stop.ref : ""),
          vehicle.id + " #" + stop.seq + " · " + stop.status,
          stop.eta ? "ETA " + clock(stop.eta) : "planned " + clock(stop.planned_arrival),
          stop.late ? stop.late_min + " min late" : ""
        ]));
        marker.addTo(layers.stops);
        bounds.extend([stop.lat, stop.lon]);
      });
      if (vehicle.lat !== null && vehicle.lon !== null) {
        var badge = el("span", vehicle.no_signal ? "no-signal" : null,
          vehicle.id + (vehicle.no_signal ? " · no signal" : ""));
        var icon = L.divIcon({ className: "vehicle-icon", html: badge, iconSize: null });
        var marker = L.marker([vehicle.lat, vehicle.lon], { icon: icon, keyboard: false,
          zIndexOffset: 1000 });
        marker.bindTooltip(tooltip([
          vehicle.id + (vehicle.driver ? " · " + vehicle.driver : ""),
          vehicle.last_fix ? "last fix " + clock(vehicle.last_fix) : "no fix yet",
          vehicle.no_signal ? "no signal: ETAs assume it has not moved since" : "",
          vehicle.stops_done + " / " + vehicle.stops_total + " stops done"
        ]));
        marker.addTo(layers.vehicles);
        bounds.extend([vehicle.lat, vehicle.lon]);
      }
    });
    // Fit only when the routes change, so a dispatcher's own zoom survives live updates.
    if (newRoutes && bounds.isValid()) {
      map.fitBounds(bounds, { padding: [24, 24], maxZoom: 16 });
    }
  }

  function render(state) {
    setFormat(state.timezone);
    renderCounts(state);
    renderStops(state);
    renderUnassigned(state);
    renderFeed(state);
    renderAccuracy(state);
    renderMap(state);
  }

  function connection(text, className) {
    var node = document.getElementById("connection");
    node.textContent = text;
    node.className = "connection " + className;
  }

  function listen() {
    if (!window.EventSource) {
      connection("Live updates need a newer browser; reload to refresh.", "lost");
      return;
    }
    var source = new EventSource("/dashboard/events");
    source.addEventListener("open", function () { connection("Live", "live"); });
    source.addEventListener("update", function (e) {
      connection("Live", "live");
      render(JSON.parse(e.data));
    });
    source.addEventListener("error", function () {
      // CLOSED: the server refused (the key was revoked or logged out); otherwise the
      // browser reconnects by itself.
      if (source.readyState === EventSource.CLOSED) {
        connection("Disconnected: reload the page to log in again.", "lost");
      } else {
        connection("Reconnecting…", "lost");
      }
    });
  }

  render(JSON.parse(document.getElementById("initial-state").textContent));
  listen();
})();
