/* The header's notification bell: the unread count, live.
 *
 * [data-bell] carries data-topic ("user:<id>:notifications", which only that user may
 * subscribe to), data-url (the realtime WebSocket) and data-since. Each event on the
 * topic ({"kind": "notifications", "unread": n, "latest": {...}}) sets the count; a new
 * notification also dispatches "crm:notification" on the document. Reconnects with
 * backoff and the last event id, as live.js does. Text is only set with textContent.
 */
(function () {
  "use strict";
  var bell = document.querySelector("[data-bell]");
  if (!bell || !("WebSocket" in window)) return;
  var countEl = bell.querySelector("[data-bell-count]");
  var lastId = bell.dataset.since || "";
  var attempts = 0, socket = null, stopped = false, timer = null;

  function show(unread) {
    countEl.textContent = String(unread);
    countEl.hidden = !unread;
    bell.setAttribute("aria-label", "Notifications: " + unread + " unread");
    bell.dataset.unread = String(unread);
    document.querySelectorAll("[data-bell-count-text]").forEach(function (el) { el.textContent = String(unread); });
  }

  function onMessage(message) {
    var msg;
    try { msg = JSON.parse(message.data); } catch (e) { return; }
    if (msg.type === "hello") { attempts = 0; bell.dataset.live = "1"; return; }
    if (msg.type || !msg.id) return;
    lastId = msg.id;
    var data = msg.data || {};
    if (typeof data.unread === "number") show(data.unread);
    if (data.latest) document.dispatchEvent(new CustomEvent("crm:notification", { detail: data.latest }));
  }

  function connect() {
    clearTimeout(timer);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + bell.dataset.url +
      "?topics=" + encodeURIComponent(bell.dataset.topic) + (lastId ? "&last_id=" + encodeURIComponent(lastId) : "");
    var ws = socket = new WebSocket(url);
    ws.onmessage = onMessage;
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      bell.dataset.live = "";
      if (stopped || event.code === 1008) return;
      timer = setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempts++)));
    };
  }

  window.addEventListener("pagehide", function () { stopped = true; clearTimeout(timer); if (socket) socket.close(); });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { stopped = false; connect(); } });
  connect();
})();
