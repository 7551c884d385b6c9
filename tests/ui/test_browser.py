"""`salmonn-o1 ui` in a real browser: headless Chromium (selenium) against the command run as a
subprocess on a free loopback port, with the shipped model.

The page must show the answer the pipeline gives for the bundled clip's question, its steps with
their times marked, and the frame strip with a highlighted frame; a question without text is one
message in the page. Skipped only when gradio, selenium, Chromium or its driver is missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

gradio = pytest.importorskip("gradio", reason="the ui extra is not installed (pip install 'salmonn-o1[ui]')")
selenium = pytest.importorskip("selenium", reason="selenium is not installed (pip install 'salmonn-o1[ui]')")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip("no Chromium or chromedriver on PATH (Debian: apt-get install chromium chromium-driver)",
                allow_module_level=True)

from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from salmonn_o1.ui.app import SAMPLE_DIR  # noqa: E402
from salmonn_o1.ui.timeline import HIGHLIGHT, find_times  # noqa: E402

from local_server import free_port, stop, wait_until_ready  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ITEM = json.loads((SAMPLE_DIR / "item.json").read_text())
MAX_NEW_TOKENS = 96  # the shipped model's steps for this clip take about 60 tokens


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("ui") / "server.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "salmonn_o1", "ui", "--port", str(port), "--threads", "1",
                                    "--device", "cpu", "--max-new-tokens", str(MAX_NEW_TOKENS)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"

    def answers() -> bool:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200

    wait_until_ready(process, answers, log, "salmonn-o1 ui", 60, interval_s=0.5)
    yield url
    stop(process, timeout_s=10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1500"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def expected():
    """What the same pipeline answers in-process, with the page's settings (greedy)."""
    from salmonn_o1.inference import SalmonnO1Pipeline

    pipeline = SalmonnO1Pipeline.from_pretrained(None, device="cpu")
    return pipeline.ask(SAMPLE_DIR / ITEM["video"], ITEM["question"], ITEM["options"],
                        max_new_tokens=MAX_NEW_TOKENS, answer_max_new_tokens=64)


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def test_the_page_answers_the_bundled_question_and_marks_its_times(server, browser, expected, tmp_path):
    wait = WebDriverWait(browser, 45, poll_frequency=0.2)
    browser.get(server)
    wait.until(lambda d: d.find_elements(By.ID, "ask"))
    assert "trained only on AVR-Synth" in text_of(browser, "model-note")

    browser.find_element(By.CSS_SELECTOR, "#ask").click()  # nothing chosen yet
    wait.until(lambda d: "is empty" in text_of(d, "status") or "no video" in text_of(d, "status"))
    assert "the question is empty" in text_of(browser, "status")

    example = browser.find_element(By.XPATH, f"//*[@id='examples']//button[contains(., '{ITEM['video']}:')]")
    example.click()
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#question textarea").get_attribute("value")
               == ITEM["question"])
    browser.find_element(By.CSS_SELECTOR, "#ask").click()
    wait.until(lambda d: "Answer" in text_of(d, "answer"))

    assert text_of(browser, "answer").startswith(f"Answer: {expected.answer}. ")
    shown_steps = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#steps li")]
    assert len(shown_steps) == len(expected.steps)
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#steps mark.time")]
    expected_spans = [span for step in expected.steps for span in find_times(step)]
    assert marks and [span for mark in marks for span in find_times(mark)] == expected_spans
    assert f"reasoning {expected.tokens['reasoning']}" in text_of(browser, "facts")

    source = browser.find_element(By.CSS_SELECTOR, "#timeline img").get_attribute("src")
    with urllib.request.urlopen(source, timeout=10) as response:
        strip = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"))
    assert (strip == np.array(HIGHLIGHT, np.uint8)).all(-1).any(), "no frame of the strip is highlighted"

    browser.save_screenshot(str(tmp_path / "ui.png"))
    if os.environ.get("SALMONN_UI_SCREENSHOT"):  # the README's picture: SALMONN_UI_SCREENSHOT=docs/images/ui.png
        browser.save_screenshot(os.environ["SALMONN_UI_SCREENSHOT"])
