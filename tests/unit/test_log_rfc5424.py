"""RFC 5424 to the letter, with the RFC's own examples (sections 6.3.5 and 6.5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from log_lake import Logs

pytestmark = pytest.mark.unit

BOM = "\ufeff"
# Section 6.5; "BOM" in the RFC's text stands for the bytes EF BB BF
EXAMPLE_1 = (
    f"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - {BOM}'su root' failed for lonvick on /dev/pts/8"
)
EXAMPLE_2 = "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
EXAMPLE_3 = (
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    f'[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] {BOM}An application event log entry...'
)
EXAMPLE_4 = (
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
)
# Section 6.3.5, example 3 (a space between two elements: the second is the message) and 4 (invalid SD-ID)
SPACED = (
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    '[exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] [examplePriority@32473 class="high"]'
)
INVALID = (
    "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    '[ exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
)
# Section 6.3.3: '"', '\' and ']' in a PARAM-VALUE are escaped; a backslash before anything else stays
ESCAPED = (
    "<165>1 2003-10-11T22:14:15.003Z gateway-1 opc - ALM "
    r'[alarm@32473 text="say \"hi\" \\ then \] end" path="C:\temp"][origin ip="192.0.2.1" ip="192.0.2.129"] '
    "message] here"
)
SD_EXAMPLE = {"exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}}


def _events(tmp_path: Path, *lines: str) -> list[dict]:
    logs = Logs(tmp_path)
    logs.write("gateway.log", "\n".join(lines) + "\n")
    logs.land()
    return logs.bronze()


def test_the_rfc_examples_of_section_6_5(tmp_path: Path) -> None:
    one, two, three, four = _events(tmp_path, EXAMPLE_1, EXAMPLE_2, EXAMPLE_3, EXAMPLE_4)
    assert (one["timestamp"], one["host"], one["severity"], one["code"]) == (
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC),
        "mymachine.example.com",
        "critical",
        "ID47",
    )
    assert one["message"] == "'su root' failed for lonvick on /dev/pts/8"  # the BOM before MSG is not text
    assert json.loads(one["extra"]) == {"app": "su"}
    assert two["timestamp"] == datetime(2003, 8, 24, 12, 14, 15, 3, tzinfo=UTC)
    assert (two["severity"], two["code"], two["message"]) == ("notice", None, "%% It's time to make the do-nuts.")
    assert three["message"] == "An application event log entry..."
    assert json.loads(three["extra"]) == {"app": "evntslog", "sd": SD_EXAMPLE}
    assert four["message"] is None and four["parse_error"] is None
    assert json.loads(four["extra"])["sd"] == {**SD_EXAMPLE, "examplePriority@32473": {"class": "high"}}
    assert three["timestamp"] == four["timestamp"] == one["timestamp"]


def test_the_structured_data_examples_of_section_6_3_5(tmp_path: Path) -> None:
    spaced, invalid = _events(tmp_path, SPACED, INVALID)
    assert json.loads(spaced["extra"])["sd"] == SD_EXAMPLE
    assert spaced["message"] == '[examplePriority@32473 class="high"]'
    assert invalid["timestamp"] is None and "RFC 5424" in invalid["parse_error"]


def test_escaped_characters_in_values_and_a_parameter_given_twice(tmp_path: Path) -> None:
    [event] = _events(tmp_path, ESCAPED)
    assert json.loads(event["extra"])["sd"] == {
        "alarm@32473": {"text": 'say "hi" \\ then ] end', "path": "C:\\temp"},
        "origin": {"ip": ["192.0.2.1", "192.0.2.129"]},  # section 7.2.5: ip may be given more than once
    }
    assert event["message"] == "message] here"
