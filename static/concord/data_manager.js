// Data manager: the item table, paged, sorted and filtered by the server
// (GET /api/v1/projects/{id}/data-manager/items/), bulk actions on the selection or on
// the filter (POST .../data-manager/actions/), CSV export (.../data-manager/export/).
// The filters live in the page's URL, so a filtered view can be bookmarked or shared.
(function () {
  "use strict";
  var root = document.getElementById("data-manager");
  if (!root) return;
  var api = root.getAttribute("data-api");
  var form = document.getElementById("dm-filters");
  var head = document.getElementById("dm-head");
  var body = document.getElementById("dm-body");
  var status = document.getElementById("dm-status");
  var pageLabel = document.getElementById("dm-page");
  var state = { page: 1, page_size: 50, sort: "id", count: 0, n_pages: 1, rows: [] };
  var selected = {}; // item id -> true
  var COLS_KEY = "concord.dm.columns." + root.getAttribute("data-project");
  var columns = [];
  try { columns = JSON.parse(localStorage.getItem(COLS_KEY) || "[]"); } catch (e) { columns = []; }
  var knownKeys = null;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function itemUrl(id, which) {
    return root.getAttribute(which || "data-item-url").replace("/0/", "/" + id + "/");
  }

  // --- The query: the filter form + sort + page, as URL parameters. ---
  function filterParams() {
    var params = new URLSearchParams();
    var data = new FormData(form);
    data.forEach(function (value, key) {
      if (key === "meta_key" || key === "meta_value" || value === "") return;
      params.append(key, value);
    });
    var keys = form.querySelectorAll("[name=meta_key]");
    var values = form.querySelectorAll("[name=meta_value]");
    for (var i = 0; i < keys.length; i++) {
      if (keys[i].value && values[i].value !== "") params.set("metadata." + keys[i].value, values[i].value);
    }
    return params;
  }
  function pageParams() {
    var params = filterParams();
    if (state.sort !== "id") params.set("sort", state.sort);
    if (state.page > 1) params.set("page", String(state.page));
    return params;
  }
  function loadFromUrl() {
    var params = new URLSearchParams(window.location.search);
    state.sort = params.get("sort") || "id";
    state.page = Number(params.get("page") || 1);
    params.forEach(function (value, key) {
      if (key.indexOf("metadata.") === 0) {
        var k = key.slice(9);
        var sel = form.querySelector("[name=meta_key]");
        if (!Array.prototype.some.call(sel.options, function (o) { return o.value === k; })) sel.appendChild(el("option", { value: k }, k));
        sel.value = k;
        form.querySelector("[name=meta_value]").value = value;
        return;
      }
      var field = form.elements[key];
      if (!field) return;
      if (field.type === "checkbox") field.checked = value === "true";
      else field.value = value;
    });
  }

  // --- Fetch and render. ---
  var seq = 0;
  function load() {
    var mine = ++seq;
    var params = pageParams();
    var query = params.toString();
    history.replaceState(null, "", window.location.pathname + (query ? "?" + query : ""));
    status.textContent = "Loading…";
    root.setAttribute("aria-busy", "true");
    fetch(api + (query ? "?" + query : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (res) {
        if (mine !== seq) return;
        root.removeAttribute("aria-busy");
        if (!res.ok) { status.textContent = res.data.detail || "The filter was refused."; return; }
        var data = res.data;
        state.count = data.count; state.n_pages = data.n_pages; state.rows = data.rows;
        if (data.metadata_keys && !knownKeys) setKeys(data.metadata_keys);
        render(data);
      })
      .catch(function () { if (mine === seq) status.textContent = "Could not load the items; try again."; });
  }

  function setKeys(keys) {
    knownKeys = keys;
    Array.prototype.forEach.call(form.querySelectorAll("[data-meta-keys]"), function (sel) {
      var current = sel.value;
      keys.forEach(function (k) {
        if (!Array.prototype.some.call(sel.options, function (o) { return o.value === k; })) sel.appendChild(el("option", { value: k }, k));
      });
      sel.value = current;
    });
    var boxes = document.getElementById("column-boxes");
    boxes.textContent = "";
    keys.forEach(function (k) {
      var label = el("label", { class: "check" });
      var box = el("input", { type: "checkbox", value: k, "data-column": k });
      box.checked = columns.indexOf(k) >= 0;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + k));
      boxes.appendChild(label);
    });
  }

  var SORTABLE = { external_id: "External id", status: "Status", n_labels: "Labels", agreement: "Agreement", entropy: "Entropy" };
  function header() {
    head.textContent = "";
    var all = el("th");
    var box = el("input", { type: "checkbox", "aria-label": "Select every item on this page", id: "select-page" });
    all.appendChild(box);
    head.appendChild(all);
    head.appendChild(el("th", {}, ""));
    ["external_id", "status", "n_labels", "agreement", "entropy"].forEach(function (key) {
      head.appendChild(sortHeader(key, SORTABLE[key]));
    });
    head.appendChild(el("th", {}, "Consensus"));
    head.appendChild(el("th", {}, "Final label"));
    head.appendChild(el("th", {}, "Tags"));
    columns.forEach(function (k) { head.appendChild(sortHeader("metadata." + k, k)); });
  }
  function sortHeader(key, label) {
    var th = el("th");
    var b = el("button", { type: "button", class: "sort", "data-sort": key }, label);
    if (state.sort === key) b.setAttribute("aria-sort", "ascending");
    else if (state.sort === "-" + key) b.setAttribute("aria-sort", "descending");
    th.appendChild(b);
    return th;
  }
  function fmt(x, digits) { return x === null || x === undefined ? "—" : Number(x).toFixed(digits); }

  function render(data) {
    header();
    body.textContent = "";
    if (!data.rows.length) {
      var tr = el("tr");
      tr.appendChild(el("td", { colspan: String(8 + columns.length), class: "muted" }, "No item matches these filters."));
      body.appendChild(tr);
    }
    data.rows.forEach(function (row) {
      var tr = el("tr", { "data-item": String(row.id) });
      if (selected[row.id]) tr.className = "selected";
      var td = el("td");
      var box = el("input", { type: "checkbox", "data-select": String(row.id), "aria-label": "Select " + row.external_id });
      box.checked = !!selected[row.id];
      td.appendChild(box);
      tr.appendChild(td);
      var thumb = el("td", { class: row.thumbnail || row.image ? "" : "snippet" });
      if (row.thumbnail || row.image) {
        thumb.appendChild(el("img", { class: "thumb", loading: "lazy", alt: "", src: itemUrl(row.id, row.thumbnail ? "data-thumb-url" : "data-image-url") }));
      } else if (row.text) {
        thumb.appendChild(el("span", { class: "small muted" }, row.text.slice(0, 60)));
      }
      tr.appendChild(thumb);
      var id = el("td", { class: "ext" });
      id.appendChild(el("a", { href: itemUrl(row.id) }, row.external_id));
      tr.appendChild(id);
      tr.appendChild(el("td", { class: "status-" + row.status }, row.status.replace("_", " ")));
      tr.appendChild(el("td", { class: "num" }, row.n_labels + " / " + row.n_target));
      tr.appendChild(el("td", { class: "num" }, row.consensus ? fmt(row.consensus.agreement, 2) : "—"));
      tr.appendChild(el("td", { class: "num" }, row.consensus ? fmt(row.consensus.entropy, 2) : "—"));
      tr.appendChild(el("td", {}, row.consensus ? (row.consensus.label || "—") + " · " + row.consensus.status : "—"));
      tr.appendChild(el("td", {}, row.final ? row.final.label + " (" + (row.final.source === "sme" ? "SME" : "consensus") + ")" : "—"));
      var tags = el("td");
      row.tags.forEach(function (t) { tags.appendChild(el("span", { class: "chip" }, t)); });
      tr.appendChild(tags);
      columns.forEach(function (k) {
        var value = row.metadata[k];
        if (value === undefined) {
          // A nested key shows its flattened children (camera_settings.gain ...).
          var parts = Object.keys(row.metadata).filter(function (m) { return m.indexOf(k + ".") === 0; });
          value = parts.map(function (m) { return m.slice(k.length + 1) + "=" + row.metadata[m]; }).join(", ");
        }
        tr.appendChild(el("td", {}, value === "" ? "—" : value));
      });
      body.appendChild(tr);
    });
    var first = data.count ? (data.page - 1) * data.page_size + 1 : 0;
    var last = Math.min(data.count, data.page * data.page_size);
    status.textContent = data.count.toLocaleString() + " item" + (data.count === 1 ? "" : "s") +
      (data.count ? " · showing " + first + "–" + last : "") +
      (data.run ? " · consensus of run #" + data.run.id : " · no agreement run yet");
    pageLabel.textContent = "page " + data.page + " of " + data.n_pages;
    var nMatching = document.getElementById("n-matching");
    if (nMatching) nMatching.textContent = data.count.toLocaleString();
    document.querySelector("[data-page=prev]").disabled = data.page <= 1;
    document.querySelector("[data-page=next]").disabled = data.page >= data.n_pages;
    updateSelection();
  }

  function selectedIds() { return Object.keys(selected).map(Number); }
  function updateSelection() {
    var n = document.getElementById("n-selected");
    if (n) n.textContent = String(selectedIds().length);
    var pageBox = document.getElementById("select-page");
    if (pageBox) pageBox.checked = state.rows.length > 0 && state.rows.every(function (r) { return selected[r.id]; });
  }

  // --- Events. ---
  form.addEventListener("submit", function (ev) { ev.preventDefault(); state.page = 1; selected = {}; load(); });
  form.addEventListener("reset", function () { setTimeout(function () { state.page = 1; state.sort = "id"; selected = {}; load(); }, 0); });
  head.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-sort]");
    if (!b) return;
    var key = b.getAttribute("data-sort");
    state.sort = state.sort === key ? "-" + key : key;
    state.page = 1;
    load();
  });
  head.addEventListener("change", function (ev) {
    if (ev.target.id !== "select-page") return;
    state.rows.forEach(function (r) { if (ev.target.checked) selected[r.id] = true; else delete selected[r.id]; });
    Array.prototype.forEach.call(body.querySelectorAll("[data-select]"), function (box) {
      box.checked = ev.target.checked;
      box.closest("tr").classList.toggle("selected", ev.target.checked);
    });
    updateSelection();
  });
  body.addEventListener("change", function (ev) {
    var id = ev.target.getAttribute("data-select");
    if (!id) return;
    if (ev.target.checked) selected[id] = true; else delete selected[id];
    ev.target.closest("tr").classList.toggle("selected", ev.target.checked);
    updateSelection();
  });
  document.getElementById("dm-pager").addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-page]");
    if (!b || b.disabled) return;
    state.page += b.getAttribute("data-page") === "next" ? 1 : -1;
    load();
  });
  document.getElementById("column-boxes").addEventListener("change", function (ev) {
    var k = ev.target.getAttribute("data-column");
    if (!k) return;
    columns = columns.filter(function (c) { return c !== k; });
    if (ev.target.checked) columns.push(k);
    try { localStorage.setItem(COLS_KEY, JSON.stringify(columns)); } catch (e) { /* private mode */ }
    render({ rows: state.rows, count: state.count, page: state.page, page_size: state.page_size, n_pages: state.n_pages, run: null });
    load();
  });

  // --- Bulk actions. ---
  var bulk = document.getElementById("dm-bulk");
  function scope() {
    var chosen = bulk ? bulk.querySelector("input[name=scope]:checked") : null;
    return chosen ? chosen.value : "selection";
  }
  document.addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-bulk]");
    if (!b) return;
    var action = b.getAttribute("data-bulk");
    var ids = selectedIds();
    var onFilter = scope() === "filter";
    if (action === "export") {
      var params = filterParams();
      if (!onFilter && ids.length) params.set("ids", ids.join(","));
      window.location.href = root.getAttribute("data-export") + "?" + params.toString();
      return;
    }
    if (!onFilter && !ids.length) { status.textContent = "Select items first, or choose “all matching”."; return; }
    var payload = { action: action };
    if (onFilter) {
      payload.query = {};
      filterParams().forEach(function (value, key) { payload.query[key] = value; });
    } else {
      payload.items = ids;
    }
    if (action === "tag" || action === "untag") {
      payload.tag = document.getElementById("bulk-tag").value.trim();
      if (!payload.tag) { status.textContent = "Name the tag."; document.getElementById("bulk-tag").focus(); return; }
    }
    if (action === "relabel") {
      payload.reason = document.getElementById("bulk-reason").value.trim();
      if (!payload.reason) { status.textContent = "Say why the items go back."; document.getElementById("bulk-reason").focus(); return; }
    }
    var n = onFilter ? state.count : ids.length;
    if (onFilter && !window.confirm(action + " " + n + " items?")) return;
    fetch(root.getAttribute("data-actions"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json",
        "X-CSRFToken": bulk.querySelector("input[name=csrfmiddlewaretoken]").value },
      body: JSON.stringify(payload),
    })
      .then(function (r) { return r.json().then(function (data) { return { ok: r.ok, data: data }; }); })
      .then(function (res) {
        if (!res.ok) { status.textContent = res.data.detail || "The action was refused."; return; }
        var d = res.data;
        var msg = action === "relabel"
          ? d.n_assignments + " relabel assignment(s) for " + d.n_items + " item(s)."
          : action === "add_examples"
            ? "Guideline v" + d.guideline_version + " published with " + d.n_examples + " example(s)."
            : (action === "tag" ? "Tagged " : "Untagged ") + d.n_changed + " of " + d.n_items + " item(s) with " + payload.tag + ".";
        load();
        var flash = document.getElementById("dm-flash");
        if (!flash) { flash = el("p", { id: "dm-flash", class: "success small", role: "status", "data-testid": "dm-flash" }); root.insertBefore(flash, bulk); }
        flash.textContent = msg;
      });
  });

  loadFromUrl();
  load();
})();
