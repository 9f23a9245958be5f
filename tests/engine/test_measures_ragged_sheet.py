"""A linked sheet's row that ends before its last questions left them blank; it is scored.

The Sheets API leaves a row's empty cells at the end out, so a patient who skipped the
sheet's last question (GAD-7 item 7 on the demo intake's sheet) gave a row without that
question. Read as a question not on the form, the response was not scored at all
(``QUESTION_MISSING``). Another row of the same sheet has the column: the item is blank and
the total prorated, as the standard allows. End to end (real extract, canonize, index and
project subprocesses) with the bundled transforms and the demo intake's binding.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.engine.test_forms_child_name import SHEET, TITLES, _row
from tests.helpers import FILE_TAP, clean_env, file_extractor, forms_config, run_cli, singer_file


def test_a_row_without_its_last_cells_is_scored_with_them_blank(tmp_path: Path) -> None:
    (tmp_path / "filetap.py").write_text(FILE_TAP)
    singer_file(tmp_path / "contacts.jsonl", "contacts", "contactid", [
        {"contactid": "c-ann", "firstname": "Ann", "lastname": "Reed", "fullname": "Ann Reed",
         "emailaddress1": "ann@home.example", "birthdate": "1980-04-04", "statecode": 0}])
    answers = ["Ann Reed", *["Several days"] * (len(TITLES) - 1)]
    full = _row(2, "3/3/2025 16:00:00", answers)
    ragged = _row(3, "3/10/2025 16:00:00", answers)
    del ragged[TITLES[-1]]  # GAD-7 item 7 skipped: the last cell is not in the row
    for row in (full, ragged):
        row["Email Address"] = "ann@home.example"
    singer_file(tmp_path / "sheet.jsonl", "Form_Responses_1", "__sdc_row", [full, ragged])
    path = forms_config(tmp_path, "ragged", [
        file_extractor(tmp_path, "dv", "dataverse", "main", tmp_path / "contacts.jsonl"),
        file_extractor(tmp_path, "fsheet", "sheets", "fs", tmp_path / "sheet.jsonl")], {"sources": ["dataverse"]})
    res = run_cli("--config", str(path), "run", "--json", env=clean_env(), timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ws = tmp_path / "ws" / "canonical" / "measures"
    scored = [orjson.loads(x) for x in (ws / "scored.jsonl").read_bytes().splitlines()]
    gad = {m["response_id"]: m for m in scored if m["measure"] == "gad7"}
    row3 = f"{SHEET[0]}/{SHEET[1]}/3"
    assert set(gad) == {f"{SHEET[0]}/{SHEET[1]}/2", row3}, scored
    assert gad[row3]["value"] == 7 and "prorated" in gad[row3]["flags"], gad[row3]  # 6 x 1, prorated to 7
    rejects = ws / "scored.rejects.jsonl"
    assert not rejects.exists() or b"QUESTION_MISSING" not in rejects.read_bytes()
