"use strict";
// Live updates: while the page is visible, fetch its live part (the same URL with
// ?part=live, rendered by the same template) and swap it in; stop once the part says it is
// final (a finished run). Action buttons POST with the header the server requires.
(() => {
  const POLL_MS = 2000;
  const box = document.getElementById("live");
  if (!box) return;
  let last = null;

  async function refresh() {
    const url = new URL(window.location.href);
    url.searchParams.set("part", "live");
    const response = await fetch(url, { headers: { Accept: "text/html" } });
    if (!response.ok) return;
    const html = await response.text();
    if (html !== last) {
      last = html;
      box.innerHTML = html;
    }
  }

  async function poll() {
    if (!document.hidden) {
      try {
        await refresh();
      } catch (error) {
        console.warn("dashboard: refresh failed", error);
      }
    }
    if (!box.querySelector("[data-final]")) setTimeout(poll, POLL_MS);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    button.disabled = true;
    const response = await fetch(button.dataset.action, {
      method: "POST",
      headers: { "X-Stepwise-Action": "1" },
    });
    const message = document.getElementById("action-message");
    const body = await response.json();
    message.hidden = response.ok;
    message.textContent = response.ok ? "" : body.error;
    const wasFinal = box.querySelector("[data-final]");
    await refresh();
    if (wasFinal && !box.querySelector("[data-final]")) setTimeout(poll, POLL_MS);
  });

  if (box.hasAttribute("data-poll") && !box.querySelector("[data-final]")) {
    setTimeout(poll, POLL_MS);
  }
})();
