#!/usr/bin/env python3
"""VKB's search box by meaning and the details panel's "similar knowledge", in headless Chromium,
against a vkb whose vector-search and inference gateway are up (VKBMeaningSearchTests).

  meaning_test.py --url URL --query TEXT --expect NAME --similar-of team:name --similar NAME
"""
import argparse
import os
import sys

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from page_test import browser, check, settled, wait_for  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--query", required=True)
    parser.add_argument("--expect", required=True)
    parser.add_argument("--similar-of", required=True)
    parser.add_argument("--similar", required=True)
    args = parser.parse_args()
    base = args.url.rstrip("/")

    driver = browser()
    try:
        team = args.similar_of.split(":", 1)[0]
        driver.get(base + "/?teams=" + team)
        settled(driver, timeout=30)
        driver.find_element(By.ID, "search").send_keys(args.query, Keys.ENTER)
        wait_for(driver, "return document.getElementById('search-results').dataset.mode;", what="search results")
        results = driver.execute_script("return [...document.querySelectorAll('#search-results a')].map(a => a.textContent);")
        mode = driver.execute_script("return document.getElementById('search-results').dataset.mode;")
        degraded = driver.find_element(By.ID, "search-degraded")
        check(mode == "hybrid" and not degraded.is_displayed(), f"the search box searches by meaning and words, not degraded (mode {mode})")
        check(results[:1] == [args.expect], f"'{args.query}' finds {args.expect} first by meaning, in the team chosen: {results}")
        check("q=" in driver.current_url, f"the URL keeps the search: {driver.current_url}")

        driver.get(base + "/?teams=" + team + "&selected=" + args.similar_of.replace(":", "%3A"))
        settled(driver, timeout=30)
        wait_for(driver, "return document.getElementById('d-similar').dataset.state === 'loaded';", what="similar knowledge")
        similar = driver.execute_script("return [...document.querySelectorAll('#d-similar a')].map(a => a.textContent);")
        own = args.similar_of.split(":", 1)[1]
        check(similar[:1] == [args.similar] and own not in similar, f"the details panel lists similar knowledge, {args.similar} first, not itself: {similar}")
        driver.find_element(By.CSS_SELECTOR, "#d-similar a").click()
        wait_for(driver, f"return document.getElementById('d-name').textContent === {args.similar!r};", what="the similar entity's details")
        print("ok: a similar entity opens on click", flush=True)
    finally:
        driver.quit()
    print("PASS", flush=True)


if __name__ == "__main__":
    main()
