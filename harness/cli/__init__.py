"""The `faultline` command line: the parser (`main`), one module per subcommand, the exit
codes and the usage error (`exits`), and what is printed to the terminal (`terminal`).

Every other part of the harness is reached from here; nothing outside this package imports it.

May import: checkers, pluginkit, harness.campaigns, harness.faults, harness.networks,
harness.processes, harness.proxy, harness.report, harness.run, harness.rundirs,
harness.systems, harness.workloads.
"""
