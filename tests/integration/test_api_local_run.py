"""The service beside a real local run (embedded broker, Spark job): records posted through
the API flow into transactions/ or quarantine/ as the generator's do, the dataset and
status endpoints follow the job, and the dashboard, in a real headless Chromium, shows
charts that hold data and change as batches land (screenshot kept as an artifact)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from spjobs import contract as C
from streampipeline.local.runner import LocalRun, RunOptions
from streampipeline.spec import load_manifest

from .api_util import auth, customer, transaction

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("STREAMPIPELINE_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))


def wait_for(what, predicate, timeout=240.0, every=1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory):
    """A local run with the API on, generating at a modest rate until the test stops it."""
    manifest = load_manifest(ROOT / "k8s" / "examples" / "pipeline.yaml").to_manifest()
    manifest["spec"]["generator"].update({"ratePerSecond": 150, "customers": 200, "invalidRatio": 0.05})
    manifest["spec"]["processing"].update({"trigger": "2s"})
    out = tmp_path_factory.mktemp("apirun") / "out"
    lines: list[str] = []
    run = LocalRun(load_manifest(manifest), RunOptions(output=out, api=True), printer=lines.append)
    result: dict = {}

    def work():
        try:
            result["summary"] = run.run()
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=work, name="local-run", daemon=True)
    thread.start()
    try:
        wait_for("the API to start", lambda: run.api is not None or "error" in result, timeout=180)
        assert "error" not in result, result.get("error")
        http = httpx.Client(base_url=run.api.url, timeout=30)
        wait_for(
            "the first batch",
            lambda: (http.get("/api/v1/status").json().get("processor") or {}).get("last_batch") is not None,
        )
        yield run, http, lines
    finally:
        run.stop_event.set()
        thread.join(300)
        run.close()
    assert "error" not in result, result.get("error")


def test_the_run_prints_the_url_and_the_token_once(live_run):
    run, http, lines = live_run
    assert any(line.startswith("Dashboard and API: http://127.0.0.1:") for line in lines), lines[:5]
    assert sum(run.api.token in line for line in lines) == 1
    assert http.get("/readyz").status_code == 200


def _found(http, name, **filters):
    return http.get(f"/api/v1/datasets/{name}", params={**filters, "limit": 10}).json()["rows"]


def test_posted_records_flow_into_transactions_or_quarantine(live_run):
    run, http, _ = live_run
    topics = run.job_config["kafka"]["topics"]
    ctopic, ttopic = topics["customers"]["name"], topics["transactions"]["name"]
    cust = customer()
    r = http.post(f"/api/v1/topics/{ctopic}/messages", json=cust, headers=auth(run.api.token))
    assert r.status_code == 201, r.text
    wait_for("the customer in customers/", lambda: _found(http, "customers", customer_id=cust["customer_id"]))

    good = transaction(cust["customer_id"], amount="123.45", category="travel")
    stranger = transaction("api-nobody-" + cust["customer_id"])
    r = http.post(f"/api/v1/topics/{ttopic}/messages", json=[good, stranger], headers=auth(run.api.token))
    assert r.status_code == 201, r.text
    # the same transaction again, in a later request: a duplicate for the job
    r = http.post(f"/api/v1/topics/{ttopic}/messages", json=good, headers=auth(run.api.token))
    assert r.status_code == 201, r.text

    rows = wait_for(
        "the transaction in transactions/",
        lambda: _found(http, "transactions", transaction_id=good["transaction_id"]),
    )
    assert len(rows) == 1
    row = rows[0]
    assert row["customer_id"] == cust["customer_id"] and row["amount"] == "123.45"
    assert row["category"] == "travel" and row["state"] == cust["state"]

    unknown = wait_for(
        "the unknown customer's transaction in quarantine/",
        lambda: _found(http, "quarantine", transaction_id=stranger["transaction_id"]),
    )
    assert [q["reason"] for q in unknown] == [C.REASON_UNKNOWN_CUSTOMER]
    assert json.loads(unknown[0]["raw_value"]) == stranger

    dup = wait_for(
        "the repeated transaction in quarantine/",
        lambda: _found(http, "quarantine", transaction_id=good["transaction_id"]),
    )
    assert [q["reason"] for q in dup] == [C.REASON_DUPLICATE_TRANSACTION_ID]


def test_status_and_datasets_follow_the_job(live_run):
    run, http, _ = live_run
    st = http.get("/api/v1/status").json()
    proc = st["processor"]
    assert proc["last_batch"] >= 0 and sum(proc["processed"].values()) > 0
    assert set(st["lag"]) == {t["name"] for t in run.job_config["kafka"]["topics"].values()}
    cats = http.get("/api/v1/datasets/by_category").json()["rows"]
    assert cats and {r["category"] for r in cats} <= set(C.CATEGORIES)
    assert all(int(r["transaction_count"]) > 0 for r in cats)
    tx = http.get("/api/v1/datasets/transactions", params={"limit": 5}).json()
    assert len(tx["rows"]) == 5 and tx["truncated"] is True
    year = tx["rows"][0]["year"]
    filtered = http.get("/api/v1/datasets/transactions", params={"year": year, "limit": 3}).json()["rows"]
    assert filtered and all(r["year"] == year for r in filtered)
    q = http.get("/api/v1/datasets/quarantine", params={"reason": C.REASON_MALFORMED_JSON, "limit": 3}).json()
    assert all(r["reason"] == C.REASON_MALFORMED_JSON for r in q["rows"])


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_dashboard_in_a_real_browser_holds_data_and_changes(live_run):
    run, http, _ = live_run
    browser, driver_bin = _chromium(), shutil.which("chromedriver")
    if not browser or not driver_bin:
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1300",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(driver_bin), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(run.api.url + "/")

        def charts():
            return driver.execute_script(
                "const c = window.streampipelineCharts; if (!c) return null;"
                "const out = {}; for (const [k, v] of Object.entries(c)) {"
                " out[k] = v.data.datasets.map(d => d.data.map(Number));"
                " out[k + ':labels'] = v.data.labels.length; }"
                "out.refreshes = Number(document.body.dataset.refreshes || 0);"
                "out.errors = Number(document.body.dataset.errors || 0); return out;"
            )

        def filled():
            c = charts()
            if not c:
                return None
            ok = (
                c["chart-rates:labels"] >= 3
                and any(v > 0 for v in c["chart-rates"][0])  # produced/s
                and any(v > 0 for v in c["chart-rates"][1])  # processed/s
                and sum(c["chart-category"][0]) > 0
                and sum(c["chart-quarantine"][0]) > 0
                and c["chart-city:labels"] > 0
                and c["chart-period:labels"] > 0
            )
            return c if ok else None

        first = wait_for("the charts to hold data", filled, timeout=180, every=2)
        assert first["errors"] == 0
        first_total = sum(first["chart-category"][0])
        first_batch = http.get("/api/v1/status").json()["processor"]["last_batch"]
        wait_for(
            "two more batches",
            lambda: http.get("/api/v1/status").json()["processor"]["last_batch"] >= first_batch + 2,
            timeout=180,
        )
        later = wait_for(
            "the charts to change",
            lambda: (c := filled()) and sum(c["chart-category"][0]) > first_total and c,
            timeout=60,
            every=2,
        )
        assert later["refreshes"] > first["refreshes"]
        assert later["chart-rates:labels"] >= first["chart-rates:labels"]
        assert driver.find_element("id", "processed").text not in ("", "\u2013")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        print(f"\ndashboard screenshot: {shot}")
    finally:
        driver.quit()
