// Helius explorer page, the core: server calls, the current sound, the sliders, start-up.
// Plain browser JavaScript in three files (app.js, map.js, tabs.js; no build step) that share
// one global scope; every sound comes from the server as WAV.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

const S = {
  info: null,
  latent: [],          // the current point (D,)
  base: null,          // wave VAE: a recon trajectory the current point offsets
  label: "",
  soundUrl: null,
  token: 0,            // newest decode request; older answers are dropped
  abort: null,
  map: null,           // {mode, points: Float32Array, colors, labels, count}
  mapQuery: { mode: "model", method: "pca", seed: 0, temperature: 1 },
  view: { zoom: 1, cx: 0, cy: 0 },
  marker: null,        // [x, y] of the current point on the map
  neighbours: [],
  path: [],            // a morph or walk drawn on the map
  hover: -1,
  presets: [],
  slots: { a: null, b: null },
  attrBase: null,
  attrDirections: null,
};

// ---- server ---------------------------------------------------------------------------

async function api(path, body, { method, blob, form, signal } = {}) {
  const options = { method: method || (body === undefined && !form ? "GET" : "POST"), signal };
  if (form) options.body = form;
  else if (body !== undefined) {
    options.headers = { "Content-Type": "application/json" };
    options.body = JSON.stringify(body);
  }
  busy(+1);
  try {
    const response = await fetch(path, options);
    if (!response.ok) {
      let detail = response.statusText;
      try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new Error(`${response.status}: ${detail}`);
    }
    return blob ? await response.blob() : await response.json();
  } finally {
    busy(-1);
  }
}

let busyCount = 0;
function busy(delta) {
  busyCount += delta;
  $("#busy").hidden = busyCount <= 0;
}

function toast(message, info = false) {
  const box = $("#toast");
  box.textContent = message;
  box.className = info ? "info" : "";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, info ? 2500 : 7000);
}

function guard(action) {
  return async (...args) => {
    try { await action(...args); } catch (error) {
      if (error.name !== "AbortError") toast(error.message);
    }
  };
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 31);
const number = (id) => Number($(id).value);

// ---- the current sound -----------------------------------------------------------------

const player = new Audio();

function setLatent(latent, { base = null, label = "", marker, locate = true } = {}) {
  S.latent = latent.map(Number);
  S.base = base;
  S.label = label;
  updateSliders();
  if (marker) { S.marker = marker; drawMap(); } else if (locate) locateCurrent();
}

async function renderCurrent({ play = $("#live").checked } = {}) {
  const token = ++S.token;
  if (S.abort) S.abort.abort();
  S.abort = new AbortController();
  const body = { latent: S.latent };
  if (S.base) body.base = S.base;
  const wav = await api("/api/decode", body, { blob: true, signal: S.abort.signal });
  if (token !== S.token) return;
  setSound(wav, S.label || "sound", play);
  modelLoaded(true);
}

function setSound(wav, label, play) {
  if (S.soundUrl) URL.revokeObjectURL(S.soundUrl);
  S.soundUrl = URL.createObjectURL(wav);
  player.src = S.soundUrl;
  const link = $("#download");
  link.href = S.soundUrl;
  link.download = `${label.replace(/[^\w.-]+/g, "_").slice(0, 60) || "helius"}.wav`;
  link.setAttribute("aria-disabled", "false");
  $("#sound-label").textContent = label;
  wav.arrayBuffer().then(drawWave);
  if (play) playSound();
}

function playSound() {
  if (!player.src) return;
  player.currentTime = 0;
  player.play().catch(() => toast("click Play to hear it (the browser blocked auto-play)", true));
}

let decodeTimer = null;
function scheduleDecode(delay = 150) {
  clearTimeout(decodeTimer);
  decodeTimer = setTimeout(guard(async () => { await renderCurrent(); locateCurrent(); }), delay);
}

async function playSequence(latents, label) {
  const wav = await api("/api/sequence", { latents }, { blob: true });
  setSound(wav, label, true);
}

// 16-bit PCM WAV from the server -> min/max per pixel column.
function drawWave(buffer) {
  const canvas = $("#wave");
  const context = fitCanvas(canvas);
  const { width, height } = canvas;
  context.clearRect(0, 0, width, height);
  const view = new DataView(buffer);
  let offset = 12, data = null, channels = 1;
  while (offset + 8 <= view.byteLength) {
    const id = String.fromCharCode(...new Uint8Array(buffer, offset, 4));
    const size = view.getUint32(offset + 4, true);
    if (id === "fmt ") channels = view.getUint16(offset + 10, true);
    if (id === "data") { data = new Int16Array(buffer.slice(offset + 8, offset + 8 + size)); break; }
    offset += 8 + size + (size & 1);
  }
  if (!data) return;
  const frames = data.length / channels;
  context.fillStyle = "#f0b429";
  const middle = height / 2;
  for (let x = 0; x < width; x++) {
    const start = Math.floor((x / width) * frames), end = Math.max(start + 1, Math.floor(((x + 1) / width) * frames));
    let low = 0, high = 0;
    for (let i = start; i < end; i++) {
      const value = data[i * channels] / 32768;
      if (value < low) low = value;
      if (value > high) high = value;
    }
    context.fillRect(x, middle - high * middle, 1, Math.max(1, (high - low) * middle));
  }
}

function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio), height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
  return canvas.getContext("2d");
}

function modelLoaded(loaded) {
  const pill = $("#model-state");
  pill.textContent = loaded ? "model loaded" : "model unloaded (reloads on demand)";
  pill.classList.toggle("off", !loaded);
  $("#unload").textContent = loaded ? "Unload" : "Load";
}

// ---- sliders -----------------------------------------------------------------------------

function buildSliders(dimensions) {
  const box = $("#sliders");
  box.textContent = "";
  for (let i = 0; i < dimensions; i++) {
    const row = document.createElement("div");
    row.className = "slider-row";
    row.innerHTML = `<span>z${i}</span><input type="range" min="-4" max="4" step="0.01" value="0" data-dim="${i}"><output>0.00</output>`;
    box.append(row);
  }
  box.addEventListener("input", (event) => {
    const dim = Number(event.target.dataset.dim);
    if (Number.isNaN(dim)) return;
    S.latent[dim] = Number(event.target.value);
    event.target.nextElementSibling.textContent = S.latent[dim].toFixed(2);
    S.label = "sliders";
    scheduleDecode();
  });
}

function updateSliders() {
  $$("#sliders input").forEach((input, i) => {
    input.value = S.latent[i];
    input.nextElementSibling.textContent = S.latent[i].toFixed(2);
  });
}

async function randomLatent() {
  const { latents } = await api("/api/random", { count: 1, temperature: number("#temperature"), seed: randomSeed() });
  setLatent(latents[0], { label: "random" });
}

// ---- tabs, header, start -----------------------------------------------------------------

const tabLoaders = {
  attributes: () => setupAttributes(),
  presets: () => refreshPresets(),
  train: async () => {
    const configs = (await api("/api/train/form")).configs;
    const preferred = configs.includes("configs/config.yaml") ? "configs/config.yaml" : "";
    await loadTrainForm(preferred);
    $("#train-config").value = preferred;
    const status = await api("/api/train/status");
    showTraining(status);
    if (status.running) pollTraining();
  },
};
const loadedTabs = new Set();

function setupTabs() {
  $$("#tabs button").forEach((button) => button.addEventListener("click", guard(async () => {
    const tab = button.dataset.tab;
    $$("#tabs button").forEach((other) => other.classList.toggle("on", other === button));
    $$(".tab").forEach((panel) => panel.classList.toggle("on", panel.id === `tab-${tab}`));
    if (tab === "presets") return refreshPresets();
    if (tabLoaders[tab] && !loadedTabs.has(tab)) { loadedTabs.add(tab); await tabLoaders[tab](); }
  })));
}

function setupButtons() {
  $("#play").addEventListener("click", playSound);
  $("#random").addEventListener("click", guard(async () => { await randomLatent(); scheduleDecode(0); }));
  $("#zero").addEventListener("click", () => { setLatent(S.latent.map(() => 0), { label: "zero" }); scheduleDecode(0); });
  $("#generate").addEventListener("click", guard(() => renderCurrent({ play: false })));
  $("#generate-random").addEventListener("click", guard(async () => { await randomLatent(); await renderCurrent({ play: true }); }));
  $("#attr-base").addEventListener("click", () => { S.attrBase = [...S.latent]; resetAttributeSliders(); toast("attribute base set", true); });
  $("#attr-reset").addEventListener("click", guard(async () => {
    resetAttributeSliders();
    if (S.attrBase) { setLatent(S.attrBase, { base: S.base, label: "attributes" }); await renderCurrent(); }
  }));
  $("#unload").addEventListener("click", guard(async () => {
    const { loaded } = await api($("#unload").textContent === "Unload" ? "/api/unload" : "/api/load", {});
    modelLoaded(loaded);
  }));
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName) && event.target.type !== "range";
    if (event.code !== "Space" || typing) return;
    event.preventDefault();
    if (event.target.tagName === "BUTTON") event.target.blur();  // or it clicks on key-up too
    playSound();
  });
}

async function start() {
  setupMap(); setupTabs(); setupButtons(); setupMorphWalk(); setupVariations(); setupRecon();
  setupPresets(); setupTraining();
  const info = await api("/api/info");
  S.info = info;
  $("#model-info").textContent = `${info.checkpoint} · ${info.kind}${info.kind === "mel_vae" ? ` (${info.audio_out})` : ""} · ${info.latent_dim} dims · ${info.sample_rate} Hz · ${info.seconds_per_sound.toFixed(2)} s per sound`;
  $("#drop-limit").textContent = `up to ${(info.max_upload_bytes / 2 ** 20).toFixed(0)} MB; the first ${info.max_upload_seconds} s are encoded`;
  modelLoaded(info.loaded);
  info.projections.forEach((method) => $("#map-method").add(new Option(method.toUpperCase(), method)));
  info.attributes.forEach((name) => $("#map-color").add(new Option(name, name)));
  buildSliders(info.latent_dim);
  S.latent = new Array(info.latent_dim).fill(0);
  S.mapQuery.seed = randomSeed();
  const dataButton = $$("#map-modes button")[0];
  if (info.has_data) dataButton.click();
  else { dataButton.disabled = true; dataButton.title = "start helius explore with --data to map your clips"; loadMap(); }
  renderCurrent({ play: false }).catch((error) => toast(error.message));
}

document.addEventListener("DOMContentLoaded", () => start().catch((error) => toast(error.message)));
