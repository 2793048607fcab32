/* The action forms under a stop's card: Delivered (recipient's name, photo, signature) and
   Failed (a reason, optional name and photo), built when the driver presses the button,
   filled in place while the route may change around them (stops.js keeps the open form's
   card), and queued as an action on submit (queue.js). The photo is shrunk and the signature
   drawn by proof.js. */
(function (scope) {
  "use strict";

  var Proof = scope.DriverProof;
  var Page = scope.DriverPage;
  var View = scope.DriverView;
  var state = Page.state;
  var $ = Page.$;
  var el = Page.el;
  var button = Page.button;
  var t = Page.t;
  var announce = Page.announce;
  var render = View.render;

  var REASONS = ["not_home", "refused", "address_not_found", "access"];

  /* queue.js is loaded after this file: looked up when the driver confirms. */
  function queueAction(orderId, kind, proof) {
    return scope.DriverQueue.queueAction(orderId, kind, proof);
  }

  function field(form, id, labelKey, input) {
    var label = el("label", null, t(labelKey));
    label.htmlFor = id;
    input.id = id;
    form.appendChild(label);
    form.appendChild(input);
    return input;
  }

  function proofForm(orderId, kind) {
    state.formSeq += 1;
    var id = "proof-" + state.formSeq;
    var form = el("form", "proof " + kind);
    form.noValidate = true;
    form.setAttribute("aria-labelledby", id + "-title");
    var title = el("h4", null, t(kind === "delivered" ? "delivered_heading" : "failed_heading"));
    title.id = id + "-title";
    form.appendChild(title);
    var open = { order_id: orderId, kind: kind, node: form, reason: null, photo: null,
      photoWork: null, pad: null };

    if (kind === "failed") {
      var reasons = el("fieldset", "reasons");
      reasons.appendChild(el("legend", null, t("reason_heading")));
      REASONS.forEach(function (reason) {
        var choice = button(t("reason_" + reason), "reason", { reason: reason });
        choice.setAttribute("aria-pressed", "false");
        reasons.appendChild(choice);
      });
      form.appendChild(reasons);
    }

    var name = el("input");
    name.autocomplete = "off";
    name.name = "recipient_name";
    name.maxLength = 120;
    field(form, id + "-name", kind === "delivered" ? "recipient_label" : "recipient_optional",
      name);

    var photoInput = el("input", "sr-only");
    photoInput.type = "file";
    photoInput.accept = "image/*";
    photoInput.setAttribute("capture", "environment");
    photoInput.name = "photo";
    var photoLabel = el("label", "button secondary photo-button", t("photo_take"));
    photoLabel.htmlFor = id + "-photo";
    photoInput.id = id + "-photo";
    form.appendChild(photoInput);
    form.appendChild(photoLabel);
    var preview = el("img", "preview");
    preview.alt = t("photo_preview");
    preview.hidden = true;
    form.appendChild(preview);
    var remove = button(t("photo_remove"), "secondary small remove-photo", { "remove-photo": "1" });
    remove.hidden = true;
    form.appendChild(remove);

    if (kind === "delivered") {
      var sigLabel = el("p", "signature-label", t("signature_label"));
      sigLabel.id = id + "-sig";
      form.appendChild(sigLabel);
      var canvas = el("canvas", "signature");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-labelledby", id + "-sig");
      form.appendChild(canvas);
      form.appendChild(button(t("signature_clear"), "secondary small",
        { "clear-signature": "1" }));
      open.canvas = canvas;
    }

    var problem = el("p", "form-error");
    problem.setAttribute("role", "alert");
    problem.hidden = true;
    form.appendChild(problem);
    var row = el("div", "form-buttons");
    var submit = el("button", "confirm " + kind,
      t(kind === "delivered" ? "confirm_delivered" : "confirm_failed"));
    submit.type = "submit";
    row.appendChild(submit);
    row.appendChild(button(t("cancel"), "secondary", { cancel: "1" }));
    form.appendChild(row);
    return open;
  }

  function openForm(orderId, kind) {
    state.form = proofForm(orderId, kind);
    render();
    if (state.form.canvas) {
      state.form.pad = Proof.signaturePad(state.form.canvas);
      state.form.pad.size();
    }
    var first = state.form.node.querySelector("button.reason, input");
    if (first) { first.focus(); }
    state.form.node.scrollIntoView({ block: "nearest" });
  }

  function closeForm() {
    var orderId = state.form ? state.form.order_id : null;
    state.form = null;
    render();
    var card = orderId && $("stops").querySelector('li[data-order="' + CSS.escape(orderId) + '"]');
    var back = card && card.querySelector(".actions button, .buttons a");
    if (back) { back.focus(); }
  }

  function formProblem(key) {
    var node = state.form.node.querySelector(".form-error");
    node.textContent = t(key);
    node.hidden = false;
  }

  function pickPhoto(input) {
    var open = state.form;
    var file = input.files && input.files[0];
    if (!open || !file) { return; }
    announce("photo_working");
    open.photoWork = Proof.photo(file).then(function (url) {
      open.photo = url;
      var preview = open.node.querySelector(".preview");
      preview.src = url;
      preview.hidden = false;
      open.node.querySelector(".remove-photo").hidden = false;
      announce("photo_ready");
    }, function () {
      open.photo = null;
      if (state.form === open) { formProblem("photo_error"); }
    });
  }

  function removePhoto() {
    var open = state.form;
    open.photo = null;
    open.photoWork = null;
    var preview = open.node.querySelector(".preview");
    preview.hidden = true;
    preview.removeAttribute("src");
    open.node.querySelector(".remove-photo").hidden = true;
    open.node.querySelector("input[type=file]").value = "";
  }

  /* A reason's button pressed in the Failed form. */
  function chooseReason(target) {
    state.form.reason = target.getAttribute("data-reason");
    state.form.node.querySelectorAll("button.reason").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b === target));
    });
    state.form.node.querySelector(".form-error").hidden = true;
  }

  function submitForm() {
    var open = state.form;
    if (open.kind === "failed" && !open.reason) { formProblem("choose_reason"); return; }
    var submit = open.node.querySelector("button[type=submit]");
    submit.disabled = true;
    Promise.resolve(open.photoWork).then(function () {
      var proof = {
        reason: open.kind === "failed" ? open.reason : null,
        recipient_name: open.node.querySelector("input[name=recipient_name]").value.trim(),
        photo: open.photo,
        signature: open.pad ? open.pad.dataUrl() : null
      };
      state.form = null;
      return queueAction(open.order_id, open.kind, proof);
    }).then(function () {
      var card = $("stops").querySelector('li[data-order="' + CSS.escape(open.order_id) + '"]');
      var next = $("stops").querySelector("li.next .actions button");
      (next || card || $("stops-heading")).focus();
    });
  }

  scope.DriverForms = {
    openForm: openForm, closeForm: closeForm, chooseReason: chooseReason,
    pickPhoto: pickPhoto, removePhoto: removePhoto, submitForm: submitForm
  };
})(self);
