// The map page: draw or upload an AOI, POST /predict with format "geojson", show the classes, legend and
// confidence, link the stored GeoTIFF. No basemap tiles: the page must work offline; the exact footprint each
// year is served over (GET /coverage) is drawn instead. A toggle swaps the classes for the quality layer
// (observed / gap-filled / missing features / unclassified).
"use strict";

const map = L.map("map", { zoomControl: true }).setView([40, 0], 10);
const state = {
  aoi: null, aoiLayer: null, resultLayer: null, qualityLayer: null, coverage: {}, classes: [], drawing: false, corners: [],
};
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

async function showCoverage(year) {
  if (!year) return;
  if (!state.coverage[year]) {
    const r = await fetch(`/coverage?year=${encodeURIComponent(year)}`);
    if (!r.ok) return;
    state.coverage[year] = await r.json();
  }
  if (state.coverageLayer) map.removeLayer(state.coverageLayer);
  state.coverageLayer = L.geoJSON(state.coverage[year], {
    style: { color: "#2a6df4", weight: 1, fillOpacity: 0.05 }, interactive: false,
  }).addTo(map);
  document.body.dataset.coverage = String(year);
  if (!state.aoi) map.fitBounds(state.coverageLayer.getBounds());
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
  else await showCoverage(select.value);
}

$("year").addEventListener("change", (e) => showCoverage(e.target.value));

$("show-quality").addEventListener("change", (e) => showLayer(e.target.checked));

function showLayer(quality) {
  const [on, off] = quality ? [state.qualityLayer, state.resultLayer] : [state.resultLayer, state.qualityLayer];
  if (off && map.hasLayer(off)) map.removeLayer(off);
  if (on && !map.hasLayer(on)) on.addTo(map);
  document.body.dataset.layer = quality ? "quality" : "classes";
}

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
  for (const layer of [state.resultLayer, state.qualityLayer]) if (layer) map.removeLayer(layer);
  state.resultLayer = L.geoJSON(body.geojson, {
    style: (f) => ({ color: colourOf(f.properties.class_code), weight: 0, fillOpacity: 0.75 }),
  });
  state.qualityLayer = L.geoJSON(body.quality_geojson, {
    style: (f) => ({ color: f.properties.colour, weight: 0, fillOpacity: 0.75 }),
  });
  showLayer($("show-quality").checked);
  document.body.dataset.resultLayer = "shown";
  $("confidence").textContent = `${(100 * body.avg_confidence).toFixed(1)} %`;
  const q = body.quality_fractions || {};
  const pct = (v) => `${(100 * (v || 0)).toFixed(1)} %`;
  $("classified").textContent = `${pct(body.classified_fraction)} (observed ${pct(q.observed)}, gap-filled ${pct(q.gap_filled)}, missing features ${pct(q.missing_features)})`;
  $("model").textContent = `${body.model.name} v${body.model.version}`;
  const tbody = document.querySelector("#areas tbody");
  tbody.innerHTML = "";
  for (const [name, ha] of Object.entries(body.class_areas_ha)) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${name}</td><td>${ha.toFixed(2)}</td>`;
    tbody.appendChild(tr);
  }
  $("download").href = body.download_path;
  $("download-quality").href = body.quality_download_path;
  $("prediction-id").textContent = body.prediction_id;
  $("result").hidden = false;
  setStatus(`Done in ${body.elapsed_ms} ms.`);
}

loadModels().catch((err) => setStatus(`Cannot reach the service: ${err.message}`, true));
