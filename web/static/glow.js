// Glow's pages: uploads with progress, and the buttons that call /api/v1.
// Plain JavaScript, no framework; every request carries the CSRF token.
"use strict";
(function () {
  const csrf = (document.querySelector('meta[name="csrf"]') || {}).content || "";
  const table = document.getElementById("files");
  const here = table ? table.dataset.here : "";

  async function api(path, body) {
    const r = await fetch("/api/v1/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || r.statusText);
    return data;
  }
  const fail = (e) => alert(e.message || e);

  // Uploads: one PUT per file, streamed by the browser, with a progress bar.
  function upload(files) {
    const box = document.getElementById("progress");
    let pending = files.length;
    for (const f of files) {
      const row = document.createElement("div");
      row.innerHTML = '<span class="muted"></span><progress max="100" value="0"></progress>';
      row.firstChild.textContent = f.name;
      box.appendChild(row);
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", location.pathname + encodeURIComponent(f.name));
      xhr.setRequestHeader("X-CSRF-Token", csrf);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) row.lastChild.value = (100 * e.loaded) / e.total; };
      xhr.onloadend = () => {
        if (xhr.status >= 300) row.firstChild.textContent = f.name + ": failed (" + xhr.status + ")";
        if (--pending === 0) location.reload();
      };
      xhr.send(f);
    }
  }
  const pick = document.getElementById("pick");
  if (pick) pick.addEventListener("change", () => upload(pick.files));
  const drop = document.getElementById("drop");
  if (drop) {
    const on = (e) => { e.preventDefault(); drop.classList.add("over"); };
    const off = () => drop.classList.remove("over");
    document.addEventListener("dragover", on);
    document.addEventListener("dragleave", off);
    document.addEventListener("drop", (e) => { e.preventDefault(); off(); if (e.dataTransfer.files.length) upload(e.dataTransfer.files); });
  }

  // Share dialog.
  const dialog = document.getElementById("share-dialog");
  let sharePath = "";
  if (dialog) {
    document.getElementById("share-create").addEventListener("click", async () => {
      const f = document.getElementById("share-form");
      const body = { path: sharePath.replace(/\/$/, ""), permission: f.permission.value };
      if (f.expires.value) body.expires_in = Number(f.expires.value);
      if (f.password.value) body.password = f.password.value;
      if (f.max_downloads.value) body.max_downloads = Number(f.max_downloads.value);
      document.getElementById("share-error").textContent = "";
      try {
        const s = await api("shares", body);
        const out = document.getElementById("share-url");
        out.value = location.origin + s.url;
        out.select();
      } catch (e) {
        document.getElementById("share-error").textContent = e.message;
      }
    });
  }

  document.addEventListener("click", async (e) => {
    const b = e.target.closest("[data-action]");
    if (!b) return;
    const row = b.closest("tr");
    const name = row ? row.dataset.name : "";
    try {
      switch (b.dataset.action) {
        case "mkdir": {
          const n = prompt("Name of the new folder");
          if (n) { await api("mkdir", { path: here + n }); location.reload(); }
          break;
        }
        case "rename": {
          const n = prompt("New name (a path such as other/" + name + " moves it)", name);
          if (n && n !== name) { await api("move", { from: here + name, to: here + n }); location.reload(); }
          break;
        }
        case "delete":
          if (confirm("Move " + name + " to the trash?")) { await api("delete", { path: here + name }); location.reload(); }
          break;
        case "share":
          sharePath = b.dataset.path;
          document.getElementById("share-what").textContent = sharePath;
          document.getElementById("share-url").value = "";
          dialog.showModal();
          break;
        case "restore-trash":
          await api("trash/restore", { id: Number(b.dataset.id) }); location.reload();
          break;
        case "empty-trash":
          if (confirm("Delete everything in the trash for good?")) { await api("trash/empty", {}); location.reload(); }
          break;
        case "cast":
          await findTvs(b.dataset.path);
          break;
        case "cast-to":
          await castTo(b.dataset.path, b.dataset.renderer, b.dataset.name);
          break;
        case "cast-control":
          await api("cast/control", { renderer: b.dataset.renderer, action: b.dataset.control });
          document.getElementById("cast-state").textContent =
            { pause: "Paused on ", resume: "Playing on ", stop: "Stopped on " }[b.dataset.control] + b.dataset.name;
          break;
        case "pair":
          b.disabled = true;
          b.textContent = "Asking…";
          await api("pairings", { node: b.dataset.node }); location.reload();
          break;
        case "pair-decide":
          await api("pairings/decide", { id: Number(b.dataset.id), accept: !!b.dataset.accept }); location.reload();
          break;
        case "revoke":
          if (confirm("Revoke this link? Nobody will be able to open it any more.")) { await api("shares/revoke", { id: b.dataset.id }); location.reload(); }
          break;
      }
    } catch (err) { fail(err); }
  });

  // Play on TV: search the LAN, pick a TV, then pause / resume / stop.
  const castBox = document.getElementById("cast");
  const button = (label, data) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
    return b;
  };
  async function findTvs(path) {
    castBox.hidden = false;
    castBox.textContent = "Looking for TVs on your network…";
    const r = await fetch("/api/v1/renderers", { credentials: "same-origin" });
    const tvs = await r.json().catch(() => ({}));
    if (!r.ok) { castBox.textContent = tvs.error || r.statusText; return; }
    castBox.textContent = tvs.length ? "Play on: " : "No TV answered. Is it on, and on this network?";
    for (const tv of tvs) {
      castBox.appendChild(button(tv.name, { action: "cast-to", path, renderer: tv.location, name: tv.name }));
    }
  }
  async function castTo(path, renderer, name) {
    castBox.textContent = "Asking " + name + "…";
    const s = await api("cast", { path, renderer });
    castBox.textContent = "";
    const state = document.createElement("span");
    state.id = "cast-state";
    state.textContent = "Playing on " + s.renderer;
    castBox.appendChild(state);
    for (const [label, control] of [["Pause", "pause"], ["Resume", "resume"], ["Stop", "stop"]]) {
      castBox.appendChild(button(label, { action: "cast-control", control, renderer, name }));
    }
  }

  // Devices page: a pairing offered by another device, or an answer
  // given there, shows without a reload by hand.
  const pairBox = document.getElementById("pairings");
  if (pairBox && pairBox.dataset.watch) {
    const sig = (list) => list.map((p) => p.id + ":" + p.state).join(",");
    let seen = null;
    setInterval(async () => {
      const r = await fetch("/api/v1/pairings", { credentials: "same-origin" }).catch(() => null);
      if (!r || !r.ok) return;
      const now = sig(await r.json());
      if (seen !== null && now !== seen) location.reload();
      seen = now;
    }, 2000);
  }

  document.addEventListener("submit", async (e) => {
    const f = e.target.closest("form[data-restore]");
    if (!f) return;
    e.preventDefault();
    try {
      await api("restore", { path: f.dataset.path, version: Number(f.dataset.restore) });
      location.reload();
    } catch (err) { fail(err); }
  });
})();
