"""infra/README.md names only what exists: each setting, Bicep parameter and output, azd value, file and
command it shows is checked against the code and the Bicep, and each `consortium` and ceremony command
in its shell blocks parses with the real argument parsers.

What is checked, by how it appears in the README:
- an UPPER_SNAKE name anywhere: an app setting (shared/settings.py, or the identity-based
  ``AzureWebJobsStorage__*`` ones functionapp.bicep sets), an azd value main.parameters.json or
  azure.yaml reads, one azd keeps itself, or an output of main.bicep;
- a `lowerCamel` name in backticks: a parameter or output of main.bicep;
- `--parameters name=value` and `@file`: a main.bicep parameter, an existing file;
- `azd env set NAME` / `azd env get-value NAME`: a value the deployment reads / holds;
- a `*.bicep`, `*.sh`, `*.json` or `*.yaml` path: a file in infra/ or the repository; the module table
  lists every module;
- `consortium ...` and `python -m tools.ceremony ...`: parse with cli.main / tools.ceremony's parsers;
- `infra/reader-app.sh`: its two arguments.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from cli.main import build_parser as cli_parser
from shared import settings
from tests.infra import bicep
from tests.infra.test_azd import AZD_OWN, PARAMETERS, documented, referenced
from tools.ceremony import build_parser as ceremony_parser

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "infra" / "README.md"
#: azd's own values a README may set (a resource-group-scoped template needs AZURE_RESOURCE_GROUP).
AZD_SETTABLE = AZD_OWN | {"AZURE_RESOURCE_GROUP"}
#: Bicep functions the README names in backticks.
BICEP_FUNCTIONS = {"loadTextContent"}


def text() -> str:
    return README.read_text()


def commands() -> list[str]:
    """Each command of the README's shell blocks, continuation lines joined, comments dropped."""
    found = []
    for block in re.findall(r"```sh\n(.*?)```", text(), re.DOTALL):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(line)
    return found


def argv(command: str, program: str) -> list[str]:
    """The arguments after ``program``, placeholders (``<...>``) given a value."""
    filled = re.sub(r"<[^>]+>", "x", command)
    words = shlex.split(filled)
    ends = [i for i, w in enumerate(words) if w in (">", ">>", "|", "2>", "&&")]
    return words[words.index(program) + 1 : ends[0] if ends else None]


def bicep_names() -> set[str]:
    main = bicep.parse("main.bicep")
    return set(main["parameters"]) | set(main["outputs"])


def app_setting_names() -> set[str]:
    site = bicep.body(bicep.resources("modules/functionapp.bicep", "Microsoft.Web/sites")["site"])
    return {s["name"] for s in site["properties"]["siteConfig"]["appSettings"]}


def test_every_upper_snake_name_is_a_setting_an_azd_value_or_an_output() -> None:
    known = set(settings.names()) | referenced() | documented() | AZD_SETTABLE | bicep_names()
    names = set(re.findall(r"(?<![\w.$-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-])", text()))
    assert names - known == set()
    assert {"CONSORTIUM_READER_CLIENT_ID", "CONSORTIUM_READER_TENANT_ID", "SCALE_SET_TEMPLATE"} <= names


def test_every_identity_based_storage_setting_is_one_the_bicep_sets() -> None:
    named = set(re.findall(r"AzureWebJobsStorage__\w+", text()))
    assert named and named <= app_setting_names()


def test_every_backquoted_camel_case_name_is_a_parameter_or_output_of_main_bicep() -> None:
    named = set(re.findall(r"`([a-z]+[A-Z][A-Za-z0-9]*)`", text()))
    assert named and named - bicep_names() - BICEP_FUNCTIONS == set()


def test_every_parameter_given_on_the_command_line_is_declared_and_every_file_exists() -> None:
    declared = set(bicep.parse("main.bicep")["parameters"])
    given = [c for c in commands() if "--parameters" in c]
    assert given
    for command in given:
        reading = False
        for word in argv(command, "az"):
            if word.startswith("--"):
                reading = word == "--parameters"
            elif reading and word.startswith("@"):
                assert (ROOT / word[1:]).is_file(), word
            elif reading:
                assert word.split("=", 1)[0] in declared, f"{word}: not a parameter of main.bicep"


def test_every_azd_value_set_is_read_and_every_one_read_back_is_held() -> None:
    holds = referenced() | documented() | set(bicep.parse("main.bicep")["outputs"])
    sets = [argv(c, "azd")[2] for c in commands() if c.startswith("azd env set ")]
    gets = [argv(c, "azd")[2] for c in commands() if c.startswith("azd env get-value ")]
    assert sets and gets
    assert set(sets) - (referenced() | AZD_SETTABLE) == set(), "set but read by no parameter"
    assert set(gets) - holds == set(), "read back but never held"
    assert "CONSORTIUM_FOUNDERS" not in text(), "that setting is gone"


def produced() -> set[str]:
    """Files the walkthrough's commands write (``> file``)."""
    return {m for c in commands() for m in re.findall(r">\s*([\w./-]+)", c)}


def test_every_file_named_exists_and_the_module_table_lists_every_module() -> None:
    tracked = {p.name for p in (ROOT / "infra").rglob("*")} | {p.name for p in ROOT.glob("*")}
    for name in set(re.findall(r"`([\w./-]+\.(?:bicep|sh|json|yaml|py))`", text())) - produced():
        path = name if "/" in name else None
        assert (ROOT / "infra" / name).exists() or (ROOT / name).exists() or (path is None and name in tracked), name
    tabled = set(re.findall(r"^\| `([\w-]+\.bicep)` \|", text(), re.MULTILINE))
    modules = {p.name for p in (ROOT / "infra" / "modules").glob("*.bicep")}
    assert tabled == modules


@pytest.mark.parametrize("command", [c for c in commands() if re.match(r"(\S*/)?consortium ", c)])
def test_each_consortium_command_parses(command: str) -> None:
    args = cli_parser().parse_args(argv(command, command.split()[0]))
    assert getattr(args, "handler", None) is not None, command


@pytest.mark.parametrize("command", [c for c in commands() if "-m tools.ceremony" in c])
def test_each_ceremony_command_parses(command: str) -> None:
    args = ceremony_parser().parse_args(argv(command, "tools.ceremony"))
    assert args.step in ("entry", "draft", "sign", "assemble", "install"), command
    if args.step in ("entry", "sign", "install"):
        assert args.member and args.settings, "a founder acts through its own settings"


def test_the_walkthrough_runs_every_step_of_the_ceremony_and_of_joining() -> None:
    ceremony = {argv(c, "tools.ceremony")[-1] for c in commands() if "-m tools.ceremony" in c}
    steps = {ceremony_parser().parse_args(argv(c, "tools.ceremony")).step for c in commands() if "tools.ceremony" in c}
    assert steps == {"entry", "draft", "sign", "assemble", "install"}, ceremony
    used = {subcommand(argv(c, c.split()[0])) for c in commands() if re.match(r"(\S*/)?consortium ", c)}
    assert used >= {"join", "proposals", "approve", "status", "chain"}, used
    assert any(c.startswith("az ad sp create --id") for c in commands())


def subcommand(words: list[str]) -> str:
    """The command of a ``consortium`` argument list (after ``--member M``)."""
    rest = list(words)
    while rest and rest[0].startswith("--member"):
        rest = rest[1:] if "=" in rest[0] else rest[2:]
    return rest[0]


def test_the_reader_app_script_is_given_its_two_arguments() -> None:
    calls = [c for c in commands() if c.startswith("infra/reader-app.sh")]
    assert calls
    for call in calls:
        assert len(shlex.split(re.sub(r"\$\([^)]*\)\)?", "x", call))) == 3, call
    usage = (ROOT / "infra" / "reader-app.sh").read_text()
    assert "infra/reader-app.sh MEMBER_ID APP_IDENTITY_PRINCIPAL_ID" in usage


def test_the_parameters_file_is_json_once_azd_fills_it() -> None:
    from tests.infra.test_azd import azd_fill

    assert json.loads(azd_fill(PARAMETERS.read_text(), {}))["parameters"]
