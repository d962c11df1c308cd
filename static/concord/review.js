/* Keyboard for the SME review queue and flag page (the pages work without it).
 *
 * Queue: j / k move the selection, Enter (or o) opens the flag.
 * Flag:  1..9 set label, b borderline, m merge, r relabel, g publish guideline,
 *        d dismiss, / focus the rationale, Enter submits (Shift+Enter: new line),
 *        j / k next / previous flag, Esc leaves a text field.
 */
(function () {
  "use strict";

  function typing(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
      (tag === "INPUT" && !/^(checkbox|radio|button|submit)$/i.test(el.type));
  }

  // ---------------------------------------------------------------- queue
  var rows = Array.prototype.slice.call(document.querySelectorAll(".flag-row"));
  if (rows.length) {
    var current = 0;
    var select = function (i) {
      current = Math.max(0, Math.min(rows.length - 1, i));
      rows.forEach(function (r, n) { r.classList.toggle("selected", n === current); });
      rows[current].scrollIntoView({ block: "nearest" });
    };
    select(0);
    rows.forEach(function (r, n) {
      r.addEventListener("click", function (e) {
        if (e.target.closest("a")) return;
        window.location.href = r.dataset.href;
      });
      r.addEventListener("mouseenter", function () { select(n); });
    });
    document.addEventListener("keydown", function (e) {
      if (typing(document.activeElement) || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === "j") { select(current + 1); e.preventDefault(); }
      else if (e.key === "k") { select(current - 1); e.preventDefault(); }
      else if (e.key === "Enter" || e.key === "o") {
        window.location.href = rows[current].dataset.href; e.preventDefault();
      }
    });
  }

  // ---------------------------------------------------------------- flag page
  var top = document.querySelector(".flag-top");
  var form = document.getElementById("decision");
  if (!top) return;

  var toggle = document.querySelector("[data-toggle-items]");
  if (toggle) {
    toggle.addEventListener("click", function () {
      var boxes = document.querySelectorAll('input[name="items"][type="checkbox"]');
      var anyOff = Array.prototype.some.call(boxes, function (b) { return !b.checked; });
      boxes.forEach(function (b) { b.checked = anyOff; });
    });
  }

  var action = form && form.querySelector("#action");
  var rationale = document.getElementById("rationale");
  var chosen = form && form.querySelector(".chosen");
  var guidelineBox = form && form.querySelector(".guideline-box");
  var NAMES = {
    set_label: "Set the final label", mark_borderline: "Mark borderline",
    merge_classes: "Merge the classes", relabel: "Send back for relabeling",
    publish_guideline: "Publish a clarified guideline", dismiss: "Dismiss"
  };

  function choose(name) {
    if (!form) return;
    var button = form.querySelector('button[data-action="' + name + '"]');
    if (!button || button.disabled) return;
    action.value = name;
    form.querySelectorAll("button.act").forEach(function (b) {
      b.classList.toggle("on", b === button);
    });
    if (guidelineBox) guidelineBox.hidden = name !== "publish_guideline";
    var text = NAMES[name] || name;
    if (name === "set_label") {
      var picked = form.querySelector('input[name="label"]:checked');
      text += picked ? ": " + picked.value : " (pick a label)";
    }
    if (name === "merge_classes") {
      var into = form.querySelector('select[name="into"]');
      if (into) text += " " + into.options[into.selectedIndex].text;
    }
    chosen.textContent = text + " — write why, then Enter.";
    chosen.classList.add("ready");
    if (rationale) rationale.focus();
  }

  function submit() {
    if (!form) return;
    if (!action.value) { chosen.textContent = "Choose an action first (1–9, b, m, r, g, d)."; return; }
    if (!rationale.value.trim()) {
      chosen.textContent = "A rationale is required."; rationale.focus(); return;
    }
    if (action.value === "set_label" && !form.querySelector('input[name="label"]:checked')) {
      chosen.textContent = "Pick a label (1–9)."; return;
    }
    if (form.dataset.sent) return;
    form.dataset.sent = "1";
    form.submit();
  }

  if (form) {
    form.querySelectorAll('input[name="label"]').forEach(function (r) {
      r.addEventListener("change", function () { choose("set_label"); });
    });
    form.querySelectorAll("button.act").forEach(function (b) {
      b.addEventListener("click", function (e) {
        // A click chooses the action; the decision is sent once a rationale is there.
        if (!rationale.value.trim() || (b.dataset.action === "set_label" &&
            !form.querySelector('input[name="label"]:checked'))) {
          e.preventDefault();
          choose(b.dataset.action);
        } else {
          action.value = b.dataset.action;
        }
      });
    });
    rationale.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); }
      else if (e.key === "Escape") { rationale.blur(); }
    });
  }

  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var el = document.activeElement;
    if (typing(el)) {
      if (e.key === "Escape") el.blur();
      return;
    }
    var key = e.key;
    if (key === "j" && top.dataset.next) { window.location.href = top.dataset.next; return; }
    if (key === "k" && top.dataset.prev) { window.location.href = top.dataset.prev; return; }
    if (!form) return;
    if (/^[1-9]$/.test(key)) {
      var choice = form.querySelector('.label-choice[data-key="' + key + '"] input');
      if (choice) { choice.checked = true; choose("set_label"); e.preventDefault(); }
    } else if (key === "b") { choose("mark_borderline"); e.preventDefault(); }
    else if (key === "m") { choose("merge_classes"); e.preventDefault(); }
    else if (key === "r") { choose("relabel"); e.preventDefault(); }
    else if (key === "g") {
      choose("publish_guideline"); e.preventDefault();
    }
    else if (key === "d") { choose("dismiss"); e.preventDefault(); }
    else if (key === "/") { rationale.focus(); e.preventDefault(); }
    else if (key === "Enter") { submit(); e.preventDefault(); }
  });
})();
