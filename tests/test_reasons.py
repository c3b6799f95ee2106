"""Tests of msa_utils.data.reasons (the registry of data-report reasons) and scripts/render_docs.py."""

from __future__ import annotations

import ast
import importlib.util

import pandas as pd
import pytest

from msa_utils.data import reasons
from msa_utils.data.mvsa import decode_text_bytes
from msa_utils.data.reasons import DECODED_UTF8_WITH_REPLACEMENT as UNDECODABLE
from msa_utils.data.data_report import DataReport

from conftest import MVSA_DIR, REPO_ROOT

_spec = importlib.util.spec_from_file_location("render_docs", REPO_ROOT / "scripts" / "render_docs.py")
docs = importlib.util.module_from_spec(_spec)  # scripts/render_docs.py: a repository tool, not in the package
_spec.loader.exec_module(docs)

PACKAGE = REPO_ROOT / "msa_utils"
SHIPPED_REPORT = REPO_ROOT / "results" / "data_report.csv"
FAMILY_HELPERS = {"mode_to_rgb", "label_file_repair", "nul_bytes_removed", "image_error", "image_format"}


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

def test_registry_is_well_formed():
    assert reasons.REASONS, "empty registry"
    for code, reason in reasons.REASONS.items():
        assert code == reason.code
        assert reason.stage in reasons.STAGES, code
        assert reason.action in reasons.ACTIONS, code
        assert reason.case.strip() and reason.handling.strip(), code
        assert reason.policy is None or reason.policy.strip(), code
        assert reason.code.count("{") == reason.code.count("}") <= 1, code
        if not reason.is_pattern:
            assert reasons.lookup(code) is reason
    # every fixed-code constant of the module is registered
    constants = {name: value for name, value in vars(reasons).items() if name.isupper() and not name.startswith("_") and isinstance(value, str)}
    for name, value in constants.items():
        if name != "DECODED_UTF8_WITH_REPLACEMENT":  # a decoding, not a report code of its own
            assert value in reasons.REASONS, name


def test_every_code_of_the_shipped_report_is_registered_with_its_stage_and_action():
    report = pd.read_csv(SHIPPED_REPORT, keep_default_na=False)
    assert len(report) == 3511  # 2,592 before the NFKC repair noted 829 texts; 3,421 before near-copies were grouped
    written = report[["reason", "stage", "action"]].drop_duplicates()
    assert not written["reason"].duplicated().any(), "a code written with two stages or actions"
    for code, stage, action in written.itertuples(index=False):
        reason = reasons.lookup(code)
        assert (reason.stage, reason.action) == (stage, action), code


@pytest.mark.parametrize("code, pattern", [
    ("mode_RGBA_to_RGB", "mode_{mode}_to_RGB"),
    ("mode_I;16_to_RGB", "mode_{mode}_to_RGB"),
    ("label_file_utf8_bom_removed", "label_file_{repair}"),
    ("label_file_decoded_utf8_with_replacement", "label_file_{repair}"),
    ("image_format_PNG", "image_format_{format}"),
    ("image_format_WEBP", "image_format_{format}"),
    ("label_file_nul_bytes_removed+decoded_gb18030", "label_file_{repair}"),
    ("nul_bytes_removed+decoded_gb18030", "nul_bytes_removed+{repair}"),
])
def test_family_members_resolve_to_their_pattern(code, pattern):
    assert reasons.lookup(code).code == pattern


@pytest.mark.parametrize("code", [
    "mode_{mode}_to_RGB", "label_file_{repair}",  # a pattern is not a code
    "mode__to_RGB", "label_file_", "label_file_happy", "nul_bytes_removed+", "nul_bytes_removed+decoded_utf16_no_bom",
    "image_melted", "decoded_utf8_with_replacement", "decoded_gb18030_with_replacement", "image_format_", "",
    "Empty_Text_File",
])
def test_unknown_codes_are_refused(code):
    with pytest.raises(ValueError, match="unknown data-report reason"):
        reasons.lookup(code)


def test_family_helpers():
    assert reasons.mode_to_rgb("CMYK") == "mode_CMYK_to_RGB"
    assert reasons.label_file_repair("decoded_utf16") == "label_file_decoded_utf16"
    assert reasons.nul_bytes_removed(None) == "nul_bytes_removed"
    assert reasons.nul_bytes_removed("decoded_gb18030") == "nul_bytes_removed+decoded_gb18030"
    assert reasons.image_error("truncated") == reasons.IMAGE_TRUNCATED
    assert reasons.image_format("WEBP") == "image_format_WEBP"
    for bad in (lambda: reasons.mode_to_rgb(""), lambda: reasons.label_file_repair("happy"),
                lambda: reasons.image_error("tiny"), lambda: reasons.image_error("melted"),
                lambda: reasons.image_error("format_PNG"), lambda: reasons.image_format(""),
                lambda: reasons.REASONS[reasons.EMPTY_TEXT_FILE].format("x")):
        with pytest.raises(ValueError):
            bad()


def test_every_decoding_repair_is_registered():
    """Each repair decode_text_bytes can return is a text repair and a label-file repair."""
    samples = [
        "Café".encode("utf-8-sig"), "Café".encode("utf-16"), "Café".encode("utf-16-le"),
        "今天天气很好".encode("gbk"), (MVSA_DIR / "data" / "3323.txt").read_bytes(),
        b"hello\x00\x00world", b"a\x00\x00" + "今天".encode("gbk"), b"\x00" + "Café".encode("utf-8-sig"), b"bad \x81\x98\xff byte",
        "Don’t".encode("cp1252"), "Привет мир".encode("cp1251"),
    ]
    repairs = {decode_text_bytes(raw)[2] for raw in samples}
    assert repairs == {"utf8_bom_removed", "decoded_utf16", "decoded_utf16_no_bom", "decoded_gb18030",
                       "decoded_gb18030_not_utf8", "decoded_windows_1252", "decoded_windows_1251",
                       "nul_bytes_removed", "nul_bytes_removed+decoded_gb18030",
                       "nul_bytes_removed+utf8_bom_removed", UNDECODABLE}
    for repair in repairs - {UNDECODABLE}:
        assert repair in reasons.TEXT_REPAIRS
        assert (reasons.lookup(repair).stage, reasons.lookup(repair).action) == ("load", "repaired")
    for repair in repairs:
        assert reasons.lookup(reasons.label_file_repair(repair)).action == "repaired"


def test_every_image_load_error_cause_is_registered():
    """Each cause images.py raises ImageLoadError with has its image_<cause> code."""
    causes = set()
    for node in ast.walk(ast.parse((PACKAGE / "data" / "images.py").read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "ImageLoadError":
            for part in ast.walk(node.args[0]):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    causes.add(part.value)
    assert {"truncated", "too_large", "empty_file", "not_a_file"} <= causes
    for cause in causes:
        assert reasons.lookup(reasons.image_error(cause)).action == "excluded", cause


# --------------------------------------------------------------------------------------------
# DataReport.add
# --------------------------------------------------------------------------------------------

def test_add_takes_stage_and_action_from_the_registry():
    report = DataReport()
    report.add(reasons.EMPTY_TEXT_FILE, 7, "data/7.txt is empty")
    report.add(reasons.mode_to_rgb("RGBA"), 8)
    report.add(reasons.NOT_IN_SAMPLE, 9)
    report.add(reasons.BAD_LABEL_LINE, None, "train.txt line 3")
    got = [(e.stage, e.guid, e.action, e.reason) for e in report.entries]
    assert got == [("load", 7, "excluded", "empty_text_file"), ("images", 8, "repaired", "mode_RGBA_to_RGB"),
                   ("sample", 9, "noted", "not_in_sample"), ("load", None, "excluded", "bad_label_line")]


@pytest.mark.parametrize("code", ["empty_text", "mode_{mode}_to_RGB", "image_tiny_", "excluded"])
def test_add_refuses_an_unknown_reason(code):
    report = DataReport()
    with pytest.raises(ValueError, match="unknown data-report reason"):
        report.add(code, 1, "detail")
    assert len(report) == 0


def test_report_round_trips_through_csv(tmp_path):
    report = DataReport()
    report.add(reasons.DECODED_GB18030, 2, "data/2.txt decoded as gb18030")
    report.add(reasons.BAD_GUID, None, "train.txt line 4: guid '0042', \"quoted\"")
    report.add(reasons.UNTRANSLATED_DISABLED, 3, "")
    path = report.save(tmp_path / "data_report.csv")
    assert DataReport.load(path).entries == report.entries


def test_shipped_report_loads_unchanged(tmp_path):
    report = DataReport.load(SHIPPED_REPORT)
    assert len(report) == 3511  # 2,592 before the NFKC repair noted 829 texts; 3,421 before near-copies were grouped
    report.save(tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == SHIPPED_REPORT.read_bytes()


# --------------------------------------------------------------------------------------------
# Static check: no module reports a reason outside the registry
# --------------------------------------------------------------------------------------------

def _is_report_add(call: ast.Call) -> bool:
    """``<something named *report*>.add(...)``."""
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr == "add"):
        return False
    receiver = func.value
    name = receiver.id if isinstance(receiver, ast.Name) else getattr(receiver, "attr", "")
    return "report" in name.lower()


def _reason_arg(call: ast.Call) -> ast.expr | None:
    """The reason argument of ``report.add(reason, guid, detail)``."""
    for keyword in call.keywords:
        if keyword.arg == "reason":
            return keyword.value
    return call.args[0] if call.args else None


def _registered(code: str) -> bool:
    try:
        reasons.lookup(code)
    except ValueError:
        return False
    return True


def _problem(node: ast.expr) -> str | None:
    """Why the reason expression ``node`` is not taken from the registry, or None if it is.

    Allowed: ``reasons.CONSTANT`` (a registered fixed code), ``reasons.<family helper>(...)``,
    and a variable, attribute or subscript (checked where it is assigned, and by ``add`` at run
    time). Refused: string literals, f-strings, concatenations, other calls.
    """
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "reasons":
        value = getattr(reasons, node.attr, None)
        if node.attr in FAMILY_HELPERS or (isinstance(value, str) and _registered(value)):
            return None
        return f"reasons.{node.attr} is not a registered code"
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "reasons" \
                and func.attr in FAMILY_HELPERS:
            return None
        return f"a call {ast.unparse(node)!r}, not a registry helper"
    if isinstance(node, (ast.Name, ast.Attribute, ast.Subscript)):
        return None
    if isinstance(node, ast.IfExp):
        return _problem(node.body) or _problem(node.orelse)
    return f"{ast.unparse(node)!r} is a literal or expression, not a registry code"


_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _own_nodes(scope: ast.AST) -> list[ast.AST]:
    """The nodes of a module or function body, not descending into the functions defined in it."""
    nodes, stack = [], list(scope.body)
    while stack:
        node = stack.pop()
        if isinstance(node, _FUNCTION_NODES):
            continue
        nodes.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return nodes


def _assigned_values(nodes: list[ast.AST], name: str) -> list[ast.expr]:
    """Every value assigned to ``name`` among ``nodes`` (tuple unpacking included)."""
    values = []
    for node in nodes:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == name:
                    values.append(node.value)
                elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                    for element, value in zip(target.elts, node.value.elts):
                        if isinstance(element, ast.Name) and element.id == name:
                            values.append(value)
    return values


def _report_reason_problems(source: str, file_name: str) -> tuple[list[str], int]:
    """(problems, number of report.add calls) of one module's source.

    Checked: the reason argument of every ``report.add``; when it is a local variable, every
    value assigned to it in the same function; when it is a parameter of a helper function (such
    as ``exclude(reason, why)``), the matching argument at every call of that helper.
    """
    tree = ast.parse(source)
    scopes = [tree] + [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    problems, count = [], 0
    helpers = {}  # helper name -> position of its reason parameter
    for scope in scopes:
        nodes = _own_nodes(scope)
        params = [arg.arg for arg in scope.args.args] if not isinstance(scope, ast.Module) else []
        for call in nodes:
            if not (isinstance(call, ast.Call) and _is_report_add(call)):
                continue
            count += 1
            arg = _reason_arg(call)
            if arg is None:
                problems.append(f"{file_name}:{call.lineno}: report.add without a reason")
                continue
            checked = [arg]
            if isinstance(arg, ast.Name):
                checked += _assigned_values(nodes, arg.id)
                if arg.id in params:
                    helpers[scope.name] = params.index(arg.id)
            for node in checked:
                why = _problem(node)
                if why:
                    problems.append(f"{file_name}:{node.lineno}: {why}")
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in helpers:
            position = helpers[call.func.id]
            if position < len(call.args):
                why = _problem(call.args[position])
                if why:
                    problems.append(f"{file_name}:{call.lineno}: {call.func.id}(): {why}")
    return problems, count


def test_no_module_reports_a_reason_outside_the_registry():
    problems, count = [], 0
    for path in sorted(PACKAGE.rglob("*.py")):
        found, n = _report_reason_problems(path.read_text(encoding="utf-8"), path.name)
        problems += found
        count += n
    assert count >= 25, f"found only {count} report.add calls: the check is not looking at the right code"
    assert not problems, "reasons reported outside the registry:\n" + "\n".join(problems)


@pytest.mark.parametrize("bad", [
    'report.add("empty_text_file", guid, "x")',
    'report.add(f"image_{cause}", guid, "x")',
    'report.add("label_file_" + repair, None, "x")',
    'report.add(reasons.NOT_A_CODE, guid)',
    'report.add(reason=str(cause), guid=guid)',
    'reason = "untranslated_timeout"\n    report.add(reason, guid)',
    'reason, detail = "untranslated_error", "boom"\n    report.add(reason, guid, detail)',
])
def test_the_static_check_catches_literals(bad):
    source = f"def stage(report, guid, cause, repair):\n    {bad}\n"
    problems, count = _report_reason_problems(source, "bad.py")
    assert count == 1 and len(problems) == 1, problems


def test_the_static_check_follows_helpers():
    source = ("def read(report, guid):\n"
              "    def exclude(reason, why):\n"
              "        report.add(reason, guid, why)\n"
              "    exclude(reasons.TEXT_TOO_LARGE, 'big')\n"
              "    exclude('unreadable_text_file', 'odd')\n")
    problems, count = _report_reason_problems(source, "bad.py")
    assert count == 1 and len(problems) == 1 and "exclude()" in problems[0], problems


def test_the_static_check_accepts_registry_codes():
    source = ("def stage(report, guid, exc, facts):\n"
              "    report.add(reasons.EMPTY_TEXT_FILE, guid, 'x')\n"
              "    report.add(reasons.image_error(exc.reason), guid)\n"
              "    report.add(facts['repair'], guid)\n"
              "    reason = reasons.UNTRANSLATED_ERROR if exc else reasons.UNTRANSLATED_TIMEOUT\n"
              "    report.add(reason, guid)\n")
    assert _report_reason_problems(source, "good.py") == ([], 4)


# --------------------------------------------------------------------------------------------
# Generated documentation
# --------------------------------------------------------------------------------------------

def test_markdown_table_lists_every_reason_by_stage():
    table = reasons.reasons_table()
    for code in reasons.REASONS:
        assert f"`{code}`" in table, code
    headings = [line for line in table.splitlines() if line.startswith("### ")]
    assert [h.split("stage `")[1].rstrip("`)") for h in headings] == list(reasons.STAGES)
    assert "**policy:** we cannot tell which tag is right" in table


def test_docs_block_is_up_to_date():
    content = (REPO_ROOT / "docs" / "data-handling.md").read_text(encoding="utf-8")
    block = content.split("<!-- reasons:start -->\n", 1)[1].split("<!-- reasons:end -->", 1)[0]
    assert block == reasons.reasons_table().rstrip() + "\n"
    assert docs.main(["--check"]) == 0


def test_replace_block_and_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(docs, "BLOCKS", [b for b in docs.BLOCKS if b[1] == "reasons"])
    page = tmp_path / "docs" / "data-handling.md"
    page.parent.mkdir()
    page.write_text("# Title\n\n<!-- reasons:start -->\nold\n<!-- reasons:end -->\n\nafter\n")
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "docs/data-handling.md" in capsys.readouterr().err
    assert page.read_text().count("old") == 1  # --check writes nothing
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
    text = page.read_text()
    assert text.startswith("# Title\n\n<!-- reasons:start -->\n### ") and text.endswith("<!-- reasons:end -->\n\nafter\n")
    assert docs.replace_block(page, "reasons", reasons.reasons_table()) is False
    assert docs.replace_block(page, "reasons", "new") is True
    assert "<!-- reasons:start -->\nnew\n<!-- reasons:end -->" in page.read_text()


@pytest.mark.parametrize("content", [
    "no markers\n",
    "<!-- reasons:start -->\nonly a start\n",
    "<!-- reasons:end -->\n<!-- reasons:start -->\n",
    "<!-- reasons:start -->\n<!-- reasons:end -->\n<!-- reasons:start -->\n<!-- reasons:end -->\n",
])
def test_replace_block_refuses_missing_or_bad_markers(tmp_path, content):
    page = tmp_path / "page.md"
    page.write_text(content)
    with pytest.raises(ValueError, match=r"page\.md.*reasons"):
        docs.replace_block(page, "reasons", "text")
    assert page.read_text() == content


def test_no_code_matches_two_reasons():
    codes = [code for code in reasons.REASONS if "{" not in code]
    codes += [reasons.label_file_repair(r) for r in reasons.LABEL_FILE_REPAIRS]
    codes += [reasons.nul_bytes_removed(r) for r in reasons.AFTER_NUL_REPAIRS]
    codes += [reasons.mode_to_rgb(m) for m in ("1", "L", "P", "RGBA", "CMYK", "I;16", "YCbCr")]
    codes += [reasons.image_format(f) for f in ("PNG", "WEBP", "GIF", "BMP", "TIFF")]
    for code in codes:
        matching = [reason.code for reason in reasons.REASONS.values() if reason.matches(code)]
        assert len(matching) == 1, (code, matching)
