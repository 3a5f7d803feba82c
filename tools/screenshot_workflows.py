"""Opens every workflows/*.json in ComfyUI's real frontend (headless Chromium) and writes a screenshot of
each, the thumbnails for ComfyUI's template browser (workflows/<name>.jpg), and what the frontend made of
the graph (dialogs shown, node sizes it wants, the graph as it serializes it back).

    # a ComfyUI with this pack in custom_nodes, e.g. as in docs/comfyui_integration.md, then:
    python tools/screenshot_workflows.py --url http://127.0.0.1:8188 --out /tmp/shots [--thumbnails]

Needs the `playwright` package and a Chromium (Debian: apt-get install chromium); no browser download.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEW = (3000, 1400)  # large enough that the whole graph fits at a readable zoom (LiteGraph drops widget text below 0.6)
THUMB_WIDTH = 960
MIN_TEXT_ZOOM = 0.62  # LiteGraph stops drawing widget text below 0.6


def graph_extent(graph: dict) -> tuple[float, float]:
    """Width and height of the graph's nodes and groups, in canvas units."""
    boxes = [(n["pos"][0], n["pos"][1] - 30, n["size"][0], n["size"][1] + 30) for n in graph["nodes"]]
    boxes += [tuple(g["bounding"]) for g in graph.get("groups", [])]
    return (max(x + w for x, _, w, _ in boxes) - min(x for x, _, _, _ in boxes),
            max(y + h for _, y, _, h in boxes) - min(y for _, y, _, _ in boxes))

FIT_AND_REPORT = """
async ([graph, name]) => {
  await window.app.loadGraphData(graph, true, true, name);
  await new Promise(r => setTimeout(r, 800));
  const canvas = window.app.canvas;
  const nodes = window.app.graph._nodes;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  const boxes = [...nodes.map(n => [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]),
                 ...(window.app.graph._groups || []).map(g => g._bounding || g.bounding)];
  for (const [x, y, w, h] of boxes) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
  }
  const el = canvas.canvas;
  const rect = el.getBoundingClientRect();
  const margin = 30;
  const scale = Math.min((rect.width - 2 * margin) / (x1 - x0), (rect.height - 2 * margin) / (y1 - y0), 1.0);
  canvas.ds.scale = scale;
  canvas.ds.offset = [-x0 + (rect.width / scale - (x1 - x0)) / 2, -y0 + (rect.height / scale - (y1 - y0)) / 2];
  canvas.setDirty(true, true);
  canvas.draw(true, true);
  await new Promise(r => setTimeout(r, 500));
  const wanted = nodes.map(n => ({id: n.id, type: n.type, pos: [...n.pos], size: [...n.size],
                                  min: n.computeSize ? [...n.computeSize()] : null}));
  const dialogs = [...document.querySelectorAll('.p-dialog, [role="dialog"], .comfy-modal')]
      .filter(d => d.offsetParent !== null).map(d => d.innerText.slice(0, 500));
  const toasts = [...document.querySelectorAll('.p-toast-message')].map(d => d.innerText.slice(0, 300));
  const [ox, oy] = canvas.ds.offset;
  const screen = [rect.x + (x0 + ox) * scale, rect.y + (y0 + oy) * scale, (x1 - x0) * scale, (y1 - y0) * scale];
  return {scale, bbox: [x0, y0, x1 - x0, y1 - y0], screen, canvasRect: [rect.x, rect.y, rect.width, rect.height],
          nodes: wanted, dialogs, toasts, serialized: window.app.graph.serialize()};
}
"""


def resized(workflow: dict, drawn: list[dict]) -> list[str]:
    """Nodes the frontend drew at another size than the file says (it grows nodes whose contents need room)."""
    sizes = {node["id"]: node["size"] for node in workflow["nodes"]}
    return [f"{n['id']} {n['type']}: {sizes[n['id']]} -> {[round(v) for v in n['size']]}" for n in drawn
            if [round(v) for v in n["size"]] != sizes[n["id"]]]


def round_trip(workflow: dict, serialized: dict) -> list[str]:
    """What differs between the file and the graph the frontend serializes after loading it."""
    problems = []
    mine = {node["id"]: node for node in workflow["nodes"]}
    for node in serialized["nodes"]:
        ours = mine.get(node["id"])
        if ours is None or ours["type"] != node["type"]:
            problems.append(f"node {node['id']} {node['type']}: not in the file")
            continue
        if node.get("widgets_values", []) != ours.get("widgets_values", []):
            problems.append(f"node {node['id']}: widgets {node.get('widgets_values')} != {ours.get('widgets_values')}")
        linked = [(i["name"], i["type"], i.get("link")) for i in node["inputs"] if i.get("link") is not None]
        if linked != [(i["name"], i["type"], i["link"]) for i in ours["inputs"] if i.get("link") is not None]:
            problems.append(f"node {node['id']}: inputs {linked}")
        outs = [(o["name"], o["type"], o.get("links") or []) for o in node["outputs"]]
        if outs != [(o["name"], o["type"], o.get("links") or []) for o in ours["outputs"]]:
            problems.append(f"node {node['id']}: outputs {outs}")
    if len(serialized["nodes"]) != len(workflow["nodes"]):
        problems.append(f"{len(serialized['nodes'])} nodes after loading, {len(workflow['nodes'])} in the file")
    if [list(link) for link in serialized["links"]] != workflow["links"]:
        problems.append("links differ")
    if len(serialized.get("groups", [])) != len(workflow.get("groups", [])):
        problems.append("groups differ")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8188")
    parser.add_argument("--out", type=Path, required=True, help="folder for screenshots and reports")
    parser.add_argument("--thumbnails", action="store_true", help="also write workflows/<name>.jpg")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("names", nargs="*", help="workflow names (default: all)")
    args = parser.parse_args()

    from PIL import Image
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    paths = sorted((ROOT / "workflows").glob("*.json"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=args.chromium, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"])
        page = browser.new_page(viewport={"width": VIEW[0], "height": VIEW[1]})
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.goto(args.url)
        page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=120_000)
        page.wait_for_timeout(3000)
        page.keyboard.press("Escape")  # a first-run dialog, if any
        page.evaluate("""async () => {  // a clean canvas for the pictures: no minimap, no render stats
          // the missing-models dialog (the pack's workflows name their files for download) would cover the graph
          for (const [id, value] of [["Comfy.Minimap.Visible", false], ["Comfy.Graph.CanvasInfo", false],
                                     ["Comfy.Workflow.ShowMissingModelsWarning", false]])
            await window.app.extensionManager.setting.set(id, value);
        }""")
        reports = {}
        for path in paths:
            console.clear()
            # A wide graph (the super-resolution ones) gets a wider page, so it fits at a zoom that still draws text.
            width, height = graph_extent(json.loads(path.read_text()))
            page.set_viewport_size({"width": max(VIEW[0], int(width * MIN_TEXT_ZOOM) + 80),
                                    "height": max(VIEW[1], int(height * MIN_TEXT_ZOOM) + 80)})
            report = page.evaluate(FIT_AND_REPORT, [json.loads(path.read_text()), path.name])
            report["console"] = list(console)
            shot = args.out / f"{path.stem}.png"
            page.screenshot(path=str(shot))
            x, y, w, h = report["screen"]
            margin = 16
            graph = Image.open(shot).crop((int(x) - margin, int(y) - margin, int(x + w) + margin, int(y + h) + margin))
            graph.save(args.out / f"{path.stem}_graph.png")
            report["resized"] = resized(json.loads(path.read_text()), report["nodes"])
            report["round_trip"] = round_trip(json.loads(path.read_text()), report.pop("serialized"))
            if args.thumbnails:
                thumb = graph.convert("RGB")
                thumb.thumbnail((THUMB_WIDTH, THUMB_WIDTH))
                thumb.save(ROOT / "workflows" / f"{path.stem}.jpg", quality=85, optimize=True)
            reports[path.stem] = report
            print(path.stem, "| dialogs:", report["dialogs"], "| toasts:", report["toasts"], "| scale:",
                  round(report["scale"], 3), "| resized by the frontend:", report["resized"],
                  "| round trip differences:", report["round_trip"], "| console:", report["console"])
        (args.out / "report.json").write_text(json.dumps(reports, indent=1))
        browser.close()


if __name__ == "__main__":
    main()
