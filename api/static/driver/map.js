/* The driver's map: the route's own roads (its GeoJSON geometry), the stops, the next one
   large, and the van where the phone says it is. No tile layer, as on the dashboard: the app
   must work without internet and no tile server learns where the van is. The view follows
   the van and the next stop only when the next stop changes, so a driver's own zoom stays. */
(function (scope) {
  "use strict";

  var map = null;
  var layers = null;
  var van = null;
  var routeKey = null;
  var framedFor = null;
  var COLOURS = {
    pending: "#4b5563", arrived: "#6d28d9", delivered: "#166534", failed: "#9a3412",
    skipped: "#6b7280"
  };

  function ready(holder) {
    if (!scope.L) { return false; }
    if (map === null) {
      map = L.map(holder, { attributionControl: true, zoomSnap: 0.25, tap: false });
      map.attributionControl.setPrefix(false);
      map.attributionControl.addAttribution("Roads \u00a9 OpenStreetMap contributors");
      map.setView([0, 0], 2);
      layers = { route: L.layerGroup().addTo(map), stops: L.layerGroup().addTo(map),
        van: L.layerGroup().addTo(map) };
    }
    return true;
  }

  function line(geometry) {
    if (!geometry || geometry.type !== "LineString" || !geometry.coordinates) { return []; }
    return geometry.coordinates.map(function (c) { return [c[1], c[0]]; });
  }

  function frame(points) {
    var bounds = L.latLngBounds(points);
    if (bounds.isValid()) { map.fitBounds(bounds, { padding: [32, 32], maxZoom: 17 }); }
  }

  /* route: the API's answer; stops: with their shown status; next: the next stop or null;
     fix: the phone's last position {lat, lon} or null. */
  function draw(holder, route, stops, next, fix, labels) {
    if (!ready(holder)) { return; }
    var points = line(route.geometry);
    var key = route.plan_id + "@" + route.route_version;
    if (key !== routeKey) {
      layers.route.clearLayers();
      if (points.length > 1) {
        L.polyline(points, { color: "#1d4ed8", weight: 6, opacity: 0.8, interactive: false,
          className: "map-route" })
          .addTo(layers.route);
      }
      routeKey = key;
    }
    layers.stops.clearLayers();
    stops.forEach(function (stop) {
      var isNext = next !== null && stop.order_id === next.order_id;
      var marker = L.circleMarker([stop.lat, stop.lon], {
        radius: isNext ? 12 : 6,
        fillColor: isNext ? "#b91c1c" : COLOURS[stop.shown] || COLOURS.pending,
        fillOpacity: 1,
        color: "#ffffff",
        weight: isNext ? 3 : 1.5,
        className: isNext ? "map-next-stop" : "map-stop"
      });
      marker.bindTooltip(String(stop.sequence) + " · " + stop.address,
        { permanent: isNext, direction: "top", offset: [0, -10] });
      marker.addTo(layers.stops);
    });
    drawVan(fix, labels);
    var nextKey = next ? key + "/" + next.order_id : key;
    if (nextKey !== framedFor) {
      var wanted = [];
      if (next) { wanted.push([next.lat, next.lon]); }
      if (fix) { wanted.push([fix.lat, fix.lon]); }
      if (wanted.length < 2) {
        points.forEach(function (p) { wanted.push(p); });
        stops.forEach(function (s) { wanted.push([s.lat, s.lon]); });
      }
      if (wanted.length) {
        frame(wanted);
        framedFor = nextKey;
      }
    }
  }

  function drawVan(fix, labels) {
    if (map === null) { return; }
    if (!fix) { layers.van.clearLayers(); van = null; return; }
    if (van === null) {
      layers.van.clearLayers();
      var badge = document.createElement("span");
      badge.textContent = labels.van;
      var icon = L.divIcon({ className: "van-icon", html: badge, iconSize: null });
      van = L.marker([fix.lat, fix.lon], { icon: icon, keyboard: false, zIndexOffset: 1000,
        interactive: false });
      van.addTo(layers.van);
    } else {
      van.setLatLng([fix.lat, fix.lon]);
    }
  }

  function refresh() { if (map !== null) { map.invalidateSize(); } }

  function recenter() { framedFor = null; }

  scope.DriverMap = { draw: draw, drawVan: drawVan, refresh: refresh, recenter: recenter };
})(self);
