"""The operator CLI `keap-relay`: commands run from a laptop or CI against a local or a deployed stack."""
