// A running `emu load` (or the last few), drawn with Plotly: throughput, latency and running
// instances over the run. Polls GET /_emu/load once a second; Plotly's JavaScript is fetched
// (from the `plotly` package, through emu) only once there is a load to show.
"use strict";
(function () {
  const section = document.getElementById("load");
  let plotly = null;
  let shown = "";

  function loadPlotly() {
    if (plotly === null) {
      plotly = new Promise((resolve, reject) => {
        const tag = document.createElement("script");
        tag.src = "/_emu/load/plotly.js";
        tag.onload = () => resolve(window.Plotly);
        tag.onerror = () => reject(new Error("no Plotly"));
        document.head.appendChild(tag);
      });
    }
    return plotly;
  }

  function layout(title, yTitle) {
    return {
      title: { text: title, font: { size: 13 } }, height: 220,
      margin: { l: 50, r: 10, t: 30, b: 35 }, xaxis: { title: "s" }, yaxis: { title: yTitle },
      showlegend: true, legend: { orientation: "h" },
    };
  }

  function traces(runs, pick) {
    const out = [];
    for (const run of runs) {
      const t = run.points.map((p) => p.elapsed);
      for (const [name, key, dash] of pick) {
        out.push({ x: t, y: run.points.map((p) => p[key]), name: `${run.run}${name}`,
                   mode: "lines", line: { dash: dash, shape: key === "running" ? "hv" : "linear" } });
      }
    }
    return out;
  }

  function skeleton() {
    section.innerHTML =
      '<h2>Load <span id="load-state" class="muted"></span></h2>' +
      '<div class="row"><div id="load-rps" class="grow"></div><div id="load-latency" class="grow">' +
      '</div><div id="load-instances" class="grow"></div></div>';
  }

  async function draw(data) {
    const runs = data.runs.filter((r) => r.points.length > 0);
    if (runs.length === 0) return;
    const Plotly = await loadPlotly();
    if (section.hidden) { skeleton(); section.hidden = false; }
    const last = runs[runs.length - 1];
    document.getElementById("load-state").textContent =
      `${last.run}: ${last.done ? "done" : "running"}`;
    const config = { displayModeBar: false, responsive: true };
    Plotly.react("load-rps", traces(runs, [[": answers/s", "rps", "solid"], [": errors", "errors", "dot"]]),
                 layout("Throughput", "per second"), config);
    Plotly.react("load-latency", traces(runs, [[": p50", "p50_ms", "solid"], [": p99", "p99_ms", "dash"]]),
                 layout("Latency", "ms"), config);
    Plotly.react("load-instances", traces(runs, [["", "running", "solid"]]),
                 layout("Instances running", "instances"), config);
  }

  async function poll() {
    try {
      const resp = await fetch("/_emu/load");
      if (resp.ok) {
        const data = await resp.json();
        const key = JSON.stringify(data.runs.map((r) => [r.run, r.points.length, r.done]));
        if (key !== shown) { shown = key; await draw(data); }
      }
    } catch {
      // emu away or Plotly missing: try again on the next tick
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
