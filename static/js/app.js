// LoopSync's few page behaviours. They live here, not in onclick/onchange attributes, because the
// Content-Security-Policy forbids inline script. Listeners sit on the document, so content that htmx
// swaps in later works too.
(function () {
  "use strict";

  // <select data-submit-on-change>: the team switcher submits as soon as a team is picked (its
  // <noscript> "Switch" button does the same without JavaScript).
  document.addEventListener("change", function (event) {
    var select = event.target.closest && event.target.closest("select[data-submit-on-change]");
    if (!select || !select.form) return;
    if (select.form.requestSubmit) select.form.requestSubmit();
    else select.form.submit();
  });

  // <button data-copy="field-id">: copies that field's value to the clipboard and says so.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var field = document.getElementById(button.getAttribute("data-copy"));
    if (!field) return;
    field.select();
    var copied = function () { button.textContent = "Copied"; };
    var fallback = function () { document.execCommand("copy"); copied(); };
    if (navigator.clipboard) navigator.clipboard.writeText(field.value).then(copied, fallback);
    else fallback();
  });
})();
