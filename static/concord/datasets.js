// Datasets page: while a version is queued or building, poll it and reload the page
// when its status changes. (A <meta refresh> to the page's own URL did nothing after the
// build form's redirect: the URL ends in #version-N, and Chromium treats a navigation to
// the same URL with a fragment as a jump within the page, not a reload.)
(function () {
  "use strict";
  var pending = document.querySelectorAll("[data-poll-version]");
  if (!pending.length) return;
  var urls = Array.prototype.map.call(pending, function (el) {
    return { url: el.getAttribute("data-poll-version"), status: el.getAttribute("data-status") };
  });
  function busyTyping() {
    var el = document.activeElement;
    return el && el.closest && el.closest("form") && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }
  function poll() {
    Promise.all(urls.map(function (v) {
      return fetch(v.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) { return data && data.status !== v.status; });
    })).then(function (changed) {
      // Never reload under someone filling in the build or token form.
      if (changed.indexOf(true) >= 0 && !busyTyping()) window.location.reload();
      else window.setTimeout(poll, 2000);
    }).catch(function () { window.setTimeout(poll, 4000); });
  }
  window.setTimeout(poll, 1500);
})();
