"""The clock every wait, pause and time budget reads, and the one sleep they go through.

One seam for tests: they replace ``now``, ``wall`` and ``sleep`` with a fake clock, so that
nothing in the suite sleeps for real and budgets, pauses and rate limits all see the same time.
"""

import time

# Monotonic seconds, for durations inside a process (immune to the wall clock being set).
now = time.monotonic
# Seconds since the epoch, for times several processes compare (the node-wide rate limit):
# unlike the monotonic clock, it does not start over when the node reboots.
wall = time.time
sleep = time.sleep
