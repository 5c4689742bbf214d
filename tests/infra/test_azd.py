"""azd hands a member's values to the app: azure.yaml names them, infra/main.parameters.json takes them
from the azd environment into main.bicep's parameters, and main.bicep routes them to the app settings.

azd fills main.parameters.json as text, before it parses it as JSON, with github.com/drone/envsubst
(azure-dev ``pkg/infra/provisioning/bicep``: ``envsubst.Eval``), which escapes nothing. A JSON object
value (CONSORTIUM_PEER_READ_URLS) would break the file, so the file escapes its quotes with envsubst's
``${VAR//pattern/replacement}``; :func:`azd_fill` does what envsubst does with the forms the file uses
(``${VAR}``, ``${VAR=default}``, ``${VAR//pattern/replacement}``, a backslash escaping ``/`` or ``\\``:
drone/envsubst ``parse/scan.go`` ``scanEscaped``), so the test reads the file as azd will.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared import settings
from tests.infra import bicep

ROOT = Path(__file__).resolve().parents[2]
PARAMETERS = ROOT / "infra" / "main.parameters.json"
AZURE_YAML = ROOT / "azure.yaml"
_REFERENCE = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:=(?P<default>[^}]*)|//(?P<pattern>(?:\\.|[^/\\])*)/(?P<replacement>(?:\\.|[^}\\])*))?\}"
)
#: Values azd itself keeps in every environment (not the project's to document).
AZD_OWN = {"AZURE_LOCATION", "AZURE_ENV_NAME", "AZURE_SUBSCRIPTION_ID"}
#: (azd environment value, main.bicep parameter, functionapp.bicep parameter, app setting): the routes.
ROUTES = [
    ("CONSORTIUM_MEMBER_ID", "memberId", "memberId", "CONSORTIUM_MEMBER_ID"),
    ("CONSORTIUM_DEPLOYMENT", "deploymentName", "deploymentName", "CONSORTIUM_DEPLOYMENT"),
    ("CONSORTIUM_GENESIS_HASH", "genesisHash", "genesisHash", "CONSORTIUM_GENESIS_HASH"),
    ("CONSORTIUM_PEER_READ_URLS", "peerReadUrls", "peerReadUrls", "CONSORTIUM_PEER_READ_URLS"),
    ("CONSORTIUM_READER_CLIENT_ID", "readerClientId", "readerClientId", "CONSORTIUM_READER_CLIENT_ID"),
]


def _unescape(text: str) -> str:
    return re.sub(r"\\([/\\])", r"\1", text)


def azd_fill(text: str, env: dict[str, str]) -> str:
    """``text`` with each reference replaced as azd's envsubst does (an unset value reads as empty)."""

    def value(m: re.Match[str]) -> str:
        got = env.get(m["name"], "")
        if m["default"] is not None and not got:
            return m["default"]
        if m["pattern"] is not None:
            return got.replace(_unescape(m["pattern"]), _unescape(m["replacement"]))
        return got

    return _REFERENCE.sub(value, text)


def referenced() -> set[str]:
    return {m["name"] for m in _REFERENCE.finditer(PARAMETERS.read_text())}


def documented() -> set[str]:
    """The azd values azure.yaml's header lists."""
    return set(re.findall(r"^#\s{2,}([A-Z][A-Z0-9_]+)\s", AZURE_YAML.read_text(), re.MULTILINE))


def filled(env: dict[str, str]) -> dict[str, Any]:
    parameters: dict[str, Any] = json.loads(azd_fill(PARAMETERS.read_text(), env))["parameters"]
    return {k: v["value"] for k, v in parameters.items()}


def test_the_fill_does_what_envsubst_does() -> None:
    assert azd_fill("${A}|${B=x}|${C=x}|${D//a/b}", {"A": "1", "C": "y", "D": "banana"}) == "1|x|y|bbnbnb"
    assert azd_fill(r'${Q//"/\\"}', {"Q": '{"a": "b"}'}) == r"{\"a\": \"b\"}"
    assert azd_fill(r"${S//\//-}", {"S": "a/b"}) == "a-b"  # drone/envsubst's own example


def test_every_parameter_azd_fills_is_one_main_bicep_declares() -> None:
    declared = set(bicep.parse("main.bicep")["parameters"])
    assert set(filled({})) <= declared


def test_azure_yaml_documents_every_value_the_parameters_read_and_no_other() -> None:
    assert documented() - AZD_OWN == (referenced() - AZD_OWN) | {"CONSORTIUM_READER_CLIENT_ID"}
    assert referenced() >= {r[0] for r in ROUTES}


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"CONSORTIUM_MEMBER_ID": "bank-a"}, id="a founder before the ceremony"),
        pytest.param({"CONSORTIUM_MEMBER_ID": "bank-a", "CONSORTIUM_GENESIS_HASH": "ab" * 32}, id="a founder after"),
        pytest.param(
            {
                "CONSORTIUM_MEMBER_ID": "bank-c",
                "CONSORTIUM_GENESIS_HASH": "ab" * 32,
                "CONSORTIUM_PEER_READ_URLS": json.dumps(
                    {"bank-a": "https://stpubbanka1234567890.blob.core.windows.net/consortium-public"}
                ),
            },
            id="a joiner",
        ),
    ],
)
def test_each_value_reaches_its_parameter_whole(env: dict[str, str]) -> None:
    got = filled(env)
    for name, parameter, _, _ in ROUTES:
        assert got[parameter] == env.get(name, ""), name
    if "CONSORTIUM_PEER_READ_URLS" in env:
        assert json.loads(got["peerReadUrls"]) == json.loads(env["CONSORTIUM_PEER_READ_URLS"])
    assert got["nodeVmSize"] == "Standard_D4s_v5"


def test_each_parameter_reaches_the_app_setting_of_the_same_name() -> None:
    main = bicep.parse("main.bicep")
    app = main["modules"]["functionApp"]["config"]["params"]
    variables = json.dumps(main["variables"])
    site = bicep.body(bicep.resources("modules/functionapp.bicep", "Microsoft.Web/sites")["site"])
    app_settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    for _, parameter, module_parameter, setting in ROUTES:
        assert setting in settings.names()
        passed = json.dumps(app[module_parameter])
        assert f'"{parameter}"' in passed or (passed.strip('"') in main["variables"] and parameter in variables), (
            f"main.bicep passes {module_parameter} from {passed}, not from its parameter {parameter}"
        )
        assert app_settings[setting] == module_parameter


def test_a_malformed_peer_list_is_refused_at_deployment_and_an_empty_one_is_none() -> None:
    peers = bicep.parse("main.bicep")["variables"]["peers"]["value"]["function"]
    assert peers["type"] == "string"
    inner = peers["parameters"]["value_to_convert"]["function"]
    assert inner["type"] == "json", "json() fails the deployment on a malformed value"
    operands = inner["parameters"]["arg_1"]["operator"]["operands"]
    assert operands["true_value"] == "{}" and operands["false_value"] == "peerReadUrls"


def test_the_hook_reads_only_values_azd_holds() -> None:
    hook = re.search(r"postprovision:.*?run: (.*)$", AZURE_YAML.read_text(), re.DOTALL | re.MULTILINE)
    assert hook is not None
    outputs = set(bicep.parse("main.bicep")["outputs"])
    for name in re.findall(r"\$([A-Z][A-Z0-9_]*)", hook[1]):
        assert name in outputs or name in referenced(), f"the hook reads {name}, which azd does not hold"
