// durable-ext console: live refresh and actions. Only server-rendered (autoescaped)
// fragments are inserted; anything else reaches the page through textContent.
"use strict";

(function () {
  const body = document.body;
  const refreshMs = Number(body.dataset.refreshMs) || 1500;

  async function fetchFragment(url) {
    const response = await fetch(url, { headers: { Accept: "text/html" }, credentials: "same-origin" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const text = await response.text();
    return new DOMParser().parseFromString(text, "text/html");
  }

  function say(text, bad) {
    const status = document.getElementById("action-status");
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  // ---- executions list: swap in fresh rows while "Live refresh" is checked
  const table = document.getElementById("executions");
  if (table) {
    const live = document.getElementById("live");
    const updated = document.getElementById("list-updated");
    setInterval(async function () {
      if (!live.checked || document.hidden) return;
      try {
        const doc = await fetchFragment(table.dataset.fragment);
        const rows = doc.getElementById("executions-body");
        const current = document.getElementById("executions-body");
        if (rows && current) current.replaceWith(document.importNode(rows, true));
        updated.textContent = "updated " + new Date().toLocaleTimeString();
      } catch (err) {
        updated.textContent = "refresh failed: " + err.message;
      }
    }, Math.max(refreshMs * 2, 2000));
  }

  // ---- one execution: poll its state, swap in the page when it changed
  function current() { return document.getElementById("execution"); }

  async function refreshExecution(force) {
    const root = current();
    if (!root) return;
    const response = await fetch(root.dataset.state, { credentials: "same-origin" });
    if (!response.ok) return;
    const state = await response.json();
    if (state.status === "DELETED") { say("This execution was deleted."); return; }
    if (!force && String(state.status) === root.dataset.status && String(state.events) === root.dataset.events) return;
    const open = new Set(Array.from(root.querySelectorAll("details[open]")).map(function (d) { return d.parentElement.id; }));
    const doc = await fetchFragment(root.dataset.fragment);
    const fresh = doc.getElementById("execution");
    if (!fresh) return;
    fresh.querySelectorAll("li.op").forEach(function (li) {
      if (open.has(li.id)) li.querySelector("details").open = true;
    });
    // A payload someone is typing stays as typed.
    const typing = document.activeElement && document.activeElement.closest("#execution form") ? document.activeElement : null;
    if (typing && typing.tagName === "TEXTAREA") return;
    root.replaceWith(document.importNode(fresh, true));
  }

  if (current()) {
    let busy = false;
    setInterval(async function () {
      if (busy || document.hidden) return;
      busy = true;
      try { await refreshExecution(false); } catch (err) { /* next tick tries again */ }
      busy = false;
    }, refreshMs);
  }

  // ---- a timeline line opened: load its details and decoded payloads once
  async function loadDetail(details) {
    const slot = details.querySelector(".op-detail[data-op]");
    const root = current();
    if (!slot || !root || slot.dataset.loading) return;
    slot.dataset.loading = "1";
    try {
      const doc = await fetchFragment(root.dataset.operation + "&op=" + encodeURIComponent(slot.dataset.op));
      const detail = doc.querySelector(".op-detail.loaded");
      if (detail && slot.isConnected) slot.replaceWith(document.importNode(detail, true));
    } catch (err) {
      slot.dataset.loading = "";
      slot.append(document.createTextNode(" (loading failed: " + err.message + ")"));
    }
  }
  document.addEventListener("toggle", function (event) {
    const details = event.target;
    if (details.open && details.closest && details.closest("li.op")) loadDetail(details);
  }, true);

  // ---- actions: JSON POSTs (the server refuses form posts from other sites)
  document.addEventListener("submit", async function (event) {
    const form = event.target.closest("form.action");
    if (!form) return;
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    if (event.submitter && event.submitter.name) data[event.submitter.name] = event.submitter.value;
    const buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    try {
      const response = await fetch(body.dataset.base + "/api/" + form.dataset.action, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(data),
      });
      const answer = await response.json().catch(function () { return {}; });
      if (!response.ok) { say(answer.message || ("failed: HTTP " + response.status), true); return; }
      say(answer.message || "done");
      if (answer.location) { window.location.assign(answer.location); return; }
      await refreshExecution(true);
    } catch (err) {
      say("failed: " + err.message, true);
    } finally {
      buttons.forEach(function (b) { b.disabled = false; });
    }
  });
})();
