"""The pipeline configuration: pydantic models for the YAML of DESIGN.md section 4.

Unknown keys are errors, every error names the file, the line and the key path, relative
paths resolve against the config file's folder, and ``~`` and ``${VAR}`` expand. Loading
(finding the file, reading YAML, expanding variables) lives in :mod:`engine.config.load`.
"""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from engine.config.fieldtypes import ConfigPath, SafeName, command_items
from engine.config.numbers import Float, Int

DEMO_TAPS = ("gmail", "msgraph", "dataverse", "sheets", "quickbooks", "forms", "formsheets")
STAGES = ("extract", "canonize", "index", "project")


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, docstrings document fields.

    The docstrings become field descriptions only through :func:`document_models` (for the
    JSON Schema and docs/configuration.md), and validators are built on first use
    (``defer_build``): both would otherwise cost every command's start-up (issue 18).
    """

    model_config = ConfigDict(extra="forbid", defer_build=True)


class PipelineInfo(StrictModel):
    """Who this pipeline is; shown in status and the dashboard title."""

    name: str = "lorchestra"
    """A label for the pipeline, shown in the dashboard title and `status`."""
    version: str = "0.0.0"
    """The version of this pipeline definition (free text, e.g. 1.0.0)."""


class MeltanoSpec(StrictModel):
    """How to run an extractor through `meltano invoke`."""

    project: ConfigPath
    """The Meltano project folder (the one holding meltano.yml)."""
    plugin: str
    """The extractor plugin name inside that project, passed to `meltano invoke`."""
    executable: str = "meltano"
    """The meltano command to run (a name on PATH or a path)."""


class DemoFaults(StrictModel):
    """Switchable faults of the bundled demo taps, for tests and drills."""

    fail_after: Int | None = Field(None, ge=0)
    """Emit this many records, then exit with `exit_code`."""
    exit_code: Int = Field(1, ge=0, le=255)
    """The exit code used with `fail_after`."""
    malformed_at: Int | None = Field(None, ge=0)
    """After this many records, write one line that is not JSON."""
    hang_after: Int | None = Field(None, ge=0)
    """After this many records, stop writing and never exit (until killed)."""
    stderr_flood_bytes: Int = Field(0, ge=0, le=1 << 34)
    """Write this many bytes of log lines to stderr before syncing."""
    record_before_schema: bool = False
    """Emit one RECORD before any SCHEMA."""
    huge_record_at: Int | None = Field(None, ge=0)
    """The index of the record that carries a huge text field."""
    huge_record_bytes: Int = Field(1 << 20, ge=0, le=1 << 30)
    """The size of that huge text field, in bytes."""
    unknown_message_at: Int | None = Field(None, ge=0)
    """After this many records, emit a message of an unknown type."""
    invalid_utf8_at: Int | None = Field(None, ge=0)
    """After this many records, emit a RECORD line holding an invalid UTF-8 byte."""
    close_stdout_after: Int | None = Field(None, ge=0)
    """After this many records, close stdout early and exit 0."""


class DemoSpec(StrictModel):
    """Settings of a bundled demo tap (`kind: demo`)."""

    tap: Literal["gmail", "msgraph", "dataverse", "sheets", "quickbooks", "forms", "formsheets"]
    """Which demo tap to run: gmail, msgraph, dataverse, sheets, quickbooks, forms (Google Forms API responses) or formsheets (the same responses as linked-sheet rows)."""
    records: Int = Field(100, ge=0, le=100_000_000)
    """Total number of records the tap emits, split over its streams."""
    seed: Int = 0
    """Seed of the synthetic data: same seed, account and count give the same records."""
    faults: DemoFaults = Field(default_factory=DemoFaults)
    """Faults to inject (all off by default)."""


class Extractor(StrictModel):
    """One Singer tap run for one account; its name is the CLI handle."""

    name: SafeName
    """Unique name of the extractor; the handle for `lorchestra extract NAME`."""
    domain: SafeName
    """The vault domain folder (email, clinical, finance, ...)."""
    source: SafeName
    """The source system (gmail, exchange, dataverse, sheets, quickbooks, ...)."""
    account: SafeName
    """The account within the source; one vault folder and one LATEST per account."""
    kind: Literal["meltano", "singer", "demo"]
    """How the tap runs: `singer` (a command), `meltano` (meltano invoke) or `demo` (bundled)."""
    command: list[str] | None = None
    """For `kind: singer`: the tap command as a list (`~` expands in each item; the program, when it has a `/`, and items starting with `./` or `../` are relative to the config file's folder)."""
    config: ConfigPath | None = None
    """For `kind: singer`: the tap's config file, passed as `--config` (may hold secrets)."""
    meltano: MeltanoSpec | None = None
    """For `kind: meltano`: the project and plugin."""
    demo: DemoSpec | None = None
    """For `kind: demo`: which bundled tap and how many records."""
    catalog: ConfigPath | None = None
    """For `kind: singer` or `demo`: a Singer catalog file (stream selection), passed as `--catalog`."""
    discover: bool = False
    """For `kind: singer` or `demo`: run the tap with `--discover` first, cache the catalog in the workspace (`catalogs/NAME.json`, 0600) and pass it as `--catalog`."""
    discover_max_age_h: Float = Field(24, ge=0, le=24 * 366)
    """With `discover: true`: hours a cached catalog is reused (0: discover on every run); a changed command or config file always discovers again."""
    incremental: bool = False
    """Pass the final Singer STATE of the account's last successful run (the one LATEST names) to the tap as `--state`, so it resumes where that run ended."""
    streams: list[str] = Field(default_factory=list)
    """The streams this tap is expected to emit, e.g. `[messages, contacts]`. Stream names come from the tap and may carry PHI (a spreadsheet tap names a stream after a file such as `intake_<client>_<birth date>.csv`): only names declared here or by a mapping's `stream` appear in events, logs, the dashboard and command output; any other stream is shown as `stream #N (tag)` (see docs/security.md; `lorchestra list streams NAME --reveal` prints the real names)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the tap (never logged)."""
    retries: Int = Field(0, ge=0, le=10)
    """How many times a failed extract is retried."""
    retry_backoff_s: Float = Field(2.0, ge=0, le=3600)
    """Delay before the first retry; doubles on each further retry."""
    timeout_s: Float = Field(1800, gt=0, le=7 * 86400)
    """Seconds an extract may run before it is stopped and marked `timeout`."""

    @model_validator(mode="after")
    def _kind_fields(self, info: ValidationInfo) -> Extractor:
        if self.command is not None:
            self.command = command_items(self.command, info)
        wanted = {"singer": "command", "meltano": "meltano", "demo": "demo"}[self.kind]
        if getattr(self, wanted) is None:
            raise ValueError(f"kind: {self.kind} needs the key '{wanted}'")
        if self.kind == "singer" and not self.command:
            raise ValueError("kind: singer needs a non-empty 'command' list")
        if self.config is not None and self.kind != "singer":
            raise ValueError(f"'config' does not apply to kind: {self.kind} (only to kind: singer)")
        for other in sorted({"command", "meltano", "demo"} - {wanted}):
            if getattr(self, other) is not None:
                raise ValueError(f"'{other}' does not apply to kind: {self.kind}")
        if self.kind == "meltano" and (self.catalog is not None or self.discover):
            raise ValueError("'catalog' and 'discover' do not apply to kind: meltano "
                             "(meltano invoke passes the project's own catalog)")
        if self.catalog is not None and self.discover:
            raise ValueError("use either 'catalog' (a file you keep) or 'discover: true' (a cached "
                             "discovered catalog), not both")
        return self


class Loader(StrictModel):
    """A Singer target that `lorchestra extract NAME --target LOADER` pipes a tap into, instead of the vault."""

    name: SafeName
    """Unique name of the loader; the handle for `--target NAME`."""
    command: list[str] = Field(min_length=1)
    """The target command as a list (`~` expands in each item; the program, when it has a `/`, and items starting with `./` or `../` are relative to the config file's folder)."""
    config: ConfigPath | None = None
    """The target's config file, passed as `--config` (may hold secrets)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the target (never logged)."""

    @model_validator(mode="after")
    def _expand(self, info: ValidationInfo) -> Loader:
        self.command = command_items(self.command, info)
        return self


class ExtractStage(StrictModel):
    """Settings of the extract stage and the vault writer."""

    job: str | None = None
    """The job (from `jobs`) that `run` extracts by default; all extractors if unset."""
    max_parallel: Int = Field(4, ge=1, le=64)
    """How many extract tasks run at once."""
    part_max_bytes: Int = Field(64 * 1024 * 1024, ge=1024, le=1 << 34)
    """A vault part is closed once it holds this many uncompressed bytes."""
    compression_level: Int = Field(1, ge=1, le=9)
    """gzip level of vault parts (1 is fastest)."""
    cancel_grace_s: Float = Field(5.0, ge=0, le=600)
    """Seconds a cancelled tap gets to exit after SIGTERM before it is killed."""
    memory_limit_mb: Int | None = Field(4096, ge=256, le=1 << 20)
    """Address-space cap (RLIMIT_AS) of each extract worker, in MiB; past it the task fails with `WORKER_OUT_OF_MEMORY`. The tap itself is not capped. Null: no cap."""


def _zone(value: str) -> str:
    """A known IANA time zone name, or the error that says so."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a known IANA time zone (e.g. America/New_York): {value!r}") from None
    return value


class Mapping(StrictModel):
    """Which transform turns one stream of one source into canonical records."""

    source: SafeName
    """The extractor `source` this mapping applies to."""
    stream: str
    """The Singer stream name."""
    transform: str
    """The transform id in the registry, e.g. email/gmail_to_canonical_v1."""
    max_rejects: Int = Field(0, ge=0)
    """How many records may fail the transform or schema before the task fails."""
    timezone: Annotated[str, AfterValidator(_zone)] | None = None
    """The IANA time zone (e.g. America/New_York) of the local times this stream's records show without an offset, such as a linked Google Sheet's Timestamp (the spreadsheet's zone); the transform gets it as $timezone. Unset: such times are UTC."""


class CanonizeStage(StrictModel):
    """Settings of the canonize stage."""

    mappings: list[Mapping] = Field(default_factory=list)
    """Stream-to-transform mappings."""
    workers: Int | None = Field(None, ge=1, le=64)
    """Parallel canonize tasks; the core count if unset."""
    transforms_dir: ConfigPath | None = None
    """The transform registry folder; the bundled config/transforms if unset."""
    schemas_dir: ConfigPath | None = None
    """The canonical schema folder; the bundled config/schemas if unset."""
    timeout_s: Float = Field(4 * 3600, gt=0, le=7 * 86400)
    """Wall-clock seconds one canonize task (one account) may run before it is stopped and marked `timeout` (`TIMEOUT`)."""
    memory_limit_mb: Int | None = Field(4096, ge=256, le=1 << 20)
    """Address-space cap (RLIMIT_AS) of each canonize worker, in MiB; past it the task fails with `WORKER_OUT_OF_MEMORY`. Null: no cap."""
    transform_timeout_ms: Int = Field(2000, ge=10, le=600_000)
    """Milliseconds one record's transform may take; past it the task fails with `TRANSFORM_TIMEOUT` (the record goes to the rejects file)."""
    transform_max_depth: Int = Field(1000, ge=10, le=100_000)
    """Deepest recursion one record's transform may reach; past it the task fails with `TRANSFORM_TOO_DEEP` (the record goes to the rejects file)."""


class IndexStage(StrictModel):
    """Settings of the index stage."""

    workers: Int | None = Field(None, ge=1, le=64)
    """Parallel index tasks; the core count if unset."""
    timeout_s: Float = Field(4 * 3600, gt=0, le=7 * 86400)
    """Wall-clock seconds one index task (one account) may run before it is stopped and marked `timeout` (`TIMEOUT`)."""
    memory_limit_mb: Int | None = Field(8192, ge=256, le=1 << 20)
    """Address-space cap (RLIMIT_AS) of each index worker, in MiB (higher than the other stages': the embedding model's numeric libraries reserve address space per core); past it the task fails with `WORKER_OUT_OF_MEMORY`. Null: no cap."""
    vectors: bool = True
    """Embed every document for search by meaning (`lorchestra query --similar`, hybrid
    `--text`) with the model shipped in the wordllama package; never downloads anything."""


class ProjectStage(StrictModel):
    """Settings of the project stage (the client layer's task; its rules are under `clients`)."""

    timeout_s: Float = Field(4 * 3600, gt=0, le=7 * 86400)
    """Wall-clock seconds the project task (one per run, over every account) may run before it is stopped and marked `timeout` (`TIMEOUT`), as a kill of it would be: the client tables are the last projection's or this one's, each chart folder whole, and `status` says `charts: incomplete` until the next run writes the rest."""
    memory_limit_mb: Int | None = Field(8192, ge=256, le=1 << 20)
    """Address-space cap (RLIMIT_AS) of the project worker and the helpers it starts, in MiB (as the index stage's: the measurements are embedded like any document); past it the task fails with `WORKER_OUT_OF_MEMORY`. Null: no cap."""


class Stages(StrictModel):
    """Per-stage settings."""

    extract: ExtractStage = Field(default_factory=ExtractStage)
    """The extract stage."""
    canonize: CanonizeStage = Field(default_factory=CanonizeStage)
    """The canonize stage."""
    index: IndexStage = Field(default_factory=IndexStage)
    """The index stage."""
    project: ProjectStage = Field(default_factory=ProjectStage)
    """The project stage (its time and memory limits)."""


WhereValue = str | int | float | bool | None


def _region(value: str) -> str:
    import phonenumbers

    code = value.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{value!r} is not a region phone numbers know (use a two-letter "
                         "country code such as US, GB or DE)")
    return code


class ClientsConfig(StrictModel):
    """The client layer: which contacts define clients and how documents find them (docs/clients.md)."""

    sources: list[SafeName] = Field(default_factory=list)
    """Contact documents from these sources define the clients; other contacts join a client through its keys or stay unmatched."""
    where: dict[str, WhereValue | list[WhereValue]] = Field(default_factory=dict)
    """Conditions on those contacts: a canonical path (`a.b`) and the value, or list of values, it must have (e.g. `account: mensio`)."""
    own_addresses: list[str] = Field(default_factory=list)
    """The practice's own e-mail addresses (globs such as `*@practice.example`): never a client's key; they set a mail's direction."""
    phone_region: Annotated[str, AfterValidator(_region)] = "US"
    """The region (two-letter country code) of phone numbers written without a country code."""
    overrides: ConfigPath | None = None
    """The overrides file (merge clients, keep them apart, link a document, ignore an address); applied on every run. A missing file means no overrides."""
    gmail_domains: list[str] = Field(default_factory=lambda: ["gmail.com", "googlemail.com"])
    """Domains where dots and `+tags` in the local part do not matter (Google ignores them)."""
    measures: ConfigPath | None = None
    """The outcome-measure registry folder (`<id>.v<version>.yaml` files and `bindings/`, docs/measures.md); the bundled config/measures if unset."""
    timezone: Annotated[str, AfterValidator(_zone)] = "UTC"
    """The IANA time zone (e.g. America/New_York) the chart folders show times and days in: an evening session is on its own day. The index keeps UTC."""


class PipelineConfig(StrictModel):
    """The whole pipeline configuration file."""

    pipeline: PipelineInfo = Field(default_factory=PipelineInfo)
    """Name and version of the pipeline."""
    workspace: ConfigPath
    """The PHI workspace folder; everything the pipeline writes lives under it."""
    extractors: list[Extractor] = Field(min_length=1)
    """The taps, one per account."""
    jobs: dict[SafeName, list[str]] = Field(default_factory=dict)
    """Named lists of extractor names."""
    loaders: list[Loader] = Field(default_factory=list)
    """Singer targets for `lorchestra extract NAME --target LOADER` (the vault is not written then)."""
    stages: Stages = Field(default_factory=Stages)
    """Per-stage settings."""
    on_failure: list[str] | None = Field(None, min_length=1)
    """A command (as a list) run after a run that failed, with a PHI-free JSON summary on its stdin."""
    stale_after_hours: Float = Field(26, gt=0, le=24 * 366)
    """Hours after which an account's LATEST counts as stale in `status` and the dashboard."""
    clients: ClientsConfig | None = None
    """The client layer (the project stage); without it, runs stop after index."""

    @model_validator(mode="after")
    def _expand_hook(self, info: ValidationInfo) -> PipelineConfig:
        if self.on_failure is not None:
            self.on_failure = command_items(self.on_failure, info)
        return self

    def extractor(self, name: str) -> Extractor | None:
        """The extractor called ``name``, or None."""
        return next((e for e in self.extractors if e.name == name), None)

    def loader(self, name: str) -> Loader | None:
        """The loader called ``name``, or None."""
        return next((lo for lo in self.loaders if lo.name == name), None)


Loc = tuple[str | int, ...]


def document_models() -> None:
    """Copy every config model's field docstrings into its ``description`` (idempotent).

    Call before reading descriptions or making a JSON Schema (``lorchestra config schema``,
    :mod:`engine.config.doc`); validation does not need them.
    """
    from engine.config.fielddocs import document

    document(m for m in globals().values()
             if isinstance(m, type) and issubclass(m, BaseModel) and m.__module__ == __name__)
