"""A small cost config whose every figure can be worked out by hand."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

SMALL = textwrap.dedent("""
    currency = "USD"
    as_of = 2025-01-01
    [cluster]
    gpu_model = "H100"
    nodes = 2
    gpus_per_node = 8
    [capex]
    server_price = 100000
    [finance]
    cost_of_capital = 0.10
    life_years = 3
    [power]
    gpu_power_w = 1000
    non_gpu_overhead_w = 0
    pue = 1.5
    price_per_kwh = 1.0
    [utilization]
    scheduler = 0.5
    availability = 1.0
    [rental]
    options = []
    reference = "od"
    [[rental.custom]]
    id = "od"
    term = "on-demand"
    price_per_gpu_hour = 1.0
    [[rental.custom]]
    id = "r3"
    term = "3-year"
    price_per_gpu_hour = 0.5
""")


@pytest.fixture
def small_toml() -> str:
    return SMALL


@pytest.fixture
def small_cfg():
    import tomllib

    from clusterkit.cost.config import parse_config

    return parse_config(tomllib.loads(SMALL), "small.toml", today=dt.date(2025, 1, 1))
