"""What a user does on MLflow 3.17's experiment runs page, as Selenium steps (for test_mlflow_ui_browser.py).

Why a module of its own: the page is a React app whose CSS class names are generated per build, so
each step finds elements by what a user sees (visible text, roles, aria labels, input values) and
the test reads as the user's path. Imports Selenium: import it only once the browser check passed.
"""

from __future__ import annotations

import json
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

NAME_CELL = "//div[@role='gridcell'][.//a[normalize-space()='{}']]"
GROUP_BY = "//button[@data-testid='column-selection-dropdown'][starts-with(normalize-space(), 'Group by')]"
# A checkbox item of the Group by menu under its "Tags" label (the menu lists Tags, then Params).
TAG_ITEM = ("//*[@role='menu']//*[@role='menuitemcheckbox'][normalize-space()='{}']"
            "[preceding-sibling::*[not(@role)][1][normalize-space()='Tags']]")
# The chart card titled exactly `metric` (not knn_target_grid2): the nearest ancestor holding a plot.
CARD = "//*[normalize-space(text())='{}']/ancestor::*[.//*[contains(@class, 'js-plotly-plot')]][1]"
# Plotly keeps the drawn traces on the plot element (gd.data); MLflow leaves their names empty.
TRACES_JS = ("return Array.from(arguments[0].querySelectorAll('.js-plotly-plot'))"
             ".flatMap(p => (p.data || []).map(t => JSON.stringify({mode: t.mode || null, fill: t.fill || null,"
             " x: t.x || [], y: t.y || []})))")


class RunsPage:
    """The runs page of one experiment in one browser, waiting up to ``wait_s`` for each step."""

    def __init__(self, browser: WebDriver, wait_s: float) -> None:
        self.browser = browser
        # React redraws the table and the charts after each step: an element found a moment ago may be gone.
        self.wait = WebDriverWait(browser, wait_s, ignored_exceptions=(NoSuchElementException,
                                                                         StaleElementReferenceException))

    def open(self, url: str, experiment_id: str, parent: str) -> WebElement:
        """The link cjepa prints (``cjepa ui``, a study's last line, the parent run's note): it must show the
        runs table ("Model training" view) at once, with nothing clicked (3.17 opens GenAI otherwise);
        the parent run's name cell."""
        from cjepa.tracking.ui import runs_url

        self.browser.get(runs_url(url, experiment_id))
        cell = self.wait.until(EC.presence_of_element_located((By.XPATH, NAME_CELL.format(parent))))
        for close in self.browser.find_elements(By.XPATH, "//button[@aria-label='Close']"):  # the assistant panel
            if close.is_displayed():  # takes a third of the width; closing it is cosmetic
                close.click()
        return cell

    def expand(self, cell: WebElement, children: list[str]) -> None:
        """Child runs are nested under the parent row: its +/- button; wait for every child's name."""
        cell.find_element(By.TAG_NAME, "button").click()
        for name in children:
            self.wait.until(EC.visibility_of_element_located((By.XPATH, f"//a[normalize-space()='{name}']")))

    def chart_view(self, metric: str) -> WebElement:
        """Chart view (the second icon above the table), *Search metric charts* for ``metric``: its card."""
        radio = self.browser.find_element(By.XPATH, "//input[@type='radio' and @value='CHART']")
        self.browser.execute_script("arguments[0].click();", radio)
        search = self.wait.until(EC.element_to_be_clickable(
            (By.XPATH, "//input[contains(@placeholder, 'Search metric charts')]")))
        search.send_keys(metric)
        return self.card(metric)

    def card(self, metric: str) -> WebElement:
        """The displayed chart card of ``metric`` (looked up afresh: React may redraw it)."""
        return self.wait.until(EC.visibility_of_element_located((By.XPATH, CARD.format(metric))))

    def group_by_tag(self, tag: str) -> str:
        """Group by -> Tags -> ``tag``; the button's text afterwards ("Group by: arm")."""
        self.wait.until(EC.element_to_be_clickable((By.XPATH, GROUP_BY))).click()
        self.wait.until(EC.element_to_be_clickable((By.XPATH, TAG_ITEM.format(tag)))).click()
        text = self.wait.until(lambda b: (t := b.find_element(By.XPATH, GROUP_BY).text.strip()) != "Group by" and t)
        if any(m.is_displayed() for m in self.browser.find_elements(By.XPATH, "//*[@role='menu']")):
            self.browser.switch_to.active_element.send_keys(Keys.ESCAPE)  # 3.17 closes it on a pick already
        return text

    def group_rows(self) -> list[str]:
        """The runs list's group rows, as named there ("Group: beta_vicreg=0.0")."""
        rows = self.browser.find_elements(By.XPATH, "//*[starts-with(normalize-space(text()), 'Group: ')]")
        return [r.get_attribute("textContent").strip() for r in rows]  # the cell truncates what .text shows

    def legend(self, metric: str) -> list[str]:
        """The card's legend entries, one per drawn series: "<run or group> (<metric>)"."""
        spans = self.card(metric).find_elements(By.XPATH, f".//span[contains(normalize-space(), '({metric})')]")
        return [s.get_attribute("textContent").strip() for s in spans]

    def traces(self, metric: str) -> list[dict[str, Any]]:
        """The card's plotly traces: ``mode``, ``fill`` (set on a group's min-max band), ``x``, ``y``."""
        return [json.loads(t) for t in self.browser.execute_script(TRACES_JS, self.card(metric))]
