// The header's global search (crm/partials/search.html): suggestions as one types.
// "/" (outside a text field) focuses the box; ArrowDown/ArrowUp move through the
// suggestions, Enter opens the chosen one (or, with none chosen, the results page: the
// form's own submit), Escape closes the list (a second Escape clears the box).
(function () {
  "use strict";
  var form = document.querySelector("form.globalsearch");
  if (!form) return;
  var input = form.querySelector("input[name=q]");
  var list = form.querySelector("[role=listbox]");
  var status = form.querySelector("[aria-live]");
  var options = [];
  var active = -1;
  var timer = null;
  var asked = "";
  var controller = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }

  function choose(index) {
    options.forEach(function (el, i) { el.setAttribute("aria-selected", i === index ? "true" : "false"); });
    active = index;
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", options[index].id);
      options[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  function option(id, label, detail, url, extraClass) {
    var li = document.createElement("li");
    li.id = id;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", "false");
    li.dataset.url = url;
    if (extraClass) li.className = extraClass;
    li.appendChild(document.createTextNode(label));
    if (detail) {
      var small = document.createElement("span");
      small.className = "detail";
      small.textContent = detail;
      li.appendChild(small);
    }
    li.addEventListener("mousedown", function (event) { event.preventDefault(); window.location.assign(url); });
    return li;
  }

  function render(data) {
    list.textContent = "";
    options = [];
    var count = 0;
    data.groups.forEach(function (group, g) {
      var head = document.createElement("li");
      head.className = "group";
      head.setAttribute("role", "presentation");
      head.textContent = group.kind;
      list.appendChild(head);
      group.results.forEach(function (r, i) {
        var li = option("gs-" + g + "-" + i, r.label, r.detail, r.url);
        li.setAttribute("aria-label", r.label + (r.detail ? ", " + r.detail : "") + " (" + group.kind + ")");
        list.appendChild(li);
        options.push(li);
        count += 1;
      });
    });
    var all = option("gs-all", count ? "All results for “" + data.query + "”" : "No matches for “" + data.query + "”: search everything", "", data.url, "all");
    list.appendChild(all);
    options.push(all);
    status.textContent = count ? count + " suggestions; arrow keys to choose" : "No matches";
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    choose(-1);
  }

  function ask() {
    var q = input.value.trim();
    if (!q) { close(); asked = ""; return; }
    if (q === asked && !list.hidden) return;
    asked = q;
    if (controller) controller.abort();
    controller = new AbortController();
    fetch(form.dataset.suggest + "?q=" + encodeURIComponent(q), { headers: { Accept: "application/json" }, credentials: "same-origin", signal: controller.signal })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data && input.value.trim() === data.query) render(data); })
      .catch(function () { /* aborted or offline: the form still submits */ });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(ask, 150);
  });
  input.addEventListener("focus", function () { if (input.value.trim() && options.length) { list.hidden = false; input.setAttribute("aria-expanded", "true"); } });
  input.addEventListener("blur", function () { setTimeout(close, 100); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (list.hidden) {
        event.preventDefault();
        if (options.length && input.value.trim() === asked) { list.hidden = false; input.setAttribute("aria-expanded", "true"); choose(0); } else { ask(); }
        return;
      }
      event.preventDefault();
      var step = event.key === "ArrowDown" ? 1 : -1;
      var next = active + step;
      if (next >= options.length) next = 0;
      if (next < 0) next = options.length - 1;
      choose(next);
    } else if (event.key === "Enter") {
      if (!list.hidden && active >= 0) {
        event.preventDefault();
        window.location.assign(options[active].dataset.url);
      }
    } else if (event.key === "Escape") {
      if (!list.hidden) { event.preventDefault(); close(); } else if (input.value) { input.value = ""; }
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) return;
    var t = event.target;
    var typing = t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
    if (typing) return;
    event.preventDefault();
    input.focus();
    input.select();
  });
})();
