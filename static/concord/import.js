// Import page: drop or choose a file, upload it with a progress bar to the REST import
// endpoint; on row errors show them (row, field, message), offer the bad rows as a file
// and "Import the valid rows" as an explicit second step (the same file, ?partial=true).
(function () {
  "use strict";
  var card = document.getElementById("import-card");
  if (!card) return;
  var form = document.getElementById("import-form");
  var input = document.getElementById("import-file");
  var zone = document.getElementById("dropzone");
  var box = document.getElementById("upload-box");
  var bar = document.getElementById("upload-progress");
  var phase = document.getElementById("upload-phase");
  var result = document.getElementById("result");
  var summary = document.getElementById("result-summary");
  var validBtn = document.getElementById("import-valid");
  var badBtn = document.getElementById("download-bad");
  var cancelBtn = document.getElementById("import-cancel");
  var errorsWrap = document.getElementById("errors-wrap");
  var errorsBody = document.getElementById("errors-body");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var pending = null; // {file, kind, errors}

  function kind() { return form.querySelector("input[name=kind]:checked").value; }
  function urlFor(k) { return card.getAttribute(k === "items" ? "data-items-url" : "data-annotations-url"); }
  function show(el, yes) { el.hidden = !yes; }

  function upload(file, k, partial) {
    var xhr = new XMLHttpRequest();
    var data = new FormData();
    data.append("file", file, file.name);
    xhr.open("POST", urlFor(k) + (partial ? "?partial=true" : ""));
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    show(box, true); show(result, false);
    document.getElementById("upload-name").textContent = file.name;
    bar.value = 0; bar.removeAttribute("data-done");
    phase.textContent = "uploading…";
    xhr.upload.addEventListener("progress", function (ev) {
      if (ev.lengthComputable) bar.value = Math.round((ev.loaded / ev.total) * 100);
    });
    xhr.upload.addEventListener("load", function () { bar.value = 100; phase.textContent = "checking and storing…"; });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { body = { detail: xhr.responseText.slice(0, 300) }; }
      phase.textContent = "";
      bar.setAttribute("data-done", "1");
      done(file, k, partial, xhr.status, body || {});
    });
    xhr.addEventListener("error", function () { phase.textContent = "the upload failed (network); try again"; });
    xhr.send(data);
  }

  function renderErrors(errors) {
    errorsBody.textContent = "";
    (errors || []).forEach(function (e) {
      var tr = document.createElement("tr");
      [e.row === null || e.row === undefined ? "file" : String(e.row), e.field || "", e.message || ""].forEach(function (text, i) {
        var td = document.createElement("td");
        td.textContent = text;
        if (i === 0) td.className = "num";
        tr.appendChild(td);
      });
      errorsBody.appendChild(tr);
    });
    show(errorsWrap, errors && errors.length > 0);
  }

  function done(file, k, partial, status, body) {
    show(result, true);
    var errors = body.errors || [];
    if (!Array.isArray(errors)) errors = [];
    renderErrors(errors);
    show(badBtn, errors.length > 0);
    if (status === 201) {
      pending = null;
      show(validBtn, false); show(cancelBtn, false);
      summary.className = "success";
      summary.textContent = "Imported " + file.name + ": " + body.n_created + " new, " + body.n_updated + " updated" +
        (body.n_errors ? ", " + body.n_errors + " row(s) left out" : "") + " (batch " + body.source_batch + "). Reload to see it in the history.";
      return;
    }
    summary.className = "error";
    var rowsWithErrors = {};
    errors.forEach(function (e) { if (e.row !== null && e.row !== undefined) rowsWithErrors[e.row] = true; });
    var nBad = Object.keys(rowsWithErrors).length;
    var fileLevel = errors.some(function (e) { return e.row === null || e.row === undefined || e.row === 0; });
    summary.textContent = (body.detail || ("The server answered " + status)) ;
    pending = { file: file, kind: k, errors: errors };
    var canPartial = status === 400 && nBad > 0 && !fileLevel && !partial && !/no valid/.test(body.detail || "");
    show(validBtn, canPartial);
    show(cancelBtn, canPartial);
    if (canPartial) {
      validBtn.textContent = "Import the valid rows (leave out " + nBad + " bad row" + (nBad === 1 ? "" : "s") + ")";
      validBtn.focus();
    }
  }

  function start(file) {
    if (!file) return;
    upload(file, kind(), false);
  }

  input.addEventListener("change", function () { start(input.files[0]); });
  zone.addEventListener("dragover", function (ev) { ev.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", function () { zone.classList.remove("over"); });
  zone.addEventListener("drop", function (ev) {
    ev.preventDefault();
    zone.classList.remove("over");
    if (ev.dataTransfer && ev.dataTransfer.files.length) start(ev.dataTransfer.files[0]);
  });
  zone.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); input.click(); }
  });
  validBtn.addEventListener("click", function () {
    if (pending) upload(pending.file, pending.kind, true);
  });
  cancelBtn.addEventListener("click", function () {
    pending = null; show(result, false); show(box, false); input.value = "";
  });

  // The bad rows as a file: the original lines of a CSV (with its header) or JSONL file,
  // each followed by its errors; for other formats, the errors alone.
  badBtn.addEventListener("click", function () {
    if (!pending && !errorsBody.children.length) return;
    var errors = pending ? pending.errors : [];
    var file = pending ? pending.file : null;
    var byRow = {};
    errors.forEach(function (e) {
      if (e.row === null || e.row === undefined) return;
      (byRow[e.row] = byRow[e.row] || []).push((e.field ? e.field + ": " : "") + e.message);
    });
    function q(text) { return '"' + String(text).replace(/"/g, '""') + '"'; }
    function save(text, name, type) {
      var a = document.createElement("a");
      a.href = URL.createObjectURL(new Blob([text], { type: type }));
      a.download = name;
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
    }
    var base = file ? file.name.replace(/\.[^.]+$/, "") : "import";
    var ext = file ? file.name.split(".").pop().toLowerCase() : "";
    if (file && (ext === "csv" || ext === "jsonl" || ext === "ndjson")) {
      file.text().then(function (text) {
        var lines = text.split(/\r?\n/);
        var out = [];
        if (ext === "csv") {
          out.push(lines[0] + ",_errors");
          Object.keys(byRow).sort(function (a, b) { return a - b; }).forEach(function (r) {
            if (lines[r] !== undefined) out.push(lines[r] + "," + q(byRow[r].join("; ")));
          });
          save(out.join("\n") + "\n", base + "-bad-rows.csv", "text/csv");
        } else {
          Object.keys(byRow).sort(function (a, b) { return a - b; }).forEach(function (r) {
            if (lines[r - 1] !== undefined) out.push(lines[r - 1]);
          });
          save(out.join("\n") + "\n", base + "-bad-rows.jsonl", "application/x-ndjson");
        }
      });
      return;
    }
    var csv = ["row,field,message"].concat(errors.map(function (e) {
      return [e.row === null ? "" : e.row, q(e.field || ""), q(e.message || "")].join(",");
    }));
    save(csv.join("\n") + "\n", base + "-errors.csv", "text/csv");
  });
})();
