"""Vault browser: domain -> source -> account -> runs (newest first), and the run detail.

The tree is rebuilt only where an account's runs changed, so the cursor and the expanded
branches survive a refresh. Highlighting an account or a run posts an intent message; the
detail pane shows a run's manifest summary (never record content).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import Static, Tree
from textual.widgets.tree import TreeNode

from engine.config import Extractor
from engine.ops.inspect import RunInfo
from lorch_tui.summary import human_bytes
from lorch_tui.widgets.latest import matches

STATUS_STYLE = {"success": "green", "failed": "red", "timeout": "red", "cancelled": "magenta"}


@dataclass(frozen=True)
class NodeRef:
    """What a tree node stands for."""

    kind: str  # domain | source | account | run
    extractor: str | None = None
    run: RunInfo | None = None


def run_label(run: RunInfo) -> Text:
    """`success 20261126T100109Z 250 rec 3p 12.1K 47.3x`: the status first, so a narrow pane
    cuts the dim numbers at the end, never the status or the run id."""
    text = Text(run.status, style=STATUS_STYLE.get(run.status, "yellow"))
    text.append(" " + run.run_id)
    text.append(f" {run.records:,} rec {run.parts}p {human_bytes(run.bytes, compact=True)}", style="dim")
    if run.ratio:
        text.append(f" {run.ratio:.1f}x", style="dim")
    return text


class VaultTree(Tree[NodeRef]):
    """The vault browser."""

    class AccountSelected(Message):
        """An account (or one of its runs) was highlighted."""

        def __init__(self, extractor: str) -> None:
            super().__init__()
            self.extractor = extractor

    class RunSelected(Message):
        """A run was highlighted."""

        def __init__(self, extractor: str, run: RunInfo) -> None:
            super().__init__()
            self.extractor = extractor
            self.run = run

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("vault", data=NodeRef("root"), id=id)
        self.show_root = False
        self.guide_depth = 2  # narrow guides: a run's status and id fit a 36-column pane
        self._accounts: dict[str, TreeNode[NodeRef]] = {}
        self._runs: dict[str, list[str]] = {}
        self._last: tuple[list[Extractor], dict[str, list[RunInfo]]] = ([], {})
        self.filter = ""

    def on_mount(self) -> None:
        self.border_title = "Vault"

    def show(self, extractors: list[Extractor], runs: dict[str, list[RunInfo]]) -> None:
        """Add missing branches and refresh accounts whose runs changed."""
        self._last = (extractors, runs)
        for ex in extractors:
            if self.filter and not matches(ex, self.filter):
                continue
            node = self._accounts.get(ex.name) or self._add_account(ex)
            listed = runs.get(ex.name, [])
            ids = [f"{r.run_id}:{r.status}" for r in listed]
            if ids == self._runs.get(ex.name):
                continue
            self._runs[ex.name] = ids
            node.remove_children()
            for r in listed:
                node.add_leaf(run_label(r), data=NodeRef("run", ex.name, r))
            node.set_label(self._account_label(ex, listed))

    def filter_accounts(self, text: str) -> None:
        """Show only accounts whose name, account, source or domain contains ``text``."""
        self.filter = text
        self.clear()
        self._accounts.clear()
        self._runs.clear()
        self.show(*self._last)

    def _child(self, parent: TreeNode[NodeRef], label: str, kind: str) -> TreeNode[NodeRef]:
        for child in parent.children:
            if str(child.label) == label:
                return child
        return parent.add(label, data=NodeRef(kind), expand=True)

    def _add_account(self, ex: Extractor) -> TreeNode[NodeRef]:
        domain = self._child(self.root, ex.domain, "domain")
        source = self._child(domain, ex.source, "source")
        node = source.add(self._account_label(ex, []), data=NodeRef("account", ex.name))
        self._accounts[ex.name] = node
        return node

    @staticmethod
    def _account_label(ex: Extractor, runs: list[RunInfo]) -> Text:
        text = Text(ex.account)
        text.append(f"  {len(runs)} run{'s' if len(runs) != 1 else ''}", style="dim")
        return text

    def select_account(self, extractor: str) -> None:
        """Move the cursor to an account (no message is posted back)."""
        node = self._accounts.get(extractor)
        if node is not None and self.cursor_node is not node and (
                self.cursor_node is None or self.cursor_node.data is None
                or self.cursor_node.data.extractor != extractor):
            # Tree numbers its lines lazily: a node added or moved since the last build has a
            # stale line number, and move_cursor would land elsewhere (or nowhere). Build first,
            # and scroll only once laid out (before that, any line looks out of view).
            self._tree_lines  # noqa: B018
            with self.prevent(Tree.NodeHighlighted):
                self.cursor_line = node.line
            self.call_after_refresh(self.scroll_to_node, node, animate=False)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        event.stop()
        ref = event.node.data
        if ref is None or ref.extractor is None:
            return
        self.post_message(self.AccountSelected(ref.extractor))
        if ref.kind == "run" and ref.run is not None:
            self.post_message(self.RunSelected(ref.extractor, ref.run))


class RunDetail(Static):
    """The selected run's manifest summary: streams, parts, checksums, STATE."""

    can_focus = True  # so it scrolls with the keys when the summary is longer than the pane

    def on_mount(self) -> None:
        self.border_title = "Run detail"

    def show(self, extractor: str, run: RunInfo | None, verified: str | None = None) -> None:
        """Describe a run; ``verified`` is the checksum verdict when known."""
        if run is None:
            self.update(Text(f"{extractor}: no run selected", style="dim"))
            return
        text = Text()
        text.append(f"{extractor}\n", style="bold")
        text.append(f"run {run.dt} {run.run_id}\nstatus ")
        text.append(run.status, style=STATUS_STYLE.get(run.status, "yellow"))
        if run.error_code:
            text.append(f" ({run.error_code})", style="red")
        text.append(f"\n{run.records:,} record{'' if run.records == 1 else 's'} in {run.parts} "
                    f"part{'' if run.parts == 1 else 's'}, {human_bytes(run.bytes, compact=True)}")
        if run.ratio:
            text.append(f", {run.ratio:.1f}x")
        text.append(f"\nSTATE {'present' if run.has_state else 'absent'}\n")
        text.append("checksums ")
        style = {"verified": "green", "checking": "yellow"}.get(verified or "", "red")
        text.append(verified or "not verified (press enter)", style=style if verified else "dim")
        for stream, n in run.streams.items():  # labels: undeclared names are placeholders
            text.append(f"\n  {stream}: {n:,}")
        if run.hidden_streams:
            text.append(f"\n  (undeclared stream names hidden: `lorchestra list streams {extractor} --reveal`)",
                        style="dim")
        self.update(text)
