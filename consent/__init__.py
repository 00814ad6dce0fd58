"""The consent domain, pure: catalogue, record commitments and disclosure, masking, sharing agreements,
consent grants, the state derived from the ledger and the authorisation decision.

Bytes and values in, verdicts out: nothing here touches a database, a file or the network, so an
auditor can read these rules without reading the service.
"""
