/* The app's texts in six languages (i18n/<lang>.json, the same keys in each). Which one: the
   driver's own choice in the selector, else the phone's language if we ship it, else the
   vehicle's language from the API, else English. Placeholders are {name}; texts avoid
   plurals ("Waiting to send: 3") so no plural rules are needed. */
(function (scope) {
  "use strict";

  var SHIPPED = ["en", "it", "es", "fr", "nl", "ru"];
  var loaded = {};
  var current = { lang: "en", texts: {} };

  function primary(tag) {
    return String(tag || "").split(/[-_]/)[0].toLowerCase();
  }

  function shipped(tag) {
    var lang = primary(tag);
    return SHIPPED.indexOf(lang) >= 0 ? lang : null;
  }

  function phone() {
    var tags = (navigator.languages && navigator.languages.length) ? navigator.languages
      : [navigator.language];
    for (var i = 0; i < tags.length; i += 1) {
      if (shipped(tags[i])) { return shipped(tags[i]); }
    }
    return null;
  }

  /* chosen: the selector's value ("" for automatic); api: the route's language. */
  function pick(chosen, api) {
    return shipped(chosen) || phone() || shipped(api) || "en";
  }

  function remember(lang, texts) { loaded[lang] = texts; }

  function load(lang) {
    if (loaded[lang]) { return Promise.resolve(loaded[lang]); }
    return fetch("/static/driver/i18n/" + lang + ".json").then(function (r) {
      if (!r.ok) { throw new Error("no texts for " + lang); }
      return r.json();
    }).then(function (texts) { loaded[lang] = texts; return texts; });
  }

  function use(lang) {
    return load(lang).then(function (texts) {
      current = { lang: lang, texts: texts };
      return lang;
    }, function () { return current.lang; });
  }

  function t(key, params) {
    var text = current.texts[key];
    if (text === undefined) { text = (loaded.en && loaded.en[key]) || key; }
    return String(text).replace(/\{(\w+)\}/g, function (whole, name) {
      return params && params[name] !== undefined ? String(params[name]) : whole;
    });
  }

  /* Words every [data-i18n] element, and [data-i18n-label] elements' aria-label. */
  function apply(root) {
    root.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    root.querySelectorAll("[data-i18n-label]").forEach(function (node) {
      node.setAttribute("aria-label", t(node.getAttribute("data-i18n-label")));
    });
    document.documentElement.lang = current.lang;
  }

  scope.DriverI18n = {
    SHIPPED: SHIPPED, pick: pick, use: use, remember: remember, t: t, apply: apply,
    lang: function () { return current.lang; }
  };
})(self);
