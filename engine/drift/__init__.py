"""Source drift: which field paths a stream's records had, and what changed between runs.

``engine.vault.paths`` collects field paths while a run is written (names only, never values;
it lives in ``vault`` because the vault writer uses it);
``reads`` finds, statically, the source paths a JSONata transform reads; ``compare`` sets the
paths of LATEST's incremental chain against the previous successful run's chain and against
the mapped transforms;
``checks`` gives ``validate`` its warning. Which names may be printed is ``engine.names``.
"""
