// Project create/settings form: add class rows, reorder them by drag or Alt+Up/Down.
// Without this file the form still works: the rows keep their order numbers.
(function () {
  "use strict";
  var list = document.getElementById("class-list");
  if (!list) return;

  function renumber() {
    Array.prototype.forEach.call(list.querySelectorAll("[data-row]"), function (row, i) {
      var order = row.querySelector("[data-order]");
      if (order) order.value = String(i);
    });
  }

  // --- Add a row: a copy of the last one, emptied, with the next free index. ---
  var add = document.getElementById("add-class");
  if (add) {
    add.addEventListener("click", function () {
      var rows = list.querySelectorAll("[data-row]");
      var last = rows[rows.length - 1];
      var next = 0;
      Array.prototype.forEach.call(list.querySelectorAll("input[name^='class_']"), function (input) {
        var m = /^class_(\d+)_/.exec(input.name);
        if (m) next = Math.max(next, Number(m[1]) + 1);
      });
      var copy = last.cloneNode(true);
      Array.prototype.forEach.call(copy.querySelectorAll("input"), function (input) {
        input.name = input.name.replace(/^class_\d+_/, "class_" + next + "_");
        if (input.type === "checkbox") input.checked = false;
        else if (!input.hasAttribute("data-order")) input.value = "";
        input.removeAttribute("readonly");
      });
      Array.prototype.forEach.call(copy.querySelectorAll(".field-error"), function (e) { e.remove(); });
      list.appendChild(copy);
      renumber();
      var key = copy.querySelector("input[name$='_key']");
      if (key) key.focus();
    });
  }

  // --- Keyboard: Alt+Up / Alt+Down on any control of a row moves the row. ---
  list.addEventListener("keydown", function (ev) {
    if (!ev.altKey || (ev.key !== "ArrowUp" && ev.key !== "ArrowDown")) return;
    var row = ev.target.closest("[data-row]");
    if (!row) return;
    ev.preventDefault();
    if (ev.key === "ArrowUp" && row.previousElementSibling) list.insertBefore(row, row.previousElementSibling);
    else if (ev.key === "ArrowDown" && row.nextElementSibling) list.insertBefore(row.nextElementSibling, row);
    renumber();
    ev.target.focus();
  });

  // --- Drag and drop. ---
  var dragged = null;
  list.addEventListener("dragstart", function (ev) {
    var row = ev.target.closest && ev.target.closest("[data-row]");
    if (!row) return;
    dragged = row;
    row.classList.add("dragging");
    if (ev.dataTransfer) { ev.dataTransfer.effectAllowed = "move"; ev.dataTransfer.setData("text/plain", ""); }
  });
  list.addEventListener("dragover", function (ev) {
    if (!dragged) return;
    ev.preventDefault();
    var over = ev.target.closest("[data-row]");
    if (!over || over === dragged) return;
    var rect = over.getBoundingClientRect();
    var after = ev.clientY > rect.top + rect.height / 2;
    list.insertBefore(dragged, after ? over.nextElementSibling : over);
  });
  list.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    dragged = null;
    renumber();
  });
  renumber();
})();
