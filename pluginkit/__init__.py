"""What every plug-in of faultline shares, whatever it plugs into: declared options
(`options`: a setting's type, default, allowed values and help, checked the same way from a
TOML file, test.json or the command line) and finding a plug-in class by name (`lookup`: the
built-in ones and any installed distribution's entry points).

Systems, workloads, fault kinds (`harness`) and checkers (`checkers`) all use it, which is why
it belongs to neither.

May import: nothing of faultline.
"""
