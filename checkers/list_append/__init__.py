"""An Elle-style checker of list-append transaction histories (Kingsbury and Alvaro, VLDB 2020).

Transactions read whole lists and append unique elements to them; because every read reveals
the order of the appends before it, the dependencies between transactions can be inferred and
searched for cycles, whose kinds rule consistency models in or out. One module per step:

- `history`: transactions from a history's events, and the contract they must follow;
- `versions`: each key's version order, inferred from the reads;
- `direct`: anomalies visible without a graph (aborted and intermediate reads, internal
  inconsistency, lost updates, incompatible orders, duplicates);
- `dependencies`: the ww, wr, rw and real-time edges between transactions;
- `graph`: strongly connected components and shortest paths, on integer graphs;
- `cycles`: the search for cycles of each kind inside the components;
- `anomalies`: anomaly names and which consistency models forbid which;
- `explain`: transactions and edges in words;
- `check`: the entry point, `check_list_append`.
"""

from checkers.list_append.check import MODELS, check_list_append

__all__ = ["MODELS", "check_list_append"]
