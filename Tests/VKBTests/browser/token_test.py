#!/usr/bin/env python3
"""VKB's page when KB_AUTH_TOKEN is set (reads need it): the page asks once per tab, keeps the
token in sessionStorage and sends it on every read, so the graph draws; a reload asks no more.

  token_test.py --url http://127.0.0.1:PORT/ --token TOKEN

Prints one line per check; exits 1 at the first failed one.
"""
import argparse
import time

from selenium.common.exceptions import NoAlertPresentException

from page_test import browser, check, fail, settled


def answer_prompt(driver, token, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            alert = driver.switch_to.alert
        except NoAlertPresentException:
            time.sleep(0.1)
            continue
        text = alert.text
        alert.send_keys(token)
        alert.accept()
        return text
    fail("the page never asked for the token")


def no_prompt(driver, seconds=2):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            alert = driver.switch_to.alert
            fail(f"a second prompt opened: {alert.text}")
        except NoAlertPresentException:
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    arguments = parser.parse_args()
    driver = browser()
    try:
        driver.get(arguments.url)
        text = answer_prompt(driver, arguments.token)
        check("KB_AUTH_TOKEN" in text, f"the page asks for the token to read ({text!r})")
        nodes = settled(driver)
        check(int(nodes) > 0, f"with the token the reads go through and the graph draws ({nodes} nodes)")
        check(driver.execute_script("return sessionStorage.getItem('vkb-token')") == arguments.token, "the token is kept in this tab's sessionStorage")
        no_prompt(driver)
        driver.refresh()
        nodes = settled(driver)
        check(int(nodes) > 0, "after a reload the tab's token is sent without asking again")
        no_prompt(driver)
        print("PASS", flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
