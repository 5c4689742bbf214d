#!/usr/bin/env bash
# This member's multi-tenant app registration, whose federated credential is the Function App's
# user-assigned identity (PLATFORM_FACTS §8 of the team docs; Entra "workload identity federation:
# trust a managed identity"). The Bicep cannot create it: the Microsoft Graph Bicep extension's
# `extension` keyword is not read by checkov's Bicep parser, which then checks nothing in the file.
#
#   infra/reader-app.sh MEMBER_ID APP_IDENTITY_PRINCIPAL_ID
#
# Idempotent: finds the app registration `consortium-reader-MEMBER_ID` or creates it (sign-in
# audience AzureADMultipleOrgs, no secret, no certificate), adds the federated credential
# `app-identity` (issuer: this tenant, subject: the identity's principal id, audience
# api://AzureADTokenExchange) unless it is there, and prints the client id to set as the
# `readerClientId` parameter (azd: CONSORTIUM_READER_CLIENT_ID). Under azd (the postprovision hook in
# azure.yaml) it sets that azd value itself. Needs Application Developer (or Application
# Administrator) in this tenant.
set -euo pipefail

member="${1:?usage: infra/reader-app.sh MEMBER_ID APP_IDENTITY_PRINCIPAL_ID}"
principal="${2:?usage: infra/reader-app.sh MEMBER_ID APP_IDENTITY_PRINCIPAL_ID}"
name="consortium-reader-${member}"
tenant="$(az account show --query tenantId -o tsv)"

app_id="$(az ad app list --filter "displayName eq '${name}'" --query '[0].appId' -o tsv)"
if [ -z "${app_id}" ]; then
  app_id="$(az ad app create --display-name "${name}" --sign-in-audience AzureADMultipleOrgs --query appId -o tsv)"
  echo "created app registration ${name}: ${app_id}" >&2
fi

existing="$(az ad app federated-credential list --id "${app_id}" --query "[?name=='app-identity'].subject" -o tsv)"
if [ "${existing}" != "${principal}" ]; then
  if [ -n "${existing}" ]; then
    az ad app federated-credential delete --id "${app_id}" --federated-credential-id app-identity
  fi
  az ad app federated-credential create --id "${app_id}" --parameters "$(cat <<JSON
{
  "name": "app-identity",
  "issuer": "https://login.microsoftonline.com/${tenant}/v2.0",
  "subject": "${principal}",
  "audiences": ["api://AzureADTokenExchange"],
  "description": "The control plane of consortium member ${member} (its user-assigned managed identity)"
}
JSON
)" >/dev/null
  echo "federated credential app-identity: subject ${principal}" >&2
fi

if [ -n "${AZD_ENVIRONMENT_NAME:-${AZURE_ENV_NAME:-}}" ] && command -v azd >/dev/null; then
  azd env set CONSORTIUM_READER_CLIENT_ID "${app_id}"
fi
echo "${app_id}"
