#!/usr/bin/env python3
"""VKB's view of a coding session (a `Session` entity as `ukb learn` writes it), in headless
Chromium: the session's goal, its intents over time (one cell per exchange, in time order), its
steps, and links to the knowledge it produced and used; transcript text shown as text, never run.

Run by VKBBrowserTests against real graph-store and vkb processes seeded with a session:

  trajectory_test.py --url http://127.0.0.1:PORT/ --session-id team:name --intents a,b,c --produced X --used Y --screenshots DIR
"""
import argparse
import os
import sys
from urllib.parse import parse_qs, urlparse

from selenium.webdriver.common.by import By

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_test import browser, check, no_script_ran, settled, wait_for  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--session-id", required=True)
    parser.add_argument("--intents", required=True)
    parser.add_argument("--goal", required=True)
    parser.add_argument("--produced", required=True)
    parser.add_argument("--used", required=True)
    parser.add_argument("--screenshots", required=True)
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    base = args.url.rstrip("/")
    team = args.session_id.split(":", 1)[0]

    driver = browser()
    try:
        driver.get(base + "/?selected=" + args.session_id.replace(" ", "%20"))
        settled(driver, timeout=60)
        wait_for(driver, "return document.querySelectorAll('#d-intent-strip .intent-cell').length > 0;", what="the session's intent strip")
        intents = driver.execute_script("return [...document.querySelectorAll('#d-intent-strip .intent-cell')].map(c => c.dataset.intent);")
        check(intents == args.intents.split(","), f"intents over time, in time order: {intents}")
        titles = driver.execute_script("return [...document.querySelectorAll('#d-intent-strip .intent-cell')].map(c => c.title);")
        check(all("(" in t for t in titles), f"each cell says its time, intent and confidence: {titles}")
        goal = driver.find_element(By.ID, "d-goal").text
        check(args.goal in goal, f"the session's goal is shown: {goal!r}")
        steps = driver.find_elements(By.CSS_SELECTOR, "#d-steps li")
        check(len(steps) == len(intents), f"one step per exchange ({len(steps)})")
        produced = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#d-produced a")]
        used = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#d-used a")]
        check(produced == [args.produced], f"knowledge produced: {produced}")
        check(used == [args.used], f"knowledge used: {used}")
        text = driver.find_element(By.ID, "d-trajectory").text
        check("<img" in text, "hostile transcript text is shown as text")
        no_script_ran(driver)
        driver.save_screenshot(os.path.join(args.screenshots, "vkb-session.png"))

        # The link to what it produced opens that entity (and the trajectory section goes away).
        driver.find_element(By.CSS_SELECTOR, "#d-produced a").click()
        wait_for(driver, f"return document.getElementById('d-name').textContent === {args.produced!r};", what="the produced entity's details")
        check(driver.execute_script("return document.getElementById('d-trajectory').classList.contains('hidden');"), "no trajectory for a non-session entity")
        selected = parse_qs(urlparse(driver.current_url).query).get("selected", [])
        check(selected == [team + ":" + args.produced], f"the URL names the selection: {driver.current_url}")
        print("PASS trajectory view")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
