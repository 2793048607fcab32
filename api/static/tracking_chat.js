/* The tracking page's chat (issue 19), on top of a form that works without this script:
   the message is posted with fetch and its answer shown in place, without a reload; while a
   message waits for a person the conversation is asked for again every ~15 s (and when the
   tab comes back into view), so the person's answer appears by itself. Texts come from the
   section's data attributes, in the customer's language; everything is written with
   textContent, never as HTML. */
(function () {
  "use strict";
  var box = document.getElementById("chat");
  if (!box || !window.fetch || !window.JSON) { return; }
  var form = document.getElementById("chat-form");
  var field = document.getElementById("chat-text");
  var list = document.getElementById("chat-messages");
  var status = document.getElementById("chat-status");
  var button = form.querySelector("button[type=submit]");
  var url = form.getAttribute("action");
  var pollMs = parseInt(box.getAttribute("data-poll-ms"), 10) || 15000;
  var said = function (name) { return box.getAttribute("data-" + name) || ""; };
  var timer = null;
  var sending = false;

  function tell(text, isError) {
    status.setAttribute("role", "status");
    status.textContent = text;
    status.className = isError ? "chat-status error" : "chat-status";
  }

  function bubble(className, who, text) {
    var p = document.createElement("p");
    p.className = className;
    if (who) {
      var label = document.createElement("span");
      label.className = "chat-who";
      label.textContent = who;
      p.appendChild(label);
    }
    p.appendChild(document.createTextNode(text));
    return p;
  }

  function itemOf(id) {
    for (var i = 0; i < list.children.length; i++) {
      if (list.children[i].getAttribute("data-id") === id) { return list.children[i]; }
    }
    return null;
  }

  // Adds the message, or replaces its answer part when its state changed (a person answered):
  // only what is new enters the live region, so only that is read out.
  function show(m) {
    var state = m.answered_by || "waiting";
    var item = itemOf(m.id);
    if (item && item.getAttribute("data-state") === state) { return; }
    if (!item) {
      item = document.createElement("li");
      item.className = "chat-item";
      item.setAttribute("data-id", m.id);
      item.appendChild(bubble("chat-q", said("you"), m.text));
      list.appendChild(item);
    }
    while (item.children.length > 1) { item.removeChild(item.lastChild); }
    item.setAttribute("data-state", state);
    if (state === "waiting") {
      item.appendChild(bubble("chat-wait", "", said("waiting")));
    } else if (m.answer) {
      item.appendChild(bubble("chat-a", said(state === "auto" ? "auto" : "person"), m.answer));
    }
  }

  function waiting() {
    for (var i = 0; i < list.children.length; i++) {
      if (list.children[i].getAttribute("data-state") === "waiting") { return true; }
    }
    return false;
  }

  function schedule() {
    if (timer !== null) { clearTimeout(timer); timer = null; }
    if (waiting() && !document.hidden) { timer = setTimeout(refresh, pollMs); }
  }

  function refresh() {
    timer = null;
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) { if (body) { body.messages.forEach(show); } })
      .catch(function () { /* offline for a moment: the next round asks again */ })
      .then(schedule);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var text = field.value.trim();
    if (!text) { tell(said("empty"), true); field.focus(); return; }
    if (sending) { return; }
    sending = true;
    button.disabled = true;
    tell(said("sending"), false);
    fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({ text: text })
    }).then(function (r) {
      if (r.status === 201) {
        return r.json().then(function (m) {
          show({ id: m.id, text: text, answered_by: m.answered_by, answer: m.answer });
          field.value = "";
          tell("", false);
        });
      }
      if (r.status === 429) { tell(said("too-many"), true); return null; }
      return r.json().then(function (body) {
        tell((body && body.error && body.error.message) || said("failed"), true);
      }, function () { tell(said("failed"), true); });
    }).catch(function () {
      tell(said("failed"), true);
    }).then(function () {
      sending = false;
      button.disabled = false;
      field.focus();
      schedule();
    });
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && waiting()) { refresh(); }
  });
  schedule();
})();
