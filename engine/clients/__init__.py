"""The client layer: who each document is about, decided by rules a person can check.

The project stage (:mod:`engine.stages.project`) reads every indexed document, defines the
practice's clients from the contact documents of ``clients.sources``, links every other
document to a client through normalised keys (:mod:`engine.clients.keys`) as the per-kind
rule table says (:mod:`engine.clients.rules`), reports keys that two clients hold instead of
guessing (:mod:`engine.clients.resolve`), applies the operator's overrides
(:mod:`engine.clients.overrides`), stores the result in the index database
(:mod:`engine.clients.tables`) and writes one chart folder per client
(:mod:`engine.clients.charts`, :mod:`engine.clients.folders`).
"""
