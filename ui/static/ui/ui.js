// Small enhancements of the registry's pages; every page works without them.
(function () {
  "use strict";

  // Scripted pages hide what only a page without script needs (such as a "Show" button).
  document.documentElement.classList.add("js");

  // Copy buttons: <button data-copy-target="id"> copies the value or text of #id;
  // <button data-copy-text="..."> copies that text.
  function copyBySelecting(source, text) {
    // Without the Clipboard API (a page not served over https): select the text and copy it.
    var temporary = null;
    if (!source || !source.select) {
      temporary = document.createElement("textarea");
      temporary.value = text;
      temporary.setAttribute("readonly", "");
      temporary.className = "visually-hidden";
      document.body.appendChild(temporary);
      source = temporary;
    }
    source.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    if (temporary) temporary.remove();
    return copied;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target], [data-copy-text]");
    if (!button) return;
    var source = null;
    var text = button.getAttribute("data-copy-text");
    if (text === null) {
      source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source) return;
      text = "value" in source ? source.value : source.textContent;
    }
    var label = button.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        if (copyBySelecting(source, text)) done();
      });
    } else if (copyBySelecting(source, text)) {
      done();
    }
  });

  // <select data-command-for="id">: the chosen option's data-command goes into #id (Fetch Tag).
  document.addEventListener("change", function (event) {
    var select = event.target.closest("select[data-command-for]");
    if (!select) return;
    var target = document.getElementById(select.getAttribute("data-command-for"));
    var option = select.options[select.selectedIndex];
    if (target && option && option.hasAttribute("data-command")) {
      target.value = option.getAttribute("data-command");
    }
  });

  // <input type="checkbox" data-select-all="form-id">: ticks every checkbox of that form.
  document.addEventListener("change", function (event) {
    var all = event.target.closest("input[data-select-all]");
    if (!all) return;
    var formId = all.getAttribute("data-select-all");
    document.querySelectorAll('input[type="checkbox"][form="' + formId + '"]').forEach(function (box) {
      box.checked = all.checked;
    });
  });

  // Forms with data-confirm ask before submitting (deletes, token regeneration).
  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  }, true);

  // Parts of a form that apply to some choices of a <select> only (the Create Notification
  // form's event filters and method fields): <div data-show-when="select-id"
  // data-show-values="a b"> is hidden unless the select's value is one of the values. Without
  // script every part shows, and the server reads only those of the chosen values.
  function showChosenParts(select) {
    document.querySelectorAll('[data-show-when="' + select.id + '"]').forEach(function (part) {
      var values = part.getAttribute("data-show-values").split(/\s+/);
      part.hidden = values.indexOf(select.value) === -1;
    });
  }
  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("select[id]")) showChosenParts(event.target);
  });
  function showAllChosenParts() {
    var ids = {};
    document.querySelectorAll("[data-show-when]").forEach(function (part) {
      ids[part.getAttribute("data-show-when")] = true;
    });
    Object.keys(ids).forEach(function (id) {
      var select = document.getElementById(id);
      if (select) showChosenParts(select);
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", showAllChosenParts);
  } else {
    showAllChosenParts();
  }

  // Header menus (<details>): Escape or a click elsewhere closes them.
  function closeMenus(except) {
    document.querySelectorAll("details.menu[open]").forEach(function (menu) {
      if (menu !== except) menu.removeAttribute("open");
    });
  }
  document.addEventListener("click", function (event) {
    closeMenus(event.target.closest("details.menu"));
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      var open = document.querySelector("details.menu[open]");
      if (open) {
        open.removeAttribute("open");
        open.querySelector("summary").focus();
      }
    }
  });
})();
