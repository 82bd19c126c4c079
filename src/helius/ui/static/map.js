// Helius explorer page, the sound map: one canvas, every point drawn in one pass per colour,
// wheel zoom, drag pan, double-click reset; clicks pick a sound (Snap or Blend) on the server.
// Uses S, $, api ... from app.js (loaded first).
"use strict";

// ---- the sound map ---------------------------------------------------------------------

const COLORMAP = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];
const mapCanvas = $("#map");
let mapDirty = false;

function drawMap() {
  if (!mapDirty) { mapDirty = true; requestAnimationFrame(paintMap); }
}

function mapScale() {
  return Math.min(mapCanvas.width, mapCanvas.height) * 0.46 * S.view.zoom;
}

function toScreen(x, y) {
  const scale = mapScale();
  return [mapCanvas.width / 2 + (x - S.view.cx) * scale, mapCanvas.height / 2 - (y - S.view.cy) * scale];
}

function toMap(px, py) {
  const scale = mapScale();
  return [S.view.cx + (px - mapCanvas.width / 2) / scale, S.view.cy - (py - mapCanvas.height / 2) / scale];
}

function paintMap() {
  mapDirty = false;
  const context = fitCanvas(mapCanvas);
  const { width, height } = mapCanvas;
  const ratio = window.devicePixelRatio || 1;
  context.clearRect(0, 0, width, height);
  context.strokeStyle = "#1c232b";
  context.lineWidth = 1;
  context.beginPath();
  for (const t of [-1, -0.5, 0, 0.5, 1]) {
    const [x0, y0] = toScreen(t, -1), [x1, y1] = toScreen(t, 1);
    context.moveTo(x0, y0); context.lineTo(x1, y1);
    const [a0, b0] = toScreen(-1, t), [a1, b1] = toScreen(1, t);
    context.moveTo(a0, b0); context.lineTo(a1, b1);
  }
  context.stroke();
  const map = S.map;
  if (!map) return;
  // All points in one pass per colour bucket: one path, one fill.
  const base = map.count < 200 ? 7 : map.count < 1500 ? 4.5 : 3.5;
  const size = Math.min(12, base * Math.sqrt(S.view.zoom)) * ratio;
  const buckets = map.colors ? COLORMAP.length : 1;
  const paths = Array.from({ length: buckets }, () => new Path2D());
  const points = map.points, scale = mapScale(), cx = width / 2, cy = height / 2;
  for (let i = 0; i < map.count; i++) {
    const sx = cx + (points[2 * i] - S.view.cx) * scale, sy = cy - (points[2 * i + 1] - S.view.cy) * scale;
    if (sx < -size || sy < -size || sx > width + size || sy > height + size) continue;
    const bucket = map.colors ? Math.min(buckets - 1, Math.floor(map.colors[i] * buckets)) : 0;
    paths[bucket].rect(sx - size / 2, sy - size / 2, size, size);
  }
  paths.forEach((path, bucket) => {
    context.fillStyle = map.colors ? COLORMAP[bucket] : "#7fa7c9";
    context.fill(path);
  });
  context.lineWidth = 1.5 * ratio;
  if (S.path.length > 1) {
    context.strokeStyle = "#e5534baa";
    context.beginPath();
    S.path.forEach(([x, y], i) => { const [sx, sy] = toScreen(x, y); i ? context.lineTo(sx, sy) : context.moveTo(sx, sy); });
    context.stroke();
  }
  context.strokeStyle = "#ffffffaa";
  for (const index of S.neighbours) ring(context, points[2 * index], points[2 * index + 1], 5 * ratio);
  if (S.hover >= 0) { context.strokeStyle = "#fff"; ring(context, points[2 * S.hover], points[2 * S.hover + 1], 7 * ratio); }
  if (S.marker) {
    const [sx, sy] = toScreen(...S.marker);
    context.strokeStyle = "#f0b429";
    context.lineWidth = 2 * ratio;
    context.beginPath();
    context.arc(sx, sy, 8 * ratio, 0, 2 * Math.PI);
    context.moveTo(sx - 13 * ratio, sy); context.lineTo(sx + 13 * ratio, sy);
    context.moveTo(sx, sy - 13 * ratio); context.lineTo(sx, sy + 13 * ratio);
    context.stroke();
  }
}

function ring(context, x, y, radius) {
  const [sx, sy] = toScreen(x, y);
  context.beginPath();
  context.arc(sx, sy, radius, 0, 2 * Math.PI);
  context.stroke();
}

async function loadMap() {
  const query = { ...S.mapQuery };
  const color = $("#map-color").value;
  $("#map-status").textContent = query.mode === "data" ? "encoding the data set…" : "projecting…";
  const params = new URLSearchParams({ ...query, ...(color ? { color } : {}) });
  try {
    const map = await api(`/api/map?${params}`);
    S.map = { ...map, points: Float32Array.from(map.points), colors: map.color };
    S.neighbours = []; S.hover = -1;
    const legend = color ? ` · colour: predicted ${color} (dark low, yellow high)` : "";
    $("#map-status").textContent = `${map.count} points · ${query.mode} · ${query.method}${legend}`;
    drawMap();
    locateCurrent();
  } catch (error) {
    S.map = null;
    $("#map-status").textContent = error.message;
    drawMap();
  }
}

function nearestOnScreen(px, py, radius) {
  if (!S.map) return -1;
  let best = -1, bestDistance = radius * radius;
  const points = S.map.points;
  for (let i = 0; i < S.map.count; i++) {
    const [sx, sy] = toScreen(points[2 * i], points[2 * i + 1]);
    const distance = (sx - px) ** 2 + (sy - py) ** 2;
    if (distance < bestDistance) { bestDistance = distance; best = i; }
  }
  return best;
}

async function pickOnMap(x, y) {
  const body = { ...S.mapQuery, x, y, snap: $("#map-snap").checked, k: number("#map-k") };
  const picked = await api("/api/map/pick", body);
  S.neighbours = picked.neighbours;
  const label = picked.label || (body.snap ? `${body.mode} point ${picked.index}` : `${body.mode} blend`);
  setLatent(picked.latent, { base: picked.trajectory, label, marker: [picked.x, picked.y] });
  await renderCurrent({ play: true });
}

let locateToken = 0;
async function locateCurrent() {
  if (!S.map || !S.latent.length) return;
  const token = ++locateToken;
  try {
    const { positions } = await api("/api/map/locate", { ...S.mapQuery, latents: [S.latent] });
    if (token === locateToken) { S.marker = positions[0]; drawMap(); }
  } catch (_) { /* the marker is a nicety */ }
}

async function showPath(latents) {
  if (!S.map) return;
  const { positions } = await api("/api/map/locate", { ...S.mapQuery, latents });
  S.path = positions;
  drawMap();
}

function setupMap() {
  let drag = null;
  const canvasPoint = (event) => {
    const ratio = window.devicePixelRatio || 1, rect = mapCanvas.getBoundingClientRect();
    return [(event.clientX - rect.left) * ratio, (event.clientY - rect.top) * ratio];
  };
  mapCanvas.addEventListener("mousedown", (event) => {
    const [px, py] = canvasPoint(event);
    drag = { px, py, cx: S.view.cx, cy: S.view.cy, moved: false };
  });
  window.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const wasClick = !drag.moved && event.target === mapCanvas;
    mapCanvas.classList.remove("dragging");
    drag = null;
    if (wasClick) guard(pickOnMap)(...toMap(...canvasPoint(event)));
  });
  mapCanvas.addEventListener("mousemove", (event) => {
    const [px, py] = canvasPoint(event);
    if (drag) {
      if (Math.hypot(px - drag.px, py - drag.py) > 4) { drag.moved = true; mapCanvas.classList.add("dragging"); }
      if (drag.moved) {
        const scale = mapScale();
        S.view.cx = drag.cx - (px - drag.px) / scale;
        S.view.cy = drag.cy + (py - drag.py) / scale;
        drawMap();
        return;
      }
    }
    const hover = nearestOnScreen(px, py, 10 * (window.devicePixelRatio || 1));
    const tip = $("#map-tip");
    if (hover !== S.hover) { S.hover = hover; drawMap(); }
    if (hover >= 0 && S.map.labels && S.map.labels[hover]) {
      tip.textContent = S.map.labels[hover];
      tip.style.left = `${event.offsetX + 12}px`;
      tip.style.top = `${event.offsetY + 8}px`;
      tip.hidden = false;
    } else tip.hidden = true;
  });
  mapCanvas.addEventListener("mouseleave", () => { S.hover = -1; $("#map-tip").hidden = true; drawMap(); });
  mapCanvas.addEventListener("wheel", (event) => {
    event.preventDefault();
    const [px, py] = canvasPoint(event);
    const [mx, my] = toMap(px, py);
    S.view.zoom = Math.min(200, Math.max(0.5, S.view.zoom * Math.exp(-event.deltaY * 0.0015)));
    const [nx, ny] = toMap(px, py);  // keep the point under the cursor where it was
    S.view.cx += mx - nx; S.view.cy += my - ny;
    drawMap();
  }, { passive: false });
  mapCanvas.addEventListener("dblclick", () => { S.view = { zoom: 1, cx: 0, cy: 0 }; drawMap(); });
  new ResizeObserver(drawMap).observe(mapCanvas);

  $$("#map-modes button").forEach((button) => button.addEventListener("click", () => {
    $$("#map-modes button").forEach((other) => other.classList.toggle("on", other === button));
    S.mapQuery.mode = button.dataset.mode;
    $("#synth-controls").hidden = S.mapQuery.mode !== "synth";
    S.path = [];
    loadMap();
  }));
  $("#map-method").addEventListener("change", (event) => { S.mapQuery.method = event.target.value; loadMap(); });
  $("#map-color").addEventListener("change", loadMap);
  $("#synth-new").addEventListener("click", () => { S.mapQuery.seed = randomSeed(); loadMap(); });
  $("#synth-temperature").addEventListener("change", (event) => { S.mapQuery.temperature = Number(event.target.value) || 1; loadMap(); });
}
