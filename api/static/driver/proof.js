/* Proof of delivery made on the phone: the photo shrunk before it is queued (a phone camera's
   12 MP picture would be several megabytes in the outbox and on a weak connection; 1280 px
   is plenty to see a parcel at a door) and the signature drawn with a finger or stylus. */
(function (scope) {
  "use strict";

  var MAX_SIDE = 1280;
  // A queued action stays well under the service's 1 MiB request limit with its signature.
  var BUDGET_CHARS = 700 * 1024;

  function decode(file) {
    if (scope.createImageBitmap) {
      // "from-image": EXIF-rotated as the camera meant it.
      return createImageBitmap(file, { imageOrientation: "from-image" }).catch(function () {
        return viaImage(file);
      });
    }
    return viaImage(file);
  }

  function viaImage(file) {
    return new Promise(function (resolve, reject) {
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () { URL.revokeObjectURL(url); resolve(img); };
      img.onerror = function () { URL.revokeObjectURL(url); reject(new Error("not an image")); };
      img.src = url;
    });
  }

  function draw(image, side) {
    var w = image.width;
    var h = image.height;
    var scale = Math.min(1, side / Math.max(w, h));
    var canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(w * scale));
    canvas.height = Math.max(1, Math.round(h * scale));
    var ctx = canvas.getContext("2d");
    // JPEG has no transparency: a white ground, not black, under a transparent PNG.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  /* A picked file as a JPEG data URL at most 1280 px on its longer side (quality 0.8, less
     only if it would not fit the budget). */
  function photo(file) {
    return decode(file).then(function (image) {
      var attempts = [[MAX_SIDE, 0.8], [MAX_SIDE, 0.65], [1024, 0.6], [800, 0.55]];
      var url = "";
      for (var i = 0; i < attempts.length; i += 1) {
        url = draw(image, attempts[i][0]).toDataURL("image/jpeg", attempts[i][1]);
        if (url.length <= BUDGET_CHARS) { break; }
      }
      if (image.close) { image.close(); }
      return url;
    });
  }

  /* A signature pad on a canvas: pointer events (finger, stylus, mouse alike). Returns
     {clear(), empty(), dataUrl()}. The canvas keeps its drawing when moved in the page. */
  function signaturePad(canvas, onChange) {
    var ratio = Math.max(1, scope.devicePixelRatio || 1);
    var ctx = canvas.getContext("2d");
    var drawing = false;
    var strokes = 0;
    var last = null;

    function size() {
      var box = canvas.getBoundingClientRect();
      canvas.width = Math.max(1, Math.round(box.width * ratio));
      canvas.height = Math.max(1, Math.round(box.height * ratio));
      ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
      ctx.lineWidth = 2.5;
      ctx.lineCap = "round";
      ctx.lineJoin = "round";
      ctx.strokeStyle = "#000000";
      ctx.fillStyle = "#ffffff";
      ctx.fillRect(0, 0, canvas.width, canvas.height);
    }

    function point(event) {
      var box = canvas.getBoundingClientRect();
      return { x: event.clientX - box.left, y: event.clientY - box.top };
    }

    canvas.addEventListener("pointerdown", function (event) {
      if (canvas.width <= 1) { size(); }
      drawing = true;
      last = point(event);
      canvas.setPointerCapture(event.pointerId);
      ctx.beginPath();
      ctx.arc(last.x, last.y, 1, 0, 2 * Math.PI);
      ctx.fillStyle = "#000000";
      ctx.fill();
      event.preventDefault();
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!drawing) { return; }
      var at = point(event);
      ctx.beginPath();
      ctx.moveTo(last.x, last.y);
      ctx.lineTo(at.x, at.y);
      ctx.stroke();
      last = at;
      event.preventDefault();
    });
    function end() {
      if (!drawing) { return; }
      drawing = false;
      strokes += 1;
      if (onChange) { onChange(); }
    }
    canvas.addEventListener("pointerup", end);
    canvas.addEventListener("pointercancel", end);

    return {
      size: size,
      clear: function () { strokes = 0; size(); if (onChange) { onChange(); } },
      empty: function () { return strokes === 0; },
      dataUrl: function () { return strokes === 0 ? null : canvas.toDataURL("image/png"); }
    };
  }

  scope.DriverProof = { photo: photo, signaturePad: signaturePad };
})(self);
