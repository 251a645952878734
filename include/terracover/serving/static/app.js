// The map page: draw or upload an AOI, POST /predict with format "geojson", show the classes, legend and
// confidence, link the stored GeoTIFF. No basemap tiles: the page must work offline; the covered region of each
// year is drawn instead so users know where composites exist.
"use strict";

const map = L.map("map", { zoomControl: true }).setView([40, 0], 10);
const state = { aoi: null, aoiLayer: null, resultLayer: null, coverage: {}, classes: [], drawing: false, corners: [] };
const $ = (id) => document.getElementById(id);

function setStatus(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

function colourOf(code) {
  const c = state.classes.find((k) => k.code === code);
  return c ? c.colour : "#000000";
}

function setAoi(geojson) {
  if (state.aoiLayer) map.removeLayer(state.aoiLayer);
  state.aoi = geojson;
  state.aoiLayer = L.geoJSON(geojson, { style: { color: "#222", weight: 2, fill: false, dashArray: "4 4" } }).addTo(map);
  map.fitBounds(state.aoiLayer.getBounds(), { maxZoom: 15 });
  $("predict").disabled = !$("year").value;
  setStatus("AOI ready: press Classify.");
}

function showCoverage(year) {
  const bbox = state.coverage[year];
  if (!bbox) return;
  if (state.coverageLayer) map.removeLayer(state.coverageLayer);
  const bounds = [[bbox[1], bbox[0]], [bbox[3], bbox[2]]];
  state.coverageLayer = L.rectangle(bounds, { color: "#2a6df4", weight: 1, fillOpacity: 0.05 }).addTo(map);
  if (!state.aoi) map.fitBounds(bounds);
}

async function loadModels() {
  const r = await fetch("/models");
  const body = await r.json();
  state.classes = body.classes;
  const select = $("year");
  select.innerHTML = "";
  for (const y of body.years) {
    const opt = document.createElement("option");
    opt.value = y.year;
    opt.textContent = `${y.year} (v${y.champion.version})`;
    select.appendChild(opt);
    state.coverage[y.year] = y.coverage_bbox;
  }
  if (body.years.length) select.value = String(Math.max(...body.years.map((y) => y.year)));  // newest first
  const legend = document.querySelector("#legend ul");
  legend.innerHTML = "";
  for (const c of body.classes) {
    const li = document.createElement("li");
    li.innerHTML = `<span class="swatch" style="background:${c.colour}"></span>${c.code} ${c.name}`;
    legend.appendChild(li);
  }
  if (body.years.length === 0) setStatus("No year has an approved model yet.", true);
  else showCoverage(select.value);
}

$("year").addEventListener("change", (e) => showCoverage(e.target.value));

$("draw").addEventListener("click", () => {
  state.drawing = !state.drawing;
  state.corners = [];
  $("draw").classList.toggle("active", state.drawing);
  setStatus(state.drawing ? "Click the first corner." : "");
});

map.on("click", (e) => {
  if (!state.drawing) return;
  state.corners.push(e.latlng);
  if (state.corners.length === 1) {
    setStatus("Click the opposite corner.");
    return;
  }
  const [a, b] = state.corners;
  const w = Math.min(a.lng, b.lng), e2 = Math.max(a.lng, b.lng), s = Math.min(a.lat, b.lat), n = Math.max(a.lat, b.lat);
  state.drawing = false;
  $("draw").classList.remove("active");
  setAoi({ type: "Polygon", coordinates: [[[w, s], [e2, s], [e2, n], [w, n], [w, s]]] });
});

$("upload").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    setAoi(JSON.parse(await file.text()));
  } catch (err) {
    setStatus(`Not a GeoJSON file: ${err.message}`, true);
  }
});

$("predict").addEventListener("click", async () => {
  if (!state.aoi) return;
  const year = Number($("year").value);
  setStatus("Classifying…");
  $("predict").disabled = true;
  try {
    const r = await fetch("/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ aoi: state.aoi, year, format: "geojson" }),
    });
    const body = await r.json();
    const error = Array.isArray(body) ? body[0].error : body.error;
    if (!r.ok || error) throw new Error(error || `HTTP ${r.status}`);
    showResult(body);
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    $("predict").disabled = false;
  }
});

function showResult(body) {
  if (state.resultLayer) map.removeLayer(state.resultLayer);
  state.resultLayer = L.geoJSON(body.geojson, {
    style: (f) => ({ color: colourOf(f.properties.class_code), weight: 0, fillOpacity: 0.75 }),
  }).addTo(map);
  document.body.dataset.resultLayer = "shown";
  $("confidence").textContent = `${(100 * body.avg_confidence).toFixed(1)} %`;
  $("model").textContent = `${body.model.name} v${body.model.version}`;
  const tbody = document.querySelector("#areas tbody");
  tbody.innerHTML = "";
  for (const [name, ha] of Object.entries(body.class_areas_ha)) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${name}</td><td>${ha.toFixed(2)}</td>`;
    tbody.appendChild(tr);
  }
  $("download").href = body.download_path;
  $("prediction-id").textContent = body.prediction_id;
  $("result").hidden = false;
  setStatus(`Done in ${body.elapsed_ms} ms.`);
}

loadModels().catch((err) => setStatus(`Cannot reach the service: ${err.message}`, true));
