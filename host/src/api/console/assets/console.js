// Euphrosyne console: live updates of an incident page (Server-Sent Events). Everything else
// works without JavaScript. The server renders and escapes the HTML it sends.
"use strict";
(function () {
  const live = document.getElementById("live");
  const status = document.getElementById("live-status");
  if (!live || !live.dataset.live || !window.EventSource) return;
  const say = (text) => { if (status) status.textContent = text; };
  let updates = 0;
  function connect() {
    const source = new EventSource(live.dataset.live);
    source.addEventListener("open", () => say("live"));
    // Every event carries the page's changing part as it is now (the first one on each
    // connection, too, so a reconnect catches up on what it missed).
    source.addEventListener("update", (e) => {
      updates += 1;
      live.innerHTML = e.data;
      document.body.dataset.updates = String(updates);
      say("live · updated " + new Date().toLocaleTimeString());
    });
    source.addEventListener("gone", (e) => { say(e.data); source.close(); });
    source.addEventListener("error", () => {
      say("reconnecting…");
      // A dropped connection is retried by EventSource itself (after the second the server
      // asks for); an error answer (a restarting host's 503) closes it for good: start anew.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    });
  }
  connect();
})();
