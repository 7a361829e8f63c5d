#!/usr/bin/env python3
"""VKB's focus mode on a hub, in headless Chromium: a node with 2,219 neighbours (as `zlib1g` has
in the Debian package graph) drawn alone when focused, its names never on top of each other, and
the way back to the overview.

Run by VKBBrowserTests against real graph-store and vkb processes seeded with a hub:

  focus_test.py --url http://127.0.0.1:PORT/ --hub-id team:name --neighbours N --overview N --screenshots DIR
"""
import argparse
import os
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_test import browser, check, fail, settled, wait_for  # noqa: E402

OVERLAPS = """
const boxes = window.vkb.view.placedLabels || [];
const found = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  if (a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1) found.push([a.text, b.text]);
}
return {count: boxes.filter(b => !b.relation).length, overlaps: found.slice(0, 5), names: boxes.map(b => b.text)};
"""


def labels(driver):
    driver.execute_script("window.vkb.view.draw();")
    return driver.execute_script(OVERLAPS)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--hub-id", required=True)
    parser.add_argument("--neighbours", type=int, required=True)
    parser.add_argument("--overview", type=int, required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    base = args.url.rstrip("/")
    hub = args.hub_id.split(":", 1)[1]

    driver = browser()
    try:
        driver.get(base + "/")
        count = settled(driver, timeout=60)
        check(count == args.overview, f"the overview draws {args.overview} nodes (drew {count})")
        seen = labels(driver)
        check(not seen["overlaps"], f"no two names overlap in the overview ({seen['count']} placed): {seen['overlaps']}")

        # Open the hub from a word search.
        driver.find_element(By.ID, "search-mode").send_keys("words")
        driver.find_element(By.ID, "search").send_keys(hub, Keys.ENTER)
        wait_for(driver, f"return document.querySelector('#search-results a[data-id=\"{args.hub_id}\"]');", what="the hub in the search results")
        driver.find_element(By.CSS_SELECTOR, f"#search-results a[data-id=\"{args.hub_id}\"]").click()
        expected = args.neighbours + 1
        settled(driver, str(expected), timeout=60)
        drawn = driver.execute_script("return window.vkb.view.nodes.length;")
        check(drawn == expected, f"focus mode draws the hub and its {args.neighbours} neighbours alone ({drawn} nodes, not on top of the overview)")
        check(driver.find_element(By.ID, "graph").get_attribute("data-focus") == args.hub_id, "the canvas says what it focuses on")
        status = driver.find_element(By.ID, "focus-status").text
        check(f"{args.neighbours + 1:,} entities" in status, f"the side panel says so: {status!r}")
        check("focus=" in driver.current_url, f"the URL keeps the focus: {driver.current_url}")

        seen = labels(driver)
        check(not seen["overlaps"], f"no two names overlap around the hub: {seen['overlaps']}")
        check(hub in seen["names"], "the hub's own name is placed first")
        check(10 <= seen["count"] < expected, f"as many names as fit are drawn, not all {expected} ({seen['count']} placed)")
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-focus-hub.png"))

        # Zooming in makes room for more names, still apart.
        before = seen["count"]
        for _ in range(3):
            driver.find_element(By.ID, "zoom-in").click()
        wait_for(driver, "return window.vkb.view.transform.k > 0;", what="zoom")
        import time
        time.sleep(1.0)
        zoomed = labels(driver)
        check(not zoomed["overlaps"], f"zoomed in, still no overlap: {zoomed['overlaps']}")
        check(zoomed["count"] >= 5, f"zoomed in, names are still drawn ({before} → {zoomed['count']})")
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-focus-hub-zoomed.png"))

        # A shared link opens the same focus.
        shared = driver.current_url
        driver.get(shared)
        settled(driver, str(expected), timeout=60)
        print("ok: a shared link opens the focus", flush=True)

        # Back to the overview.
        driver.find_element(By.ID, "show-all").click()
        settled(driver, str(args.overview), timeout=60)
        check(driver.find_element(By.ID, "graph").get_attribute("data-focus") == "", "'Back to the overview' draws the overview again")
        check("focus=" not in driver.current_url, f"and the URL forgets the focus: {driver.current_url}")

        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and "/api/similar" not in entry["message"]]
        check(not severe, f"no script errors in the console: {severe}")
    finally:
        driver.quit()
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
