// Small behaviours on top of htmx: live updates that morph instead of replace, errors shown
// where the user acted, confirmations, copy buttons, auto-applied filters and the live indicator.
(function () {
  "use strict";

  // -- Live updates keep what the user is doing ---------------------------------------------
  // Fragments arrive as hx-swap-oob="morph": idiomorph updates the page in place, so focus,
  // scroll position and text selections survive. What the server cannot know stays as the
  // user left it: which <details> are open, and the value of any control the user changed.
  var edited = new WeakSet();

  function userOwned(attr, el) {
    if (attr === "open" && el.localName === "details") return true;
    if (attr === "value" || attr === "checked") return edited.has(el);
    if (attr === "selected") return !!(el.parentElement && edited.has(el.closest("select")));
    return false;
  }

  function configureMorph() {
    if (!window.Idiomorph) return;
    Idiomorph.defaults.ignoreActiveValue = true;
    Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (attr, el) {
      return userOwned(attr, el) ? false : undefined;
    };
  }
  document.addEventListener("DOMContentLoaded", configureMorph);

  function markEdited(event) {
    var el = event.target;
    if (el && /^(input|select|textarea)$/.test(el.localName) && el.type !== "hidden") edited.add(el);
  }
  document.addEventListener("input", markEdited, true);
  document.addEventListener("change", markEdited, true);

  function forget(form) {
    if (!form || !form.elements) return;
    for (var i = 0; i < form.elements.length; i++) edited.delete(form.elements[i]);
  }

  // -- Errors where the user acted ------------------------------------------------------------
  // One mechanism for every htmx form: an error answer (4xx/5xx) or an unreachable server is
  // written into the form's error slot ([data-form-error], created at the end of the form if
  // missing). In htmx 2, htmx:beforeSwap's detail.elt is the target; the form is requestConfig.elt.
  function sourceForm(detail) {
    var elt = (detail.requestConfig && detail.requestConfig.elt) || detail.elt;
    if (!elt || !elt.closest) return null;
    return elt.closest("form") || elt;
  }

  function slotFor(form) {
    var slot = form.querySelector("[data-form-error]");
    if (!slot && form.id) slot = document.querySelector('[data-form-error="' + form.id + '"]');
    if (!slot) {
      slot = document.createElement("p");
      slot.className = "form-error";
      slot.setAttribute("role", "alert");
      slot.setAttribute("data-form-error", "");
      form.appendChild(slot);
    }
    return slot;
  }

  function showError(form, text) {
    var slot = slotFor(form);
    slot.textContent = text;
    slot.hidden = false;
    form.classList.add("has-error");
  }

  function clearError(form) {
    var slot = form.querySelector("[data-form-error]");
    if (slot) { slot.textContent = ""; slot.hidden = true; }
    form.classList.remove("has-error");
  }

  function messageOf(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    var body = xhr.responseText || "";
    var text = "";
    if (type.indexOf("json") >= 0) {
      try {
        var data = JSON.parse(body);
        text = data.error || data.message || data.detail || "";
      } catch (e) { text = ""; }
    } else if (type.indexOf("html") >= 0) {
      var doc = new DOMParser().parseFromString(body, "text/html");
      var errors = doc.querySelectorAll(".error, .errorlist li, [role=alert]");
      var parts = [];
      errors.forEach(function (el) { var t = el.textContent.trim(); if (t && parts.indexOf(t) < 0) parts.push(t); });
      text = parts.join(" ") || (doc.body ? doc.body.textContent.trim() : "");
    } else {
      text = body.trim();
    }
    if (!text) {
      if (xhr.status === 403) text = "Not allowed: this needs the operator role.";
      else text = "The dashboard refused the request (HTTP " + xhr.status + ").";
    }
    return text.length > 600 ? text.slice(0, 600) + "…" : text;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = sourceForm(event.detail);
    if (form && form.localName === "form") clearError(form);
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    if (!xhr || xhr.status < 400) return;
    var form = sourceForm(event.detail);
    if (!form) return;
    event.detail.shouldSwap = false;
    event.detail.isError = false; // handled here: no console noise, no htmx:responseError
    showError(form, messageOf(xhr));
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = sourceForm(event.detail);
    if (form && event.detail.successful && form.localName === "form") forget(form);
  });

  function unreachable(event) {
    var form = sourceForm(event.detail);
    if (form) showError(form, "The dashboard could not be reached: nothing was done. Try again when the page says Live.");
  }
  document.addEventListener("htmx:sendError", unreachable);
  document.addEventListener("htmx:timeout", unreachable);

  // A plain form the server sent back with errors: bring the first one into view, its field focused.
  // After "load": the browser's own scroll to the URL's #fragment has happened by then.
  window.addEventListener("load", function () {
    var first = document.querySelector("form [role=alert]:not(:empty)");
    if (!first) return;
    first.scrollIntoView({ block: "center" });
    var field = first.closest("label") && first.closest("label").querySelector("input, select, textarea");
    if (field) field.focus({ preventScroll: true });
  });

  // -- Destructive actions ask first ------------------------------------------------------------
  // A form or button with data-confirm="question" asks before submitting (plain and htmx forms).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var submitter = event.submitter;
    var question = (submitter && submitter.getAttribute("data-confirm")) || form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // -- Filters apply as they change ---------------------------------------------------------------
  document.addEventListener("change", function (event) {
    var form = event.target.closest && event.target.closest("form[data-autosubmit]");
    if (form && event.target.type !== "search") form.requestSubmit();
  });

  // -- Copy buttons -----------------------------------------------------------------------------
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

  // -- Times: relative on the page, absolute with the zone on hover ------------------------------
  function titleTimes(root) {
    (root || document).querySelectorAll("time[datetime]:not([title])").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when)) el.title = when.toString();
    });
  }
  document.addEventListener("DOMContentLoaded", function () { titleTimes(); });
  document.addEventListener("htmx:afterSettle", function (event) { titleTimes(event.target); });
  document.addEventListener("htmx:oobAfterSwap", function (event) { titleTimes(event.target); });

  // -- The menu on narrow screens ---------------------------------------------------------------
  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".menu-toggle");
    if (!toggle) return;
    var open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    document.body.classList.toggle("menu-open", open);
  });

  // -- Live connection indicator ------------------------------------------------------------
  function status(text, live) {
    var el = document.getElementById("live-status");
    if (!el) return;
    el.hidden = false;
    el.textContent = text;
    el.classList.toggle("live", live);
    document.body.dataset.live = live ? "connected" : "disconnected";
  }

  // Reconnect within 1.5-3 s at most (the extension's default grows to 64 s): after a restart of
  // Redis or of the web server, live updates come back within seconds. The jitter spreads the
  // reconnections of many browsers.
  if (window.htmx) {
    htmx.config.wsReconnectDelay = function (retryCount) {
      var ceiling = Math.min(3000, 250 * Math.pow(2, retryCount));
      return ceiling * (0.5 + Math.random() / 2);
    };
  }

  document.addEventListener("htmx:wsOpen", function () { status("Live", true); });
  // The server's own close codes (dashboard/consumers.py) end the page's live updates for good.
  var FINAL_CLOSE = { 4401: "Signed out: reload to sign in", 4404: "This node no longer exists" };
  document.addEventListener("htmx:wsClose", function (event) {
    var code = event.detail && event.detail.event && event.detail.event.code;
    status(FINAL_CLOSE[code] || "Reconnecting…", false);
  });
  document.addEventListener("htmx:wsError", function () { status("Live updates unavailable", false); });
})();
