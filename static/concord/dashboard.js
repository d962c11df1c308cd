// Agreement dashboard: poll a running agreement run and reload when it finishes.
(function () {
  "use strict";
  var box = document.querySelector("[data-poll-url]");
  if (!box) return;
  var url = box.getAttribute("data-poll-url");
  var bar = box.querySelector("[data-bar]");
  var pct = box.querySelector("[data-percent]");
  var status = box.querySelector("[data-status]");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (run) {
        var p = Math.round((run.progress || 0) * 100);
        if (bar) bar.style.width = p + "%";
        if (pct) pct.textContent = p + "%";
        if (status) status.textContent = run.status;
        if (run.status === "succeeded" || run.status === "failed") {
          window.location.href = window.location.pathname;
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 500);
})();
