"""What each stable error code means, in words, for the task detail view and the CLI.

The same sentences as the error-code table of docs/architecture.md (a test keeps every
``engine.events.ErrorCode`` covered). A code this table does not know (a newer engine) still
shows, with a pointer to that table.
"""

from __future__ import annotations

MEANINGS: dict[str, str] = {
    "TAP_NOT_FOUND": 'extract: the tap command (or its --discover run) could not be started',
    "TAP_EXIT_NONZERO": 'extract: the tap exited with a non-zero code (exit_code says which)',
    "TAP_OUTPUT_INVALID": "extract: a line of the tap's stdout is not a JSON object or not UTF-8 (line)",
    "TAP_OUTPUT_EMPTY": "extract: the tap exited 0 without writing one Singer message (not even a SCHEMA or STATE); LATEST stays where it was",
    "SCHEMA_MISSING": 'extract: a RECORD or BATCH came before any SCHEMA for its stream (line)',
    "UNKNOWN_MESSAGE": 'warning, extract: a Singer message of an unknown type was skipped (line, count)',
    "TIMEOUT": "extract: the task ran past timeout_s (or past the engine's backstop)",
    "CANCELLED": 'the task was cancelled (Ctrl-C, SIGTERM, SIGHUP, x or quitting in the dashboard)',
    "WRITE_FAILED": 'any stage: writing inside the workspace failed (disk full, file-size limit, I/O error)',
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
    "REJECTS_EXCEEDED": "canonize: a stream had more rejected records than its mapping's max_rejects (detail_path: the rejects file)",
    "UNMAPPED_STREAM": 'warning, canonize: records of streams no mapping covers were counted, not transformed (count)',
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
    "MEASURES_NOT_SCORED": 'warning, project: form responses (or measures of them) not scored (count = lines of detail_path, the rejects file; duplicate copies are counted apart)',
}


def meaning(code: str | None) -> str:
    """The meaning of ``code`` (empty for no code)."""
    if not code:
        return ""
    return MEANINGS.get(code, "see the error-code table in docs/architecture.md")
