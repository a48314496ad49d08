// The graph editor's preview: resolves a shopper phrase through /api/kg/resolve and shows the
// nodes and the products reached. The previous result stays in "Before", so running the same
// phrase after an edit shows what the edit changed. No framework; text is set, never parsed as HTML.
(function () {
  "use strict";
  var form = document.getElementById("preview-form");
  if (!form) return;
  var input = document.getElementById("preview-q");
  var before = document.getElementById("preview-before");
  var now = document.getElementById("preview-now");
  var key = "aisle-kg-preview";

  function render(target, result) {
    target.textContent = "";
    if (!result) { target.textContent = "—"; return; }
    var head = document.createElement("p");
    head.className = "note";
    head.textContent = "“" + result.query + "” · graph version " + result.graph_version;
    target.appendChild(head);
    var list = document.createElement("ul");
    list.className = "matches";
    result.matches.forEach(function (m) {
      var li = document.createElement("li");
      li.textContent = m.text + " → " + m.nodes.map(function (n) {
        return n.label_en + (n.label_zh ? " / " + n.label_zh : "") + " (" + n.kind + ", " + n.products + ")";
      }).join("; ");
      li.setAttribute("data-node-ids", m.nodes.map(function (n) { return n.id; }).join("|"));
      list.appendChild(li);
    });
    if (!result.matches.length) {
      var none = document.createElement("li");
      none.textContent = "no node matches";
      list.appendChild(none);
    }
    target.appendChild(list);
    var products = document.createElement("p");
    products.className = "reached";
    products.textContent = result.products.length + " products reached" +
      (result.products.length ? ": " + result.products.slice(0, 8).map(function (p) { return p.id; }).join(", ") : "");
    target.appendChild(products);
  }

  function load() {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { return null; }
  }

  var last = load();
  if (last) { input.value = last.query; render(now, last); }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = input.value.trim();
    if (!q) return;
    fetch("/api/kg/resolve?q=" + encodeURIComponent(q), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (result) {
        if (result.error) { now.textContent = result.error.message; return; }
        var previous = load();
        render(before, previous && previous.query === result.query ? previous : null);
        render(now, result);
        sessionStorage.setItem(key, JSON.stringify(result));
      })
      .catch(function (e) { now.textContent = "preview failed: " + e; });
  });
}());
