/* The CRM's website chat widget; plain JS, no dependencies.
 *
 *   <script src="https://crm.example.com/chat/widget.js" data-key="pk_..." async></script>
 *
 * Lives in a shadow root (the host page's CSS cannot reach it, its CSS cannot leak out).
 * Talks to <crm>/api/v1/chat/public/... (CORS; no cookies) and <crm>/chat/ws (WebSocket).
 * The visitor's token and any unsent messages are kept in localStorage, so a reload shows
 * the conversation and sends what was pending; messages carry a client id, so a resend is
 * never a duplicate. Reconnects by itself (backoff up to 10 s) and falls back to HTTP
 * (POST to send, long polling to receive) when WebSockets do not get through.
 * Every text from the server or the visitor is set with textContent, never as HTML.
 */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector('script[src*="/chat/widget.js"][data-key]');
  if (!script || window.__crmChatLoaded) return;
  window.__crmChatLoaded = true;
  var src = new URL(script.src, location.href);
  var base = src.origin + src.pathname.replace(/\/chat\/widget\.js$/, "");
  var key = script.getAttribute("data-key") || "";
  var api = base + "/api/v1/chat/public";
  var store = "crm-chat:" + key;

  var state = load();
  var conf = null, ws = null, wsReady = false, wsFailures = 0, polling = false, attempts = 0, timer = null;
  var rendered = {}, lastId = state.lastId || 0, open = false, typingTimer = null, lastTyping = 0;

  function load() {
    try { return JSON.parse(localStorage.getItem(store) || "{}") || {}; } catch (e) { return {}; }
  }
  function save() {
    state.lastId = lastId;
    try { localStorage.setItem(store, JSON.stringify(state)); } catch (e) { /* private mode: memory only */ }
  }
  function uid() {
    return (Date.now().toString(36) + Math.random().toString(36).slice(2, 10)).slice(0, 32);
  }
  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  }
  function request(method, path, body) {
    var headers = { "X-Chat-Key": key };
    if (state.token) headers["X-Chat-Token"] = state.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(api + path, { method: method, headers: headers, body: body === undefined ? undefined : JSON.stringify(body), mode: "cors", credentials: "omit" })
      .then(function (r) {
        return r.text().then(function (t) {
          var data = null;
          try { data = t ? JSON.parse(t) : null; } catch (e) { data = null; }
          return { status: r.status, data: data, retryAfter: r.headers.get("Retry-After") };
        });
      });
  }

  // ------------------------------------------------------------------ the DOM
  var host = el("div");
  host.setAttribute("data-crm-chat", "");
  var root = host.attachShadow({ mode: "open" });
  var style = el("style");
  var custom = el("style");
  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "crm-chat-panel");
  var launcherText = el("span", "launcher-text", "Chat");
  launcher.appendChild(launcherText);
  var unreadBadge = el("span", "unread", "");
  unreadBadge.hidden = true;
  launcher.appendChild(unreadBadge);

  var panel = el("section", "panel");
  panel.id = "crm-chat-panel";
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-modal", "false");
  panel.hidden = true;
  var head = el("header", "head");
  var avatar = el("img", "avatar");
  avatar.alt = "";
  avatar.hidden = true;
  var title = el("h2", "title", "Chat");
  title.id = "crm-chat-title";
  panel.setAttribute("aria-labelledby", "crm-chat-title");
  var closeBtn = el("button", "close", "×");
  closeBtn.type = "button";
  closeBtn.setAttribute("aria-label", "Close chat");
  head.appendChild(avatar); head.appendChild(title); head.appendChild(closeBtn);
  var statusLine = el("p", "status", "");
  statusLine.setAttribute("role", "status");
  var list = el("ol", "messages");
  list.setAttribute("aria-live", "polite");
  list.setAttribute("aria-label", "Messages");
  var typingLine = el("p", "typing", "");
  typingLine.setAttribute("aria-live", "polite");
  var prechat = el("form", "prechat");
  prechat.hidden = true;
  prechat.noValidate = true;
  var composer = el("form", "composer");
  var label = el("label", "sr-only", "Your message");
  label.htmlFor = "crm-chat-input";
  var input = el("textarea");
  input.id = "crm-chat-input";
  input.rows = 1;
  input.placeholder = "Write a message…";
  var sendBtn = el("button", "send", "Send");
  sendBtn.type = "submit";
  var errorLine = el("p", "error", "");
  errorLine.setAttribute("role", "alert");
  var fileInput = el("input");
  fileInput.type = "file";
  fileInput.className = "sr-only";
  fileInput.id = "crm-chat-file";
  fileInput.tabIndex = -1;
  var attachBtn = el("button", "attach", "+");
  attachBtn.type = "button";
  attachBtn.setAttribute("aria-label", "Attach a file");
  attachBtn.title = "Attach a file";
  attachBtn.hidden = true;
  composer.appendChild(label); composer.appendChild(attachBtn); composer.appendChild(fileInput); composer.appendChild(input); composer.appendChild(sendBtn);
  panel.appendChild(head); panel.appendChild(statusLine); panel.appendChild(list); panel.appendChild(typingLine);
  panel.appendChild(prechat); panel.appendChild(composer); panel.appendChild(errorLine);
  root.appendChild(style); root.appendChild(custom); root.appendChild(panel); root.appendChild(launcher);

  style.textContent = [
    ":host{all:initial}",
    "[hidden]{display:none!important}",
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}",
    ".launcher{position:fixed;bottom:20px;z-index:2147483000;display:flex;align-items:center;gap:8px;border:0;border-radius:999px;padding:12px 18px;color:#fff;background:var(--c);font-size:15px;font-weight:600;cursor:pointer;box-shadow:0 6px 20px rgba(0,0,0,.25)}",
    ".launcher:focus-visible,.panel button:focus-visible,.panel textarea:focus-visible,.panel input:focus-visible{outline:3px solid #9db5f0;outline-offset:2px}",
    ".unread{background:#dc2626;border-radius:999px;padding:0 7px;font-size:12px;line-height:18px}",
    ".panel{position:fixed;bottom:84px;z-index:2147483001;width:360px;max-width:calc(100vw - 24px);height:520px;max-height:calc(100vh - 110px);display:flex;flex-direction:column;background:#fff;color:#1d2330;border-radius:14px;box-shadow:0 12px 40px rgba(0,0,0,.28);overflow:hidden;font-size:14px;line-height:1.4}",
    ".panel[hidden]{display:none}",
    ".right{right:20px}.left{left:20px}",
    ".head{display:flex;align-items:center;gap:10px;padding:12px 14px;background:var(--c);color:#fff}",
    ".avatar{width:32px;height:32px;border-radius:50%;object-fit:cover}",
    ".title{flex:1;margin:0;font-size:16px;font-weight:600}",
    ".close{background:none;border:0;color:#fff;font-size:24px;line-height:1;cursor:pointer;padding:2px 8px;border-radius:6px}",
    ".status{margin:0;padding:6px 14px;font-size:12px;color:#5d6677;background:#f5f6f8;border-bottom:1px solid #dfe3ea}",
    ".status:empty{display:none}",
    ".messages{flex:1;overflow-y:auto;list-style:none;margin:0;padding:12px;display:flex;flex-direction:column;gap:8px;background:#fafbfc}",
    ".msg{max-width:85%;padding:8px 11px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere}",
    ".msg .who{display:block;font-size:11px;font-weight:600;opacity:.75;margin-bottom:2px}",
    ".from-visitor{align-self:flex-end;background:var(--c);color:#fff;border-bottom-right-radius:4px}",
    ".from-agent,.from-assistant,.from-system{align-self:flex-start;background:#eef0f4;border-bottom-left-radius:4px}",
    ".from-assistant{background:#f3eefc}",
    ".pending{opacity:.6}",
    ".msg a.file{color:inherit;text-decoration:underline;display:block}",
    ".msg .thumb{display:block;max-width:200px;max-height:160px;border-radius:8px;margin-bottom:4px}",
    ".attach{border:1px solid #c9ced8;background:#fff;border-radius:8px;padding:8px 10px;cursor:pointer;font-size:14px;color:#1d2330}",
    ".msg .meta{display:block;font-size:10px;opacity:.7;margin-top:2px;text-align:right}",
    ".typing{margin:0;padding:0 14px;min-height:18px;font-size:12px;color:#5d6677}",
    ".composer{display:flex;gap:8px;padding:10px;border-top:1px solid #dfe3ea}",
    ".composer textarea{flex:1;resize:none;border:1px solid #c9ced8;border-radius:8px;padding:8px 10px;font-size:14px;max-height:120px}",
    ".send,.prechat button{border:0;border-radius:8px;padding:8px 14px;background:var(--c);color:#fff;font-weight:600;cursor:pointer}",
    ".prechat{padding:12px 14px;border-top:1px solid #dfe3ea;display:flex;flex-direction:column;gap:6px}",
    ".prechat label{font-weight:600;font-size:13px}",
    ".prechat input{border:1px solid #c9ced8;border-radius:8px;padding:8px 10px;font-size:14px;width:100%}",
    ".prechat .field-error{color:#b42318;font-size:12px;margin:0}",
    ".prechat p.intro{margin:0 0 4px;color:#5d6677}",
    ".error{margin:0;padding:0 14px 8px;color:#b42318;font-size:12px}",
    ".error:empty{display:none}",
    ".sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "@media (max-width:480px){.panel{left:0!important;right:0!important;bottom:0;width:100vw;max-width:100vw;height:100%;max-height:100%;border-radius:0}.launcher{bottom:14px}}",
  ].join("\n");

  function applyConfig() {
    host.style.setProperty("--c", conf.colour);
    launcher.style.setProperty("--c", conf.colour);
    root.host.style.setProperty("--c", conf.colour);
    var side = conf.position === "left" ? "left" : "right";
    launcher.classList.add(side); panel.classList.add(side);
    title.textContent = conf.title;
    launcherText.textContent = conf.title;
    launcher.setAttribute("aria-label", "Open chat: " + conf.title);
    if (conf.avatar_url) { avatar.src = conf.avatar_url; avatar.hidden = false; }
    custom.textContent = conf.custom_css || "";
    input.maxLength = conf.max_message_length;
    statusLine.textContent = conf.online ? "" : conf.offline_message;
    attachBtn.hidden = !(conf.attachments && conf.attachments.enabled);
    fileInput.accept = conf.attachments ? conf.attachments.types.join(",") : "";
  }

  // ------------------------------------------------------------------ messages
  function senderName(m) {
    if (m.sender === "visitor") return "You";
    if (m.sender === "agent") return m.author_name || "Agent";
    if (m.sender === "assistant") return "Assistant";
    return conf ? conf.title : "";
  }
  function fileUrl(a) {
    return api + "/attachments/" + a.id + "?key=" + encodeURIComponent(key) + "&token=" + encodeURIComponent(state.token || "");
  }
  function bubble(m, pending) {
    var li = el("li", "msg from-" + m.sender + (pending ? " pending" : ""));
    li.appendChild(el("span", "who", senderName(m)));
    if (m.attachment) {
      var link = el("a", "file", m.attachment.name + " (" + Math.max(1, Math.round(m.attachment.size / 1024)) + " KB)");
      link.href = fileUrl(m.attachment);
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      if (m.attachment.content_type.indexOf("image/") === 0) {
        var img = el("img", "thumb");
        img.src = link.href;
        img.alt = m.attachment.name;
        li.appendChild(img);
      }
      li.appendChild(link);
    } else {
      li.appendChild(el("span", "text", m.content));   // textContent: never HTML
    }
    li.appendChild(el("span", "meta", pending ? "Sending…" : ""));
    return li;
  }
  function scroll() { list.scrollTop = list.scrollHeight; }
  function showMessage(m) {
    if (rendered[m.id]) return;
    var pendingEl = m.client_id ? list.querySelector('[data-client-id="' + CSS.escape(m.client_id) + '"]') : null;
    var node = bubble(m, false);
    node.setAttribute("data-message-id", String(m.id));
    if (pendingEl) list.replaceChild(node, pendingEl); else list.appendChild(node);
    rendered[m.id] = node;
    if (m.client_id && state.outbox) {
      state.outbox = state.outbox.filter(function (p) { return p.client_id !== m.client_id; });
    }
    if (m.id > lastId) lastId = m.id;
    save();
    if (m.sender !== "visitor") {
      typingLine.textContent = "";
      if (!open) { state.unread = (state.unread || 0) + 1; showUnread(); } else markRead();
    }
    scroll();
  }
  function showUnread() {
    unreadBadge.hidden = !state.unread;
    unreadBadge.textContent = state.unread ? String(state.unread) : "";
    unreadBadge.setAttribute("aria-label", (state.unread || 0) + " unread");
  }
  function showPending(p) {
    var node = bubble({ sender: "visitor", content: p.content }, true);
    node.setAttribute("data-client-id", p.client_id);
    list.appendChild(node);
    scroll();
  }
  function markRead() {
    if (!state.token || !lastId) return;
    if (ws && wsReady) ws.send(JSON.stringify({ type: "read", up_to: lastId }));
    else request("POST", "/read", { up_to: lastId });
  }

  // ------------------------------------------------------------------ transport
  function connect() {
    if (!state.token) return;
    if (polling || !("WebSocket" in window)) { poll(); return; }
    var url = base.replace(/^http/, "ws") + "/chat/ws?key=" + encodeURIComponent(key) + "&token=" + encodeURIComponent(state.token) + "&after=" + lastId;
    var opened = false;
    try { ws = new WebSocket(url); } catch (e) { ws = null; fallback(); return; }
    // A socket counts as working once the server said "ready" (a proxy may accept the
    // upgrade and drop it at once): three that never got there mean "use HTTP instead".
    ws.onmessage = function (ev) {
      var f; try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (f.type === "ready") { opened = true; wsReady = true; attempts = 0; wsFailures = 0; setConn(""); flushOutbox(); }
      else if (f.type === "message" || f.type === "ack") { if (f.message) showMessage(f.message); }
      else if (f.type === "typing") { typingLine.textContent = "An agent is typing…"; clearTimeout(typingTimer); typingTimer = setTimeout(function () { typingLine.textContent = ""; }, 5000); }
      else if (f.type === "read") { markSeen(f.up_to); }
      else if (f.type === "error") { showError(f); }
      else if (f.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); }
    };
    ws.onclose = function (ev) {
      ws = null;
      wsReady = false;
      if (!opened && ++wsFailures >= 3) { fallback(); return; }
      if (ev.code === 1008) { setConn("The chat is not available on this page."); return; }
      setConn("Reconnecting…");
      attempts++;
      clearTimeout(timer);
      timer = setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempts - 1)));
    };
  }
  function fallback() { polling = true; flushOutbox(); poll(); }
  function setConn(text) { statusLine.textContent = text || (conf && !conf.online ? conf.offline_message : ""); }
  function poll() {
    request("GET", "/messages?after=" + lastId + "&wait=20").then(function (r) {
      if (r.status === 200 && r.data) { setConn(""); r.data.messages.forEach(showMessage); flushOutbox(); setTimeout(poll, 50); }
      else setTimeout(poll, 3000);
    }, function () { setConn("Reconnecting…"); setTimeout(poll, 3000); });
  }
  function markSeen(upTo) {
    Object.keys(rendered).forEach(function (id) {
      var n = rendered[id];
      if (+id <= upTo && n.classList.contains("from-visitor")) n.querySelector(".meta").textContent = "Seen";
    });
  }
  function showError(f) {
    if (f.code === 429) errorLine.textContent = "You are sending messages too fast; wait " + (f.retry_after || 10) + " seconds.";
    else if (f.errors && f.errors.content) errorLine.textContent = f.errors.content.join(" ");
    else errorLine.textContent = f.message || "The message could not be sent.";
    if (f.code === 503 && f.client_id) {  // the server could not store it now: resend shortly
      errorLine.textContent = "";
      var again = (state.outbox || []).filter(function (p) { return p.client_id === f.client_id; })[0];
      if (again) setTimeout(function () { transmit(again); }, 1000 * (f.retry_after || 1));
      return;
    }
    if (f.client_id && state.outbox) {
      state.outbox = state.outbox.filter(function (p) { return p.client_id !== f.client_id; });
      save();
      var n = list.querySelector('[data-client-id="' + CSS.escape(f.client_id) + '"]');
      if (n) n.querySelector(".meta").textContent = "Not sent";
    }
  }
  function transmit(p) {
    if (ws && wsReady) { ws.send(JSON.stringify({ type: "message", content: p.content, client_id: p.client_id })); return; }
    if (!polling) return;  // the socket is reconnecting: flushOutbox() sends it then
    request("POST", "/messages", p).then(function (r) {
      if (r.status === 200 || r.status === 201) showMessage(r.data);
      else if (r.status === 429) showError({ code: 429, retry_after: r.retryAfter, client_id: p.client_id });
      else if (r.status === 422) showError({ code: 422, errors: r.data && r.data.errors && r.data.errors.json, client_id: p.client_id });
    });
  }
  function flushOutbox() { (state.outbox || []).forEach(transmit); }

  // ------------------------------------------------------------------ session
  var starting = null;  // one session request at a time (pre-chat form and first message)
  function startSession(fields) {
    if (starting) return starting;
    fields.page_url = location.href.slice(0, 500);
    starting = request("POST", "/session", fields).then(function (r) {
      starting = null;
      if (r.status === 201 || r.status === 200) {
        if (r.data.token) state.token = r.data.token;
        save();
        var local = list.querySelector("[data-local-greeting]");
        if (local) list.removeChild(local);
        r.data.messages.forEach(showMessage);
        prechat.hidden = true; composer.hidden = false;
        connect();
        return true;
      }
      if (r.status === 422 && r.data && r.data.errors) { prechatErrors(r.data.errors.json || {}); return false; }
      if (r.status === 429) errorLine.textContent = "Too many chats from this network; try again in a while.";
      else errorLine.textContent = "The chat is not available right now.";
      return false;
    }, function () { starting = null; errorLine.textContent = "No connection to the chat; try again."; return false; });
    return starting;
  }
  function resume() {
    request("POST", "/session", {}).then(function (r) {
      if (r.status === 200) { r.data.messages.forEach(showMessage); (state.outbox || []).forEach(showPending); connect(); }
      else if (r.status === 401) { state = {}; lastId = 0; save(); setupPrechat(); }
    });
  }

  var prechatInputs = {};
  function setupPrechat() {
    var fields = conf.prechat.fields || [];
    if (!fields.length || state.token) return;
    prechat.textContent = "";
    prechat.appendChild(el("p", "intro", "Before we start, tell us a little about you."));
    var labels = { name: "Your name", email: "Email", phone: "Phone" };
    var types = { name: "text", email: "email", phone: "tel" };
    fields.forEach(function (name) {
      var required = conf.prechat.required.indexOf(name) >= 0;
      var l = el("label", "", labels[name] + (required ? " (required)" : ""));
      l.htmlFor = "crm-chat-" + name;
      var i = el("input");
      i.id = "crm-chat-" + name; i.name = name; i.type = types[name]; i.required = required;
      i.autocomplete = name === "name" ? "name" : (name === "email" ? "email" : "tel");
      var err = el("p", "field-error", "");
      err.id = "crm-chat-" + name + "-error";
      i.setAttribute("aria-describedby", err.id);
      prechat.appendChild(l); prechat.appendChild(i); prechat.appendChild(err);
      prechatInputs[name] = { input: i, error: err };
    });
    var go = el("button", "", "Start chat");
    go.type = "submit";
    prechat.appendChild(go);
    prechat.hidden = false;
    composer.hidden = true;
  }
  function prechatErrors(errors) {
    Object.keys(prechatInputs).forEach(function (name) {
      var f = prechatInputs[name];
      var msg = errors[name] ? errors[name].join(" ") : "";
      f.error.textContent = msg;
      if (msg) f.input.setAttribute("aria-invalid", "true"); else f.input.removeAttribute("aria-invalid");
    });
    var first = Object.keys(prechatInputs).filter(function (n) { return errors[n]; })[0];
    if (first) prechatInputs[first].input.focus();
  }
  prechat.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var fields = {};
    Object.keys(prechatInputs).forEach(function (n) { fields[n] = prechatInputs[n].input.value.trim(); });
    startSession(fields).then(function (ok) { if (ok) input.focus(); });
  });

  // ------------------------------------------------------------------ sending
  function send() {
    var text = input.value.trim();
    errorLine.textContent = "";
    if (!text) return;
    if (conf && text.length > conf.max_message_length) { errorLine.textContent = "At most " + conf.max_message_length + " characters."; return; }
    var p = { content: text, client_id: uid() };
    state.outbox = (state.outbox || []).concat([p]);
    save();
    input.value = "";
    showPending(p);
    if (!state.token) { startSession({}).then(function (ok) { if (ok) flushOutbox(); }); return; }
    transmit(p);
  }
  composer.addEventListener("submit", function (ev) { ev.preventDefault(); send(); });
  attachBtn.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var file = fileInput.files && fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    errorLine.textContent = "";
    if (conf && file.size > conf.attachments.max_mb * 1024 * 1024) { errorLine.textContent = "Files can be at most " + conf.attachments.max_mb + " MB."; return; }
    var p = { content: file.name, client_id: uid() };
    showPending(p);
    var go = function () {
      var form = new FormData();
      form.append("file", file);
      form.append("client_id", p.client_id);
      fetch(api + "/attachments", { method: "POST", body: form, headers: { "X-Chat-Key": key, "X-Chat-Token": state.token }, mode: "cors", credentials: "omit" })
        .then(function (r) { return r.json().then(function (d) { return { status: r.status, data: d }; }); })
        .then(function (r) {
          if (r.status === 200 || r.status === 201) { showMessage(r.data); return; }
          var n = list.querySelector('[data-client-id="' + CSS.escape(p.client_id) + '"]');
          if (n) n.parentNode.removeChild(n);
          var errs = r.data && r.data.errors && r.data.errors.json;
          errorLine.textContent = errs && errs.file ? errs.file.join(" ") : (r.data && r.data.message) || "The file could not be sent.";
        }, function () { errorLine.textContent = "The file could not be sent."; });
    };
    if (state.token) go(); else startSession({}).then(function (ok) { if (ok) go(); });
  });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); send(); }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (!state.token || now - lastTyping < 3000) return;
    lastTyping = now;
    if (ws && wsReady) ws.send(JSON.stringify({ type: "typing" }));
    else request("POST", "/typing", {});
  });

  // ------------------------------------------------------------------ open / close
  function setOpen(value) {
    open = value;
    panel.hidden = !value;
    launcher.setAttribute("aria-expanded", String(value));
    if (value) {
      state.unread = 0; showUnread(); save();
      markRead();
      (prechat.hidden ? input : (prechat.querySelector("input") || input)).focus();
      scroll();
    } else {
      launcher.focus();
    }
  }
  launcher.addEventListener("click", function () { setOpen(!open); });
  closeBtn.addEventListener("click", function () { setOpen(false); });
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") setOpen(false); });

  // ------------------------------------------------------------------ start
  request("GET", "/config").then(function (r) {
    if (r.status !== 200) return;  // wrong key or origin: stay invisible
    conf = r.data;
    applyConfig();
    if (!state.token && conf.greeting) {
      var g = bubble({ sender: "system", content: conf.greeting }, false);
      g.setAttribute("data-local-greeting", "");
      list.appendChild(g);
    }
    (document.body || document.documentElement).appendChild(host);
    showUnread();
    if (state.token) resume(); else setupPrechat();
  });
})();
