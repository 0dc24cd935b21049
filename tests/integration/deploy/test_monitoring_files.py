"""The monitoring files in ``deploy/`` load, and every SSBG metric they query is one that
``/metrics`` actually serves (a renamed metric must not leave a dashboard or alert silent)."""

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from tests.support.metrics import app_client, sample_names, scrape

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "ssbg-dashboard.json"
ALERT_RULES = DEPLOY / "prometheus" / "ssbg-alerts.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"

METRIC_NAME = re.compile(r"\bssbg_[a-z0-9_]+\b")


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        expressions += [target["expr"] for target in panel["targets"]]
    return expressions


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    rules = _rules()
    assert rules
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_prometheus_config_scrapes_the_gateways_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS.parent / rule_file).is_file()
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "ssbg"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"]
    # The rules and the dashboard find the gateways by this job name.
    assert 'up{job="ssbg"}' in ALERT_RULES.read_text()
    assert 'up{job=\\"ssbg\\"}' in DASHBOARD.read_text()


@pytest.mark.parametrize("source", ["dashboard", "alert rules"])
async def test_every_metric_the_deploy_files_query_is_served(
    source: str, client: httpx.AsyncClient, shared_app: FastAPI
) -> None:
    expressions = (
        _dashboard_expressions() if source == "dashboard" else [rule["expr"] for rule in _rules()]
    )
    referenced = {name for expression in expressions for name in METRIC_NAME.findall(expression)}
    assert referenced

    assert (await client.get("/health")).status_code == 200  # a request timed, so buckets exist
    async with app_client(shared_app) as root:
        served = sample_names(await scrape(root))

    assert referenced <= served, sorted(referenced - served)
