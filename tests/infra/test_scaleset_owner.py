"""The control plane is the one owner of the scale set: no Bicep declares it, and what the Bicep hands the
app (SCALE_SET_TEMPLATE) is every field the app builds it from, taken from the resources it belongs to.

A PUT replaces a scale set's whole model, so a Bicep resource `vmss-{member}` beside the onboarding's
provision step would be two writers each stripping what the other set.
"""

from __future__ import annotations

from typing import Any

from shared.ports.scalesets import OPTIONAL_FIELDS, TEMPLATE_FIELDS
from tests.infra import bicep


def accessor(value: Any) -> Any:
    """``network.outputs.nodesSubnetId`` for pycep's nested property accessors; anything else unchanged."""
    if isinstance(value, dict) and value.get("operator", {}).get("type") == "property_accessor":
        operands = value["operator"]["operands"]
        return f"{accessor(operands['operand_1'])}.{accessor(operands['operand_2'])}"
    return value


def template() -> dict[str, Any]:
    params = bicep.parse("main.bicep")["modules"]["functionApp"]["config"]["params"]
    converted = params["scaleSetTemplate"]["function"]
    assert converted["type"] == "string", "the template reaches the app as one JSON setting"
    return {k: accessor(v) for k, v in converted["parameters"]["value_to_convert"].items()}


def test_no_bicep_file_declares_a_scale_set() -> None:
    for relative in bicep.files():
        declared = bicep.resources(relative, "Microsoft.Compute/virtualMachineScaleSets")
        assert declared == {}, f"{relative} declares a scale set: the control plane creates vmss-{{member}} alone"
        assert "scaleset" not in relative.lower(), relative


def test_the_bicep_fills_every_template_field_the_app_reads() -> None:
    assert set(template()) == set(TEMPLATE_FIELDS) | set(OPTIONAL_FIELDS)


def test_each_template_field_comes_from_the_resource_it_names() -> None:
    t = template()
    assert t["subnet_id"] == "network.outputs.nodesSubnetId"
    assert t["backend_pool_id"] == "loadBalancer.outputs.backendPoolId"
    assert t["identity_id"] == "nodesIdentity.outputs.id", "the nodes' identity, never the app's"
    assert t["node_identity_client_id"] == "nodesIdentity.outputs.clientId", "the node agent's identity"
    assert t["admin_ssh_public_key"] == "adminSshPublicKey"
    assert (t["vm_size"], t["image"], t["zones"]) == ("nodeVmSize", "nodeImage", "nodeZones")
    assert t["health_port"] == "cordaP2pPort", "the health extension probes the port the load balancer probes"
    custom = t["custom_data"]["function"]
    assert custom["type"] == "base64"
    loaded = custom["parameters"]["input_string"]["function"]
    assert loaded["type"] == "load_text_content"
    assert loaded["parameters"]["file_path"] == "corda-node.cloud-init.yaml"
    assert (bicep.INFRA / "corda-node.cloud-init.yaml").read_text().startswith("#cloud-config")


def test_the_parameters_behind_the_template_are_declared_with_their_defaults() -> None:
    params = bicep.parse("main.bicep")["parameters"]
    assert {"nodeVmSize", "nodeImage", "nodeZones", "adminSshPublicKey", "cordaP2pPort"} <= set(params)
    assert params["nodeZones"]["default"] == ["1", "2", "3"]
    assert params["nodeImage"]["default"].endswith(":latest"), "automatic OS image upgrades need version latest"


def test_the_app_may_assign_the_nodes_identity_and_no_other() -> None:
    roles = bicep.parse("main.bicep")["modules"]["roles"]["config"]["params"]
    assert accessor(roles["nodesIdentityName"]) == "nodesIdentity.outputs.name"
    assert accessor(roles["principalId"]) == "appIdentity.outputs.principalId"


def test_the_cloud_init_fits_azures_custom_data_limit() -> None:
    """osProfile.customData decodes to at most 65,535 bytes (Compute API reference): a node agent that
    grows the file past it would make every scale set creation fail."""
    assert len((bicep.INFRA / "corda-node.cloud-init.yaml").read_bytes()) <= 65535
