#!/usr/bin/env python3
"""VKB's page in headless Chromium (Debian's chromium + chromium-driver, through Selenium).

Run by VKBBrowserTests against real graph-store and vkb processes seeded with VKBFixtures.seed:

  page_test.py --url http://127.0.0.1:PORT/ --ukb PATH --screenshots DIR --store-pid PID

Prints one line per check; exits 1 at the first failed one (with what it saw).
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)
    print(f"ok: {message}", flush=True)


def wait_for(driver, script, timeout=15, what="condition"):
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    fail(f"timed out waiting for {what} (last value {value!r})")


def browser():
    options = Options()
    for argument in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--disable-dev-shm-usage"]:
        options.add_argument(argument)
    options.binary_location = os.environ.get("KB_CHROMIUM", "/usr/bin/chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(os.environ.get("KB_CHROMEDRIVER", "/usr/bin/chromedriver")), options=options)


def settled(driver, nodes=None, timeout=20):
    script = "const c = document.getElementById('graph'); return c.dataset.state === 'settled' && window.vkb && window.vkb.ready ? c.dataset.nodes : null;"
    if nodes is None:
        return int(wait_for(driver, script, timeout, "a settled drawing"))
    wait_for(driver, script.replace("? c.dataset.nodes", f"&& c.dataset.nodes === '{nodes}' ? c.dataset.nodes"), timeout, f"a settled drawing of {nodes} nodes")
    return nodes


def click_node(driver, node_id):
    canvas = driver.find_element(By.ID, "graph")
    position = driver.execute_script("return window.vkb.view.screenPosition(arguments[0]);", node_id)
    if position is None:
        fail(f"{node_id} is not drawn")
    size = canvas.size
    # Selenium 4 offsets are from the element's centre.
    ActionChains(driver).move_to_element_with_offset(canvas, int(position["x"] - size["width"] / 2), int(position["y"] - size["height"] / 2)).click().perform()


def no_script_ran(driver):
    try:
        alert = driver.switch_to.alert
        fail(f"an alert opened: {alert.text}")
    except NoAlertPresentException:
        pass
    pwned = driver.execute_script("return window.__pwned === undefined && document.querySelectorAll('img').length === 0;")
    check(pwned, "the hostile texts ran no script and made no <img>")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--ukb", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--store-pid", type=int, required=True)
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    base = args.url.rstrip("/")

    driver = browser()
    try:
        driver.get(base + "/")
        count = settled(driver)
        check(count == 5, f"the seeded graph is drawn with 5 nodes (drew {count})")
        links = driver.find_element(By.ID, "graph").get_attribute("data-links")
        check(links == "4", f"and 4 links (drew {links})")
        check(driver.find_element(By.ID, "stat-entities").text == "5", "the stats bar counts 5 entities")
        legend = driver.find_element(By.ID, "legend").text
        check("Pattern (2)" in legend and "Bug (1)" in legend, f"the legend lists the types with counts: {legend!r}")
        check("<img src=x onerror=alert(1)>" in legend, "the hostile type shows as text in the legend")
        no_script_ran(driver)
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-graph.png"))

        # Search by a word that is only in an observation.
        box = driver.find_element(By.ID, "search")
        box.send_keys("jitter", Keys.ENTER)
        wait_for(driver, "return [...document.querySelectorAll('#search-results a')].map(a => a.textContent).join('|')", what="search results")
        results = driver.execute_script("return [...document.querySelectorAll('#search-results a')].map(a => a.textContent);")
        check(results == ["RetryPolicy"], f"search for an observation word finds RetryPolicy: {results}")
        degraded = driver.find_element(By.ID, "search-degraded")
        check(degraded.is_displayed() and "Degraded" in degraded.text and "search by meaning is unavailable" in degraded.text,
              f"without vector-search and the gateway the page says the search is degraded to words: {degraded.text!r}")

        # Click a node: its details and neighbours.
        click_node(driver, "coding:RetryPolicy")
        wait_for(driver, "return document.getElementById('d-name').textContent === 'RetryPolicy';", what="details of RetryPolicy")
        outbound = driver.find_element(By.ID, "d-outbound").text
        inbound = driver.find_element(By.ID, "d-inbound").text
        check("works_with → CircuitBreaker" in outbound, f"details list the outbound relation: {outbound!r}")
        check("Payments Timeout → fixed_by" in inbound and "Hostile → <b>bold</b>" in inbound, f"and the inbound ones, markup as text: {inbound!r}")
        check(driver.find_element(By.ID, "d-type").text.strip() == "Pattern", "the type is shown")
        observations = driver.find_element(By.ID, "d-observations").text
        check("Use exponential backoff with jitter" in observations, "observations are shown")
        check("selected=coding%3ARetryPolicy" in driver.current_url, f"the URL keeps the selection: {driver.current_url}")
        # Focus mode: the neighbourhood alone, and back to the overview.
        settled(driver, "4")
        focus = driver.find_element(By.ID, "graph").get_attribute("data-focus")
        drawn = sorted(driver.execute_script("return window.vkb.view.nodes.map(n => n.name);"))
        check(focus == "coding:RetryPolicy" and drawn == ["CircuitBreaker", "Hostile", "Payments Timeout", "RetryPolicy"],
              f"clicking a node focuses on its neighbourhood alone: {focus!r} {drawn}")
        # A deeper neighbourhood is laid out in rings again: no node on top of another.
        driver.execute_script("const d = document.getElementById('depth'); d.value = '2'; d.dispatchEvent(new Event('input'));")
        settled(driver, "5")
        overlapping = driver.execute_script("""
            const v = window.vkb.view, found = [];
            for (const a of v.nodes) for (const b of v.nodes) {
              if (a.id < b.id && Math.hypot(a.x - b.x, a.y - b.y) < v.radius(a) + v.radius(b)) found.push([a.name, b.name]);
            }
            return found;""")
        check(not overlapping, f"depth 2 adds Use Deadlines, and no node overlaps another: {overlapping}")
        driver.execute_script("const d = document.getElementById('depth'); d.value = '1'; d.dispatchEvent(new Event('input'));")
        settled(driver, "4")
        wait_for(driver, "return document.getElementById('d-similar').dataset.state === 'unavailable';", what="the similar-knowledge list")
        similar = driver.find_element(By.ID, "d-similar").text
        check("unavailable" in similar, f"similar knowledge says search by meaning is unavailable: {similar!r}")
        check(driver.find_element(By.ID, "banner").get_attribute("class").find("hidden") >= 0, "and no graph-store banner for it")
        driver.find_element(By.ID, "show-all").click()
        settled(driver, "5")
        check(driver.find_element(By.ID, "graph").get_attribute("data-focus") == "" and not driver.find_element(By.ID, "show-all").is_enabled(),
              "'Back to the overview' draws the whole graph again")
        click_node(driver, "coding:RetryPolicy")
        settled(driver, "4")
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-details.png"))

        # A relation link moves the selection; back and forward walk the history.
        driver.find_element(By.XPATH, "//ul[@id='d-outbound']//a").click()
        wait_for(driver, "return document.getElementById('d-name').textContent === 'CircuitBreaker';", what="details of CircuitBreaker")
        driver.find_element(By.ID, "back").click()
        wait_for(driver, "return document.getElementById('d-name').textContent === 'RetryPolicy';", what="back to RetryPolicy")
        driver.find_element(By.ID, "forward").click()
        wait_for(driver, "return document.getElementById('d-name').textContent === 'CircuitBreaker';", what="forward to CircuitBreaker")
        print("ok: relation links, back and forward move through the selection history", flush=True)

        # The hostile entity's details: its observation is text.
        driver.get(base + "/?selected=coding%3AHostile")
        settled(driver)
        wait_for(driver, "return document.getElementById('d-name').textContent === 'Hostile';", what="details of Hostile")
        text = driver.find_element(By.ID, "d-observations").text
        check("<script>window.__pwned = 1</script>" in text, f"the hostile observation shows as text: {text!r}")
        no_script_ran(driver)

        # A filter hides a type; the URL keeps it.
        driver.get(base + "/")
        settled(driver, "5")
        box = driver.find_element(By.CSS_SELECTOR, "#filter-types input[data-name='Bug']")
        box.click()
        settled(driver, "4")
        types = driver.execute_script("return window.vkb.view.nodes.map(n => n.entityType);")
        check("Bug" not in types and len(types) == 4, f"unchecking Bug hides it: {types}")
        check("hideTypes=Bug" in driver.current_url, f"the URL keeps the filter: {driver.current_url}")
        shared = driver.current_url
        driver.get(shared)
        settled(driver, "4")
        check(not driver.find_element(By.CSS_SELECTOR, "#filter-types input[data-name='Bug']").is_selected(), "a shared link restores the filter")

        # Live refresh: an entity added with ukb appears without reloading.
        driver.get(base + "/")
        settled(driver, "5")
        driver.execute_script("window.__sameDocument = true;")
        subprocess.run([args.ukb, "add-entity", "--team", "coding", "--name", "Bulkhead", "--type", "Pattern", "--observation", "Isolate pools"], check=True, capture_output=True)
        settled(driver, "6", timeout=20)
        check(driver.execute_script("return window.__sameDocument === true;"), "an entity added with ukb appears without a reload")

        # Drop a shared-memory file: preview, then import.
        document = {"metadata": {"team": "coding"}, "entities": [{"name": "Dropped One", "entityType": "Note"}, {"name": "Dropped Two", "entityType": "Note"}], "relations": [{"from": "Dropped One", "to": "Dropped Two", "relationType": "next"}]}
        driver.execute_script("""
            const data = new DataTransfer();
            data.items.add(new File([arguments[0]], 'shared-memory-drop.json', {type: 'application/json'}));
            document.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
        """, json.dumps(document))
        wait_for(driver, "return !document.getElementById('import-confirm').disabled;", what="the import preview")
        summary = driver.find_element(By.ID, "import-summary").text
        check("2 entities (2 new" in summary and "1 relations" in summary, f"dropping a file previews it: {summary!r}")
        driver.find_element(By.ID, "import-confirm").click()
        settled(driver, "8", timeout=20)
        print("ok: confirming the preview imports it", flush=True)

        # Zoom buttons work (the transform changes).
        before = driver.execute_script("return window.vkb.view.transform.k;")
        driver.find_element(By.ID, "zoom-in").click()
        time.sleep(0.5)
        after = driver.execute_script("return window.vkb.view.transform.k;")
        check(after > before, f"zoom in scales the drawing ({before} → {after})")
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-after-import.png"))

        # The graph store goes away: the page says so instead of going blank.
        os.kill(args.store_pid, signal.SIGTERM)
        wait_for(driver, "const b = document.getElementById('banner'); return !b.classList.contains('hidden') && b.textContent.includes('Graph store unavailable');", timeout=20, what="the unavailable banner")
        nodes = driver.find_element(By.ID, "graph").get_attribute("data-nodes")
        check(nodes == "8", f"the banner says the graph store is unavailable and the drawing stays ({nodes} nodes)")
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-store-down.png"))

        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE" and "503" not in entry["message"] and "Failed to fetch" not in entry["message"]]
        check(not severe, f"no script errors in the console: {severe}")
    finally:
        driver.quit()
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
