"""Cost of owning versus renting GPU capacity, per GPU-hour.

config (cost.toml or the built-in example) + price catalog + measured inputs
-> model (pure arithmetic) -> analysis (break-even, tornado, scenarios) -> renderers.
"""
