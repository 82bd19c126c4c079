// Helius explorer page, the tabs beside the sliders: Morph, Walk, Variations, Attributes,
// Recon, Presets and Train. Uses S, $, api ... from app.js (loaded first).
"use strict";

// ---- morph and walk ----------------------------------------------------------------------

function stepChips(box, latents, prefix) {
  box.textContent = "";
  latents.forEach((latent, i) => {
    const chip = document.createElement("button");
    chip.textContent = i + 1;
    chip.title = `${prefix} step ${i + 1}`;
    chip.addEventListener("click", guard(async () => {
      $$("button", box).forEach((other) => other.classList.toggle("on", other === chip));
      setLatent(latent, { label: `${prefix} ${i + 1}` });
      await renderCurrent({ play: true });
    }));
    box.append(chip);
  });
}

function setSlot(slot, latent, label) {
  S.slots[slot] = latent;
  $(`.slot[data-slot="${slot}"] .slot-label`).textContent = label;
}

async function encodeFile(file) {
  if (S.info && file.size > S.info.max_upload_bytes) {
    throw new Error(`${file.name} is over the ${(S.info.max_upload_bytes / 2 ** 20).toFixed(0)} MB upload limit`);
  }
  const form = new FormData();
  form.append("file", file);
  return api("/api/encode", undefined, { form });
}

function setupMorphWalk() {
  let morph = [], walk = [];
  $$(".slot").forEach((slotBox) => {
    const slot = slotBox.dataset.slot;
    $(".slot-current", slotBox).addEventListener("click", () => setSlot(slot, [...S.latent], S.label || "current"));
    $(".slot-preset", slotBox).addEventListener("change", guard(async (event) => {
      if (!event.target.value) return;
      const preset = await api("/api/presets/load", { name: event.target.value });
      setSlot(slot, preset.latent, `preset ${preset.name}`);
      event.target.value = "";
    }));
    $(".slot-file", slotBox).addEventListener("change", guard(async (event) => {
      const file = event.target.files[0];
      if (!file) return;
      const encoded = await encodeFile(file);
      setSlot(slot, encoded.latent, file.name);
      event.target.value = "";
    }));
  });
  $("#morph-make").addEventListener("click", guard(async () => {
    if (!S.slots.a || !S.slots.b) throw new Error("choose A and B first (current sound, a preset or a file)");
    const body = { a: S.slots.a, b: S.slots.b, steps: number("#morph-steps"), mode: $("#morph-mode").value };
    morph = (await api("/api/morph", body)).latents;
    stepChips($("#morph-steps-list"), morph, "morph");
    $("#morph-play").disabled = false;
    showPath(morph).catch(() => {});
  }));
  $("#morph-play").addEventListener("click", guard(() => playSequence(morph, `morph ${$("#morph-mode").value} ${morph.length} steps`)));
  $("#walk-make").addEventListener("click", guard(async () => {
    const body = {
      start: S.latent, steps: number("#walk-steps"), step_size: number("#walk-step-size"),
      momentum: number("#walk-momentum"), pull: number("#walk-pull"),
      temperature: number("#walk-temperature"), seed: number("#walk-seed"),
    };
    walk = (await api("/api/walk", body)).latents;
    stepChips($("#walk-steps-list"), walk, "walk");
    $("#walk-play").disabled = false;
    $("#walk-seed").value = number("#walk-seed") + 1;  // the next walk is a new one
    showPath([S.latent, ...walk]).catch(() => {});
  }));
  $("#walk-play").addEventListener("click", guard(() => playSequence(walk, `walk ${walk.length} steps`)));
}

// ---- variations and attributes ---------------------------------------------------------

function setupVariations() {
  $("#var-make").addEventListener("click", guard(async () => {
    const body = { center: S.latent, count: number("#var-count"), sigma: number("#var-sigma"), seed: number("#var-seed") };
    const { latents } = await api("/api/variations", body);
    $("#var-seed").value = body.seed + 1;
    const grid = $("#var-grid");
    grid.textContent = "";
    latents.forEach((latent, i) => {
      const cell = document.createElement("button");
      cell.textContent = `▶ ${i + 1}`;
      cell.addEventListener("click", guard(async () => {
        $$("button", grid).forEach((other) => other.classList.toggle("on", other === cell));
        setLatent(latent, { label: `variation ${i + 1}` });
        await renderCurrent({ play: true });
      }));
      grid.append(cell);
    });
  }));
}

async function setupAttributes() {
  const box = $("#attr-sliders");
  box.textContent = "fitting attribute directions on decoded samples…";
  const { names, flat } = await api("/api/attributes");
  box.textContent = "";
  for (const name of names) {
    const row = document.createElement("div");
    row.className = "attr-row";
    row.innerHTML = `<span>${name}</span><input type="range" min="-3" max="3" step="0.05" value="0" data-attr="${name}"><output>0.00</output>`;
    if (flat.includes(name)) { $("input", row).disabled = true; row.title = "this model's sounds never vary in it"; }
    box.append(row);
  }
  S.attrBase = [...S.latent];
  let timer = null;
  box.addEventListener("input", (event) => {
    event.target.nextElementSibling.textContent = Number(event.target.value).toFixed(2);
    clearTimeout(timer);
    timer = setTimeout(guard(async () => {
      const amounts = {};
      $$("input", box).forEach((input) => { amounts[input.dataset.attr] = Number(input.value); });
      const { latent } = await api("/api/attributes/move", { latent: S.attrBase, amounts });
      setLatent(latent, { base: S.base, label: "attributes", locate: false });
      await renderCurrent();
      locateCurrent();
    }), 150);
  });
}

function resetAttributeSliders() {
  $$("#attr-sliders input").forEach((input) => { input.value = 0; input.nextElementSibling.textContent = "0.00"; });
}

// ---- recon and presets -------------------------------------------------------------------

function setupRecon() {
  let originalUrl = null;
  const original = new Audio();
  const drop = $("#drop");
  const handle = guard(async (file) => {
    if (!file) return;
    $("#recon-label").textContent = `encoding ${file.name}…`;
    const encoded = await encodeFile(file);
    if (originalUrl) URL.revokeObjectURL(originalUrl);
    originalUrl = URL.createObjectURL(file);
    original.src = originalUrl;
    $("#recon-original").disabled = false;
    $("#recon-again").disabled = false;
    $("#recon-label").textContent = `${file.name}: ${encoded.seconds.toFixed(2)} s encoded`;
    setLatent(encoded.latent, { base: encoded.trajectory, label: `recon ${file.name}` });
    await renderCurrent({ play: true });
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    handle(event.dataTransfer.files[0]);
  });
  $("#recon-file").addEventListener("change", (event) => { handle(event.target.files[0]); event.target.value = ""; });
  $("#recon-original").addEventListener("click", () => { player.pause(); original.currentTime = 0; original.play(); });
  $("#recon-again").addEventListener("click", playSound);
}

async function refreshPresets() {
  const { presets } = await api("/api/presets");
  S.presets = presets;
  const list = $("#preset-list");
  list.textContent = "";
  for (const preset of presets) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = preset.name;
    item.append(name);
    for (const [text, action] of [["Load", loadPreset], ["Rename", renamePreset], ["Delete", deletePreset]]) {
      const button = document.createElement("button");
      button.textContent = text;
      button.addEventListener("click", guard(() => action(preset.name)));
      item.append(button);
    }
    list.append(item);
  }
  $$(".slot-preset").forEach((select) => {
    select.length = 1;
    presets.forEach((preset) => select.add(new Option(preset.name, preset.name)));
  });
}

async function loadPreset(name) {
  const preset = await api("/api/presets/load", { name });
  setLatent(preset.latent, { label: `preset ${name}` });
  await renderCurrent({ play: true });
}

async function renamePreset(name) {
  const target = prompt(`Rename preset “${name}” to:`, name);
  if (!target || target === name) return;
  await api("/api/presets/rename", { old: name, new: target });
  await refreshPresets();
}

async function deletePreset(name) {
  if (!confirm(`Delete preset “${name}”?`)) return;
  await api("/api/presets/delete", { name });
  await refreshPresets();
}

function setupPresets() {
  $("#preset-save").addEventListener("click", guard(async () => {
    const name = $("#preset-name").value.trim();
    await api("/api/presets", { name, latent: S.latent, meta: { label: S.label } });
    toast(`saved preset “${name}”`, true);
    await refreshPresets();
  }));
}

// ---- training ------------------------------------------------------------------------------

async function loadTrainForm(config) {
  const form = await api(`/api/train/form${config ? `?config=${encodeURIComponent(config)}` : ""}`);
  const select = $("#train-config");
  if (!select.length) {
    select.add(new Option("(built-in defaults)", ""));
    form.configs.forEach((path) => select.add(new Option(path, path)));
  }
  const box = $("#train-fields");
  box.textContent = "";
  for (const field of form.fields) {
    const label = document.createElement("label");
    label.title = field.key;
    label.textContent = field.name.replace(/_/g, " ");
    const input = document.createElement("input");
    input.name = field.name;
    input.value = field.value ?? "";
    input.placeholder = field.key;
    label.append(input);
    box.append(label);
  }
}

async function startTraining() {
  const fields = {};
  $$("#train-fields input").forEach((input) => { fields[input.name] = input.value.trim() || null; });
  const overrides = $("#train-overrides").value.split("\n").map((line) => line.trim()).filter(Boolean);
  const config = $("#train-config").value || null;
  showTraining(await api("/api/train/start", { config, fields, overrides }));
  pollTraining();
}

let trainTimer = null;
function pollTraining() {
  clearTimeout(trainTimer);
  trainTimer = setTimeout(guard(async () => {
    const status = await api("/api/train/status");
    showTraining(status);
    const tensorboardStarting = status.tensorboard && status.tensorboard.alive && !status.tensorboard.ready;
    if (status.running || tensorboardStarting) pollTraining();
  }), 2000);
}

function showTraining(status) {
  $("#train-start").disabled = status.running;
  $("#train-stop").disabled = !status.running;
  const run = status.run;
  $("#train-state").textContent = !run ? "no run yet" : status.running ? `training (${run.id})…`
    : `finished (${run.id}, exit ${run.returncode})`;
  $("#train-log").textContent = status.log || "";
  drawLoss(status.series || {});
  const tensorboard = status.tensorboard, link = $("#tb-link");
  if (tensorboard && tensorboard.alive) {
    link.hidden = false;
    link.href = tensorboard.url;
    link.textContent = tensorboard.ready ? `open TensorBoard (${tensorboard.url})` : "TensorBoard starting…";
  } else link.hidden = true;
}

function drawLoss(series) {
  const canvas = $("#loss-chart");
  const context = fitCanvas(canvas);
  const { width, height } = canvas;
  const ratio = window.devicePixelRatio || 1;
  context.clearRect(0, 0, width, height);
  const train = (series["train/loss"] || []).length >= (series["progress/loss"] || []).length ? "train/loss" : "progress/loss";
  const shown = [[train, "#f0b429"], ["val/score", "#35b779"]].filter(([tag]) => (series[tag] || []).length);
  if (!shown.length) {
    context.fillStyle = "#8795a5";
    context.font = `${12 * ratio}px system-ui`;
    context.fillText("the loss appears here as training runs", 10 * ratio, 20 * ratio);
    return;
  }
  const all = shown.flatMap(([tag]) => series[tag]).filter(([, v]) => Number.isFinite(v));
  const steps = all.map(([s]) => s), values = all.map(([, v]) => v);
  const [s0, s1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
  const [v0, v1] = [Math.min(...values), Math.max(...values)];
  const pad = 8 * ratio, span = v1 - v0 || 1;
  const x = (s) => pad + ((s - s0) / (s1 - s0)) * (width - 2 * pad);
  const y = (v) => height - pad - ((v - v0) / span) * (height - 2 * pad - 14 * ratio);
  context.lineWidth = 1.5 * ratio;
  shown.forEach(([tag, colour], i) => {
    context.strokeStyle = colour;
    context.beginPath();
    series[tag].forEach(([s, v], j) => (j ? context.lineTo(x(s), y(v)) : context.moveTo(x(s), y(v))));
    context.stroke();
    const last = series[tag][series[tag].length - 1];
    context.fillStyle = colour;
    context.font = `${11 * ratio}px system-ui`;
    context.fillText(`${tag.replace("progress/", "train/")} ${last[1].toPrecision(4)} @ ${last[0]}`, pad + i * 200 * ratio, 12 * ratio);
  });
}

function setupTraining() {
  $("#train-config").addEventListener("change", guard((event) => loadTrainForm(event.target.value)));
  $("#train-start").addEventListener("click", guard(startTraining));
  $("#train-stop").addEventListener("click", guard(async () => {
    $("#train-state").textContent = "stopping (saving last.pt)…";
    showTraining(await api("/api/train/stop", {}));
  }));
  $("#tb-launch").addEventListener("click", guard(async () => {
    const tensorboard = await api("/api/tensorboard", {});
    showTraining({ ...(await api("/api/train/status")), tensorboard });
    pollTraining();
  }));
}
