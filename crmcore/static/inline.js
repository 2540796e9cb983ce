/* Inline editing of a record's common fields on its page; plain JS, no dependencies.
 *
 * The page embeds #inline-edit-config (crmcore/web/inline_edit.py: inline_config): the
 * URL to post to, the record's version and, per field, its label, kind, options and
 * value. Each <dd data-inline="<field>"> gets a ✎ button; it turns the value into an
 * input (focused) with Save and Cancel; Enter saves, Escape cancels. The answer:
 * 200 shows the new value; 422 shows the message under the input; 409 says which record
 * has the value; 412 (someone changed the record meanwhile) shows their value and offers
 * "Keep theirs" or "Save mine anyway". Server text is only ever set with textContent.
 */
(function () {
  "use strict";
  var source = document.getElementById("inline-edit-config");
  if (!source || !window.fetch) return;
  var config = JSON.parse(source.textContent);
  var csrfInput = document.querySelector("input[name=csrf_token]");
  var csrf = csrfInput ? csrfInput.value : "";
  var version = config.version;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text != null) node.textContent = text;
    return node;
  }

  function inputFor(name, field, value) {
    var id = "inline-" + name;
    var input;
    if (field.kind === "select") {
      input = el("select", {id: id, name: name});
      field.options.forEach(function (pair) {
        var option = el("option", {value: pair[0]}, pair[1]);
        if (String(pair[0]) === String(value)) option.selected = true;
        input.appendChild(option);
      });
    } else {
      var type = {email: "email", tel: "tel", url: "url", number: "number", date: "date"}[field.kind] || "text";
      input = el("input", {id: id, name: name, type: type});
      if (field.kind === "money") { input.setAttribute("inputmode", "decimal"); }
      input.value = value == null ? "" : value;
    }
    return input;
  }

  function attach(dd) {
    var name = dd.dataset.inline;
    var field = config.fields[name];
    if (!field) return;
    var view = el("span", {"class": "inline-value"});
    while (dd.firstChild) view.appendChild(dd.firstChild);
    var edit = el("button", {type: "button", "class": "inline-edit-button", "aria-label": "Edit " + field.label.toLowerCase(), title: "Edit " + field.label.toLowerCase()}, "✎");
    dd.appendChild(view);
    dd.appendChild(edit);

    function showText(text) {
      view.textContent = text;
    }

    function open() {
      var form = el("form", {"class": "inline-form-edit", novalidate: ""});
      var label = el("label", {"for": "inline-" + name, "class": "sr-only"}, field.label);
      var input = inputFor(name, field, field.value);
      var save = el("button", {type: "submit", "class": "button small"}, "Save");
      var cancel = el("button", {type: "button", "class": "button small"}, "Cancel");
      var message = el("div", {id: "inline-" + name + "-message", "class": "inline-message", role: "alert"});
      form.appendChild(label);
      form.appendChild(input);
      form.appendChild(save);
      form.appendChild(cancel);
      form.appendChild(message);
      view.hidden = true;
      edit.hidden = true;
      dd.appendChild(form);
      input.focus();

      function close() {
        form.remove();
        view.hidden = false;
        edit.hidden = false;
        edit.focus();
      }

      function problem(text, choices) {
        message.textContent = text;
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", message.id);
        (choices || []).forEach(function (choice) {
          var button = el("button", {type: "button", "class": "button small"}, choice[0]);
          button.addEventListener("click", choice[1]);
          message.appendChild(document.createTextNode(" "));
          message.appendChild(button);
        });
      }

      function send() {
        var body = new FormData();
        body.append("csrf_token", csrf);
        body.append("field", name);
        body.append("value", input.value);
        body.append("version", String(version));
        save.disabled = true;
        fetch(config.url, {method: "POST", body: body, credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (response) {
            return response.json().catch(function () { return {}; }).then(function (data) { return [response.status, data]; });
          })
          .then(function (result) {
            var status = result[0], data = result[1];
            save.disabled = false;
            if (status === 200) {
              version = data.version;
              field.value = data.value;
              showText(data.text);
              close();
              dd.classList.add("inline-saved");
              return;
            }
            if (status === 412) {
              var theirs = data;
              problem(data.message || "Someone else changed this record meanwhile.", [
                ["Keep theirs", function () { version = theirs.version; field.value = theirs.value; showText(theirs.text); close(); }],
                ["Save mine anyway", function () { version = theirs.version; message.textContent = ""; send(); }]
              ]);
              return;
            }
            if (status === 422 && data.errors) {
              var texts = [];
              Object.keys(data.errors).forEach(function (k) { texts = texts.concat(data.errors[k]); });
              problem(texts.join(" "));
              return;
            }
            problem(data.message || ("Not saved (" + status + "). Reload the page and try again."));
            if (status === 409 && data.existing_url) {
              var link = el("a", {href: data.existing_url}, "Open it");
              message.appendChild(document.createTextNode(" "));
              message.appendChild(link);
            }
          })
          .catch(function () {
            save.disabled = false;
            problem("Not saved: the server could not be reached. Try again.");
          });
      }

      form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
      cancel.addEventListener("click", close);
      form.addEventListener("keydown", function (event) {
        if (event.key === "Escape") { event.preventDefault(); close(); }
      });
    }

    edit.addEventListener("click", open);
  }

  document.querySelectorAll("[data-inline]").forEach(attach);
})();
