"""What each stable error code means, in words, for the task detail view and the CLI.

The same sentences as the error-code table of docs/architecture.md (a test keeps every
``engine.events.ErrorCode`` covered). A code this table does not know (a newer engine) still
shows, with a pointer to that table.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    'TAP_MESSAGE_INVALID': 'extract: a line is JSON but not a valid Singer message (not an object, no type, a RECORD without stream/record, a SCHEMA without schema or with bad key_properties, a STATE without value, ...) (line); see "The vault line format"',
    "VECTORS_UNAVAILABLE": 'warning, index: the embedding model (wordllama, from its installed package) could not load; documents indexed without vectors, the next run retries',
    "TRANSFORM_TIMEOUT": "canonize: one record's transform ran past stages.canonize.transform_timeout_ms; the task stops at once (detail_path: the rejects file, which holds that record)",
    "TRANSFORM_TOO_DEEP": "canonize: one record's transform recursed past stages.canonize.transform_max_depth; the task stops at once (detail_path: the rejects file)",
    "WORKER_OUT_OF_MEMORY": "any stage: the worker's allocation failed under its memory_limit_mb cap (RLIMIT_AS): a Python MemoryError, or a native abort the engine recognises in the diagnostics file",
    "INTERNAL_ERROR": "the engine itself failed while running the task's chain (a bug, an I/O error outside any worker); the run is still recorded, summarised and alarmed, and the traceback goes to diagnostics/engine/internal-error.log",
    "INDEX_CORRUPT": 'index: index.sqlite is not a readable SQLite database (or is malformed); move vector-store/ aside and run lorchestra run --stage index --force',
    "NO_INDEX": 'project: the workspace has no index yet (run index first)',
    "OVERRIDES_INVALID": 'project: the clients overrides file does not parse or breaks its format (detail_path: the message)',
    "CLIENT_CONFLICTS": 'warning, project: keys several clients hold, not reviewed in the overrides file (count; list them with lorchestra clients conflicts)',
    "OVERRIDE_UNUSED": 'warning, project: overrides that name a client or document that does not exist (count)',
    'TAP_TEXT_REPAIRED': 'warning, extract: lines whose lone UTF-16 surrogate escapes were kept as U+FFFD (count; "The vault line format")',
    "TAP_LEFTOVER_KILLED": "extract: the tap had ended, but processes it left in process groups of their own (a setsid or daemonising helper, out of reach of the stop to the tap's group) still held its stdout cancel_grace_s later, so the output never ended; they were killed with their groups, and what they still had to write is missing, so the run failed (not retried; LATEST not moved). Processes of the tap's own group are never killed this way",
    "OVERRIDE_STALE": 'warning, project: link: overrides whose document is no longer the one they were first applied to (other keys, participants, references or name), or whose content is not the sha256 they name, and overrides naming a client whose record is another person now (not applied; count; lorchestra clients conflicts names each; after looking again, lorchestra clients repin REF or a sha256: pin)',
    "LINKS_MOVED": "warning, project: documents this projection linked to another person than the previous projection did (an address moved from one client's record to another's takes past mail along); count; lorchestra clients moved names each until reviewed; a link: override puts one back",
    'DISK_FULL': 'any stage: the workspace\'s file system or quota is full (ENOSPC, EDQUOT, SQLite\'s "disk is full"); also run_finished.error_code when any task or the engine\'s log or history ran out of space. Partial output is removed, LATEST and canonical pointers stay; the face prints one message with the free space; exit 1',
    "OBJECT_MISSING": 'index: an object the load wrote before taking the write lock (phase A) was gone at its swap, so nothing was committed: something removed files under vector-store/objects meanwhile (docs/index.md section 6). Run the index stage again; if it recurs, look for another process cleaning the workspace',
    "LATEST_NOT_SUCCESS": 'canonize: LATEST.json names a run whose manifest does not say success (refused); verify reports it too',
    "TAP_NOT_FOUND": 'extract: the tap command (or its --discover run) could not be started',
    "TAP_EXIT_NONZERO": 'extract: the tap exited with a non-zero code (exit_code says which)',
    "TAP_OUTPUT_INVALID": "extract: a line of the tap's stdout is not a JSON object or not UTF-8 (line)",
    "TAP_OUTPUT_EMPTY": "extract: the tap exited 0 without writing one Singer message (not even a SCHEMA or STATE); LATEST stays where it was",
    "SCHEMA_MISSING": 'extract: a RECORD or BATCH came before any SCHEMA for its stream (line)',
    "UNKNOWN_MESSAGE": 'warning, extract: a Singer message of an unknown type was kept and skipped (line, count): at the first, and at the end with the total',
    "TIMEOUT": "extract: the task ran past timeout_s (or past the engine's backstop)",
    "CANCELLED": 'the task was cancelled (Ctrl-C, SIGTERM, SIGHUP, x or quitting in the dashboard)',
    "WRITE_FAILED": 'any stage: writing inside the workspace failed (file-size limit, I/O error; a full disk is DISK_FULL)',
    "WORKER_CRASHED": 'the worker ended without a final event (detail_path: its diagnostics file)',
    "BAD_EVENT": "warning: a worker's stdout line was not a valid event (dropped, counted)",
    "NO_LATEST": 'canonize: the account has no LATEST.json (never extracted successfully)',
    "CHECKSUM_MISMATCH": "canonize: a vault part's size or sha256 differs from its manifest; index: the canonical file does not hash to its meta's output.sha256",
    "PART_MISSING": 'canonize: a part the manifest lists does not exist',
    "PART_CORRUPT": 'canonize: a part does not decompress or decode as JSON lines',
    "MANIFEST_MISSING": 'canonize: the LATEST run folder has no manifest.json',
    "RUN_MISSING": 'canonize: LATEST.json names a run folder that does not exist',
    "TRANSFORM_MISSING": 'canonize: a mapping names a transform that is not in the registry (normally refused earlier by the preflight, exit 2)',
    "TRANSFORM_INVALID": "canonize: a mapping's transform or its schema does not load or compile (normally refused earlier by the preflight)",
    "NOTHING_MAPPED": "canonize: no stream of the LATEST run (or its chain) is one a mapping names (a typo in a mapping's source or stream?), while the account's canonical output has records: nothing replaced, the documents and charts stay; fix the mapping (`lorchestra list mappings`, `lorchestra list streams NAME`); if the mapping was removed on purpose, `lorchestra clean --stage canonize --yes` (every account's canonical output) lets the next run publish none",
    "REJECTS_EXCEEDED": "canonize: a stream had more rejected records than its mapping's max_rejects (detail_path: the rejects file)",
    "UNMAPPED_STREAM": 'warning, canonize: records of streams no mapping covers were counted, not transformed (count)',
    "SOURCE_FIELD_VANISHED": "warning, canonize: fields the account's transforms read vanished from the source's records (a rename at the source; count = fields): the canonical records lack what those fields gave (a missing key can take a document out of its client's chart); `lorchestra drift NAME` names them; update the transform (docs/transforms.md)",
    "UPSTREAM_FAILED": 'not run (status cancelled) because an earlier stage of the same chain did not succeed',
    "INCREMENTAL_CHAIN_BROKEN": 'canonize: a run of the incremental chain back to the last full run is gone, unreadable, not success, or the chain loops',
    "DISCOVERY_FAILED": 'extract: discover: true and TAP --discover failed or printed no catalog (exit_code)',
    "STATE_UNREADABLE": "extract: incremental: true and the LATEST run's manifest cannot be read",
    "BATCH_NOT_LOCAL": 'extract: a BATCH manifest entry is not a local file:/// URL (line)',
    "BATCH_FILE_MISSING": 'extract: a BATCH file does not exist (line)',
    "BATCH_INVALID": 'extract: a BATCH message or file is malformed (not a list, bad gzip, a line that is not a JSON object) (line)',
    "BATCH_UNSUPPORTED": 'extract: a BATCH encoding other than jsonl with gzip or none (line)',
    "TARGET_NOT_FOUND": 'extract --target: the loader could not be started',
    "TARGET_EXIT_NONZERO": 'extract --target: the loader exited non-zero (exit_code)',
    "NO_CANONICAL": "index: the account's canonical file or its meta file is missing",
    "CANONICAL_INVALID": 'index: the meta file does not parse, or a line is not a canonical record of this account (line)',
    "DUPLICATE_ENTITY": 'warning, index: the same entity appeared on several lines; the last one wins (count)',
    "INDEX_DB_ERROR": 'index: SQLite failed, or the account kept changing under the loader',
    "INDEX_SCHEMA_MISMATCH": 'index: index.sqlite has another schema version; it is not touched',
    "LATEST_INVALID": 'canonize: LATEST.json does not parse or its dt/run_id are not a date and run id',
    "MANIFEST_INVALID": 'canonize: the manifest does not parse, or lists a part not named part-NNN.jsonl.gz',
    "OBJECT_CORRUPT": "project (and query --json): an index object's bytes do not match its sha256; nothing was replaced or printed (detail_path: the object and the repair, `lorchestra run --stage index --force`)",
    "SOURCE_ID_COLLISION": "canonize: two streams of the account produced documents of one kind with the same source_id; nothing was published (detail_path: which streams, and the repair)",
    "NO_CLIENTS": "project: no client found (none meets clients.where, or the sources gave no contact while charts exist); the tables and charts stay as they were",
    "MEASURES_INVALID": "project: measure or binding files with problems; nothing was replaced (detail_path lists them, as lorchestra validate does)",
    "DELETION_NOT_APPLIED": "warning, canonize: deletion markers that could not remove their record (count): "
                            "after their own record in one run, or on a stream without a key (or the "
                            "marker no value for it); "
                            "that record stays until a full run no longer sends it",
    "MEASURES_CRITICAL_UNLINKED": "warning, project: a critical item (PHQ-9 item 9) was answered above its threshold in responses linked to no client, so in no chart (count); query --kind measurement --json --limit 0 lists them without client_id; link each with a link: override",
    "MEASURES_NOT_SCORED": 'warning, project: form responses (or measures of them) not scored (count = lines of detail_path, the rejects file; duplicate copies are counted apart)',
}


def meaning(code: str | None) -> str:
    """The meaning of ``code`` (empty for no code)."""
    if not code:
        return ""
    return MEANINGS.get(code, "see the error-code table in docs/architecture.md")
