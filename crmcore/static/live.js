/* Live updates for CRM pages; plain JS, no dependencies.
 *
 * Contract (details in templates/crm/partials/live.html): a page sets `live_topics`
 * ("record:<entity>:<id>" or "list:<entity>") and crm/base.html includes the partial,
 * which renders [data-live] with data-topics, data-since, data-url and data-user-id.
 * The timeline list carries [data-live-timeline]; its items may carry
 * data-live-item="<type>:<id>".
 *
 * Connects to the realtime WebSocket (same origin: the session cookie authenticates),
 * remembers the last event id and resumes from it after a drop (backoff up to 10 s),
 * and shows a status ("Live" / "Offline — reconnecting…"), a notice when another user
 * changed or deleted the record (or, on a list, records changed), and new timeline
 * items. Every event is also dispatched as a "crm:live" DOM event for page scripts.
 * Text from the server is only ever set with textContent.
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !("WebSocket" in window)) return;
  var topics = (root.dataset.topics || "").split(",").filter(Boolean);
  if (!topics.length) return;
  var statusEl = root.querySelector("[data-live-status]");
  var noticeEl = root.querySelector("[data-live-notice]");
  var me = root.dataset.userId || document.body.dataset.userId || "";
  var lastId = root.dataset.since || "";  // the page's render time: nothing after it is missed
  var attempts = 0, socket = null, timer = null, stopped = false;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function setStatus(state, text) {
    statusEl.className = "live-status is-" + state;
    statusEl.textContent = text;
  }

  function notify(text, withReload) {
    var bar = el("div", "live-bar");
    bar.appendChild(el("span", "live-text", text));
    if (withReload) {
      var reload = el("button", "live-reload", "Reload");
      reload.type = "button";
      reload.addEventListener("click", function () { location.reload(); });
      bar.appendChild(reload);
    }
    var dismiss = el("button", "live-dismiss", "×");
    dismiss.type = "button";
    dismiss.setAttribute("aria-label", "Dismiss");
    dismiss.addEventListener("click", function () { noticeEl.textContent = ""; });
    bar.appendChild(dismiss);
    noticeEl.textContent = "";  // one notice at a time: the latest
    noticeEl.appendChild(bar);
  }

  function byOther(actor) {
    return !actor || actor.id == null || String(actor.id) !== me;
  }

  function thing(data) {
    return root.dataset.label || "This " + String(data.entity || "record").replace(/_/g, " ");
  }

  function when(iso) {
    var date = new Date(iso);
    return isNaN(date) ? "just now" : date.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function timelineItem(data) {
    var list = document.querySelector("[data-live-timeline]");
    var item = data.item || {};
    if (!list || !item.type) return;
    var key = item.type + ":" + item.id;
    var shown = list.querySelector('[data-live-item="' + CSS.escape(key) + '"]');
    if (item.action === "deleted") {
      if (shown) shown.classList.add("live-removed");
      return;
    }
    var li = el("li", "live-item tl-" + item.type);
    li.dataset.liveItem = key;
    li.appendChild(el("div", "live-summary", data.summary || item.summary || ""));
    var time = el("time", null, when(item.at));
    if (item.at) time.dateTime = item.at;
    li.appendChild(el("div", "when")).appendChild(time);
    if (shown) list.replaceChild(li, shown);
    else list.insertBefore(li, list.firstChild);
    li.classList.add("live-new");
    setTimeout(function () { li.classList.remove("live-new"); }, 4000);
  }

  function onRecord(data) {
    if (data.kind === "timeline") return timelineItem(data);
    if (!byOther(data.actor)) return;
    var who = data.actor && data.actor.name ? " by " + data.actor.name : "";
    if (data.kind === "updated") notify(thing(data) + " was changed" + who + ".", true);
    else if (data.kind === "deleted") notify(thing(data) + " was deleted" + who + ".", false);
  }

  function onList(data) {
    if (data.actor_id != null && String(data.actor_id) === me) return;
    notify("New or changed records.", true);
  }

  function onMessage(message) {
    var msg;
    try { msg = JSON.parse(message.data); } catch (e) { return; }
    if (msg.type === "hello") {
      attempts = 0;
      setStatus("live", "Live");
      return;
    }
    if (msg.type || !msg.id || !msg.topic) return;  // keep-alive ping
    lastId = msg.id;
    var data = msg.data || {};
    if (data.kind === "resync") notify("Live updates were interrupted: reload to see the latest.", true);
    else if (msg.topic.indexOf("record:") === 0) onRecord(data);
    else if (msg.topic.indexOf("list:") === 0) onList(data);
    root.dispatchEvent(new CustomEvent("crm:live", { detail: msg, bubbles: true }));
  }

  function connect() {
    clearTimeout(timer);
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.url +
      "?topics=" + encodeURIComponent(topics.join(",")) + (lastId ? "&last_id=" + encodeURIComponent(lastId) : "");
    var ws = socket = new WebSocket(url);
    ws.onmessage = onMessage;
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      if (event.code === 1008) {  // refused as asked (signed out, bad request): retrying cannot help
        setStatus("off", "Live updates off — reload the page");
        return;
      }
      var delay = Math.min(10000, 500 * Math.pow(2, attempts++)) * (0.8 + Math.random() * 0.2);
      setStatus("offline", "Offline — reconnecting…");
      timer = setTimeout(connect, delay);
    };
  }

  window.addEventListener("online", function () { if (!socket && !stopped) connect(); });
  window.addEventListener("pagehide", function () {
    stopped = true;
    clearTimeout(timer);
    if (socket) socket.close();
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { stopped = false; connect(); }
  });
  connect();
})();
