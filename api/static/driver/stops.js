/* The stops list: one card per stop of the route, in order, with what the customer asked
   for, the time window and ETA, call / navigate links and the Arrived / Delivered / Failed
   buttons; and the statuses the phone shows before the service knows them (actions still in
   the outbox, actions the service refused). Apart from the rest of the screen (view.js)
   because it is most of the drawing, and the part that must keep an open proof form
   (forms.js) in place while the route changes under it. Data from the service only ever goes
   into the page as text (textContent, attributes). */
(function (scope) {
  "use strict";

  var I18n = scope.DriverI18n;
  var Page = scope.DriverPage;
  var state = Page.state;
  var $ = Page.$;
  var el = Page.el;
  var button = Page.button;
  var t = Page.t;
  var announce = Page.announce;

  var ACTIVE = { pending: true, arrived: true };
  var SHOWN_BY_KIND = { arrived: "arrived", delivered: "delivered", failed: "failed" };

  function timeLocale() {
    var lang = I18n.lang();
    var tags = navigator.languages || [navigator.language];
    for (var i = 0; i < tags.length; i += 1) {
      if (String(tags[i]).split("-")[0].toLowerCase() === lang) { return tags[i]; }
    }
    return lang;
  }

  function clock(iso) {
    if (!iso) { return "—"; }
    var at = new Date(iso);
    if (isNaN(at.getTime())) { return "—"; }
    // The phone's own time zone (the driver is where the customer is), and its own clock
    // style when it speaks the app's language (en-GB: 24 h, en-US: 12 h).
    return at.toLocaleTimeString(timeLocale(), { hour: "2-digit", minute: "2-digit" });
  }

  function coordinates(stop) {
    return Number(stop.lat).toFixed(6) + "," + Number(stop.lon).toFixed(6);
  }

  /* The phone's navigation app at the stop. */
  function navigateHref(stop) {
    var at = coordinates(stop);
    var agent = navigator.userAgent;
    if (/Android/i.test(agent)) { return "geo:" + at + "?q=" + at; }
    var apple = /iPad|iPhone|iPod/.test(agent) ||
      (/Macintosh/.test(agent) && navigator.maxTouchPoints > 1);  // iPadOS asks as a Mac
    if (apple) {
      return "https://maps.apple.com/?daddr=" + at;
    }
    return "https://www.google.com/maps/dir/?api=1&destination=" + at;
  }

  /* The route's stops with what the phone knows that the service may not yet: the status
     an action waiting to be sent will give it, and actions the service refused. */
  function shownStops() {
    if (!state.route) { return []; }
    var waiting = {};
    state.queued.forEach(function (item) {
      if (item.type === "action") { waiting[item.body.order_id] = item.body.kind; }
    });
    var refused = {};
    state.rejected.forEach(function (r) { refused[r.order_id] = r; });
    return state.route.stops.map(function (stop) {
      var kind = waiting[stop.order_id];
      return Object.assign({}, stop, {
        shown: kind ? SHOWN_BY_KIND[kind] : stop.status,
        waiting: Boolean(kind),
        refused: refused[stop.order_id] || null
      });
    });
  }

  function routeActive() {
    return shownStops().some(function (s) { return ACTIVE[s.shown]; });
  }

  function detail(list, label, value, className) {
    if (value === undefined || value === null || value === "") { return; }
    var row = el("div", className);
    row.appendChild(el("dt", null, label));
    row.appendChild(el("dd", null, value));
    list.appendChild(row);
  }

  function link(text, className, href) {
    var node = el("a", "button " + (className || ""), text);
    node.href = href;
    return node;
  }

  function stopMain(stop, isNext) {
    var main = el("div", "stop-main");
    var head = el("div", "stop-head");
    var seq = el("span", "seq", stop.sequence);
    seq.setAttribute("aria-label", t("stop_number", { number: stop.sequence }));
    head.appendChild(seq);
    head.appendChild(el("h3", "address", stop.address));
    main.appendChild(head);
    var where = el("p", "stop-status");
    where.appendChild(el("span", "badge status-" + stop.shown, t("status_" + stop.shown)));
    if (isNext) { where.appendChild(el("span", "next-label", t("next_stop"))); }
    main.appendChild(where);
    if (stop.contact_name) { main.appendChild(el("p", "contact", stop.contact_name)); }

    var times = el("dl", "times");
    var slot = stop.window ? clock(stop.window.start) + "–" + clock(stop.window.end) : "";
    detail(times, t("window"), slot);
    if (ACTIVE[stop.shown]) { detail(times, t("eta"), clock(stop.eta), "eta"); }
    main.appendChild(times);

    var given = stop.instructions || {};
    if (given.safe_place || given.notes || given.access_code) {
      var asked = el("dl", "instructions");
      detail(asked, t("safe_place"), given.safe_place);
      detail(asked, t("notes"), given.notes);
      detail(asked, t("access_code"), given.access_code, "code");
      main.appendChild(asked);
    }
    if (stop.waiting) { main.appendChild(el("p", "waiting", t("waiting_to_send"))); }
    if (stop.refused) {
      var refused = el("div", "refused");
      refused.setAttribute("role", "alert");
      refused.appendChild(el("p", null, t("send_refused", {
        action: t(stop.refused.kind), message: stop.refused.message })));
      refused.appendChild(button(t("dismiss"), "secondary small",
        { dismiss: stop.refused.action_id }));
      main.appendChild(refused);
    }

    var go = el("div", "buttons");
    if (typeof stop.call === "string" && stop.call.indexOf("tel:") === 0) {
      go.appendChild(link(t("call"), "call", stop.call));
    }
    if (ACTIVE[stop.shown]) {
      var nav = link(t("navigate"), "navigate", navigateHref(stop));
      if (nav.href.indexOf("https:") === 0) {
        nav.target = "_blank";
        nav.rel = "noopener";
      }
      go.appendChild(nav);
    }
    if (go.children.length) { main.appendChild(go); }

    var formOpen = state.form !== null && state.form.order_id === stop.order_id;
    if (ACTIVE[stop.shown] && !formOpen) {
      var actions = el("div", "actions");
      if (stop.shown === "pending") {
        actions.appendChild(button(t("arrived"), "arrived", { action: "arrived" }));
      }
      actions.appendChild(button(t("delivered"), "delivered", { action: "delivered" }));
      actions.appendChild(button(t("failed"), "failed", { action: "failed" }));
      main.appendChild(actions);
    }
    return main;
  }

  function fillCard(li, stop, isNext) {
    li.className = "stop status-" + stop.shown + (isNext ? " next" : "") +
      (stop.waiting ? " queued" : "") + (ACTIVE[stop.shown] ? "" : " done");
    li.setAttribute("data-order", stop.order_id);
    li.setAttribute("data-status", stop.shown);
    li.setAttribute("data-sequence", String(stop.sequence));
    var formNode = state.form && state.form.order_id === stop.order_id ? state.form.node : null;
    Array.prototype.slice.call(li.children).forEach(function (child) {
      if (child !== formNode) { li.removeChild(child); }
    });
    li.insertBefore(stopMain(stop, isNext), li.firstChild);
    if (formNode && formNode.parentNode !== li) { li.appendChild(formNode); }
  }

  function renderStops(stops, next) {
    var list = $("stops");
    var kept = null;
    if (state.form) {
      var open = state.form.order_id;
      var stop = stops.filter(function (s) { return s.order_id === open; })[0];
      if (!stop || !ACTIVE[stop.shown]) {
        state.form = null;
        announce("stop_removed");
      } else {
        kept = state.form.node.parentNode && state.form.node.parentNode.parentNode === list ?
          state.form.node.parentNode : null;
      }
    }
    var focused = document.activeElement;
    var nodes = stops.map(function (stop) {
      var li = kept && stop.order_id === state.form.order_id ? kept : el("li");
      fillCard(li, stop, next !== null && stop.order_id === next.order_id);
      return li;
    });
    // Reordered around the card with the open form, never detaching it: a detached form
    // loses the focus (and the driver's place in it).
    Array.prototype.slice.call(list.children).forEach(function (child) {
      if (child !== kept) { list.removeChild(child); }
    });
    var at = kept ? nodes.indexOf(kept) : nodes.length;
    nodes.slice(0, at).forEach(function (node) { list.insertBefore(node, kept); });
    nodes.slice(at + 1).forEach(function (node) { list.appendChild(node); });
    if (focused && focused !== document.activeElement && list.contains(focused)) {
      focused.focus();
    }
    var empty = $("route-empty");
    var done = stops.length > 0 && next === null;
    empty.hidden = stops.length > 0 && !done;
    empty.textContent = stops.length === 0 ? t("no_route") : done ? t("all_done") : "";
  }

  scope.DriverStops = {
    ACTIVE: ACTIVE, shownStops: shownStops, routeActive: routeActive, renderStops: renderStops
  };
})(self);
