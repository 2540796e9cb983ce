/* Admin pages: the "Copy" button beside a secret shown once (the API token page).
   Without script the button stays hidden and the secret is plain selectable text. */
(function () {
  "use strict";
  function say(button, text) {
    var status = button.closest("section, form, body").querySelector(".copy-status");
    if (status) { status.textContent = text; }
  }
  function select(field) {
    if (field.select) { field.focus(); field.select(); return; }
    var range = document.createRange();
    range.selectNodeContents(field);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  function copy(button) {
    var field = document.getElementById(button.getAttribute("data-copy-target"));
    if (!field) { return; }
    var text = field.value !== undefined ? field.value : field.textContent.trim();
    select(field);
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { say(button, "Copied to the clipboard."); },
        function () { say(button, "Could not copy: the token is selected, press Ctrl+C (⌘C)."); }
      );
      return;
    }
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    say(button, ok ? "Copied to the clipboard." : "The token is selected: press Ctrl+C (⌘C) to copy it.");
  }
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { copy(button); });
  });
})();
