"""heap.settle: start-up's objects frozen, young collections rarer, later garbage still collected.

Run in a child process: freezing this test process's objects would keep its garbage for good.
"""

from __future__ import annotations

import json
import subprocess
import sys

_CHILD = """
import gc, json, weakref
from engine.daemon import heap

class Node:
    pass

before = gc.get_threshold()
heap.settle()
frozen = gc.get_freeze_count()
node = Node()
node.me = node  # a cycle made after settle: still the collector's
alive = weakref.ref(node)
del node
gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": frozen,
                  "cycle_collected": alive() is None}))
"""


def test_settle_freezes_what_is_alive_and_still_collects_later_cycles() -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert got["frozen"] > 1000  # the interpreter's and the imports' objects
    assert got["after"] == [10_000, got["before"][1], got["before"][2]]
    assert got["cycle_collected"]
