"""Keap's fixed names: the public endpoint and the duplicate-check types ContactService knows."""

DEFAULT_URL = "https://api.infusionsoft.com/crm/xmlrpc/v1"
# addWithDupCheck's third argument; also what a routes file may name as `dup_check`.
DUP_CHECK_TYPES: tuple[str, ...] = ("Email", "EmailAndName", "EmailAndNameAndCompany")
# The day Keap retires XML-RPC, as third parties report it (not confirmed on a Keap page; brownouts come before).
XMLRPC_SUNSET = "2026-12-31"
