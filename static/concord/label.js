/* Concord labeling page: keyboard shortcuts, zoom/pan, time spent.
 * Progressive enhancement: the page is a plain POST form without this file. */
(function () {
  "use strict";
  var form = document.getElementById("label-form");
  var started = performance.now();
  var submitting = false;

  function $(id) { return document.getElementById(id); }
  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && el.type !== "hidden" && el.type !== "button" && el.type !== "submit") || el.isContentEditable;
  }

  // --- Time spent: measured from page load to submit (milliseconds). ---
  if (form) {
    form.addEventListener("submit", function (ev) {
      if (submitting) { ev.preventDefault(); return; }
      submitting = true;
      var t = $("time-spent");
      if (t) t.value = String(Math.round(performance.now() - started));
      document.body.classList.add("busy");
    });
  }

  function submitWith(button) {
    if (!form || !button || submitting) return;
    button.classList.add("pressed");
    if (form.requestSubmit) form.requestSubmit(button);
    else button.click();
  }

  // --- Overlays and panels. ---
  var help = $("help-overlay");
  function toggleHelp(show) {
    if (!help) return;
    help.hidden = show === undefined ? !help.hidden : !show;
  }
  var layout = $("label-layout");
  var GUIDE_KEY = "concord.guideline.hidden";
  function setGuideline(hidden) {
    if (!layout || !$("guideline-panel")) return;
    layout.classList.toggle("guideline-hidden", hidden);
    try { localStorage.setItem(GUIDE_KEY, hidden ? "1" : "0"); } catch (e) { /* private mode */ }
  }
  try { if (localStorage.getItem(GUIDE_KEY) === "1") setGuideline(true); } catch (e) { /* ignore */ }
  function toggleGuideline() {
    if (layout) setGuideline(!layout.classList.contains("guideline-hidden"));
  }
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest("[data-action]");
    if (!el) {
      if (help && !help.hidden && ev.target === help) toggleHelp(false);
      return;
    }
    var action = el.getAttribute("data-action");
    if (action === "help") toggleHelp();
    else if (action === "guideline") toggleGuideline();
    else if (action === "zoom-in") zoomBy(1.25);
    else if (action === "zoom-out") zoomBy(0.8);
    else if (action === "zoom-reset") resetZoom();
    else if (action === "zoom-native") zoomNative();
  });

  // --- Zoom and pan of the image. ---
  var viewport = $("viewport");
  var img = $("item-image");
  var zoom = { s: 1, x: 0, y: 0 };
  // The image is first shown fitted to the viewport (object-fit: contain), so the CSS
  // scale is relative to "fit", not to the image's own pixels. The indicator shows the
  // size against native pixels (100% = one image pixel per CSS pixel); at scale 1 it
  // says "Fit", its own state, whatever that is in native terms.
  function fitScale() {
    if (!img || !viewport || !img.naturalWidth || !img.naturalHeight) return null;
    var w = img.clientWidth, h = img.clientHeight;
    return Math.min(w / img.naturalWidth, h / img.naturalHeight);
  }
  function applyZoom() {
    if (!img) return;
    img.style.transform = "translate(" + zoom.x + "px," + zoom.y + "px) scale(" + zoom.s + ")";
    var level = $("zoom-level");
    var fit = fitScale();
    if (level) {
      var atFit = Math.abs(zoom.s - 1) < 0.001;
      var native = fit === null ? null : Math.round(fit * zoom.s * 100);
      level.textContent = atFit ? "Fit" : (native === null ? "" : native + "%");
      level.title = native === null ? "" : native + "% of the image's native size";
      level.setAttribute("data-native-percent", native === null ? "" : String(native));
    }
    if (viewport) viewport.classList.toggle("zoomed", zoom.s > 1.001);
  }
  function zoomNative() {
    var fit = fitScale();
    if (fit) { zoom = { s: 1 / fit, x: 0, y: 0 }; applyZoom(); }
  }
  function zoomBy(factor, cx, cy) {
    if (!img || !viewport) return;
    var rect = viewport.getBoundingClientRect();
    if (cx === undefined) { cx = rect.width / 2; cy = rect.height / 2; }
    var fit = fitScale() || 1;
    // Up to 16x native pixels (or 16x fit, if the image is shown larger than native).
    var s = Math.min(Math.max(16, 16 / fit), Math.max(0.5, zoom.s * factor));
    var k = s / zoom.s;
    // Keep the point under the cursor where it is (transform origin is the centre).
    var ox = cx - rect.width / 2, oy = cy - rect.height / 2;
    zoom.x = ox - (ox - zoom.x) * k;
    zoom.y = oy - (oy - zoom.y) * k;
    zoom.s = s;
    applyZoom();
  }
  function resetZoom() { zoom = { s: 1, x: 0, y: 0 }; applyZoom(); }
  if (viewport && img) {
    viewport.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var rect = viewport.getBoundingClientRect();
      zoomBy(ev.deltaY < 0 ? 1.15 : 1 / 1.15, ev.clientX - rect.left, ev.clientY - rect.top);
    }, { passive: false });
    var drag = null;
    viewport.addEventListener("pointerdown", function (ev) {
      if (ev.target.closest(".zoom-controls")) return;
      drag = { x: ev.clientX - zoom.x, y: ev.clientY - zoom.y };
      viewport.setPointerCapture(ev.pointerId);
      viewport.classList.add("dragging");
    });
    viewport.addEventListener("pointermove", function (ev) {
      if (!drag) return;
      zoom.x = ev.clientX - drag.x;
      zoom.y = ev.clientY - drag.y;
      applyZoom();
    });
    function endDrag() { drag = null; viewport.classList.remove("dragging"); }
    viewport.addEventListener("pointerup", endDrag);
    viewport.addEventListener("pointercancel", endDrag);
    viewport.addEventListener("dblclick", resetZoom);
    if (img.complete) applyZoom(); else img.addEventListener("load", applyZoom);
    window.addEventListener("resize", applyZoom);
  }

  // --- Keyboard. ---
  function classButton(key) {
    return document.querySelector('.class-btn[data-key="' + key + '"]');
  }
  document.addEventListener("keydown", function (ev) {
    var target = ev.target;
    if (ev.key === "Escape") {
      if (help && !help.hidden) { toggleHelp(false); ev.preventDefault(); return; }
      if (typing(target)) { target.blur(); ev.preventDefault(); return; }
      var cancel = $("cancel-revise");
      if (cancel) { window.location.href = cancel.href; }
      return;
    }
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      var transcript = $("transcript");
      if (transcript && transcript.value.trim()) { ev.preventDefault(); submitWith($("submit-transcript")); }
      return;
    }
    if (typing(target) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var key = ev.key;
    if (key === "?") { toggleHelp(); ev.preventDefault(); return; }
    if (help && !help.hidden) return;
    if (/^[1-9]$/.test(key)) {
      var btn = classButton(key);
      if (btn) { ev.preventDefault(); submitWith(btn); }
      return;
    }
    switch (key.toLowerCase()) {
      case "b": {
        var b = classButton("b");
        if (b) { ev.preventDefault(); submitWith(b); }
        break;
      }
      case "c": {
        var comment = $("comment");
        if (comment) { ev.preventDefault(); comment.focus(); }
        break;
      }
      case "t": {
        var tr = $("transcript");
        if (tr) { ev.preventDefault(); tr.focus(); }
        break;
      }
      case "s": {
        var skip = $("skip-form");
        if (skip && !submitting) { ev.preventDefault(); submitting = true; skip.submit(); }
        break;
      }
      case "u": {
        var undo = $("undo-link") || document.querySelector('[data-shortcut="u"]');
        if (undo) { ev.preventDefault(); window.location.href = undo.href; }
        break;
      }
      case "g": ev.preventDefault(); toggleGuideline(); break;
      case "p": {
        var audio = $("item-audio");
        if (audio) { ev.preventDefault(); if (audio.paused) audio.play(); else audio.pause(); }
        break;
      }
      case "+": case "=": ev.preventDefault(); zoomBy(1.25); break;
      case "-": case "_": ev.preventDefault(); zoomBy(0.8); break;
      case "0": ev.preventDefault(); resetZoom(); break;
      default: break;
    }
  });

  // The confirmation of the last submit fades after a moment (it floats: no layout shift).
  var toast = $("saved-toast");
  if (toast) window.setTimeout(function () { toast.classList.add("gone"); }, 2500);

  // A transcription page starts with the cursor in the box; a class page keeps focus
  // on the document so number keys work at once.
  var transcriptBox = $("transcript");
  if (transcriptBox && !transcriptBox.value) transcriptBox.focus();
})();
