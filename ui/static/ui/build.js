// A build's page, live: new log lines and phase changes as they happen.
//
// The page renders the log as it was; from there this script follows the build over the
// websocket /ws/build/<uuid>/ (messages {"type": "logs", "start": N, "entries": [...]} and
// {"type": "phase", "phase": "..."}), and when the websocket cannot be reached or drops, it polls
// the REST API every second instead (.../logs?start=N and .../status). Entries carry their
// position (start + index), so an entry that arrives twice is shown once and a gap is filled
// from the REST API.
(function () {
  "use strict";

  var log = document.getElementById("build-log");
  if (!log) return;

  var POLL_MS = 1000;
  var labels = {};
  try {
    labels = JSON.parse(document.getElementById("build-phase-labels").textContent);
  } catch (error) {
    labels = {};
  }
  var finalPhases = (log.getAttribute("data-final-phases") || "").split(/\s+/);
  var cancellablePhases = (log.getAttribute("data-cancellable-phases") || "").split(/\s+/);
  var wsUrl = log.getAttribute("data-ws-url");
  var pollUrl = log.getAttribute("data-poll-url");
  var statusUrl = log.getAttribute("data-status-url");
  var summaryUrl = log.getAttribute("data-summary-url");
  var next = parseInt(log.getAttribute("data-next"), 10) || 0;
  var phase = log.getAttribute("data-phase");
  var stateLine = document.getElementById("build-log-state");
  var emptyLine = document.getElementById("build-log-empty");
  var socket = null;
  var pollTimer = null;
  var polling = false;
  var catchingUp = false;

  function isFinal(value) {
    return finalPhases.indexOf(value) !== -1;
  }

  function say(text) {
    if (stateLine) stateLine.textContent = text;
  }

  function lineClass(type) {
    if (type === "command") return "log-command";
    if (type === "phase") return "log-phase";
    if (type === "error") return "log-error";
    return "log-output";
  }

  // As the page renders it (ui/views/builds.py log_line_text).
  function lineText(entry) {
    var message = String(entry.message || "").replace(/\n+$/, "");
    if (entry.type !== "phase") return message;
    var reason = entry.data && entry.data.reason;
    var label = labels[message] || message;
    return "Phase: " + label + (reason ? " (" + reason + ")" : "");
  }

  function nearBottom() {
    return log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  }

  // Entries numbered from `start`; those already shown are skipped. Returns false on a gap.
  function append(entries, start) {
    if (!entries || !entries.length) return true;
    if (start > next) {
      catchUp();
      return false;
    }
    var follow = nearBottom();
    var fragment = document.createDocumentFragment();
    for (var index = next - start; index < entries.length; index++) {
      var entry = entries[index] || {};
      var line = document.createElement("div");
      line.className = "log-line " + lineClass(entry.type);
      line.textContent = lineText(entry);
      fragment.appendChild(line);
    }
    if (!fragment.childNodes.length) return true;
    next = Math.max(next, start + entries.length);
    log.appendChild(fragment);
    if (emptyLine) emptyLine.hidden = true;
    if (follow) log.scrollTop = log.scrollHeight;
    return true;
  }

  function phaseState(value) {
    if (value === "waiting") return "waiting";
    if (value === "complete") return "complete";
    if (value === "error" || value === "internalerror" || value === "expired") return "failed";
    if (value === "cancelled") return "cancelled";
    return "running";
  }

  function showPhase(value) {
    document.querySelectorAll("#build-summary .phase[data-phase]").forEach(function (badge) {
      badge.setAttribute("data-phase", value);
      badge.className = "phase phase-" + phaseState(value);
      badge.textContent = labels[value] || value;
    });
    var cancel = document.getElementById("build-cancel");
    if (cancel) cancel.hidden = cancellablePhases.indexOf(value) === -1;
  }

  // The summary (times, error, pushed digests) as the server renders it now.
  function refreshSummary() {
    if (!summaryUrl) return;
    fetch(summaryUrl, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("build-summary");
        var current = document.getElementById("build-summary");
        if (fresh && current) {
          current.replaceWith(document.adoptNode(fresh));
          showPhase(phase);
        }
      })
      .catch(function () {});
  }

  function setPhase(value) {
    if (!value || value === phase) return;
    phase = value;
    log.setAttribute("data-phase", value);
    showPhase(value);
    refreshSummary();
    if (isFinal(value)) {
      // Lines may still be on their way: fetch the rest once, then stop following.
      catchUp();
      stopFollowing("The build has ended.");
    }
  }

  function getJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  // Every entry from `next` on, from the REST API, page after page.
  function catchUp() {
    if (catchingUp) return Promise.resolve();
    catchingUp = true;
    function more() {
      return getJson(pollUrl + "?start=" + next).then(function (data) {
        var before = next;
        append(data.logs || [], typeof data.start === "number" ? data.start : before);
        if (next > before && typeof data.total === "number" && next < data.total) return more();
        return null;
      });
    }
    return more()
      .catch(function () {})
      .then(function () {
        catchingUp = false;
      });
  }

  function poll() {
    if (polling) return;
    polling = true;
    Promise.all([catchUp(), getJson(statusUrl).then(function (data) { setPhase(data.phase); }, function () {})])
      .then(function () {
        polling = false;
      });
  }

  function startPolling() {
    if (pollTimer || isFinal(phase)) return;
    say("Following the build (checking every second).");
    pollTimer = window.setInterval(poll, POLL_MS);
    poll();
  }

  function stopFollowing(text) {
    if (pollTimer) window.clearInterval(pollTimer);
    pollTimer = null;
    if (socket) {
      var closing = socket;
      socket = null;
      closing.close();
    }
    say(text);
  }

  function connect() {
    if (!wsUrl || typeof window.WebSocket !== "function") {
      startPolling();
      return;
    }
    try {
      // The server sends every entry from `start` on, then each new one as it is stored.
      socket = new window.WebSocket(wsUrl + (wsUrl.indexOf("?") === -1 ? "?" : "&") + "start=" + next);
    } catch (error) {
      socket = null;
      startPolling();
      return;
    }
    var current = socket;
    current.addEventListener("open", function () {
      say("Live.");
    });
    current.addEventListener("message", function (event) {
      var message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message.type === "logs") append(message.entries, message.start);
      else if (message.type === "phase") setPhase(message.phase);
    });
    current.addEventListener("close", function () {
      if (socket !== current) return;  // closed on purpose
      socket = null;
      startPolling();
    });
  }

  if (isFinal(phase)) {
    say("");
    catchUp();  // the page renders a long log's beginning only
  } else {
    say("Connecting…");
    connect();
  }
})();
