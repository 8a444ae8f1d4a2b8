"""IAM as AWS evaluates it, for the offline twin (issue 11, items a and b).

evaluate.py  identity-policy evaluation (principalmapper's condition engine,
             with the deviations from AWS we found corrected and tested)
roles.py     the roles of infra/template.yaml, resolved from the template
calls.py     the API calls Packer and the buildspecs make, from
             tests/fixtures/packer-amazon-calls.json
gate.py      an HTTP proxy in front of moto that evaluates every request
             against its caller's role (python -m tests.twin.iam.gate)
wire.py      what AWS authorizes for a request as the gate reads it
"""
