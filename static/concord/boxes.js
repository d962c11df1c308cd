/* Concord labeling page, detection projects: draw, move and resize boxes on the image.
 *
 * Loaded after label.js, which keeps the shortcuts every page shares (zoom/pan, skip,
 * comment, guideline, help). This file owns an SVG layer laid over the image's content:
 * it reads where the image is on screen (getBoundingClientRect, object-fit) instead of
 * label.js's zoom state, so it follows any zoom or pan label.js applies.
 *
 * Boxes are kept in image pixels {class, x, y, w, h} (x/y top-left), as the server
 * stores them, and written as JSON into the form's hidden "value" field on every change.
 *
 * Mouse / pen / touch: drag on the image draws a box of the current class; drag a box to
 * move it, a handle to resize it. Hold Space (or use the middle button) to pan instead.
 * Keys: Tab / Shift+Tab select the next / previous box, 1-9 (B) set the class of the
 * selected box (else of the next box), Backspace / Delete delete it, arrows nudge it
 * (Shift: 10 px), Esc deselects, Ctrl+Z undoes, Enter submits, N submits "nothing there".
 */
(function () {
  "use strict";
  var stateEl = document.getElementById("box-state");
  var viewport = document.getElementById("viewport");
  var img = document.getElementById("item-image");
  var form = document.getElementById("label-form");
  var field = document.getElementById("boxes-value");
  if (!stateEl || !viewport || !img || !form || !field) return;

  var SVG_NS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#ff4d6d", "#ffb703", "#3ddc97", "#4cc9f0", "#c77dff", "#f4a261", "#90be6d", "#f15bb5", "#00bbf9"];
  var HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];
  var MIN_SIZE = 2; // image pixels: a smaller drag is a click, not a box
  var initial = JSON.parse(stateEl.textContent);
  var classes = initial.classes;
  var colorOf = {};
  classes.forEach(function (c, i) { colorOf[c.key] = PALETTE[i % PALETTE.length]; });

  var boxes = (initial.boxes || []).map(function (b) { return { "class": b["class"], x: b.x, y: b.y, w: b.w, h: b.h }; });
  var selected = -1;
  var current = classes.length ? classes[0].key : null;
  var history = [];
  var panning = false;
  var gesture = null;
  var armedNothing = 0;
  var natural = { w: 0, h: 0 };
  var submitBtn = document.getElementById("submit-boxes");
  var nothingBtn = document.getElementById("nothing-there");
  var list = document.getElementById("box-list");
  var hint = document.getElementById("box-hint");

  // --- The SVG layer over the image. ---
  var svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "box-layer");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "Your boxes");
  viewport.appendChild(svg);

  function contentRect() {
    // The image element's box on screen (zoom and pan included), then the part of it the
    // picture fills (object-fit: contain letterboxes it).
    var r = img.getBoundingClientRect();
    var fit = window.getComputedStyle(img).objectFit;
    if (!natural.w || !natural.h) return null;
    if (fit === "contain" || fit === "scale-down") {
      var s = Math.min(r.width / natural.w, r.height / natural.h);
      var w = natural.w * s, h = natural.h * s;
      return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
    }
    return { left: r.left, top: r.top, width: r.width, height: r.height };
  }
  function scale() { // image pixels per screen pixel
    var c = contentRect();
    return c && c.width ? natural.w / c.width : 1;
  }
  function toImage(ev) {
    var c = contentRect();
    return {
      x: (ev.clientX - c.left) / c.width * natural.w,
      y: (ev.clientY - c.top) / c.height * natural.h
    };
  }
  function clampBox(b) {
    b.w = Math.min(Math.max(b.w, MIN_SIZE), natural.w);
    b.h = Math.min(Math.max(b.h, MIN_SIZE), natural.h);
    b.x = Math.min(Math.max(b.x, 0), natural.w - b.w);
    b.y = Math.min(Math.max(b.y, 0), natural.h - b.h);
    return b;
  }
  function round2(v) { return Math.round(v * 100) / 100; }

  function place() {
    var c = contentRect();
    if (!c) return;
    var v = viewport.getBoundingClientRect();
    svg.style.left = (c.left - v.left - viewport.clientLeft) + "px";
    svg.style.top = (c.top - v.top - viewport.clientTop) + "px";
    svg.style.width = c.width + "px";
    svg.style.height = c.height + "px";
    svg.setAttribute("viewBox", "0 0 " + natural.w + " " + natural.h);
    render(true);
  }

  function el(name, attrs) {
    var node = document.createElementNS(SVG_NS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }
  function className(key) {
    for (var i = 0; i < classes.length; i++) if (classes[i].key === key) return classes[i].name;
    return key;
  }

  function render(layerOnly) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var k = scale();
    boxes.forEach(function (b, i) {
      var g = el("g", { "class": "box" + (i === selected ? " selected" : ""), "data-box": i });
      g.appendChild(el("rect", {
        x: b.x, y: b.y, width: b.w, height: b.h, "data-box": i,
        stroke: colorOf[b["class"]] || "#fff", "stroke-width": i === selected ? 3 : 2,
        "vector-effect": "non-scaling-stroke", fill: colorOf[b["class"]] || "#fff", "fill-opacity": i === selected ? 0.18 : 0.06
      }));
      var tag = el("text", { x: b.x + 3 * k, y: b.y - 4 * k, "font-size": 12 * k, "data-box": i, fill: colorOf[b["class"]] || "#fff" });
      if (b.y < 16 * k) tag.setAttribute("y", b.y + 14 * k);
      tag.textContent = (i + 1) + " " + className(b["class"]);
      g.appendChild(tag);
      svg.appendChild(g);
    });
    if (selected >= 0 && boxes[selected]) {
      var b = boxes[selected], size = 10 * k;
      HANDLES.forEach(function (h) {
        var hx = h.indexOf("w") >= 0 ? b.x : h.indexOf("e") >= 0 ? b.x + b.w : b.x + b.w / 2;
        var hy = h.indexOf("n") >= 0 ? b.y : h.indexOf("s") >= 0 ? b.y + b.h : b.y + b.h / 2;
        svg.appendChild(el("rect", {
          "class": "handle handle-" + h, "data-handle": h, x: hx - size / 2, y: hy - size / 2,
          width: size, height: size, "vector-effect": "non-scaling-stroke"
        }));
      });
    }
    if (gesture && gesture.kind === "draw" && gesture.box) {
      var d = gesture.box;
      svg.appendChild(el("rect", {
        "class": "drawing", x: d.x, y: d.y, width: d.w, height: d.h, stroke: colorOf[current] || "#fff",
        "vector-effect": "non-scaling-stroke", fill: "none", "stroke-dasharray": "6 4", "stroke-width": 2
      }));
    }
    if (!layerOnly) renderPanel();
  }

  function renderPanel() {
    field.value = JSON.stringify(boxes.map(function (b) {
      return { "class": b["class"], x: round2(b.x), y: round2(b.y), w: round2(b.w), h: round2(b.h) };
    }));
    var active = selected >= 0 && boxes[selected] ? boxes[selected]["class"] : current;
    document.querySelectorAll(".box-class-btn").forEach(function (btn) {
      var on = btn.getAttribute("data-box-class") === active;
      btn.classList.toggle("selected", on);
      btn.setAttribute("aria-pressed", on ? "true" : "false");
    });
    if (list) {
      list.innerHTML = "";
      boxes.forEach(function (b, i) {
        var li = document.createElement("li");
        li.className = "box-row" + (i === selected ? " selected" : "");
        li.setAttribute("data-box", i);
        var sw = document.createElement("span");
        sw.className = "swatch";
        sw.style.background = colorOf[b["class"]] || "#999";
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = (i + 1) + ". " + className(b["class"]);
        var size = document.createElement("span");
        size.className = "small muted";
        size.textContent = Math.round(b.w) + "×" + Math.round(b.h);
        var del = document.createElement("button");
        del.type = "button";
        del.className = "link box-delete";
        del.setAttribute("data-box-delete", i);
        del.setAttribute("aria-label", "Delete box " + (i + 1));
        del.textContent = "×";
        li.appendChild(sw); li.appendChild(name); li.appendChild(size); li.appendChild(del);
        list.appendChild(li);
      });
    }
    var count = document.getElementById("box-count");
    if (count) count.textContent = String(boxes.length);
    if (submitBtn) submitBtn.disabled = boxes.length === 0;
  }

  function say(text) {
    if (!hint) return;
    hint.textContent = text;
    hint.classList.add("flash");
    setTimeout(function () { hint.classList.remove("flash"); }, 900);
  }

  // --- Changes (each one undoable within the item). ---
  function remember() {
    history.push(JSON.stringify({ boxes: boxes, selected: selected }));
    if (history.length > 200) history.shift();
  }
  function undo() {
    if (!history.length) { say("Nothing to undo on this item."); return; }
    var prev = JSON.parse(history.pop());
    boxes = prev.boxes; selected = prev.selected;
    render();
  }
  function select(i) { selected = i; render(); }
  function setClass(key) {
    current = key;
    if (selected >= 0 && boxes[selected] && boxes[selected]["class"] !== key) {
      remember();
      boxes[selected]["class"] = key;
    }
    render();
  }
  function removeSelected() {
    if (selected < 0) return;
    remember();
    boxes.splice(selected, 1);
    selected = boxes.length ? Math.min(selected, boxes.length - 1) : -1;
    render();
  }
  function cycle(step) {
    if (!boxes.length) return;
    selected = selected < 0 ? (step > 0 ? 0 : boxes.length - 1) : (selected + step + boxes.length) % boxes.length;
    render();
  }
  function nudge(dx, dy) {
    if (selected < 0) return;
    remember();
    var b = boxes[selected];
    b.x += dx; b.y += dy;
    clampBox(b);
    render();
  }
  function submitBoxes() {
    if (!boxes.length) { say("No boxes yet: draw one, or press N for nothing there."); return; }
    if (form.requestSubmit) form.requestSubmit(submitBtn); else submitBtn.click();
  }
  function submitNothing() {
    boxes = []; selected = -1; renderPanel();
    if (form.requestSubmit) form.requestSubmit(nothingBtn); else nothingBtn.click();
  }

  // --- Pointer: draw, move, resize. ---
  svg.addEventListener("pointerdown", function (ev) {
    if (panning || ev.button === 1 || ev.button === 2 || !natural.w) return; // label.js pans
    ev.stopPropagation();
    ev.preventDefault();
    var p = toImage(ev);
    var t = ev.target;
    var handle = t.getAttribute && t.getAttribute("data-handle");
    var index = t.getAttribute && t.getAttribute("data-box");
    if (handle && selected >= 0) {
      remember();
      gesture = { kind: "resize", handle: handle, start: p, orig: Object.assign({}, boxes[selected]) };
    } else if (index !== null && index !== undefined && index !== "") {
      selected = parseInt(index, 10);
      current = boxes[selected]["class"];
      remember();
      gesture = { kind: "move", start: p, orig: Object.assign({}, boxes[selected]), moved: false };
    } else {
      gesture = { kind: "draw", start: p, box: null };
    }
    svg.setPointerCapture(ev.pointerId);
    render();
  });
  svg.addEventListener("pointermove", function (ev) {
    if (!gesture) return;
    ev.stopPropagation();
    var p = toImage(ev);
    var dx = p.x - gesture.start.x, dy = p.y - gesture.start.y;
    if (gesture.kind === "draw") {
      var x0 = Math.max(0, Math.min(gesture.start.x, p.x)), y0 = Math.max(0, Math.min(gesture.start.y, p.y));
      var x1 = Math.min(natural.w, Math.max(gesture.start.x, p.x)), y1 = Math.min(natural.h, Math.max(gesture.start.y, p.y));
      gesture.box = { x: x0, y: y0, w: x1 - x0, h: y1 - y0 };
    } else if (gesture.kind === "move") {
      var b = boxes[selected], o = gesture.orig;
      b.x = o.x + dx; b.y = o.y + dy;
      clampBox(b);
      gesture.moved = gesture.moved || Math.abs(dx) + Math.abs(dy) > 0.5;
    } else if (gesture.kind === "resize") {
      var r = Object.assign({}, gesture.orig), h = gesture.handle;
      var left = r.x, top = r.y, right = r.x + r.w, bottom = r.y + r.h;
      if (h.indexOf("w") >= 0) left = Math.min(right - MIN_SIZE, Math.max(0, left + dx));
      if (h.indexOf("e") >= 0) right = Math.max(left + MIN_SIZE, Math.min(natural.w, right + dx));
      if (h.indexOf("n") >= 0) top = Math.min(bottom - MIN_SIZE, Math.max(0, top + dy));
      if (h.indexOf("s") >= 0) bottom = Math.max(top + MIN_SIZE, Math.min(natural.h, bottom + dy));
      var s = boxes[selected];
      s.x = left; s.y = top; s.w = right - left; s.h = bottom - top;
    }
    render(true); // the panel catches up when the gesture ends
  });
  function endGesture(ev) {
    if (!gesture) return;
    ev.stopPropagation();
    var g = gesture;
    gesture = null;
    if (g.kind === "draw") {
      if (g.box && g.box.w >= MIN_SIZE && g.box.h >= MIN_SIZE && current !== null) {
        remember();
        boxes.push({ "class": current, x: g.box.x, y: g.box.y, w: g.box.w, h: g.box.h });
        selected = boxes.length - 1;
      } else {
        selected = -1; // a click on the image clears the selection
      }
    } else if (g.kind === "move" && !g.moved) {
      history.pop(); // a click that selected a box changed nothing
    }
    render();
  }
  svg.addEventListener("pointerup", endGesture);
  svg.addEventListener("pointercancel", endGesture);
  svg.addEventListener("contextmenu", function (ev) { ev.preventDefault(); });

  // --- The panel: class buttons, the list of boxes, the submit buttons. ---
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest(".box-class-btn");
    if (btn) { ev.preventDefault(); setClass(btn.getAttribute("data-box-class")); return; }
    var del = ev.target.closest("[data-box-delete]");
    if (del) { selected = parseInt(del.getAttribute("data-box-delete"), 10); removeSelected(); return; }
    var row = ev.target.closest(".box-row");
    if (row) { select(parseInt(row.getAttribute("data-box"), 10)); return; }
    if (ev.target === nothingBtn) { boxes = []; selected = -1; renderPanel(); }
  });

  // --- Keyboard: before label.js (capture on window), only for the keys boxes own. ---
  function typing(target) {
    if (!target) return false;
    var tag = target.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type !== "hidden") || target.isContentEditable;
  }
  function classForKey(key) {
    var k = key.toLowerCase();
    for (var i = 0; i < classes.length; i++) if ((classes[i].kbd || "").toLowerCase() === k) return classes[i].key;
    return null;
  }
  window.addEventListener("keydown", function (ev) {
    var help = document.getElementById("help-overlay");
    if (typing(ev.target) || (help && !help.hidden)) return;
    var key = ev.key;
    var handled = true;
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && key.toLowerCase() === "z") undo();
    else if (ev.ctrlKey || ev.metaKey || ev.altKey) handled = false;
    else if (key === "Tab" && boxes.length) cycle(ev.shiftKey ? -1 : 1);
    else if (key === "Backspace" || key === "Delete") removeSelected();
    else if (key === "Escape" && selected >= 0) select(-1);
    else if ((key === "Enter" || key === " ") && ev.target.closest && ev.target.closest("button, a")) handled = false;
    else if (key === "Enter") submitBoxes();
    else if (key === "n" || key === "N") {
      // With boxes drawn, N must be pressed twice: one stray key should not wipe them.
      if (!boxes.length || (armedNothing && Date.now() - armedNothing < 2500)) submitNothing();
      else { armedNothing = Date.now(); say("Press N again to submit \u201cnothing there\u201d and drop your " + boxes.length + " box(es)."); }
    }
    else if (key === " ") { panning = true; viewport.classList.add("panning"); }
    else if (key.indexOf("Arrow") === 0 && selected >= 0) {
      var step = ev.shiftKey ? 10 : 1;
      nudge(key === "ArrowLeft" ? -step : key === "ArrowRight" ? step : 0, key === "ArrowUp" ? -step : key === "ArrowDown" ? step : 0);
    } else if (classForKey(key) !== null) setClass(classForKey(key));
    else handled = false;
    if (handled) { ev.preventDefault(); ev.stopImmediatePropagation(); }
  }, true);
  window.addEventListener("keyup", function (ev) {
    if (ev.key === " ") { panning = false; viewport.classList.remove("panning"); }
  });

  // --- Follow the image: load, zoom and pan (label.js), window size. ---
  function ready() {
    natural = { w: img.naturalWidth, h: img.naturalHeight };
    place();
  }
  if (img.complete && img.naturalWidth) ready();
  else img.addEventListener("load", ready);
  new MutationObserver(place).observe(img, { attributes: true, attributeFilter: ["style", "class"] });
  window.addEventListener("resize", place);
  if (window.ResizeObserver) new ResizeObserver(place).observe(viewport);
  renderPanel();
})();
