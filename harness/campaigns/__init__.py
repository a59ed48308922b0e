"""Campaigns: a matrix of runs from a TOML file, each row's expectation judged over its seeds.

- `matrix`: the campaign file, its rows and cells (`load`);
- `cell`: one run of a campaign, in a process of its own (`python -m harness.campaigns.cell`);
- `dispatch`: running cells here, a few at a time, or on a Dask cluster;
- `junit`: the outcome as JUnit XML;
- `validate`: the planted-bug matrix, the shipped campaign file `validate.toml`.

May import: harness.networks, harness.processes, harness.proxy, harness.run, harness.rundirs,
harness.systems.
"""
