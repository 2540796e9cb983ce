// The SMS panel's live segment counter: the same rules as crm_plugins.sms.text.segments
// (GSM-7: 160, or 153 per part, extension characters count twice; otherwise UCS-2: 70,
// or 67 per part, characters beyond the BMP count twice).
(function () {
  "use strict";
  var BASIC = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
  var EXTENDED = "^{}\\[~]|€\f";

  function segments(text) {
    var gsm = true, septets = 0, units = 0;
    for (var ch of text) {
      if (BASIC.indexOf(ch) >= 0) { septets += 1; }
      else if (EXTENDED.indexOf(ch) >= 0) { septets += 2; }
      else { gsm = false; }
      units += ch.length;  // UTF-16 code units
    }
    var single = gsm ? 160 : 70, multi = gsm ? 153 : 67, count = gsm ? septets : units;
    var parts = count === 0 ? 0 : (count <= single ? 1 : Math.ceil(count / multi));
    var per = count <= single ? single : multi;
    return {encoding: gsm ? "GSM-7" : "UCS-2", units: count, segments: parts, per_segment: per,
            remaining: count <= single ? single - count : parts * multi - count};
  }

  function wire(form) {
    var body = form.querySelector("[data-sms-body]"), counter = form.querySelector("[data-sms-counter]");
    if (!body || !counter || body.dataset.smsWired) { return; }
    body.dataset.smsWired = "1";
    function update() {
      var s = segments(body.value);
      counter.textContent = s.units + " characters, " + s.segments + (s.segments === 1 ? " segment" : " segments") +
        " (" + s.encoding + ", " + s.remaining + " left in this one)";
      counter.dataset.segments = String(s.segments);
      counter.dataset.encoding = s.encoding;
    }
    body.addEventListener("input", update);
    update();
  }

  // WhatsApp: the window with the number (asked again when the number changes) and the
  // approved templates; free text is hidden when a template is chosen or the window is
  // closed (only a template may go then).
  function wireWhatsApp(form) {
    var channel = form.querySelector("[data-sms-channel]"), only = form.querySelector("[data-whatsapp-only]");
    if (!channel || !only) { return; }
    var free = form.querySelector("[data-sms-free-text]"), choice = form.querySelector("[data-wa-template]");
    var windowNote = form.querySelector("[data-wa-window]"), to = form.querySelector("[data-sms-to]");
    function update() {
      var wa = channel.value === "whatsapp", chosen = wa && choice ? choice.value : "";
      var closed = windowNote && windowNote.dataset.open !== "yes";
      only.hidden = !wa;
      form.querySelectorAll("[data-wa-variables]").forEach(function (set) {
        set.hidden = set.dataset.waVariables !== chosen;
        set.querySelectorAll("input").forEach(function (input) { input.required = set.dataset.waVariables === chosen; });
      });
      if (free) { free.hidden = wa && (chosen !== "" || closed); }
      if (choice && choice.options.length) { choice.options[0].disabled = wa && closed; }
      if (wa && closed && choice && choice.value === "" && choice.options.length > 1) { choice.value = choice.options[1].value; update(); }
    }
    function refreshWindow() {
      if (!windowNote || !to.value.trim()) { return; }
      fetch(windowNote.dataset.windowUrl + "?to=" + encodeURIComponent(to.value), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (state) {
          if (!state) { return; }
          windowNote.dataset.open = state.open ? "yes" : "no";
          windowNote.querySelector("[data-wa-window-text]").textContent = state.text;
          update();
        });
    }
    channel.addEventListener("change", update);
    if (choice) { choice.addEventListener("change", update); }
    if (to) { to.addEventListener("change", refreshWindow); }
    update();
  }

  function init() {
    document.querySelectorAll("[data-sms-compose]").forEach(function (form) { wire(form); wireWhatsApp(form); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
  window.crmSmsSegments = segments;
})();
