"""Source drift: which field paths a stream's records had, and what changed between runs.

``paths`` collects field paths while a run is written (names only, never values);
``reads`` finds, statically, the source paths a JSONata transform reads; ``compare`` sets a
run's paths against the previous successful run and against the mapped transforms;
``display`` decides which field names may be printed (PHI rule, issue 20).
"""
