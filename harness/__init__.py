"""faultline's harness: it starts clusters with every link under its control, drives concurrent
clients, injects faults, records histories, checks them and keeps each run on disk.

One package per part:

- `cli`: the `faultline` command line;
- `run`: one run, from a test's spec to its verdict;
- `faults`: the fault kinds, the fault schedule, combinations of faults, partition shapes;
- `campaigns`: matrices of runs, here or on Dask, and the shipped campaign files;
- `rundirs`: run directories: writing one, listing, comparing, pruning, serving many;
- `report`: a run's report.html;
- `systems`: the adapters of the systems under test;
- `workloads`: what the clients do;
- `networks`: the networks a cluster runs on (proxies, or a namespace per node);
- `proxy`: the embedded Toxiproxy-compatible proxy server;
- `processes`: the processes, ports and leftovers a run holds.

Each package's docstring says which others it may import (tests/layout checks it). Checkers
(`checkers`) and the reference store (`refnode`) import nothing of the harness; the harness
reaches refnode only through its adapter.

May import: harness.cli.
"""
