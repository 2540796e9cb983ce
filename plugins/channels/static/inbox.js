/* The inbox of every channel: the list refreshes itself when any channel announces a
 * change (the shared conversations on "list:conversation", the website chat on its inbox
 * feed), by fetching the page again and swapping the list in; a dropped connection
 * resumes from the last event seen. On a conversation's page: canned responses are
 * inserted into the reply. Plain JS (the pages' CSP runs no inline script). */
(function () {
  "use strict";
  var canned = document.querySelector("[data-canned]");
  if (canned) canned.addEventListener("change", function () {
    var text = document.querySelector(canned.dataset.canned);
    if (!canned.value || !text) return;
    text.value = text.value ? text.value + " " + canned.value : canned.value;
    canned.value = "";
    text.focus();
  });
  var root = document.querySelector("[data-inbox]");
  if (!root || !("WebSocket" in window)) return;
  var d = root.dataset, lastEvent = d.since || "", attempts = 0, pending = null;
  var statusEl = document.querySelector("[data-inbox-status]");
  function setStatus(text) { if (statusEl) statusEl.textContent = text; }
  function refresh() {
    pending = null;
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-inbox-list]");
        var list = root.querySelector("[data-inbox-list]");
        if (fresh && list) list.innerHTML = fresh.innerHTML;
      }, function () { /* offline: the next event tries again */ });
  }
  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + d.ws + "?topics=" +
      encodeURIComponent(d.topics) + (lastEvent ? "&last_id=" + encodeURIComponent(lastEvent) : "");
    var ws = new WebSocket(url);
    ws.onopen = function () { attempts = 0; setStatus("Live"); };
    ws.onmessage = function (e) {
      var msg; try { msg = JSON.parse(e.data); } catch (x) { return; }
      if (!msg.id) return;  // hello / ping
      lastEvent = msg.id;
      if (!pending) pending = setTimeout(refresh, 150);  // a burst of events: one fetch
    };
    ws.onclose = function (e) {
      if (e.code === 1008) { setStatus("Live updates unavailable"); return; }
      setStatus("Offline — reconnecting…");
      attempts++;
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempts - 1)));
    };
  }
  connect();
})();
