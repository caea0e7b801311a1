// Small behaviours on top of htmx: copy buttons and the live-connection indicator.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var code = button.parentElement.querySelector("code, pre");
    if (!code) return;
    var text = code.textContent;
    var done = function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done);
    } else {
      var range = document.createRange();
      range.selectNodeContents(code);
      var selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
      done();
    }
  });

  // htmx does not swap error responses; a form marked data-swap-errors shows its 400 page (the message) in place.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("[data-swap-errors]");
    if (form && event.detail.xhr.status === 400) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function status(text, live) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.hidden = false;
    el.textContent = text;
    el.classList.toggle("live", live);
    document.body.dataset.live = live ? "connected" : "disconnected";
  }

  // Reconnect within 2-4 s at most (the extension's default grows to 64 s): after a restart of
  // Redis or of the web server, live updates come back within seconds. The jitter spreads the
  // reconnections of many browsers.
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retryCount) {
      var ceiling = Math.min(4000, 250 * Math.pow(2, retryCount));
      return ceiling * (0.5 + Math.random() / 2);
    };
  }

  document.addEventListener("htmx:wsOpen", function () { status("Live", true); });
  document.addEventListener("htmx:wsClose", function () { status("Reconnecting…", false); });
  document.addEventListener("htmx:wsError", function () { status("Live updates unavailable", false); });
})();
