"""One run, from a test's spec to its verdict.

- `spec`: the test as one dataclass (`TestSpec`), built and checked from a TOML file,
  test.json or the command line;
- `runner`: starts the cluster, drives the clients and the fault schedule, heals, waits for
  recovery, makes the final reads and checks the history (`run_test`);
- `cluster`: the nodes of one system under test on one network;
- `observer`: polls the nodes' own view of their roles, for election safety;
- `recorder`: appends the history as it happens, each event written through at once;
- `violations`: where the first violation fell among the faults.

May import: checkers, pluginkit, harness.faults, harness.networks, harness.processes,
harness.report, harness.rundirs, harness.systems, harness.workloads.
"""
