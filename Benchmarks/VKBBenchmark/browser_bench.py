#!/usr/bin/env python3
"""The browser half of vkb-benchmark: VKB's page in headless Chromium, beside a classic D3 SVG
force-directed drawing of the same nodes and links (the original visualizer's way: one SVG
element per node and link, attributes updated on every tick).

  browser_bench.py --url http://127.0.0.1:PORT/ --team TEAM
"""
import argparse
import json
import os
import statistics
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

D3 = os.environ.get("KB_VKB_D3_PATH", "/usr/share/nodejs/d3/dist/d3.min.js")

REFERENCE_PAGE = """<!doctype html><html><head><meta charset="utf-8"><style>html,body{margin:0;height:100%}svg{width:100%;height:100%}</style></head>
<body><svg id="svg"><g id="root"></g></svg><script src="file://D3_PATH"></script><script>
window.drawSVG = function (data, done) {
  const start = performance.now();
  const svg = d3.select('#svg'), root = d3.select('#root');
  const width = svg.node().clientWidth, height = svg.node().clientHeight;
  const color = d3.scaleOrdinal(d3.schemeTableau10);
  const link = root.append('g').attr('stroke', '#999').selectAll('line').data(data.links).enter().append('line');
  const node = root.append('g').selectAll('circle').data(data.nodes).enter().append('circle')
      .attr('r', d => 3 + d.significance * 0.7).attr('fill', d => color(d.entityType));
  const label = root.append('g').selectAll('text').data(data.nodes).enter().append('text').text(d => d.name).attr('font-size', 10);
  const simulation = d3.forceSimulation(data.nodes)
      .force('link', d3.forceLink(data.links).id(d => d.id))
      .force('charge', d3.forceManyBody())
      .force('center', d3.forceCenter(width / 2, height / 2));
  simulation.on('tick', () => {
    link.attr('x1', d => d.source.x).attr('y1', d => d.source.y).attr('x2', d => d.target.x).attr('y2', d => d.target.y);
    node.attr('cx', d => d.x).attr('cy', d => d.y);
    label.attr('x', d => d.x + 6).attr('y', d => d.y + 3);
  });
  window.zoom = d3.zoom().on('zoom', () => root.attr('transform', d3.event.transform));
  svg.call(window.zoom);
  simulation.on('end', () => requestAnimationFrame(() => done({ settled: performance.now() - start })));
};
window.benchmarkZoom = function (frames, done) {
  const svg = d3.select('#svg'), intervals = [];
  let last = performance.now(), frame = 0;
  const step = now => {
    intervals.push(now - last); last = now;
    window.zoom.scaleBy(svg, frame < frames / 2 ? 1.03 : 1 / 1.03);
    frame++;
    if (frame < frames) requestAnimationFrame(step); else done({ intervals: intervals.slice(1) });
  };
  requestAnimationFrame(step);
};
</script></body></html>"""


def browser():
    options = Options()
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--disable-dev-shm-usage", "--allow-file-access-from-files"]:
        options.add_argument(argument)
    options.binary_location = os.environ.get("KB_CHROMIUM", "/usr/bin/chromium")
    driver = webdriver.Chrome(service=Service(os.environ.get("KB_CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)
    driver.set_script_timeout(600)
    return driver


def summary(samples):
    samples = sorted(samples)
    return f"mean {statistics.mean(samples):6.1f} ms, p95 {samples[int(0.95 * (len(samples) - 1))]:6.1f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--team", required=True)
    args = parser.parse_args()

    driver = browser()
    try:
        started = time.time()
        driver.get(args.url)
        deadline = time.time() + 300
        while time.time() < deadline:
            state = driver.execute_script("return document.getElementById('graph').dataset.state")
            if state in ("settled", "error"):
                break
            time.sleep(0.05)
        wall = time.time() - started
        timings = driver.execute_script("""
            const v = window.vkb.view;
            return {nodes: v.nodes.length, links: v.links.length, dataLoaded: window.vkb.timings.dataLoaded,
                    layoutStart: v.timings.layoutStart, firstDraw: v.timings.firstDraw, settled: v.timings.settled, lastDraw: v.lastDrawMs};""")
        zoom = driver.execute_async_script("const done = arguments[arguments.length - 1]; window.vkb.view.benchmarkZoom(120).then(done);")
        print(f"ours (canvas): {timings['nodes']} nodes, {timings['links']} links")
        print(f"  navigation → data received {timings['dataLoaded']:7.0f} ms; → first frame {timings['firstDraw']:7.0f} ms; → layout settled, fully drawn {timings['settled']:7.0f} ms (wall clock incl. WebDriver {wall * 1000:.0f} ms)")
        print(f"  layout + drawing after the data arrived: {timings['settled'] - timings['dataLoaded']:7.0f} ms")
        print(f"  zooming: frame interval {summary(zoom['intervals'])}; draw {summary(zoom['draws'])}")

        graph = json.load(urllib.request.urlopen(args.url.rstrip('/') + f"/api/graph?team={args.team}"))
        with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False) as page:
            page.write(REFERENCE_PAGE.replace("D3_PATH", D3))
        driver.get("file://" + page.name)
        # Started, then polled: the SVG layout takes minutes, longer than one WebDriver call may.
        driver.execute_script("window.__svg = null; window.drawSVG(arguments[0], result => { window.__svg = result; });", graph)
        reference = None
        deadline = time.time() + 900
        while reference is None and time.time() < deadline:
            time.sleep(1)
            reference = driver.execute_script("return window.__svg;")
        if reference is None:
            print("reference (D3 SVG): not settled within 900 s")
            return
        reference_zoom = driver.execute_async_script("const done = arguments[arguments.length - 1]; window.benchmarkZoom(120, done);")
        os.unlink(page.name)
        print(f"reference (D3 SVG, one element per node, link and label; d3's default layout settings): {len(graph['nodes'])} nodes, {len(graph['links'])} links")
        print(f"  layout + drawing after the data arrived: {reference['settled']:7.0f} ms")
        print(f"  zooming: frame interval {summary(reference_zoom['intervals'])}")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
