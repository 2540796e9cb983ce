/* The chat inbox page: live list and thread over the realtime hub, reply, assign, status,
 * typing, read receipts and presence. Plain JS; every text goes in with textContent. */
(function () {
  "use strict";
  // The status filter submits itself (bound here: the page's CSP runs no inline handlers).
  var filter = document.querySelector("[data-submit-on-change]");
  if (filter) filter.addEventListener("change", function () { filter.form.submit(); });
  var root = document.querySelector("[data-chat-inbox]");
  if (!root) return;
  var d = root.dataset;
  var conversationId = d.conversation ? +d.conversation : null;
  var statusEl = document.querySelector("[data-chat-status]");
  var listEl = root.querySelector("[data-chat-list]");
  var msgs = root.querySelector("[data-chat-messages]");
  var typingEl = root.querySelector("[data-chat-typing]");
  var lastEvent = d.since || "", attempts = 0, typingTimer = null, lastTyping = 0;
  var shown = {};
  if (msgs) Array.prototype.forEach.call(msgs.querySelectorAll("[data-message-id]"), function (n) { shown[n.dataset.messageId] = n; });

  function el(tag, cls, text) { var n = document.createElement(tag); if (cls) n.className = cls; if (text != null) n.textContent = text; return n; }
  function call(method, path, body) {
    return fetch(d.api + path, { method: method, credentials: "same-origin", headers: { "Content-Type": "application/json", "X-CSRF-Token": d.csrf, "Accept": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) { return r.text().then(function (t) { var j = null; try { j = t ? JSON.parse(t) : null; } catch (e) { j = null; } return { status: r.status, data: j }; }); });
  }
  function who(m) { return m.sender === "visitor" ? "Visitor" : m.sender === "agent" ? (m.author_name || "Agent") : m.sender === "assistant" ? "Assistant" : "Greeting"; }
  function addMessage(m) {
    if (!msgs || m.conversation_id !== conversationId || shown[m.id]) return;
    var li = el("li", "msg from-" + m.sender);
    li.dataset.messageId = m.id;
    li.appendChild(el("span", "msg-who", who(m)));
    if (m.attachment) {
      var a = el("a", "msg-file", m.attachment.name + " (" + Math.max(1, Math.round(m.attachment.size / 1024)) + " KB)");
      a.href = d.files + m.attachment.id;
      a.target = "_blank";
      a.rel = "noopener";
      li.appendChild(a);
    } else {
      li.appendChild(el("span", "msg-text", m.content));
    }
    li.appendChild(el("span", "msg-when muted", (m.created_at || "").slice(11, 16)));
    msgs.appendChild(li);
    shown[m.id] = li;
    msgs.scrollTop = msgs.scrollHeight;
    if (m.sender === "visitor") {
      if (typingEl) typingEl.textContent = "";
      if (document.visibilityState === "visible") call("POST", "/conversations/" + conversationId + "/read", {});
    }
  }
  function rowLink(c) {
    var q = "?view=" + encodeURIComponent(d.view) + "&status=" + encodeURIComponent(d.status) + "&c=" + c.id;
    return d.inboxUrl + q;
  }
  function rowMeta(c) {
    var when = (c.last_message_at || "").slice(11, 16);
    return c.status + " · " + (c.assignee_id == null ? "unassigned" : (String(c.assignee_id) === d.userId ? "me" : "assigned")) + (when ? " · " + when + " UTC" : "");
  }
  function newRow(c) {
    var li = el("li");
    li.dataset.conversationId = c.id;
    var a = el("a");
    a.href = rowLink(c);
    a.appendChild(el("span", "who", c.visitor_name || c.visitor_email || ("Visitor #" + c.id)));
    a.appendChild(el("span", "meta muted", rowMeta(c)));
    var badge = el("span", "badge unread", "0");
    badge.setAttribute("data-unread", "");
    a.appendChild(badge);
    li.appendChild(a);
    return li;
  }
  function updateRow(c, event) {
    var row = listEl ? listEl.querySelector('[data-conversation-id="' + c.id + '"]') : null;
    var matches = (d.status === "any" || c.status === d.status) &&
      (d.view === "all" || (d.view === "mine" && String(c.assignee_id) === d.userId) || (d.view === "unassigned" && c.assignee_id == null));
    if (!row) {
      if (!matches) return;
      if (!listEl) {  // the empty state: the list starts now
        var empty = root.querySelector("[data-chat-list-empty]");
        listEl = el("ul", "chat-conversations");
        listEl.setAttribute("data-chat-list", "");
        if (empty) empty.parentNode.replaceChild(listEl, empty); else root.querySelector(".chat-list").appendChild(listEl);
      }
      row = newRow(c);
      listEl.insertBefore(row, listEl.firstElementChild);
      if (event === "started") notify(c);
    } else if (!matches && c.id !== conversationId) {
      row.parentNode.removeChild(row);  // resolved, or taken by someone else: not this queue any more
      return;
    }
    var meta = row.querySelector(".meta");
    if (meta && event !== "read") meta.textContent = rowMeta(c);
    var badge = row.querySelector("[data-unread]");
    var unread = c.id === conversationId ? 0 : c.unread;
    badge.hidden = !unread;
    badge.textContent = String(unread || 0);
    badge.setAttribute("aria-label", (unread || 0) + " unread");
    if (listEl.firstElementChild !== row && event === "message") listEl.insertBefore(row, listEl.firstElementChild);
  }
  function beep() {
    try {
      var ctx = new (window.AudioContext || window.webkitAudioContext)();
      var osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.08;
      osc.connect(gain); gain.connect(ctx.destination);
      osc.start(); osc.stop(ctx.currentTime + 0.18);
    } catch (e) { /* no audio */ }
  }
  function notify(c) {
    // Opt-in only: the agent pressed "Notify me of new chats" (permission + sound).
    if (localStorage.getItem("crm-chat-notify") !== "on") return;
    beep();
    if (!("Notification" in window) || Notification.permission !== "granted" || document.visibilityState === "visible") return;
    try { new Notification("New chat", { body: c.visitor_name || c.visitor_email || "A website visitor" }); } catch (e) { /* not supported */ }
  }
  var notifyBtn = document.querySelector("[data-chat-notify]");
  if (notifyBtn) {
    var label = function () { notifyBtn.textContent = localStorage.getItem("crm-chat-notify") === "on" ? "Notifications on" : "Notify me of new chats"; notifyBtn.setAttribute("aria-pressed", String(localStorage.getItem("crm-chat-notify") === "on")); };
    notifyBtn.hidden = false;
    label();
    notifyBtn.addEventListener("click", function () {
      if (localStorage.getItem("crm-chat-notify") === "on") { localStorage.removeItem("crm-chat-notify"); label(); return; }
      localStorage.setItem("crm-chat-notify", "on");
      label();
      if ("Notification" in window && Notification.permission === "default") Notification.requestPermission();
    });
  }
  function onEvent(ev) {
    var data = ev.data || {};
    if (data.kind === "resync") { location.reload(); return; }  // events were lost in an outage
    if (ev.topic === "chat:inbox" || ev.topic.indexOf("chat:inbox:") === 0) {  // the feed, or an agent's part of it
      if (data.conversation) updateRow(data.conversation, data.event);
      return;
    }
    if (data.kind === "message") addMessage(data.message);
    else if (data.kind === "typing" && data.sender === "visitor" && typingEl) {
      typingEl.textContent = "The visitor is typing…";
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typingEl.textContent = ""; }, 5000);
    } else if (data.kind === "conversation" && data.conversation.id === conversationId) {
      var s = root.querySelector("[data-chat-conv-status]");
      if (s) s.textContent = data.conversation.status;
      var leadEl = root.querySelector("[data-chat-lead]");
      if (data.event === "lead" && leadEl && data.conversation.lead_id) {
        leadEl.textContent = "";
        var a = el("a", "", "Lead #" + data.conversation.lead_id);
        a.href = d.api.replace(/\/api\/v1\/chat$/, "") + "/app/leads/" + data.conversation.lead_id;
        leadEl.appendChild(a);
        var emailEl = root.querySelector("[data-chat-email]");
        if (emailEl && data.conversation.visitor_email) emailEl.textContent = data.conversation.visitor_email;
      }
    } else if (data.kind === "read" && data.reader === "visitor") {
      Object.keys(shown).forEach(function (id) {
        var n = shown[id];
        if (+id <= data.up_to && n.classList.contains("from-agent")) n.querySelector(".msg-when").textContent = n.querySelector(".msg-when").textContent.replace(/ · seen$/, "") + " · seen";
      });
    }
  }
  function setStatus(text) { if (statusEl) statusEl.textContent = text; }
  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + d.ws + "?topics=" + encodeURIComponent(d.topics) + (lastEvent ? "&last_id=" + encodeURIComponent(lastEvent) : "");
    var ws = new WebSocket(url);
    ws.onopen = function () { attempts = 0; setStatus("Live"); };
    ws.onmessage = function (e) {
      var msg; try { msg = JSON.parse(e.data); } catch (x) { return; }
      if (!msg.id) return;  // hello / ping
      lastEvent = msg.id;
      onEvent(msg);
    };
    ws.onclose = function (e) {
      setStatus("Offline — reconnecting…");
      if (e.code === 1008) { setStatus("Live updates unavailable"); return; }
      attempts++;
      setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempts - 1)));
    };
  }
  if ("WebSocket" in window) connect();

  var reply = root.querySelector("[data-chat-reply]");
  if (reply && conversationId) {
    var text = reply.querySelector("textarea"), err = reply.querySelector("[data-chat-error]");
    var sendReply = function () {
      var content = text.value.trim();
      if (!content) { err.textContent = "Write a reply first."; text.focus(); return; }
      err.textContent = "";
      var clientId = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
      call("POST", "/conversations/" + conversationId + "/messages", { content: content, client_id: clientId }).then(function (r) {
        if (r.status === 201) { text.value = ""; addMessage(r.data); }
        else err.textContent = (r.data && r.data.message) || "The reply could not be sent.";
      }, function () { err.textContent = "No connection; the reply was not sent."; });
    };
    reply.addEventListener("submit", function (e) { e.preventDefault(); sendReply(); });
    text.addEventListener("keydown", function (e) { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); sendReply(); } });
    text.addEventListener("input", function () {
      var now = Date.now();
      if (now - lastTyping < 3000) return;
      lastTyping = now;
      call("POST", "/conversations/" + conversationId + "/typing");
    });
    call("POST", "/conversations/" + conversationId + "/read", {});
    if (msgs) msgs.scrollTop = msgs.scrollHeight;
    var canned = reply.querySelector("[data-chat-canned]");
    if (canned) canned.addEventListener("change", function () {
      if (!canned.value) return;
      text.value = text.value ? text.value + " " + canned.value : canned.value;
      canned.value = "";
      text.focus();
    });
  }
  var assign = root.querySelector("[data-chat-assign]");
  if (assign) assign.addEventListener("submit", function (e) {
    e.preventDefault();
    var v = assign.querySelector("select").value;
    call("PUT", "/conversations/" + conversationId + "/assign", { assignee_id: v ? +v : null }).then(function (r) { if (r.status === 200) location.reload(); });
  });
  Array.prototype.forEach.call(root.querySelectorAll("[data-chat-set-status]"), function (b) {
    b.addEventListener("click", function () {
      call("PUT", "/conversations/" + conversationId + "/status", { status: b.dataset.chatSetStatus }).then(function (r) { if (r.status === 200) location.reload(); });
    });
  });
  var presence = document.querySelector("[data-chat-presence]");
  if (presence) {
    presence.value = localStorage.getItem("crm-chat-presence") || "online";
    var beat = function () { call("PUT", "/presence", { status: presence.value }); };
    presence.addEventListener("change", function () { localStorage.setItem("crm-chat-presence", presence.value); beat(); });
    beat();
    setInterval(beat, 30000);
  }
})();
