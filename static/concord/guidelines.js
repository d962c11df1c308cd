// Guideline editor: a live preview rendered and sanitised by the server (the same
// function that renders the published guideline), a moment after typing stops.
(function () {
  "use strict";
  var form = document.getElementById("guideline-form");
  if (!form) return;
  var text = document.getElementById("g-text");
  var preview = document.getElementById("g-preview");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var timer = null, seq = 0;
  function refresh() {
    var mine = ++seq;
    var data = new FormData();
    data.append("text", text.value);
    fetch(form.getAttribute("data-preview-url"), {
      method: "POST", credentials: "same-origin", body: data,
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d && mine === seq) preview.innerHTML = d.html; }); // sanitised by nh3 on the server
  }
  text.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 300);
  });
})();
