"""The processes a run starts and what they hold: starting and stopping a supervised process
and its whole tree (`supervisor`), the guard that ends a child when its parent dies (`guard`),
the table of processes and namespaces that a killed harness may leave behind (`leftovers`), and
ports reserved for a run (`ports`).

May import: nothing of faultline outside this package.
"""
