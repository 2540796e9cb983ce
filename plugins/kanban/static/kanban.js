/* The kanban board (plugins/kanban): plain JS, no dependencies.
 *
 * The page embeds the board's first data (#kb-data); everything after goes through
 * /api/v1/pipeline/... with the session cookie (and the CSRF token for moves):
 * - drag and drop with pointer events (mouse right away; touch after a short press, so a
 *   swipe still scrolls), and the keyboard: Space picks a card up, the arrows move it,
 *   Space/Enter drops it, Escape puts it back; arrows alone move the focus;
 * - moves are shown at once and undone when the server refuses (with its reason); a lost
 *   stage asks for the reason first; the last move can be undone;
 * - columns load more cards as they scroll; the side panel shows a card's record;
 * - live: the realtime WebSocket (/realtime/ws, topic list:deal or list:lead) brings other
 *   people's changes; offline is shown, and a reconnect reloads the board to catch up.
 * Text from the server is only ever set with textContent.
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-kb-board]");
  var dataEl = document.getElementById("kb-data");
  if (!root || !dataEl) return;

  var board = JSON.parse(dataEl.textContent);
  var entity = root.dataset.entity;
  var pipelineId = root.dataset.pipelineId;
  var canWrite = root.dataset.canWrite === "true";
  var fields = (root.dataset.cardFields || "").split(",");
  var pageSize = parseInt(root.dataset.pageSize, 10) || 20;
  var csrf = root.dataset.csrf;
  var me = root.dataset.userId;
  var FILTERS = ["q", "owner_id", "mine", "tag", "min_value", "max_value"];
  var filterParams = new URLSearchParams();
  new URLSearchParams(location.search).forEach(function (value, key) {
    if (FILTERS.indexOf(key) >= 0 && value !== "") filterParams.append(key, value);
  });

  var liveEl = document.querySelector("[data-kb-live]");
  var messageEl = document.querySelector("[data-kb-message]");
  var announceEl = document.querySelector("[data-kb-announce]");
  var panel = document.querySelector("[data-kb-panel]");
  var lostDialog = document.querySelector("[data-kb-lost]");

  var columns = {};   // column id -> {info, el, list, more, empty, cursor, loading}
  var order = [];     // column ids, left to right
  var cards = {};     // card id -> card data
  var pending = {};   // card id -> true while its move is being saved
  var lastMove = null;
  var panelFor = null;

  // ------------------------------------------------------------------ helpers

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function query(extra) {
    var params = new URLSearchParams(filterParams);
    Object.keys(extra || {}).forEach(function (k) { if (extra[k] != null) params.set(k, extra[k]); });
    var text = params.toString();
    return text ? "?" + text : "";
  }

  function boardUrl() {
    return entity === "deal" ? "/api/v1/pipeline/boards/" + pipelineId : "/api/v1/pipeline/leads/board";
  }

  function columnUrl(col) {
    return entity === "deal" ? boardUrl() + "/columns/" + col.info.stage_id + "/cards" : "/api/v1/pipeline/leads/board/" + col.info.id + "/cards";
  }

  function cardUrl(id) {
    return (entity === "deal" ? "/api/v1/pipeline/cards/" : "/api/v1/pipeline/leads/") + id;
  }

  function api(method, url, body) {
    var headers = { "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    return fetch(url, { method: method, headers: headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (response) {
        return response.json().catch(function () { return null; }).then(function (data) {
          return { ok: response.ok, status: response.status, data: data };
        });
      }, function () { return { ok: false, status: 0, data: null }; });
  }

  function money(value, currency) {
    if (value == null || value === "") return "";
    var number = Number(value);
    try {
      if (currency) return new Intl.NumberFormat(undefined, { style: "currency", currency: currency, maximumFractionDigits: 0 }).format(number);
    } catch (e) { /* an unknown currency code: plain number below */ }
    return new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 }).format(number);
  }

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

  function announce(text) { announceEl.textContent = ""; setTimeout(function () { announceEl.textContent = text; }, 30); }

  function errorText(result) {
    var data = result.data || {};
    if (result.status === 0) return "the server could not be reached";
    if (result.status === 412) return "someone else changed this card meanwhile; it shows their change now";
    if (result.status === 403) return "your role may not move cards";
    if (result.status === 404) return "the card no longer exists (or you may not see it)";
    var errors = data.errors && (data.errors.json || data.errors.query);
    if (errors) {
      return Object.keys(errors).map(function (k) { return [].concat(errors[k]).join(" "); }).join(" ");
    }
    return data.message || "the server answered " + result.status;
  }

  function showMessage(text, kind, withUndo) {
    messageEl.textContent = "";
    var bar = el("div", "kb-note is-" + (kind || "info"));
    bar.appendChild(el("span", "kb-note-text", text));
    if (withUndo) {
      var undo = el("button", "button small", "Undo");
      undo.type = "button";
      undo.setAttribute("data-kb-undo", "");
      undo.addEventListener("click", undoLast);
      bar.appendChild(undo);
    }
    var close = el("button", "kb-note-close", "×");
    close.type = "button";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", function () { messageEl.textContent = ""; });
    bar.appendChild(close);
    messageEl.appendChild(bar);
  }

  // ------------------------------------------------------------------ drawing

  function cardLabel(card, colName) {
    var parts = [card.title];
    if (card.value) parts.push(money(card.value, card.currency));
    if (card.company) parts.push(card.company.name);
    if (card.owner) parts.push("owner " + card.owner.name);
    if (colName) parts.push("in " + colName);
    if (card.overdue) parts.push("over the stage's expected " + plural(card.expected_days, "day"));
    return parts.join(", ");
  }

  function fillCard(node, card) {
    node.textContent = "";
    node.className = "kb-card" + (card.overdue ? " is-overdue" : "") + (card.status === "won" ? " is-won" : card.status === "lost" ? " is-lost" : "");
    node.dataset.id = card.id;
    node.tabIndex = 0;
    var col = columns[card.column];
    node.setAttribute("aria-label", cardLabel(card, col && col.info.name));
    node.setAttribute("aria-describedby", "kb-help");
    node.appendChild(el("div", "kb-title", card.title));
    var meta = el("div", "kb-meta");
    if (fields.indexOf("value") >= 0 && card.value) meta.appendChild(el("span", "kb-value", money(card.value, card.currency)));
    if (fields.indexOf("probability") >= 0 && card.probability != null) meta.appendChild(el("span", "kb-prob", card.probability + " %"));
    var who = (fields.indexOf("company") >= 0 && card.company) ? card.company.name : (fields.indexOf("contact") >= 0 && card.contact) ? card.contact.name : "";
    if (who) meta.appendChild(el("span", "kb-who", who));
    if (meta.childNodes.length) node.appendChild(meta);
    var foot = el("div", "kb-foot");
    if (fields.indexOf("owner") >= 0) {
      var avatar = el("span", "kb-avatar" + (card.owner ? "" : " is-none"), card.owner ? card.owner.initials : "–");
      avatar.title = card.owner ? "Owner: " + card.owner.name : "No owner";
      avatar.setAttribute("aria-hidden", "true");
      foot.appendChild(avatar);
    }
    if (fields.indexOf("tags") >= 0) card.tags.slice(0, 3).forEach(function (t) { foot.appendChild(el("span", "tag", t)); });
    if (fields.indexOf("badges") >= 0) (card.badges || []).forEach(function (b) {
      var badge = el("span", "kb-badge tone-" + b.tone, b.label);
      if (b.title) badge.title = b.title;
      foot.appendChild(badge);
    });
    if (fields.indexOf("expected_close_date") >= 0 && card.expected_close_date) foot.appendChild(el("span", "kb-close-date", "closes " + card.expected_close_date));
    if (fields.indexOf("days_in_stage") >= 0) {
      var days = el("span", "kb-days" + (card.overdue ? " is-overdue" : ""), (card.overdue ? "⚠ " : "") + card.days_in_stage + "d");
      days.title = plural(card.days_in_stage, "day") + " in this " + (entity === "deal" ? "stage" : "status") + (card.expected_days != null ? " (expected: " + plural(card.expected_days, "day") + ")" : "");
      foot.appendChild(days);
    }
    if (foot.childNodes.length) node.appendChild(foot);
    if (pending[card.id]) node.classList.add("is-saving");
    return node;
  }

  function cardEl(card) {
    cards[card.id] = card;
    return fillCard(el("li"), card);
  }

  function findCard(id) { return root.querySelector('.kb-card[data-id="' + id + '"]'); }

  function headerText(col) {
    var info = col.info;
    col.count.textContent = info.count;
    col.count.setAttribute("aria-label", plural(info.count, entity === "deal" ? "deal" : "lead"));
    col.sum.textContent = money(info.value) + (entity === "deal" ? " · weighted " + money(info.weighted_value) : "");
    col.el.classList.toggle("is-over-limit", !!info.over_wip_limit);
    col.wip.hidden = !info.over_wip_limit;
    if (info.over_wip_limit) col.wip.textContent = "Over the limit of " + info.wip_limit;
    syncColumn(col);
  }

  function syncColumn(col) {
    var shown = col.list.querySelectorAll(".kb-card").length;
    col.empty.hidden = shown > 0 || col.list.querySelector(".kb-placeholder") !== null;
    col.more.hidden = !col.cursor;
    if (col.cursor) col.more.textContent = "Load more (" + Math.max(0, col.info.count - shown) + " more)";
  }

  function drawColumn(info) {
    var section = el("section", "kb-col");
    section.style.setProperty("--stage", info.colour);
    section.dataset.column = info.id;
    var headId = "kb-col-" + info.id;
    section.setAttribute("aria-labelledby", headId);
    var head = el("header", "kb-col-head");
    var h2 = el("h2", null);
    h2.id = headId;
    h2.appendChild(el("span", "kb-dot"));
    h2.appendChild(el("span", "kb-col-name", info.name));
    var count = el("span", "kb-count");
    h2.appendChild(count);
    head.appendChild(h2);
    var sum = el("p", "kb-sum");
    head.appendChild(sum);
    var wip = el("p", "kb-wip");
    wip.hidden = true;
    head.appendChild(wip);
    section.appendChild(head);
    var list = el("ul", "kb-list");
    list.dataset.column = info.id;
    list.setAttribute("aria-labelledby", headId);
    info.cards.forEach(function (card) { list.appendChild(cardEl(card)); });
    section.appendChild(list);
    var empty = el("p", "kb-empty", info.accepts_drops === false ? "Converted leads appear here" : "No " + (entity === "deal" ? "deals" : "leads") + " here");
    section.appendChild(empty);
    var more = el("button", "kb-more button small", "Load more");
    more.type = "button";
    section.appendChild(more);
    var col = { info: info, el: section, list: list, more: more, empty: empty, count: count, sum: sum, wip: wip, cursor: info.next_cursor, loading: false };
    more.addEventListener("click", function () { loadMore(col); });
    columns[info.id] = col;
    headerText(col);
    return section;
  }

  // Load more as a column's list is scrolled near its end (each list scrolls on its own;
  // the "Load more" button under it does the same for a list that does not scroll yet).
  function watchScroll(col) {
    col.list.addEventListener("scroll", function () {
      if (col.list.scrollTop + col.list.clientHeight >= col.list.scrollHeight - 120) loadMore(col);
    }, { passive: true });
  }

  function drawBoard(data) {
    board = data;
    root.textContent = "";
    columns = {};
    order = [];
    cards = {};
    data.columns.forEach(function (info) {
      order.push(info.id);
      root.appendChild(drawColumn(info));
    });
    order.forEach(function (id) { watchScroll(columns[id]); });
  }

  function loadMore(col) {
    if (!col.cursor || col.loading) return;
    col.loading = true;
    col.more.textContent = "Loading…";
    api("GET", columnUrl(col) + query({ cursor: col.cursor, limit: pageSize })).then(function (result) {
      col.loading = false;
      if (!result.ok) { showMessage("Could not load more cards: " + errorText(result) + ".", "error"); syncColumn(col); return; }
      result.data.cards.forEach(function (card) { if (!findCard(card.id)) col.list.appendChild(cardEl(card)); });
      col.cursor = result.data.next_cursor;
      syncColumn(col);
    });
  }

  var totalsTimer = null;
  function refreshTotals() {
    clearTimeout(totalsTimer);
    totalsTimer = setTimeout(function () {
      api("GET", boardUrl() + query({ limit: 0 })).then(function (result) {
        if (!result.ok) return;
        result.data.columns.forEach(function (info) {
          var col = columns[info.id];
          if (!col) return;
          ["count", "value", "weighted_value", "over_wip_limit", "wip_limit"].forEach(function (k) { col.info[k] = info[k]; });
          headerText(col);
        });
      });
    }, 120);
  }

  // ------------------------------------------------------------------ moving

  function placeOf(node) {
    var prev = node.previousElementSibling, next = node.nextElementSibling;
    while (prev && !prev.classList.contains("kb-card")) prev = prev.previousElementSibling;
    while (next && !next.classList.contains("kb-card")) next = next.nextElementSibling;
    return { column: node.parentNode.dataset.column, afterId: prev ? +prev.dataset.id : null, beforeId: next ? +next.dataset.id : null };
  }

  function putAt(node, place) {
    var col = columns[place.column];
    if (!col) return;
    var after = place.afterId != null && findCard(place.afterId);
    var before = place.beforeId != null && findCard(place.beforeId);
    if (after && after.parentNode === col.list) col.list.insertBefore(node, after.nextSibling);
    else if (before && before.parentNode === col.list) col.list.insertBefore(node, before);
    else col.list.insertBefore(node, place.afterId == null ? col.list.firstChild : null);
  }

  function samePlace(a, b) { return a.column === b.column && a.afterId === b.afterId && a.beforeId === b.beforeId; }

  function askLostReason(card) {
    return new Promise(function (resolve) {
      if (!lostDialog || typeof lostDialog.showModal !== "function") {
        var text = window.prompt("Why was " + card.title + " lost?");
        resolve(text && text.trim() ? text.trim() : null);
        return;
      }
      var form = lostDialog.querySelector("[data-kb-lost-form]");
      var area = lostDialog.querySelector("textarea");
      var error = lostDialog.querySelector("[data-kb-lost-error]");
      lostDialog.querySelector("[data-kb-lost-text]").textContent = card.title;
      area.value = "";
      error.hidden = true;
      var done = false;
      function finish(value) {
        if (done) return;
        done = true;
        form.removeEventListener("submit", onSubmit);
        cancel.removeEventListener("click", onCancel);
        lostDialog.removeEventListener("cancel", onCancel);
        if (lostDialog.open) lostDialog.close();
        resolve(value);
      }
      function onSubmit(event) {
        event.preventDefault();
        if (!area.value.trim()) { error.hidden = false; area.focus(); return; }
        finish(area.value.trim());
      }
      function onCancel(event) { if (event) event.preventDefault(); finish(null); }
      var cancel = lostDialog.querySelector("[data-kb-lost-cancel]");
      form.addEventListener("submit", onSubmit);
      cancel.addEventListener("click", onCancel);
      lostDialog.addEventListener("cancel", onCancel);
      lostDialog.showModal();
      area.focus();
    });
  }

  /* The card's element is already where the user put it; save that, or put it back. */
  function commitMove(node, origin, options) {
    options = options || {};
    var id = +node.dataset.id;
    var card = cards[id];
    var place = placeOf(node);
    if (samePlace(place, origin)) return Promise.resolve(false);
    var target = columns[place.column];
    var moving = place.column !== origin.column;
    var reasonStep = Promise.resolve(options.lostReason || null);
    if (entity === "deal" && target.info.is_lost && moving && !options.lostReason) reasonStep = askLostReason(card);
    return reasonStep.then(function (reason) {
      if (entity === "deal" && target.info.is_lost && moving && !reason) {
        putAt(node, origin);
        syncAll();
        showMessage(card.title + " stayed in " + columns[origin.column].info.name + ": a lost deal needs a reason.", "info");
        node.focus();
        return false;
      }
      var body;
      if (entity === "deal") {
        body = { stage_id: target.info.stage_id, version: card.version };
        if (place.afterId != null) body.after_id = place.afterId;
        else if (place.beforeId != null) body.before_id = place.beforeId;
        if (reason) body.lost_reason = reason;
      } else {
        if (!moving) { putAt(node, origin); syncAll(); return false; }  // leads keep their order: newest first
        body = { status: target.info.id, version: card.version };
      }
      pending[id] = true;
      node.classList.add("is-saving");
      syncAll();
      var before = card;
      return api("PUT", cardUrl(id), body).then(function (result) {
        delete pending[id];
        node.classList.remove("is-saving");
        if (result.ok) {
          fillCard(node, cardsSet(result.data));
          var where = target.info.name;
          if (!options.undo) {
            lastMove = { id: id, origin: origin, lostReason: before.lost_reason };
            showMessage("Moved " + before.title + (moving ? " to " + where : " within " + where) + ".", "ok", true);
          } else {
            lastMove = null;
            showMessage("Undone: " + before.title + " is back in " + where + ".", "ok", false);
          }
          announce(before.title + " moved to " + where + ".");
          refreshTotals();
          return true;
        }
        putAt(node, origin);
        syncAll();
        showMessage("Could not move " + before.title + ": " + errorText(result) + ".", "error");
        announce("Move refused: " + errorText(result));
        if (result.status === 412 || result.status === 404) refreshCard(id);
        return false;
      });
    });
  }

  function cardsSet(card) { cards[card.id] = card; return card; }

  function syncAll() { order.forEach(function (id) { syncColumn(columns[id]); }); }

  function undoLast() {
    var move = lastMove;
    if (!move) return;
    var node = findCard(move.id);
    if (!node || pending[move.id]) return;
    var origin = placeOf(node);
    putAt(node, move.origin);
    commitMove(node, origin, { undo: true, lostReason: move.lostReason }).then(function (ok) { if (ok) node.focus(); });
  }

  function accepts(col) { return col && col.info.accepts_drops !== false; }

  // ------------------------------------------------------------------ pointer drag and drop

  var drag = null;      // {node, origin, ghost, placeholder, dx, dy, started, pointerId, timer}
  var suppressClick = false;

  root.addEventListener("pointerdown", function (event) {
    var node = event.target.closest(".kb-card");
    if (!node || !canWrite || event.button !== 0 || event.target.closest("a, button, input") || pending[node.dataset.id]) return;
    var rect = node.getBoundingClientRect();
    drag = { node: node, x: event.clientX, y: event.clientY, dx: event.clientX - rect.left, dy: event.clientY - rect.top, started: false, pointerId: event.pointerId, touch: event.pointerType !== "mouse" };
    if (drag.touch) {
      // Touch: a press of 250 ms picks the card up; moving sooner is a scroll.
      drag.timer = setTimeout(function () { if (drag && !drag.started) startDrag(drag.x, drag.y); }, 250);
    }
  });

  function startDrag(x, y) {
    var node = drag.node;
    var rect = node.getBoundingClientRect();
    drag.started = true;
    drag.origin = placeOf(node);
    var ghost = node.cloneNode(true);
    ghost.className += " kb-ghost";
    ghost.removeAttribute("tabindex");
    ghost.setAttribute("aria-hidden", "true");
    ghost.style.width = rect.width + "px";
    document.body.appendChild(ghost);
    drag.ghost = ghost;
    var placeholder = el("li", "kb-placeholder");
    placeholder.style.height = rect.height + "px";
    node.parentNode.insertBefore(placeholder, node);
    drag.placeholder = placeholder;
    node.classList.add("is-dragging");
    document.body.classList.add("kb-dragging-on");
    moveGhost(x, y);
  }

  function moveGhost(x, y) {
    drag.ghost.style.transform = "translate(" + (x - drag.dx) + "px," + (y - drag.dy) + "px) rotate(2deg)";
    var under = document.elementFromPoint(x, y);
    var section = under && under.closest ? under.closest(".kb-col") : null;
    var col = section && columns[section.dataset.column];
    if (col && accepts(col)) {
      var list = col.list;
      var next = null;
      var items = list.querySelectorAll(".kb-card:not(.is-dragging)");
      for (var i = 0; i < items.length; i++) {
        var r = items[i].getBoundingClientRect();
        if (y < r.top + r.height / 2) { next = items[i]; break; }
      }
      if (drag.placeholder.parentNode !== list || drag.placeholder.nextElementSibling !== next) list.insertBefore(drag.placeholder, next);
      syncAll();
    }
    // Scroll the board (and the column) when the pointer nears an edge.
    var box = root.getBoundingClientRect();
    if (x > box.right - 40) root.scrollLeft += 14;
    else if (x < box.left + 40) root.scrollLeft -= 14;
    if (col) {
      var lr = col.list.getBoundingClientRect();
      if (y > lr.bottom - 30) col.list.scrollTop += 12;
      else if (y < lr.top + 30) col.list.scrollTop -= 12;
    }
  }

  function endDrag(drop) {
    var d = drag;
    drag = null;
    if (!d) return;
    clearTimeout(d.timer);
    if (!d.started) return;
    suppressClick = true;
    setTimeout(function () { suppressClick = false; }, 0);
    d.ghost.remove();
    document.body.classList.remove("kb-dragging-on");
    d.node.classList.remove("is-dragging");
    if (drop && d.placeholder.parentNode) d.placeholder.parentNode.insertBefore(d.node, d.placeholder);
    d.placeholder.remove();
    if (!drop) { putAt(d.node, d.origin); syncAll(); return; }
    syncAll();
    commitMove(d.node, d.origin);
  }

  document.addEventListener("pointermove", function (event) {
    if (!drag || event.pointerId !== drag.pointerId) return;
    if (!drag.started) {
      var far = Math.abs(event.clientX - drag.x) + Math.abs(event.clientY - drag.y);
      if (drag.touch) { if (far > 8) { clearTimeout(drag.timer); drag = null; } return; }
      if (far < 5) return;
      startDrag(event.clientX, event.clientY);
    }
    event.preventDefault();
    moveGhost(event.clientX, event.clientY);
  });
  document.addEventListener("pointerup", function (event) { if (drag && event.pointerId === drag.pointerId) endDrag(true); });
  document.addEventListener("pointercancel", function () { if (drag) endDrag(false); });
  // While a card is held on a touch screen the page must not scroll under the finger.
  document.addEventListener("touchmove", function (event) { if (drag && drag.started) event.preventDefault(); }, { passive: false });
  document.addEventListener("keydown", function (event) { if (drag && drag.started && event.key === "Escape") endDrag(false); });

  root.addEventListener("click", function (event) {
    if (suppressClick) return;
    var node = event.target.closest(".kb-card");
    if (node) openPanel(+node.dataset.id, node);
  });

  // ------------------------------------------------------------------ keyboard

  var picked = null;  // {node, origin}

  function cardsOf(col) { return Array.prototype.slice.call(col.list.querySelectorAll(".kb-card")); }

  function describe(node) {
    var col = columns[node.parentNode.dataset.column];
    var list = cardsOf(col);
    return col.info.name + ", position " + (list.indexOf(node) + 1) + " of " + list.length;
  }

  function neighbourColumn(node, step) {
    var index = order.indexOf(node.parentNode.dataset.column);
    for (var i = index + step; i >= 0 && i < order.length; i += step) {
      if (accepts(columns[order[i]])) return columns[order[i]];
    }
    return null;
  }

  root.addEventListener("keydown", function (event) {
    var node = event.target.closest && event.target.closest(".kb-card");
    if (!node || event.altKey || event.ctrlKey || event.metaKey) return;
    var key = event.key;
    if (picked && picked.node === node) {
      if ((key === "ArrowUp" || key === "ArrowDown") && entity === "lead") {
        event.preventDefault();  // leads keep their order in a column: newest first
        return;
      } else if (key === "ArrowUp" || key === "ArrowDown") {
        var sibling = key === "ArrowUp" ? node.previousElementSibling : node.nextElementSibling;
        while (sibling && !sibling.classList.contains("kb-card")) sibling = key === "ArrowUp" ? sibling.previousElementSibling : sibling.nextElementSibling;
        if (sibling) node.parentNode.insertBefore(node, key === "ArrowUp" ? sibling : sibling.nextSibling);
      } else if (key === "ArrowLeft" || key === "ArrowRight") {
        var target = neighbourColumn(node, key === "ArrowLeft" ? -1 : 1);
        if (target) {
          var index = cardsOf(columns[node.parentNode.dataset.column]).indexOf(node);
          var there = cardsOf(target);
          target.list.insertBefore(node, there[Math.min(index, there.length)] || null);
          target.el.scrollIntoView({ block: "nearest", inline: "nearest" });
        }
      } else if (key === " " || key === "Enter") {
        var p = picked;
        picked = null;
        node.classList.remove("is-picked");
        event.preventDefault();
        commitMove(node, p.origin).then(function () { node.focus(); });
        return;
      } else if (key === "Escape") {
        putAt(node, picked.origin);
        picked = null;
        node.classList.remove("is-picked");
        syncAll();
        node.focus();
        announce("Move cancelled.");
        event.preventDefault();
        return;
      } else {
        return;
      }
      event.preventDefault();
      syncAll();
      node.focus();
      announce(describe(node));
      return;
    }
    if (key === "Enter") {
      event.preventDefault();
      openPanel(+node.dataset.id, node);
    } else if (key === " ") {
      event.preventDefault();
      if (!canWrite) { showMessage("Your role may not move cards.", "error"); return; }
      if (pending[node.dataset.id]) return;
      if (picked) { putAt(picked.node, picked.origin); picked.node.classList.remove("is-picked"); }
      picked = { node: node, origin: placeOf(node) };
      node.classList.add("is-picked");
      announce("Picked up " + cards[node.dataset.id].title + ". " + describe(node) + ". Arrow keys move it, Space drops it, Escape cancels.");
    } else if (key.indexOf("Arrow") === 0) {
      // Without a card picked up, the arrows move the focus.
      var list = cardsOf(columns[node.parentNode.dataset.column]);
      var i = list.indexOf(node);
      var next = null;
      if (key === "ArrowUp") next = list[i - 1];
      else if (key === "ArrowDown") next = list[i + 1];
      else {
        var step = key === "ArrowLeft" ? -1 : 1;
        for (var c = order.indexOf(node.parentNode.dataset.column) + step; c >= 0 && c < order.length && !next; c += step) {
          var other = cardsOf(columns[order[c]]);
          next = other[Math.min(i, other.length - 1)];
        }
      }
      if (next) { event.preventDefault(); next.focus(); }
    }
  });

  // ------------------------------------------------------------------ side panel

  function openPanel(id, node) {
    var card = cards[id];
    if (!card || !panel) return;
    panelFor = node;
    panel.hidden = false;
    document.body.classList.add("kb-panel-open");
    panel.querySelector("[data-kb-panel-title]").textContent = card.title;
    var body = panel.querySelector("[data-kb-panel-body]");
    body.textContent = "";
    body.appendChild(el("p", "muted", "Loading…"));
    panel.focus();
    var base = entity === "deal" ? "/api/v1/deals/" : "/api/v1/leads/";
    Promise.all([api("GET", base + id), api("GET", base + id + "/timeline?limit=8")]).then(function (results) {
      if (panelFor !== node) return;
      body.textContent = "";
      var record = results[0], timeline = results[1];
      if (!record.ok) { body.appendChild(el("p", "error", "Could not load the details: " + errorText(record) + ".")); return; }
      var r = record.data;
      var rows = [];
      var col = columns[card.column];
      if (entity === "deal") {
        rows.push(["Value", money(r.value, r.currency)], ["Stage", col ? col.info.name : ""], ["Probability", r.probability + " %"]);
        if (r.expected_close_date) rows.push(["Expected close", r.expected_close_date]);
        if (r.lost_reason) rows.push(["Lost reason", r.lost_reason]);
        rows.push(["Priority", r.priority]);
      } else {
        rows.push(["Status", r.status], ["Email", r.email || ""], ["Phone", r.phone || ""], ["Source", r.source]);
        if (r.estimated_value) rows.push(["Estimated value", money(r.estimated_value)]);
      }
      rows.push(["Company", card.company ? card.company.name : ""], ["Contact", entity === "deal" && card.contact ? card.contact.name : ""]);
      rows.push(["Owner", card.owner ? card.owner.name : "Nobody"], ["In this " + (entity === "deal" ? "stage" : "status"), plural(card.days_in_stage, "day")]);
      if ((r.tags || []).length) rows.push(["Tags", r.tags.join(", ")]);
      var dl = el("dl", "facts");
      rows.forEach(function (row) {
        if (!row[1]) return;
        dl.appendChild(el("dt", null, row[0]));
        dl.appendChild(el("dd", null, String(row[1])));
      });
      body.appendChild(dl);
      var link = el("a", "button primary kb-open", "Open the full record");
      link.href = card.url;
      body.appendChild(link);
      body.appendChild(el("h3", null, "Timeline"));
      var items = timeline.ok ? timeline.data.items : [];
      if (!items.length) body.appendChild(el("p", "muted", "Nothing yet."));
      var ul = el("ul", "timeline");
      items.forEach(function (item) {
        var li = el("li", "tl-" + item.type);
        li.appendChild(el("div", null, item.summary));
        var when = el("div", "when");
        var time = el("time", null, new Date(item.at.replace(/Z?$/, "Z")).toLocaleString([], { dateStyle: "medium", timeStyle: "short" }));
        time.dateTime = item.at;
        when.appendChild(time);
        li.appendChild(when);
        ul.appendChild(li);
      });
      body.appendChild(ul);
    });
  }

  function closePanel() {
    if (!panel || panel.hidden) return;
    panel.hidden = true;
    document.body.classList.remove("kb-panel-open");
    var back = panelFor && panelFor.isConnected ? panelFor : null;
    panelFor = null;
    if (back) back.focus();
  }

  if (panel) {
    panel.querySelector("[data-kb-panel-close]").addEventListener("click", closePanel);
    panel.addEventListener("keydown", function (event) { if (event.key === "Escape") closePanel(); });
  }

  // ------------------------------------------------------------------ live

  function insertByOrder(col, node, card) {
    var items = cardsOf(col).filter(function (n) { return n !== node; });
    var next = null;
    for (var i = 0; i < items.length; i++) {
      var other = cards[items[i].dataset.id];
      var later = entity === "deal"
        ? (other.position > card.position || (other.position === card.position && other.id > card.id))
        : other.id < card.id;
      if (later) { next = items[i]; break; }
    }
    if (!next && col.cursor) return false;  // belongs further down, in cards not loaded yet
    col.list.insertBefore(node, next);
    return true;
  }

  function applyRemote(card, deleted) {
    var node = findCard(card.id);
    if (pending[card.id] || (picked && node === picked.node) || (drag && drag.node === node)) return;
    var col = !deleted && columns[card.column];
    var belongs = col && card.matches !== false && (entity !== "deal" || String(card.pipeline_id) === String(pipelineId));
    if (!belongs) {
      if (node) node.remove();
      delete cards[card.id];
      syncAll();
      return;
    }
    var known = cards[card.id];
    if (node && known && known.version === card.version && known.column === card.column) return;  // our own move, already shown
    if (!node) node = el("li");
    var hadFocus = document.activeElement === node;
    fillCard(node, cardsSet(card));
    if (!insertByOrder(col, node, card)) { node.remove(); delete cards[card.id]; }
    node.classList.add("kb-flash");
    setTimeout(function () { node.classList.remove("kb-flash"); }, 2500);
    if (hadFocus && node.isConnected) node.focus();
    syncAll();
  }

  function refreshCard(id) {
    api("GET", cardUrl(id) + query()).then(function (result) {
      if (result.ok) applyRemote(result.data, false);
      else if (result.status === 404) applyRemote({ id: id }, true);
    });
  }

  var fetchTimers = {};
  function onEvent(data) {
    if (data && data.kind === "resync") { catchUp(); return; }  // events were lost in an outage: redraw
    if (!data || !data.id) return;
    if (data.kind === "deleted") {
      applyRemote({ id: data.id }, true);
      refreshTotals();
      return;
    }
    clearTimeout(fetchTimers[data.id]);
    fetchTimers[data.id] = setTimeout(function () { delete fetchTimers[data.id]; refreshCard(data.id); }, 60);
    refreshTotals();
  }

  function catchUp() {
    api("GET", boardUrl() + query({ limit: pageSize })).then(function (result) {
      if (!result.ok) return;
      var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".kb-card");
      var focusId = focused ? focused.dataset.id : null;
      drawBoard(result.data);
      if (focusId && findCard(focusId)) findCard(focusId).focus();
      showMessage("Back online: the board is up to date.", "ok");
    });
  }

  function setLive(state, text) {
    liveEl.className = "kb-live is-" + state;
    liveEl.textContent = text;
    root.classList.toggle("is-offline", state === "offline");
  }

  var lastId = root.dataset.since || "";
  var socket = null, attempts = 0, wasOffline = false, stopped = false, retry = null;
  function connect() {
    if (!("WebSocket" in window)) { setLive("off", "Live updates unavailable"); return; }
    clearTimeout(retry);
    var topic = entity === "deal" ? "list:deal" : "list:lead";
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + root.dataset.wsUrl +
      "?topics=" + encodeURIComponent(topic) + (lastId ? "&last_id=" + encodeURIComponent(lastId) : "");
    var ws = socket = new WebSocket(url);
    ws.onmessage = function (message) {
      var msg;
      try { msg = JSON.parse(message.data); } catch (e) { return; }
      if (msg.type === "hello") {
        attempts = 0;
        setLive("live", "Live");
        if (wasOffline) { wasOffline = false; catchUp(); }
        return;
      }
      if (msg.type || !msg.id) return;  // keep-alive
      lastId = msg.id;
      onEvent(msg.data);
    };
    ws.onclose = function (event) {
      if (socket !== ws) return;
      socket = null;
      if (stopped) return;
      if (event.code === 1008) { setLive("off", "Live updates off: reload the page"); return; }
      wasOffline = true;
      setLive("offline", "Offline: changes by others will show when the connection is back");
      var delay = Math.min(10000, 500 * Math.pow(2, attempts++)) * (0.8 + Math.random() * 0.2);
      retry = setTimeout(connect, delay);
    };
  }
  window.addEventListener("online", function () { if (!socket && !stopped) connect(); });
  window.addEventListener("pagehide", function () { stopped = true; clearTimeout(retry); if (socket) socket.close(); });
  window.addEventListener("pageshow", function (event) { if (event.persisted) { stopped = false; wasOffline = true; connect(); } });

  // ------------------------------------------------------------------ the rest of the page

  var switcher = document.querySelector("[data-kb-switch]");
  if (switcher) switcher.addEventListener("change", function () {
    location.href = location.pathname + (switcher.value === "leads" ? "?board=leads" : "?pipeline=" + encodeURIComponent(switcher.value));
  });
  var filterForm = document.querySelector("[data-kb-filters]");
  if (filterForm) filterForm.addEventListener("submit", function () {
    // Keep the URL short: leave out the filters that are not set.
    Array.prototype.forEach.call(filterForm.elements, function (input) { if (input.name && input.value === "") input.disabled = true; });
  });
  if (filterForm) Array.prototype.forEach.call(filterForm.querySelectorAll("select, input[type=checkbox]"), function (input) {
    input.addEventListener("change", function () { filterForm.requestSubmit ? filterForm.requestSubmit() : filterForm.submit(); });
  });

  // On a phone the filters fold away (unless some are on) so the board is in view.
  var filterBox = document.querySelector("[data-kb-filter-box]");
  if (filterBox && window.matchMedia("(max-width: 640px)").matches && !filterParams.toString()) filterBox.open = false;

  drawBoard(board);
  connect();
  window.crmKanban = { columns: function () { return columns; }, undo: undoLast, userId: me };
})();
